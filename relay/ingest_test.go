package relay_test

// End-to-end tests of the ingest and the services behind it: every refusal
// code, exactly; that a refusal stores nothing and the relay keeps serving;
// rate limits per connection key under a fake clock; that the relay answers
// only on the sender's inbox; metrics; and that neither the metrics nor the
// logs carry a payload, a message id or a mailbox.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// fakeClock is the relay's injected clock: it moves only when told to.
// newFakeClock is a fake clock at the current time, to the millisecond
// (envelope times have millisecond precision).
func newFakeClock() *clockwork.FakeClock {
	return clockwork.NewFakeClockAt(time.Now().Truncate(time.Millisecond))
}

// header returns a fresh header created at the given time.
func header(cc string, p routing.Priority, created time.Time) envelope.Header {
	h := envelope.NewHeader(cc, p)
	h.Created = created
	return h
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func edit(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }

func TestIngestRefusals(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	w, r, cfg := startWorld(t, nil, relay.WithClock(clk))
	now := clk.Now()
	window := cfg.Storage.DedupWindow
	maxSize := int(cfg.Storage.MaxMessageSize)

	d := relaytest.Connect(t, r.ClientURL(), nil)
	nl := connectMission(t, w, r, "nl-kampala")
	de := connectMission(t, w, r, "de-nairobi")
	partner := relaytest.Connect(t, r.ClientURL(), w.Keyrings["partner"].NKey)
	bridge := relaytest.Connect(t, r.ClientURL(), w.Keyrings["bridge"].NKey)
	nlID, deID, pID := w.Keyrings["nl-kampala"].Identity, w.Keyrings["de-nairobi"].Identity, w.Keyrings["partner"].Identity

	valid := sealAlert(t, w, header("ug", routing.Urgent, now), "valid")
	alertID := routing.NewID()
	otherID := routing.NewID()
	ugUrgent := proto.AlertTarget("ug", routing.Urgent)

	storedUG := 0 // alerts stored under ug/urgent
	for _, c := range []struct {
		name   string
		conn   *relaytest.Conn
		target string
		data   []byte
		code   proto.Code // "" when it must be stored
		stream string     // where, when stored
	}{
		{"random bytes", d, ugUrgent, randomBytes(4096), proto.CodeMalformed, ""},
		{"empty", d, ugUrgent, nil, proto.CodeMalformed, ""},
		{"magic changed", d, ugUrgent, edit(valid, func(b []byte) []byte { b[0] = 'X'; return b }), proto.CodeMalformed, ""},
		{"truncated by one byte", d, ugUrgent, valid[:len(valid)-1], proto.CodeMalformed, ""},
		{"one extra byte", d, ugUrgent, append(bytes.Clone(valid), 0), proto.CodeMalformed, ""},
		{"version 2", d, ugUrgent, edit(valid, func(b []byte) []byte { b[3] = 2; return b }), proto.CodeVersion, ""},
		{"exactly the size limit", d, ugUrgent, randomBytes(maxSize), proto.CodeMalformed, ""},
		{"one byte over the size limit", d, ugUrgent, randomBytes(maxSize + 1), proto.CodeTooLarge, ""},
		{"country mismatch", d, proto.AlertTarget("ke", routing.Urgent), valid, proto.CodeMismatch, ""},
		{"priority mismatch", d, proto.AlertTarget("ug", routing.High), valid, proto.CodeMismatch, ""},
		{"shared: country mismatch", d, proto.ShareTarget("ke", routing.Urgent), valid, proto.CodeMismatch, ""},
		{"created one ms before the window", d, ugUrgent,
			sealAlert(t, w, header("ug", routing.Urgent, now.Add(-window-time.Millisecond)), "old"), proto.CodeStale, ""},
		{"created at the start of the window", d, ugUrgent,
			sealAlert(t, w, header("ug", routing.Urgent, now.Add(-window)), "oldest fresh"), "", proto.StreamAlerts},
		{"created 20 minutes in the future", d, ugUrgent,
			sealAlert(t, w, header("ug", routing.Urgent, now.Add(20*time.Minute)), "future"), proto.CodeStale, ""},
		{"created 5 minutes in the future", d, ugUrgent,
			sealAlert(t, w, header("ug", routing.Urgent, now.Add(5*time.Minute)), "skewed"), "", proto.StreamAlerts},
		{"mission: no such stream", nl, "nope.x", valid, proto.CodeBadTarget, ""},
		{"mission: alert subject too long", nl, ugUrgent + ".x", valid, proto.CodeBadTarget, ""},
		{"mission: bad mailbox", nl, "mbox.zz", valid, proto.CodeBadTarget, ""},
		{"mission: mailbox subject too long", nl, proto.MailboxTarget(d.Mailbox) + ".x",
			sealToDefender(t, w, "nl-kampala", newIdentity(t), "r"), proto.CodeBadTarget, ""},
		{"mission: broadcast subject too long", nl, proto.BroadcastTarget("ug") + ".x", mustSignPublic(t, "ug", "x", nlID, now), proto.CodeBadTarget, ""},
		{"mission: ack subject too long", nl, proto.AckTarget(alertID) + ".x", envelope.SignAck(alertID, nlID, now), proto.CodeBadTarget, ""},
		{"mission: bad ack id", nl, "ack.zz", envelope.SignAck(alertID, nlID, now), proto.CodeBadTarget, ""},
		{"partner: alert", partner, ugUrgent, sealAlert(t, w, header("ug", routing.Urgent, now), "p"), proto.CodeForbidden, ""},
		{"bridge: alert", bridge, ugUrgent, sealAlert(t, w, header("ug", routing.Urgent, now), "b"), proto.CodeForbidden, ""},
		{"partner: broadcast", partner, proto.BroadcastTarget("ug"), mustSignPublic(t, "ug", "p", pID, now), proto.CodeForbidden, ""},
		{"bridge: ack", bridge, proto.AckTarget(alertID), envelope.SignAck(alertID, nlID, now), proto.CodeForbidden, ""},
		{"broadcast for a country not covered", nl, proto.BroadcastTarget("ke"), mustSignPublic(t, "ke", "x", nlID, now), proto.CodeForbidden, ""},
		{"broadcast for an unknown country", nl, proto.BroadcastTarget("zz"), mustSignPublic(t, "ug", "x", nlID, now), proto.CodeBadTarget, ""},
		{"broadcast signed by another mission", nl, proto.BroadcastTarget("ug"), mustSignPublic(t, "ug", "x", deID, now), proto.CodeBadSig, ""},
		{"broadcast with a flipped signature byte", nl, proto.BroadcastTarget("ug"),
			edit(mustSignPublic(t, "ug", "x", nlID, now), func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), proto.CodeBadSig, ""},
		{"broadcast for another country", nl, proto.BroadcastTarget("ug"), mustSignPublic(t, "ke", "x", nlID, now), proto.CodeMismatch, ""},
		{"broadcast not an envelope", nl, proto.BroadcastTarget("ug"), valid, proto.CodeMalformed, ""},
		{"stale broadcast", nl, proto.BroadcastTarget("ug"), mustSignPublic(t, "ug", "x", nlID, now.Add(-window-time.Second)), proto.CodeStale, ""},
		{"broadcast", nl, proto.BroadcastTarget("ug"), mustSignPublic(t, "ug", "security training on Friday", nlID, now), "", proto.StreamBroadcasts},
		{"ack", nl, proto.AckTarget(alertID), envelope.SignAck(alertID, nlID, now), "", proto.StreamAcks},
		{"ack by a partner", partner, proto.AckTarget(alertID), envelope.SignAck(alertID, pID, now), "", proto.StreamAcks},
		{"ack for another alert id", nl, proto.AckTarget(otherID), envelope.SignAck(alertID, nlID, now), proto.CodeMismatch, ""},
		{"ack signed by another mission", nl, proto.AckTarget(otherID), envelope.SignAck(otherID, deID, now), proto.CodeBadSig, ""},
		{"ack with a flipped signature byte", de, proto.AckTarget(otherID),
			edit(envelope.SignAck(otherID, deID, now), func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), proto.CodeBadSig, ""},
		{"ack one byte short", de, proto.AckTarget(otherID), envelope.SignAck(otherID, deID, now)[1:], proto.CodeMalformed, ""},
		{"stale ack", de, proto.AckTarget(otherID), envelope.SignAck(otherID, deID, now.Add(-window-time.Second)), proto.CodeStale, ""},
		{"mission reply to a mailbox", nl, proto.MailboxTarget(d.Mailbox), sealToDefender(t, w, "nl-kampala", newIdentity(t), "r"), "", proto.StreamMailbox},
		{"mission reply not an envelope", nl, proto.MailboxTarget(d.Mailbox), []byte("reply"), proto.CodeMalformed, ""},
	} {
		before := streamMsgs(t, r)
		rep, code := publishCode(t, c.conn, c.target, c.data)
		after := streamMsgs(t, r)
		if code != c.code {
			t.Errorf("%s: code %q, want %q", c.name, code, c.code)
			continue
		}
		if c.code == "" {
			if rep.Stream != c.stream || rep.Seq != after[c.stream] || rep.Duplicate {
				t.Errorf("%s: reply %+v, want %s seq %d", c.name, rep, c.stream, after[c.stream])
			}
			before[c.stream]++
		}
		if !mapsEqual(before, after) {
			t.Errorf("%s: streams went from %v to %v", c.name, before, after)
		}
		if c.code != "" {
			// The relay keeps serving the same sender.
			rep := mustStore(t, d, ugUrgent, sealAlert(t, w, header("ug", routing.Urgent, now), "after "+c.name))
			if rep.Seq != after[proto.StreamAlerts]+1 {
				t.Errorf("after %s: valid alert stored at seq %d, want %d", c.name, rep.Seq, after[proto.StreamAlerts]+1)
			}
			storedUG++
		} else if c.stream == proto.StreamAlerts {
			storedUG++
		}
	}

	// Each refusal was counted exactly once, by reason (the counts of the
	// table above).
	want := map[proto.Code]float64{proto.CodeMalformed: 9, proto.CodeVersion: 1, proto.CodeTooLarge: 1, proto.CodeMismatch: 5,
		proto.CodeStale: 4, proto.CodeBadTarget: 8, proto.CodeForbidden: 5, proto.CodeBadSig: 4}
	g := gather(t, r)
	for _, code := range proto.Codes {
		if got := g["beacon_relay_refused_total,reason="+string(code)]; got != want[code] {
			t.Errorf("refused_total{reason=%s} = %v, want %v", code, got, want[code])
		}
	}
	for key, n := range map[string]float64{
		"beacon_relay_held_messages,country=ug,priority=urgent,stream=ALERTS": float64(storedUG),
		"beacon_relay_stored_total,stream=BROADCASTS":                         1,
		"beacon_relay_stored_total,stream=ACKS":                               2,
		"beacon_relay_stored_total,stream=MAILBOX":                            1,
	} {
		if g[key] != n {
			t.Errorf("%s = %v, want %v", key, g[key], n)
		}
	}
	noMoreErrs(t, d)
	noMoreErrs(t, nl)
}

func TestIngestDuplicate(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	other := relaytest.Connect(t, r.ClientURL(), nil)
	env := sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "once")
	first := mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), env)
	// The same envelope again, from the sender and from another key.
	for _, c := range []*relaytest.Conn{d, other} {
		again := mustStore(t, c, proto.AlertTarget("ug", routing.Urgent), env)
		if !again.Duplicate || again.Seq != first.Seq || again.Stream != proto.StreamAlerts {
			t.Fatalf("replay: %+v, want a duplicate of seq %d", again, first.Seq)
		}
	}
	if n := streamMsgs(t, r)[proto.StreamAlerts]; n != 1 {
		t.Fatalf("ALERTS holds %d, want 1", n)
	}
	// "Duplicate" means the same bytes, for ack tokens too: the same
	// token again is a duplicate; another token of the same signer, and
	// another signer's, are stored.
	nl := connectMission(t, w, r, "nl-kampala")
	de := connectMission(t, w, r, "de-nairobi")
	id := routing.NewID()
	tok := envelope.SignAck(id, w.Keyrings["nl-kampala"].Identity, time.Now())
	a1 := mustStore(t, nl, proto.AckTarget(id), tok)
	a1again := mustStore(t, nl, proto.AckTarget(id), tok)
	a2 := mustStore(t, nl, proto.AckTarget(id), envelope.SignAck(id, w.Keyrings["nl-kampala"].Identity, time.Now().Add(time.Second)))
	a3 := mustStore(t, de, proto.AckTarget(id), envelope.SignAck(id, w.Keyrings["de-nairobi"].Identity, time.Now()))
	if a1.Duplicate || !a1again.Duplicate || a1again.Seq != a1.Seq || a2.Duplicate || a2.Seq != a1.Seq+1 || a3.Duplicate || a3.Seq != a1.Seq+2 {
		t.Fatalf("acks: %+v %+v %+v %+v", a1, a1again, a2, a3)
	}
	// Three publishes of the alert passed the checks; one was stored.
	g := gather(t, r)
	if g["beacon_relay_received_total,country=ug,priority=urgent,stream=ALERTS"] != 3 || g["beacon_relay_stored_total,stream=ALERTS"] != 1 ||
		g["beacon_relay_stored_total,stream=ACKS"] != 3 {
		t.Fatalf("metrics: received %v, stored ALERTS %v ACKS %v", g["beacon_relay_received_total,country=ug,priority=urgent,stream=ALERTS"],
			g["beacon_relay_stored_total,stream=ALERTS"], g["beacon_relay_stored_total,stream=ACKS"])
	}
}

