package proto

import (
	"errors"
	"strings"
	"testing"

	"github.com/hrdbeacon/beacon/routing"
)

func TestBridgeSubjectsRoundTrip(t *testing.T) {
	id := routing.NewID()
	m := MailboxFor("k")
	for _, s := range []Subject{Bridged("bridge-1", "ug", routing.Urgent, id, []byte("envelope")), ReturnMailbox("b", m), ReturnAck("b", id), Receipt(id, "de-mfa")} {
		got, err := ParseSubject(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSubject(%q) = %+v, %v; want %+v", s, got, err, s)
		}
		if s.Stream() == "" {
			t.Errorf("%q has no stream", s)
		}
	}
	if got, want := Bridged("b", "ug", routing.High, id, []byte("envelope")).String(), "bcn.bridged.b.ug.high."+id.String()+"."+EnvelopeDigest([]byte("envelope")); got != want {
		t.Errorf("Bridged = %q, want %q", got, want)
	}
	// Every stored subject lies under its stream's subject, and the
	// consumers' filters take exactly their own.
	for s, filter := range map[Subject]string{
		Bridged("b", "ug", routing.High, id, nil): SubjectBridged, ReturnMailbox("b", m): SubjectReturn,
		ReturnAck("b", id): SubjectReturn, Receipt(id, "p"): SubjectReceipts,
	} {
		if !strings.HasPrefix(s.String(), strings.TrimSuffix(filter, ">")) {
			t.Errorf("%q is not under %q", s, filter)
		}
	}
}

func TestBridgeParseRefusals(t *testing.T) {
	id := routing.NewID().String()
	m := MailboxFor("k").String()
	d := "." + EnvelopeDigest([]byte("envelope"))
	for _, s := range []string{
		"bcn.bridged.b.ug.urgent", "bcn.bridged.b.ug.urgent." + id, "bcn.bridged.b.ug.urgent." + id + ".x",
		"bcn.bridged.b.ug.urgent." + id + d + ".x", "bcn.bridged.b.ug.urgent." + id + "." + strings.ToUpper(d[1:]),
		"bcn.bridged.B.ug.urgent." + id + d, "bcn.bridged.-b.ug.urgent." + id + d, "bcn.bridged.b_c.ug.urgent." + id + d,
		"bcn.bridged.b.zz.urgent." + id + d, "bcn.bridged.b.ug.soon." + id + d, "bcn.bridged.b.ug.urgent.123" + d,
		"bcn.bridged.*.ug.urgent." + id + d,
		"bcn.return.b.mbox", "bcn.return.b.mbox." + m + ".x", "bcn.return.b.other." + m, "bcn.return.b.ack.1",
		"bcn.return.B.ack." + id, "bcn.rcpt." + id, "bcn.rcpt." + id + ".P", "bcn.rcpt.x.p", "bcn.rcpt." + id + ".p.q",
	} {
		if _, err := ParseSubject(s); !errors.Is(err, ErrSubject) {
			t.Errorf("ParseSubject(%q) = %v, want ErrSubject", s, err)
		}
	}
}

func TestBridgeSources(t *testing.T) {
	id := routing.NewID()
	for _, s := range []Service{
		{Name: SvcFetch, Source: SharedSource("de-mfa")}, {Name: SvcPending, Source: SharedSource("p")},
		{Name: SvcFetch, Source: BridgedSource("ug")}, {Name: SvcFetch, Source: ReturnSource},
		{Name: SvcRollUp, ID: id},
	} {
		got, err := ParseService(s.Target())
		if err != nil || got != s {
			t.Errorf("ParseService(%q) = %+v, %v; want %+v", s.Target(), got, err, s)
		}
		if s.Name != SvcRollUp && !s.Source.Consumed() {
			t.Errorf("%v is not read through a consumer", s.Source)
		}
	}
	if MailboxSource.Consumed() {
		t.Error("the mailbox is read through a consumer")
	}
	for _, s := range []string{"svc.fetch.shared", "svc.fetch.shared.", "svc.fetch.shared.P", "svc.fetch.bridged.zz",
		"svc.fetch.bridged", "svc.fetch.return.x", "svc.rollup", "svc.rollup.xyz", "svc.rollup." + strings.Repeat("0", 32)} {
		if _, err := ParseService(s); !errors.Is(err, ErrSubject) {
			t.Errorf("ParseService(%q) = %v, want ErrSubject", s, err)
		}
	}
}

func TestConsumerNamesDoNotCollide(t *testing.T) {
	names := map[string]bool{}
	for _, n := range []string{SharedConsumer("a", "b-c"), SharedConsumer("a-b", "c"), BridgedConsumer("a", "ug"),
		ReturnConsumer("a"), AlertConsumer("a", "ug")} {
		if names[n] {
			t.Errorf("consumer name %q used twice", n)
		}
		names[n] = true
	}
}

func TestValidID(t *testing.T) {
	for _, s := range []string{"a", "de-mfa", "0", strings.Repeat("a", 64)} {
		if !ValidID(s) {
			t.Errorf("ValidID(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-a", "A", "a_b", "a.b", "a*", strings.Repeat("a", 65), "é"} {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
}
