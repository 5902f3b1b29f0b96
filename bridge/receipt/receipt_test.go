package receipt_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/bridge/receipt"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

func keyring(t *testing.T, role keys.Role) *keys.Keyring {
	kr, err := keys.NewKeyring(role)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// directory lists bridge "nl-bridge", partner "de-mfa" for ug and a
// mission.
func directory(t *testing.T, br, pt, m *keys.Keyring) *keys.Directory {
	root := keyring(t, keys.RoleRoot).Identity
	now := time.Now()
	r := &keys.Roster{Serial: 1, Issued: now.Add(-time.Minute), Expires: now.Add(time.Hour),
		Missions: []keys.Mission{{ID: "nl-kampala", Name: "M", Countries: []string{"ug"}, Identity: m.Identity.Public(), NKey: m.NKeyPublic(),
			InboxKeys: []keys.SignedInboxKey{m.Inboxes[0].Signed}, Response: keys.ResponseTargets{Urgent: time.Minute, High: time.Hour, Routine: time.Hour}}},
		Partners: []keys.Partner{{ID: "de-mfa", Name: "P", Countries: []string{"ug"}, Identity: pt.Identity.Public(), NKey: pt.NKeyPublic()}},
		Bridges:  []keys.Bridge{{ID: "nl-bridge", Name: "B", Identity: br.Identity.Public(), NKey: br.NKeyPublic()}}}
	signed, err := keys.SignDirectory(r, root)
	if err != nil {
		t.Fatal(err)
	}
	d, err := keys.VerifyDirectory(signed, root.Public().Fingerprint(), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestReceipt(t *testing.T) {
	br, pt, m := keyring(t, keys.RoleBridge), keyring(t, keys.RolePartner), keyring(t, keys.RoleMission)
	d := directory(t, br, pt, m)
	ref := routing.NewID()
	at := time.Now().Truncate(time.Second)
	b, err := receipt.Sign(ref, "ug", "de-mfa", at, br.Identity)
	if err != nil {
		t.Fatal(err)
	}
	s, err := receipt.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.Verify(d); err != nil || id != "nl-bridge" || s.Ref != ref || s.Partner != "de-mfa" || !s.StoredAt.Equal(at) || s.Country != "ug" {
		t.Fatalf("Verify = %q, %v; receipt %+v", id, err, s)
	}
	again, _ := receipt.Sign(ref, "ug", "de-mfa", at.Add(time.Minute), br.Identity)
	s2, _ := receipt.Parse(again)
	if s2.Key() != s.Key() || receipt.Key(ref, "fr-mfa") == s.Key() || receipt.Key(routing.NewID(), "de-mfa") == s.Key() {
		t.Error("a receipt's key is not one per envelope and partner")
	}

	for _, c := range []struct {
		what string
		b    []byte
	}{
		{"signed by a mission", must(receipt.Sign(ref, "ug", "de-mfa", at, m.Identity))},
		{"a partner the directory does not list", must(receipt.Sign(ref, "ug", "fr-mfa", at, br.Identity))},
		{"a country the partner does not cover", must(receipt.Sign(ref, "ke", "de-mfa", at, br.Identity))},
		{"a flipped byte", flip(b, len(b)-70)},
	} {
		s, err := receipt.Parse(c.b)
		if err == nil {
			_, err = s.Verify(d)
		}
		if !errors.Is(err, receipt.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.what, err)
		}
	}
	body, err := message.Marshal(&message.Broadcast{Country: "ug", Category: message.BroadcastCategory("training"), Title: "t", Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	bc, _ := envelope.SignPublic("ug", body, br.Identity, at)
	if _, err := receipt.Parse(bc); !errors.Is(err, receipt.ErrInvalid) {
		t.Errorf("a broadcast signed by the bridge parsed as a receipt: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}