// TestIngestDefenderTargetsRefused: a walk-in defender may publish alerts
// (to.<cc>.<priority>), shared alerts and service requests, and nothing
// else. Other targets are refused by the server's permissions before the
// relay sees them; service requests the relay does not serve, or not for
// a defender, are refused by the relay, by code, and counted.
func TestIngestDefenderTargetsRefused(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	other := relaytest.Connect(t, r.ClientURL(), nil)
	id := routing.NewID()
	valid := sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "x")
	before := streamStates(t, r)
	for _, c := range []struct {
		target string
		data   []byte
	}{
		{"nope.x", valid},
		{proto.BroadcastTarget("ug"), mustSignPublic(t, "ug", "x", newIdentity(t), time.Now())},
		{proto.AckTarget(id), envelope.SignAck(id, newIdentity(t), time.Now())},
		{proto.MailboxTarget(d.Mailbox), valid},
		{proto.MailboxTarget(other.Mailbox), valid},
		{"to.ug", valid},
		{"to.ug.urgent.x", valid},
		{"share.ug", valid},
		{"share.ug.urgent.x", valid},
		{"svc", valid},
		{"hold.x.y", valid},
		{"in.x", valid},
	} {
		subj := proto.Ingest(d.Mailbox, c.target)
		if err := d.PublishRequest(subj, proto.ReplyPrefix(d.Mailbox)+".x", c.data); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, d, pubViolation(subj))
	}
	if g := gather(t, r); g["beacon_relay_refused_total,reason=bad_reply"] != 0 {
		t.Fatal("a publish the permissions refused reached the ingest")
	}

	// Under svc. the relay decides.
	want := map[proto.Code]float64{}
	for _, c := range []struct {
		target string
		body   []byte
		code   proto.Code
	}{
		{"svc.hold.x", valid, proto.CodeBadTarget}, // never stored in HOLDS
		{"svc.nope", nil, proto.CodeBadTarget},
		{"svc.fetch", mustJSON(proto.FetchRequest{Max: 1}), proto.CodeBadTarget},
		{"svc.fetch.nope", mustJSON(proto.FetchRequest{Max: 1}), proto.CodeBadTarget},
		{"svc.fetch.mbox.x", mustJSON(proto.FetchRequest{Max: 1}), proto.CodeBadTarget},
		{"svc.fetch.mbox." + other.Mailbox.String(), mustJSON(proto.FetchRequest{Max: 1}), proto.CodeBadTarget},
		{"svc.pending.mbox." + other.Mailbox.String(), nil, proto.CodeBadTarget},
		{proto.SvcFetchAlerts("ug"), mustJSON(proto.FetchRequest{Max: 1}), proto.CodeForbidden},
		{proto.SvcPendingAlerts("ug"), nil, proto.CodeForbidden},
		{"svc.news.zzz", nil, proto.CodeBadTarget},
		{"svc.news.UG", nil, proto.CodeBadTarget},
		{"svc.news", nil, proto.CodeBadTarget},
		{proto.SvcDirTarget, []byte("abc"), proto.CodeBadRequest},
		{proto.SvcDirTarget, []byte("-1"), proto.CodeBadRequest},
		{proto.SvcDirTarget, []byte("1"), proto.CodeBadRequest}, // one chunk only
		{proto.SvcSettleTarget, nil, proto.CodeBadRequest},
	} {
		if code := svcCode(t, d, c.target, c.body); code != c.code {
			t.Errorf("%s %q: code %q, want %q", c.target, c.body, code, c.code)
		}
		want[c.code]++
	}
	mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), valid)
	after := streamStates(t, r)
	if b, a := before[proto.StreamAlerts], after[proto.StreamAlerts]; a.Msgs != b.Msgs+1 || a.LastSeq != b.LastSeq+1 {
		t.Errorf("ALERTS went from %+v to %+v, want the one valid alert more", b, a)
	}
	delete(before, proto.StreamAlerts)
	delete(after, proto.StreamAlerts)
	if !mapsEqual(before, after) {
		t.Errorf("streams went from %v to %v", before, after)
	}
	wantRefused(t, r, want)
	noMoreErrs(t, d)
}

