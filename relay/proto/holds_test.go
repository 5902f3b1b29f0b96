package proto

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hrdbeacon/beacon/routing"
)

// TestHoldDerivations pins the chain link, the escalation hold id and the
// panic derivations of envelope/SPEC.md "Held envelopes": values computed
// with Python's hashlib and hmac from the spec's formulas.
func TestHoldDerivations(t *testing.T) {
	id, _ := routing.ParseID("00112233445566778899aabbccddeeff")
	var v Link
	for i := range v {
		v[i] = byte(i)
	}
	if got := ChainLink(id, 5, v).String(); got != "2b40f1bc07cca11bcdf8e1180ff1f0d4570094c49776b368d21476391a3b9341" {
		t.Errorf("ChainLink = %s", got)
	}
	alert, _ := routing.ParseID("4f1c2a9e7b3d6c5f8a0b1e2d3c4f5a6b")
	if got := EscalationHoldID(alert, 2).String(); got != "0363ab8f6184d135cc2e62b7bcafc1c4" {
		t.Errorf("EscalationHoldID = %s", got)
	}
	k := bytes.Repeat([]byte{7}, 32)
	pid, sec := PanicID(k), PanicSecret(k)
	if pid.String() != "aa56f89df931c059a37b9c8e446b17eb" || sec.String() != "f4bcda8d9e969c2bcdcb7775e4fcea6d63da750e01f658b25d44042df7d1e2d0" {
		t.Errorf("PanicID %s, PanicSecret %s", pid, sec)
	}
	if got := PanicLock(pid, sec).String(); got != "93d0554fb12e9e0553f450ab478c7b55828313e99515214165487b75aaae6cdc" {
		t.Errorf("PanicLock = %s", got)
	}
	// The chain: each value links to the one before it, down to the tip.
	var seed Link
	seed[0] = 1
	for i := uint32(1); i <= 8; i++ {
		if ChainLink(id, i, ChainValue(id, seed, 8, i)) != ChainValue(id, seed, 8, i-1) {
			t.Errorf("value %d does not link to %d", i, i-1)
		}
	}
	if ChainValue(id, seed, 8, 8) != seed {
		t.Error("value N is not the seed")
	}
}

func TestHoldTargetsAndSubjects(t *testing.T) {
	for _, op := range holdOps {
		got, err := ParseHoldTarget(HoldTarget(op))
		if err != nil || got != op || !IsHold(HoldTarget(op)) {
			t.Errorf("%s: %v %v", op, got, err)
		}
	}
	for _, bad := range []string{"hold.", "hold.OK", "hold.ok.x", "holdok", "svc.hold.ok"} {
		if _, err := ParseHoldTarget(bad); !errors.Is(err, ErrSubject) {
			t.Errorf("ParseHoldTarget(%q) = %v", bad, err)
		}
	}
	id := routing.NewID()
	for part, subj := range map[string]string{"state": HoldStateSubject(id), "timer": HoldTimerSubject(id), "drill": HoldDrillSubject(id)} {
		p, got, err := ParseHoldSubject(subj)
		if err != nil || p != part || got != id || !strings.HasPrefix(subj, "bcn.hold.") {
			t.Errorf("%s: %s %s %v", subj, p, got, err)
		}
	}
	for _, bad := range []string{"bcn.hold.state", "bcn.hold.due", "bcn.hold.due." + id.String(), "bcn.hold.x." + id.String(), "bcn.hold.state." + strings.ToUpper(id.String()), "bcn.to.ug.urgent"} {
		if _, _, err := ParseHoldSubject(bad); !errors.Is(err, ErrSubject) {
			t.Errorf("ParseHoldSubject(%q) = %v", bad, err)
		}
	}
}

func TestFrameHold(t *testing.T) {
	p := &EscalationHold{Alert: routing.NewID(), Tier: 1}
	b, err := FrameHold(p, []byte("ENVELOPE"))
	if err != nil {
		t.Fatal(err)
	}
	var got EscalationHold
	env, err := UnframeHold(b, &got)
	if err != nil || got != *p || string(env) != "ENVELOPE" {
		t.Fatalf("UnframeHold: %+v %q %v", got, env, err)
	}
	for name, bad := range map[string][]byte{
		"empty":          nil,
		"one byte":       {0},
		"cut short":      b[:5],
		"unknown field":  append([]byte{0, 12}, []byte(`{"alert2":1}`)...),
		"two values":     append([]byte{0, 4}, []byte(`{}{}`)...),
		"over the limit": append([]byte{0x04, 0x01}, bytes.Repeat([]byte{' '}, 1025)...),
	} {
		if _, err := UnframeHold(bad, &got); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var l Link
	if l.UnmarshalText([]byte(strings.Repeat("A", 64))) == nil || l.UnmarshalText([]byte("00")) == nil {
		t.Error("a link in upper case, or short, accepted")
	}
	if (&EscalationHold{Alert: routing.NewID(), Tier: 3}).Check() == nil {
		t.Error("the partners' tier accepted without consent")
	}
}
