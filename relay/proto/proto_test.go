package proto

import (
	"testing"

	"github.com/hrdbeacon/beacon/routing"
)

func TestMailboxFor(t *testing.T) {
	const k1 = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
	const k2 = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF5"
	m1, m2 := MailboxFor(k1), MailboxFor(k2)
	if MailboxFor(k1) != m1 {
		t.Error("MailboxFor is not deterministic")
	}
	if m1 == m2 {
		t.Error("two NKeys have the same mailbox")
	}
	if m1.IsZero() {
		t.Error("zero mailbox")
	}
	// The derivation is part of the relay's authorisation: pin it.
	// printf '%s' "beacon.envelope.v1/mailbox$k1" | sha256sum | cut -c1-32
	if got, want := m1.String(), "03a756f248015adb588657794aa45d9e"; got != want {
		t.Errorf("MailboxFor(%q) = %s, want %s", k1, got, want)
	}
	if p, err := routing.ParseMailbox(m1.String()); err != nil || p != m1 {
		t.Errorf("routing.ParseMailbox(String()) = %v, %v", p, err)
	}
}