// TestIngestFetchRequestsChecked: a fetch body is JSON with 1 ≤ max ≤ 1024
// and 0 ≤ wait_ms ≤ 60000; anything else is a bad request, counted.
func TestIngestFetchRequestsChecked(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	nl := connectMission(t, w, r, "nl-kampala")
	bad := []string{"", "not json", "{", "[1]", "null", "{}", `{"max":0}`, `{"max":-1}`, `{"max":1025}`, `{"max":1.5}`,
		`{"max":"1"}`, `{"max":1,"wait_ms":-1}`, `{"max":1,"wait_ms":60001}`, `{"max":1,"wait_ms":1e12}`,
		`{"max":99999999999999999999}`}
	for _, c := range []struct {
		conn   *relaytest.Conn
		target string
	}{{d, proto.SvcFetchMbox}, {nl, proto.SvcFetchAlerts("ug")}, {nl, proto.SvcFetchAlerts("ke")}} {
		for _, body := range bad {
			if code := svcCode(t, c.conn, c.target, []byte(body)); code != proto.CodeBadRequest {
				t.Errorf("%s %q: code %q, want %q", c.target, body, code, proto.CodeBadRequest)
			}
		}
	}
	// The bounds themselves are accepted: 1024 now, and one with a 60 s
	// wait (which returns at once: there is a message).
	if got, code := fetchCode(t, d, proto.SvcFetchMbox, proto.MaxFetch, 0); code != "" || len(got) != 0 {
		t.Fatalf("max 1024: %d messages, code %q", len(got), code)
	}
	env := sealToDefender(t, w, "nl-kampala", newIdentity(t), "x")
	mustStore(t, nl, proto.MailboxTarget(d.Mailbox), env)
	if got, code := fetchCode(t, d, proto.SvcFetchMbox, 1, proto.MaxFetchWait*time.Millisecond); code != "" || len(got) != 1 || string(got[0].Data) != string(env) {
		t.Fatalf("wait_ms 60000: %d messages, code %q", len(got), code)
	}
	wantRefused(t, r, map[proto.Code]float64{proto.CodeBadRequest: float64(3 * len(bad))})
}

