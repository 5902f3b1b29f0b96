package proto

import (
	"errors"
	"strings"
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
	// The derivation is part of the relay's authorisation: pin it.
	// printf '%s' "beacon.envelope.v1/mailbox$k1" | sha256sum | cut -c1-32
	if got, want := m1.String(), "03a756f248015adb588657794aa45d9e"; got != want {
		t.Errorf("MailboxFor(%q) = %s, want %s", k1, got, want)
	}
}

// TestSubjectsRoundTrip: every subject built here parses back to itself.
func TestSubjectsRoundTrip(t *testing.T) {
	m := MailboxFor("k")
	id := routing.NewID()
	for _, s := range []Subject{Alert("ug", routing.Urgent), Share("ke", routing.Routine), Mailbox(m), Broadcast("ir"), AckOf(id)} {
		got, err := ParseSubject(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSubject(%q) = %+v, %v; want %+v", s, got, err, s)
		}
		if s.Stream() == "" {
			t.Errorf("%q has no stream", s)
		}
		in := Ingest(m, s.Target())
		mb, target, err := ParseIngest(in)
		if err != nil || mb != m || target != s.Target() {
			t.Errorf("ParseIngest(%q) = %v %q %v", in, mb, target, err)
		}
	}
}

func TestParseRefusals(t *testing.T) {
	m := MailboxFor("k").String()
	for _, s := range []string{
		"", "bcn.", "bcn.to.ug", "bcn.to.zz.urgent", "bcn.to.UG.urgent", "bcn.to.ug.soon", "bcn.to.ug.urgent.x",
		"bcn.mbox." + strings.ToUpper(m), "bcn.mbox.x", "bcn.bcast.xx", "bcn.ack.123", "bcn.svc.fetch.mbox",
		"bcn.hold.x", "nats.to.ug.urgent", "bcn.to.*.urgent", "bcn.to.>",
	} {
		if _, err := ParseSubject(s); !errors.Is(err, ErrSubject) {
			t.Errorf("ParseSubject(%q) = %v, want ErrSubject", s, err)
		}
	}
	for _, s := range []string{"bcn.in.", "bcn.in." + m, "bcn.in." + m + ".", "bcn.in.xyz.to.ug.urgent", "bcn.reply." + m + ".x"} {
		if _, _, err := ParseIngest(s); !errors.Is(err, ErrSubject) {
			t.Errorf("ParseIngest(%q) = %v, want ErrSubject", s, err)
		}
	}
}

func TestServices(t *testing.T) {
	for _, s := range []Service{
		{Name: SvcFetch, Source: MailboxSource}, {Name: SvcFetch, Source: AlertsSource("ug")},
		{Name: SvcPending, Source: AlertsSource("ke")}, {Name: SvcSettle}, {Name: SvcNews}, {Name: SvcNews, Country: "ug"},
		{Name: SvcDirectory},
	} {
		got, err := ParseService(s.Target())
		if err != nil || got != s {
			t.Errorf("ParseService(%q) = %+v, %v", s.Target(), got, err)
		}
		if !IsService(s.Target()) {
			t.Errorf("IsService(%q) = false", s.Target())
		}
	}
	for _, s := range []string{"svc.", "svc.fetch", "svc.fetch.alerts", "svc.fetch.alerts.zz", "svc.fetch.other", "svc.news.xx",
		"svc.settle.x", "svc.directory.1", "svc.hold", "to.ug.urgent"} {
		if _, err := ParseService(s); !errors.Is(err, ErrSubject) {
			t.Errorf("ParseService(%q) = %v, want ErrSubject", s, err)
		}
	}
}

func TestMailboxToken(t *testing.T) {
	for _, seq := range []uint64{1, 42, 1<<64 - 1} {
		if got, ok := ParseMailboxToken(MailboxToken(seq)); !ok || got != seq {
			t.Errorf("ParseMailboxToken(MailboxToken(%d)) = %d, %v", seq, got, ok)
		}
	}
	for _, s := range []string{"", "mbox.", "mbox.0", "mbox.01", "mbox.-1", "mbox.18446744073709551616", "mbox.1 ", "$JS.ACK.x"} {
		if _, ok := ParseMailboxToken(s); ok {
			t.Errorf("ParseMailboxToken(%q) accepted", s)
		}
	}
}

func TestReplyPrefix(t *testing.T) {
	m, o := MailboxFor("a"), MailboxFor("b")
	if !IsReplyOf(ReplyPrefix(m)+".x", m) || IsReplyOf(ReplyPrefix(o)+".x", m) || IsReplyOf(ReplyPrefix(m), m) ||
		IsReplyOf(ReplyPrefix(m)+"x.y", m) || IsReplyOf("bcn.to.ug.urgent", m) {
		t.Error("IsReplyOf")
	}
}