// TestIngestFetchLongPollsPerKey: one key holds at most four long-polls;
// a fifth is refused at once while another key is still served. The
// relay's clock is fixed, so no rate limit refills under the test, and the
// long-polls wait a minute, so they end only when messages come.
func TestIngestFetchLongPollsPerKey(t *testing.T) {
	t.Parallel()
	const perKey = 4
	clk := newFakeClock()
	w, r, _ := startWorld(t, nil, relay.WithClock(clk))
	d := relaytest.Connect(t, r.ClientURL(), nil)
	other := relaytest.Connect(t, r.ClientURL(), nil)
	m := connectMission(t, w, r, "nl-kampala")

	type result struct {
		got []relaytest.Fetched
		err error
	}
	results := make(chan result, perKey+1)
	for range perKey + 1 {
		go func() {
			got, err := d.Fetch(proto.SvcFetchMbox, 1, proto.MaxFetchWait*time.Millisecond)
			results <- result{got, err}
		}()
	}
	// Whichever the relay takes last is refused; the others cannot end
	// before a message comes.
	first := waitEvent(t, results, "the refusal of the fifth long-poll")
	var perr *proto.Error
	if !errors.As(first.err, &perr) || perr.Code != proto.CodeRateLimited {
		t.Fatalf("fifth long-poll: %d messages, %v; want %s", len(first.got), first.err, proto.CodeRateLimited)
	}
	// A sixth, not even waiting, is refused too; another key is served.
	if _, code := fetchCode(t, d, proto.SvcFetchMbox, 1, 0); code != proto.CodeRateLimited {
		t.Fatalf("sixth fetch: code %q, want %q", code, proto.CodeRateLimited)
	}
	if got, code := fetchCode(t, other, proto.SvcFetchMbox, 1, 0); code != "" || len(got) != 0 {
		t.Fatalf("another key: %d messages, code %q", len(got), code)
	}
	// One message releases them all: a mailbox has one reader, and its
	// concurrent fetches all see what is there until it is settled.
	env := sealToDefender(t, w, "nl-kampala", newIdentity(t), "release")
	mustStore(t, m, proto.MailboxTarget(d.Mailbox), env)
	for range perKey {
		res := waitEvent(t, results, "a long-poll's answer")
		if res.err != nil || len(res.got) != 1 || string(res.got[0].Data) != string(env) {
			t.Fatalf("long-poll: %d messages, %v; want the releasing message", len(res.got), res.err)
		}
	}
	wantRefused(t, r, map[proto.Code]float64{proto.CodeRateLimited: 2})
}

// TestIngestNewsLeavesNoConsumers: the news service reads the public
// broadcasts for a country, or all, in order. Anyone may ask, walk-in keys
// cost nothing and each key may ask hundreds of times a second, so a read
// must leave nothing behind on the server: no consumer outlives its
// request.
func TestIngestNewsLeavesNoConsumers(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	nl := connectMission(t, w, r, "nl-kampala")
	de := connectMission(t, w, r, "de-nairobi")
	ug1 := mustSignPublic(t, "ug", "training on Friday", w.Keyrings["nl-kampala"].Identity, time.Now())
	ug2 := mustSignPublic(t, "ug", "office closed", w.Keyrings["nl-kampala"].Identity, time.Now())
	ke1 := mustSignPublic(t, "ke", "hotline", w.Keyrings["de-nairobi"].Identity, time.Now())
	mustStore(t, nl, proto.BroadcastTarget("ug"), ug1)
	mustStore(t, de, proto.BroadcastTarget("ke"), ke1)
	mustStore(t, nl, proto.BroadcastTarget("ug"), ug2)
	for _, c := range []struct {
		cc   string
		want [][]byte
	}{{"ug", [][]byte{ug1, ug2}}, {"ke", [][]byte{ke1}}, {"", [][]byte{ug1, ke1, ug2}}, {"tz", nil}} {
		got := news(t, d, c.cc)
		if len(got) != len(c.want) {
			t.Fatalf("news %q: %d broadcasts, want %d", c.cc, len(got), len(c.want))
		}
		for i := range got {
			if string(got[i].Data) != string(c.want[i]) {
				t.Fatalf("news %q: broadcast %d differs", c.cc, i)
			}
		}
	}
	if n := streamStates(t, r)[proto.StreamBroadcasts].Consumers; n != 0 {
		t.Errorf("after 4 news requests BROADCASTS has %d consumers, want 0: each request leaves its ordered consumer "+
			"(an ephemeral with a 5-minute inactivity threshold) on the server", n)
	}
}

// A country's news is its newest broadcasts: once a country has more than
// one read returns, the oldest give way, and the read still reaches the
// newest; another country keeps all of its own.
func TestIngestNewsKeepsTheNewest(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	nl := connectMission(t, w, r, "nl-kampala")
	de := connectMission(t, w, r, "de-nairobi")
	ke := mustSignPublic(t, "ke", "hotline", w.Keyrings["de-nairobi"].Identity, time.Now())
	mustStore(t, de, proto.BroadcastTarget("ke"), ke)
	const extra = 3
	var ug [][]byte
	for i := range proto.MaxNews + extra {
		b := mustSignPublic(t, "ug", fmt.Sprintf("notice %d", i), w.Keyrings["nl-kampala"].Identity, time.Now())
		mustStore(t, nl, proto.BroadcastTarget("ug"), b)
		ug = append(ug, b)
	}
	got := news(t, d, "ug")
	if len(got) != proto.MaxNews {
		t.Fatalf("news ug: %d broadcasts, want %d", len(got), proto.MaxNews)
	}
	for i, m := range got {
		if string(m.Data) != string(ug[extra+i]) {
			t.Fatalf("news ug: broadcast %d is not notice %d: the oldest %d must have given way", i, extra+i, extra)
		}
	}
	if got := news(t, d, "ke"); len(got) != 1 || string(got[0].Data) != string(ke) {
		t.Errorf("news ke: %d broadcasts, want its one", len(got))
	}
}

// news reads svc.news for cc ("" for all) and returns the broadcasts.
func news(t testing.TB, c *relaytest.Conn, cc string) []*nats.Msg {
	t.Helper()
	inbox := c.NewRespInbox()
	sub, err := c.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := c.PublishRequest(proto.Ingest(c.Mailbox, proto.NewsTarget(cc)), inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for {
		m, err := sub.NextMsg(waitFor)
		if err != nil {
			t.Fatalf("news %q: %v", cc, err)
		}
		if n := m.Header.Get(proto.HeaderEnd); n != "" {
			if n != fmt.Sprint(len(out)) {
				t.Fatalf("news %q: end says %s, got %d", cc, n, len(out))
			}
			return out
		}
		if want := proto.BroadcastSubject(cc); cc != "" && m.Header.Get(proto.HeaderSubject) != want {
			t.Fatalf("news %q: a broadcast from %q", cc, m.Header.Get(proto.HeaderSubject))
		}
		out = append(out, m)
	}
}

// TestIngestRepliesOnlyToSenderInbox: the ingest answers on the request's
// reply subject, which the sender chooses, from the relay's own connection,
// which may publish anywhere. A reply subject outside the sender's inbox
// must not make the relay write into a stream, onto another key's ingest
// subject (spending that key's rate limit), into another key's inbox or
// back into the ingest: such a request is dropped unanswered and counted.
func TestIngestRepliesOnlyToSenderInbox(t *testing.T) {
	t.Parallel()
	testRepliesOnlyToSenderInbox(t, false)
}

// TestIngestServicesReplyOnlyToSenderInbox: the same for each service —
// fetch, ack, pending, news and directory — which answer with messages,
// broadcasts and up to 64 KiB of directory.
func TestIngestServicesReplyOnlyToSenderInbox(t *testing.T) {
	t.Parallel()
	testRepliesOnlyToSenderInbox(t, true)
}

func testRepliesOnlyToSenderInbox(t *testing.T, services bool) {
	const burst = 5
	clk := newFakeClock() // fixed: no rate limit refills under the test
	w, r, _ := startWorld(t, func(c *relay.Config) {
		c.Limits.PublishRate, c.Limits.PublishBurst = 1, burst
		c.Limits.ServiceRate, c.Limits.ServiceBurst = 1, burst
	}, relay.WithClock(clk))
	attacker := relaytest.Connect(t, r.ClientURL(), nil)
	victim := relaytest.Connect(t, r.ClientURL(), nil)
	m := connectMission(t, w, r, "nl-kampala")
	stolen := make(chan *nats.Msg, 64)
	if _, err := victim.ChanSubscribe(proto.ReplyPrefix(victim.Mailbox)+".stolen", stolen); err != nil {
		t.Fatal(err)
	}
	if err := victim.Flush(); err != nil {
		t.Fatal(err)
	}
	// Something for every service to answer with: two messages in the
	// attacker's mailbox (one fetched, so it has an ack token), a broadcast.
	for i := range 2 {
		mustStore(t, m, proto.MailboxTarget(attacker.Mailbox), sealToDefender(t, w, "nl-kampala", newIdentity(t), fmt.Sprint(i)))
	}
	mustStore(t, m, proto.BroadcastTarget("ug"), mustSignPublic(t, "ug", "news", w.Keyrings["nl-kampala"].Identity, clk.Now()))
	got, code := fetchCode(t, attacker, proto.SvcFetchMbox, 1, 0)
	if code != "" || len(got) != 1 {
		t.Fatalf("attacker's own fetch: %d messages, code %q", len(got), code)
	}

	type request struct {
		target string
		body   func() []byte
	}
	alert := func(target string) request {
		return request{target, func() []byte {
			return sealAlert(t, w, header("ug", routing.Urgent, clk.Now()), "via a stolen reply subject")
		}}
	}
	fixed := func(target string, body []byte) request { return request{target, func() []byte { return body }} }
	reqs := []request{alert(proto.AlertTarget("ug", routing.Urgent)), alert(proto.ShareTarget("ug", routing.Urgent))}
	if services {
		reqs = []request{fixed(proto.SvcFetchMbox, mustJSON(proto.FetchRequest{Max: 1})), fixed(proto.SvcSettleTarget, []byte(got[0].Settle)),
			fixed("svc.pending.mbox", nil), fixed(proto.NewsTarget(""), nil), fixed(proto.NewsTarget("ug"), nil),
			fixed(proto.SvcDirTarget, nil)}
	}
	replies := []string{
		proto.AlertSubject("ug", routing.Urgent),
		proto.MailboxSubject(victim.Mailbox),
		"bcn.ack." + routing.NewID().String(),
		"bcn.bcast.ug",
		"bcn.share.ug.urgent",
		"bcn.svc.hold.x",
		proto.Ingest(victim.Mailbox, proto.AlertTarget("ug", routing.Urgent)),
		proto.Ingest(victim.Mailbox, "svc.pending.mbox"),
		proto.Ingest(attacker.Mailbox, proto.AlertTarget("ug", routing.Urgent)),
		proto.ReplyPrefix(victim.Mailbox) + ".stolen",
		proto.ReplyPrefix(attacker.Mailbox), // the prefix itself is not under it
		"_INBOX.x",
		"", // no reply subject at all
	}
	before := streamStates(t, r)
	sent := 0
	for _, q := range reqs {
		subj := proto.Ingest(attacker.Mailbox, q.target)
		for _, reply := range replies {
			var err error
			if reply == "" {
				err = attacker.Conn.Publish(subj, q.body())
			} else {
				err = attacker.PublishRequest(subj, reply, q.body())
			}
			if err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}

	// The relay's connection receives the attacker's requests in order, so
	// once a later request of the attacker's is answered, every bogus one
	// is queued at the relay. But the ingest runs several worker
	// subscriptions in one queue group and the server hands each message
	// to any of them, so an answer to a later request can overtake an
	// earlier one: whether the relay answered a bogus request cannot be
	// read off the order of replies. What matters can be read instead: the
	// streams, the victim's limits and inbox, and the counters once the
	// relay has drained its queues.
	wantCount(t, attacker, "svc.pending.mbox", 2)
	if after := streamStates(t, r); !mapsEqual(before, after) {
		t.Errorf("streams changed: before %v, after %v", before, after)
	}
	// The victim still has its whole publish and service bursts.
	for i := range burst {
		mustStore(t, victim, proto.AlertTarget("ug", routing.Urgent), sealAlert(t, w, header("ug", routing.Urgent, clk.Now()), fmt.Sprint("victim ", i)))
	}
	if _, code := publishCode(t, victim, proto.AlertTarget("ug", routing.Urgent), sealAlert(t, w, header("ug", routing.Urgent, clk.Now()), "one too many")); code != proto.CodeRateLimited {
		t.Errorf("victim's publish %d: code %q, want %q", burst+1, code, proto.CodeRateLimited)
	}
	for range burst {
		wantCount(t, victim, "svc.pending.mbox", 0)
	}
	if got := streamMsgs(t, r); got[proto.StreamAlerts] != burst || got[proto.StreamShared] != 0 {
		t.Errorf("streams hold %v, want only the victim's %d alerts", got, burst)
	}
	if code := svcCode(t, victim, "svc.pending.mbox", nil); code != proto.CodeRateLimited {
		t.Errorf("victim's service request %d: code %q, want %q", burst+1, code, proto.CodeRateLimited)
	}
	// Shutdown drains the ingest's subscriptions, handling everything
	// queued, before the relay's connection closes: the counters are final.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r.Shutdown(ctx)
	// Every bogus request was counted as bad_reply, so none of them was
	// stored or answered.
	wantRefused(t, r, map[proto.Code]float64{proto.CodeBadReply: float64(sent), proto.CodeRateLimited: 2})
	select {
	case msg := <-stolen:
		t.Errorf("the victim's inbox received %d bytes meant for the attacker", len(msg.Data))
	default:
	}
}

func TestIngestFlood(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	cfg := relaytest.Config(t)
	cfg.Limits.PublishRate, cfg.Limits.PublishBurst = 5, 20
	r := relaytest.Start(t, cfg, relay.WithClock(clk))
	a := relaytest.Connect(t, r.ClientURL(), nil)
	b := relaytest.Connect(t, r.ClientURL(), nil)
	target := proto.AlertTarget("ug", routing.Urgent)
	seal := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = sealAlert(t, nil, header("ug", routing.Urgent, clk.Now()), "flood")
		}
		return out
	}
	aEnvs, bEnvs := seal(200), seal(10)

	// send publishes all at once, with the replies to one inbox subject,
	// and counts the replies by outcome.
	send := func(c *relaytest.Conn, envs [][]byte) map[proto.Code]int {
		inbox := proto.ReplyPrefix(c.Mailbox) + ".flood"
		sub, err := c.SubscribeSync(inbox)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer sub.Unsubscribe()
		for _, env := range envs {
			if err := c.PublishRequest(proto.Ingest(c.Mailbox, target), inbox, env); err != nil {
				t.Error(err)
				return nil
			}
		}
		got := map[proto.Code]int{}
		for range envs {
			m, err := sub.NextMsg(waitFor)
			if err != nil {
				t.Errorf("%d replies: %v", len(got), err)
				return got
			}
			rep, err := proto.ParseReply(m.Data)
			switch perr := err.(type) {
			case nil:
				got[""]++
				if rep.Duplicate {
					t.Errorf("duplicate %+v", rep)
				}
			case *proto.Error:
				got[perr.Code]++
			default:
				t.Errorf("reply %q: %v", m.Data, err)
			}
		}
		return got
	}
	var bGot map[proto.Code]int
	var wg sync.WaitGroup
	wg.Go(func() { bGot = send(b, bEnvs) })
	aGot := send(a, aEnvs)
	wg.Wait()
	if aGot[""] != 20 || aGot[proto.CodeRateLimited] != 180 || len(aGot) != 2 {
		t.Errorf("A: %v, want 20 stored and 180 rate_limited", aGot)
	}
	if bGot[""] != 10 || len(bGot) != 1 {
		t.Errorf("B: %v, want all 10 stored", bGot)
	}
	if n := streamMsgs(t, r)[proto.StreamAlerts]; n != 30 {
		t.Fatalf("ALERTS holds %d, want 30", n)
	}

	// One second later A has five tokens again, and no more.
	clk.Advance(time.Second)
	for i, env := range seal(6) {
		_, code := publishCode(t, a, target, env)
		if want := proto.Code(""); i == 5 {
			want = proto.CodeRateLimited
			if code != want {
				t.Fatalf("publish %d after 1s: %q, want %q", i+1, code, want)
			}
		} else if code != want {
			t.Fatalf("publish %d after 1s: %q, want stored", i+1, code)
		}
	}
	g := gather(t, r)
	if g["beacon_relay_refused_total,reason=rate_limited"] != 181 || g["beacon_relay_held_messages,country=ug,priority=urgent,stream=ALERTS"] != 35 {
		t.Fatalf("metrics: rate_limited %v (want 181), held %v (want 35)",
			g["beacon_relay_refused_total,reason=rate_limited"], g["beacon_relay_held_messages,country=ug,priority=urgent,stream=ALERTS"])
	}
	if n := streamMsgs(t, r)[proto.StreamAlerts]; n != 35 {
		t.Fatalf("ALERTS holds %d, want 35", n)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, func(c *relay.Config) { c.Monitor = "127.0.0.1:0" })
	d := relaytest.Connect(t, r.ClientURL(), nil)
	h := envelope.NewHeader("ug", routing.Urgent)
	mb := d.Mailbox
	h.ReplyTo = mb // the relay sees the reply mailbox; metrics must not
	env := sealAlert(t, w, h, "metrics")
	mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), env)
	if _, code := publishCode(t, d, proto.AlertTarget("ke", routing.Urgent), env); code != proto.CodeMismatch {
		t.Fatalf("code %q", code)
	}

	body := httpGet(t, "http://"+r.MonitorAddr()+"/metrics")
	for _, want := range []string{
		`beacon_relay_received_total{country="ug",priority="urgent",stream="ALERTS"} 1`,
		`beacon_relay_held_messages{country="ug",priority="urgent",stream="ALERTS"} 1`,
		`beacon_relay_stored_total{stream="ALERTS"} 1`,
		`beacon_relay_refused_total{reason="mismatch"} 1`,
		`beacon_relay_stream_messages{stream="ALERTS"} 1`,
		`beacon_relay_connections 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	pub, _ := d.NKey.PublicKey()
	for what, secret := range map[string]string{"mailbox": d.Mailbox.String(), "message id": h.ID.String(), "nkey": pub} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics contains the %s", what)
		}
	}
	if got := httpGet(t, "http://"+r.MonitorAddr()+"/healthz"); !strings.Contains(got, `"status":"ok"`) {
		t.Errorf("/healthz: %q", got)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	code, body := monitorGet(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d", url, code)
	}
	return body
}

// lockedBuffer is a log destination the relay's goroutines write to while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged starts a relay logging at debug level into the returned buffer.
func startLogged(t *testing.T) (*relaytest.World, *relay.Relay, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, r, _ := startWorld(t, nil, relay.WithLogger(log))
	return w, r, logs
}

// assertNotLogged fails for each secret that appears in the log, showing
// the lines.
func assertNotLogged(t *testing.T, logs *lockedBuffer, secrets map[string]string) {
	t.Helper()
	out := logs.String()
	for what, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains the %s:\n%s", what, grepLines(out, secret))
		}
	}
}

func TestLogsCarryNoPayload(t *testing.T) {
	t.Parallel()
	w, r, logs := startLogged(t)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	nl := connectMission(t, w, r, "nl-kampala")
	nlID := w.Keyrings["nl-kampala"].Identity
	marker := "MARKER-" + routing.NewID().String()
	mb := d.Mailbox

	h := envelope.NewHeader("ug", routing.Urgent)
	h.ReplyTo = mb
	valid := sealAlert(t, w, h, marker)
	stale := envelope.NewHeader("ug", routing.Urgent)
	stale.Created = time.Now().Add(-48 * time.Hour)
	stale.ReplyTo = mb
	good := mustSignPublic(t, "ug", marker, nlID, time.Now())
	bad := edit(mustSignPublic(t, "ug", marker, nlID, time.Now()), func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	goodP, _ := envelope.ParsePublic(good)
	badP, _ := envelope.ParsePublic(bad)

	mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), valid)
	for _, c := range []struct {
		conn   *relaytest.Conn
		target string
		data   []byte
		code   proto.Code
	}{
		{d, proto.AlertTarget("ug", routing.Urgent), []byte(marker + strings.Repeat("-payload", 100)), proto.CodeMalformed},
		{d, proto.AlertTarget("ke", routing.Urgent), valid, proto.CodeMismatch},
		{d, proto.AlertTarget("ug", routing.Urgent), sealAlert(t, w, stale, marker), proto.CodeStale},
		{nl, proto.BroadcastTarget("ug"), bad, proto.CodeBadSig},
		{nl, proto.BroadcastTarget("ug"), good, ""},
	} {
		if _, code := publishCode(t, c.conn, c.target, c.data); code != c.code {
			t.Fatalf("%s: code %q, want %q", c.target, code, c.code)
		}
	}

	out := logs.String()
	if !strings.Contains(out, "code=malformed") || !strings.Contains(out, "code=bad_signature") {
		t.Fatalf("the refusals were not logged at debug level:\n%s", out)
	}
	pub, _ := d.NKey.PublicKey()
	assertNotLogged(t, logs, map[string]string{"marker": marker, "defender's mailbox": d.Mailbox.String(), "defender's nkey": pub,
		"alert's id": h.ID.String(), "stale alert's id": stale.ID.String(),
		"broadcast's id": goodP.ID.String(), "refused broadcast's id": badP.ID.String()})
}

// TestRefusalLogsNameNoIDOrMailbox: the reason a refusal is logged with
// must not name a message id or a mailbox from the subject.
func TestRefusalLogsNameNoIDOrMailbox(t *testing.T) {
	t.Parallel()
	w, r, logs := startLogged(t)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	nl := connectMission(t, w, r, "nl-kampala")
	ackID, otherID := routing.NewID(), routing.NewID()
	for _, c := range []struct {
		target string
		data   []byte
		code   proto.Code
	}{
		{proto.AckTarget(otherID), envelope.SignAck(ackID, w.Keyrings["nl-kampala"].Identity, time.Now()), proto.CodeMismatch},
		{proto.MailboxTarget(d.Mailbox) + ".x", []byte("reply"), proto.CodeBadTarget},
	} {
		if _, code := publishCode(t, nl, c.target, c.data); code != c.code {
			t.Fatalf("%s: code %q, want %q", c.target, code, c.code)
		}
	}
	assertNotLogged(t, logs, map[string]string{"acked alert's id": ackID.String(), "subject's alert id": otherID.String(),
		"defender's mailbox": d.Mailbox.String()})
}

// TestServerLogsNameNoClient: nats-server logs each permission violation
// with the client's address, its NKey and the subject (which holds its
// mailbox): a line linking a defender's network address to its key. The
// relay's log must not carry that link.
func TestServerLogsNameNoClient(t *testing.T) {
	t.Parallel()
	_, r, logs := startLogged(t)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	bcast := proto.Ingest(d.Mailbox, proto.BroadcastTarget("ug"))
	if err := d.Conn.Publish(bcast, []byte("x")); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, d, pubViolation(bcast))
	if _, err := d.SubscribeSync("bcn.to.>"); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, d, subViolation("bcn.to.>"))
	pub, _ := d.NKey.PublicKey()
	assertNotLogged(t, logs, map[string]string{"defender's mailbox": d.Mailbox.String(), "defender's nkey": pub})
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "\n")
}
