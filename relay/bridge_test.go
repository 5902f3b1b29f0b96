package relay_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/bridge/receipt"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// bridgeWorld is a relay whose directory lists missions (nl-kampala for
// ug), the partner "partner" (ug), the bridge "bridge" and headquarters.
func bridgeWorld(t *testing.T) (*relaytest.World, string) {
	t.Helper()
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	r := relaytest.Start(t, cfg)
	return w, r.ClientURL()
}

// signReceipt signs signer's receipt that the partner stored alert.
func signReceipt(t *testing.T, w *relaytest.World, alert routing.ID, signer string) []byte {
	t.Helper()
	rc, err := receipt.Sign(alert, "ug", "partner", time.Now(), w.Keyrings[signer].Identity)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func wantCode(t testing.TB, what string, err error, code proto.Code) {
	t.Helper()
	var perr *proto.Error
	if !errors.As(err, &perr) || perr.Code != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

func fetch(t *testing.T, c *relaytest.Conn, src proto.Source, max int) ([]relaytest.Fetched, error) {
	t.Helper()
	return c.Fetch(proto.FetchTarget(src), max, time.Second)
}

// TestBridgeReadsSharedOnly: a bridge reads what is shared with a partner
// of the directory through its own position, and nothing else; no other
// role reads SHARED.
func TestBridgeReadsSharedOnly(t *testing.T) {
	w, url := bridgeWorld(t)
	def := relaytest.Connect(t, url, nil)
	share := sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "shared")
	if _, err := def.Publish(proto.ShareTarget("ug", routing.Urgent), share); err != nil {
		t.Fatal(err)
	}
	if _, err := def.Publish(proto.AlertTarget("ug", routing.Urgent), sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "alert")); err != nil {
		t.Fatal(err)
	}
	br := w.ConnectAs(t, url, "bridge")
	got, err := fetch(t, br, proto.SharedSource("partner"), 10)
	if err != nil || len(got) != 1 || string(got[0].Data) != string(share) || got[0].Subject != proto.Share("ug", routing.Urgent).String() {
		t.Fatalf("bridge fetch of what is shared with partner: %d messages, %v", len(got), err)
	}
	_, err = fetch(t, br, proto.AlertsSource("ug"), 10)
	wantCode(t, "bridge reading alerts", err, proto.CodeForbidden)
	_, err = fetch(t, br, proto.SharedSource("nobody"), 10)
	wantCode(t, "bridge reading for a partner not in the directory", err, proto.CodeForbidden)
	for _, who := range []string{"nl-kampala", "partner", "hq"} {
		_, err = fetch(t, w.ConnectAs(t, url, who), proto.SharedSource("partner"), 10)
		wantCode(t, who+" reading SHARED", err, proto.CodeForbidden)
	}
	_, err = fetch(t, def, proto.SharedSource("partner"), 10)
	wantCode(t, "a defender reading SHARED", err, proto.CodeForbidden)

	// Only the bridge settles what it read.
	m := w.ConnectAs(t, url, "nl-kampala")
	_, err = m.Svc(proto.SvcSettleTarget, []byte(got[0].Settle))
	wantCode(t, "a mission settling the bridge's message", err, proto.CodeForbidden)
	if err := br.Settle(got); err != nil {
		t.Fatal(err)
	}
	if n, err := br.Relay.Pending(ctx(t), proto.SharedSource("partner")); err != nil || n != 0 {
		t.Errorf("pending after the bridge settled: %d, %v", n, err)
	}
}

// TestBridgedIntake: on a partner's relay, a bridge of its directory
// stores what it delivers under its own id, once per message id, with a
// hop count of 1; the partner reads it for the countries it covers.
func TestBridgedIntake(t *testing.T) {
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	rl := relaytest.Start(t, cfg)
	url := rl.ClientURL()
	// One message per subject, and the subject names the message: a
	// delivery made again after the dedup window is refused, not stored.
	for _, name := range []string{proto.StreamBridged, proto.StreamReceipts} {
		if c := streamDetails(t, rl.Server())[name].Config; c.MaxMsgsPer != 1 || !c.DiscardNewPer || c.Discard != server.DiscardNew {
			t.Errorf("%s: MaxMsgsPerSubject %d, DiscardNewPerSubject %v; want 1 and true", name, c.MaxMsgsPer, c.DiscardNewPer)
		}
	}
	br := w.ConnectAs(t, url, "bridge")
	deliver := func(c *relaytest.Conn, s proto.Subject, env []byte, hops string) (*proto.Reply, error) {
		t.Helper()
		out := []relayconn.Outgoing{{Target: s.Target(), Data: env, Header: nats.Header{}}}
		if hops != "" {
			out[0].Header.Set(proto.HeaderHops, hops)
		}
		rs, errs := c.Relay.PublishBatch(ctx(t), out)
		return rs[0], errs[0]
	}
	h := envelope.NewHeader("ug", routing.Urgent)
	// It waited in SHARED for days, longer than the dedup window: still
	// taken.
	h.Created = time.Now().Add(-72 * time.Hour)
	env := sealAlert(t, w, h, "bridged")
	subj := proto.Bridged("bridge", "ug", routing.Urgent, h.ID, env)
	r, err := deliver(br, subj, env, "1")
	if err != nil || r.Stream != proto.StreamBridged || r.Duplicate {
		t.Fatalf("first delivery: %+v, %v", r, err)
	}
	r2, err := deliver(br, subj, env, "1")
	if err != nil || !r2.Duplicate || r2.Seq != r.Seq {
		t.Errorf("second delivery: %+v, %v; want a duplicate of seq %d", r2, err, r.Seq)
	}
	for _, c := range []struct {
		what string
		conn *relaytest.Conn
		subj proto.Subject
		hops string
		code proto.Code
	}{
		{"no hop count", br, subj, "", proto.CodeForbidden},
		{"two hops", br, subj, "2", proto.CodeForbidden},
		{"another bridge's id", br, proto.Bridged("other", "ug", routing.Urgent, h.ID, env), "1", proto.CodeForbidden},
		{"a mission", w.ConnectAs(t, url, "nl-kampala"), subj, "1", proto.CodeForbidden},
		{"a partner", w.ConnectAs(t, url, "partner"), subj, "1", proto.CodeForbidden},
		{"another id in the subject", br, proto.Bridged("bridge", "ug", routing.Urgent, routing.NewID(), env), "1", proto.CodeMismatch},
		{"another priority", br, proto.Bridged("bridge", "ug", routing.High, h.ID, env), "1", proto.CodeMismatch},
		{"another digest in the subject", br, proto.Bridged("bridge", "ug", routing.Urgent, h.ID, []byte("other bytes")), "1", proto.CodeMismatch},
	} {
		_, err := deliver(c.conn, c.subj, env, c.hops)
		wantCode(t, c.what, err, c.code)
	}
	old := h
	old.ID, old.Created = routing.NewID(), time.Now().Add(-40*24*time.Hour)
	oldEnv := sealAlert(t, w, old, "older than retention")
	_, err = deliver(br, proto.Bridged("bridge", "ug", routing.Urgent, old.ID, oldEnv), oldEnv, "1")
	wantCode(t, "older than the retention", err, proto.CodeStale)

	// Another envelope under the same id (a squatter who learned it and
	// shared one of its own) is stored beside the real one, never in its
	// place, and never "already stored".
	squat := sealAlert(t, w, envelope.Header{ID: h.ID, Created: time.Now(), Country: "ug", Priority: routing.Urgent}, "squatter")
	if r3, err := deliver(br, proto.Bridged("bridge", "ug", routing.Urgent, h.ID, squat), squat, "1"); err != nil || r3.Duplicate {
		t.Fatalf("another envelope under the same id: %+v, %v", r3, err)
	}

	p := w.ConnectAs(t, url, "partner")
	got, err := fetch(t, p, proto.BridgedSource("ug"), 10)
	if err != nil || len(got) != 2 || got[0].Subject != subj.String() || string(got[0].Data) != string(env) || string(got[1].Data) != string(squat) {
		t.Fatalf("partner fetch: %d messages, %v; want the real envelope and the squatter's beside it", len(got), err)
	}
	if err := p.Settle(got); err != nil {
		t.Fatal(err)
	}
	_, err = fetch(t, p, proto.BridgedSource("ke"), 10)
	wantCode(t, "partner reading a country it does not cover", err, proto.CodeForbidden)
	_, err = fetch(t, w.ConnectAs(t, url, "nl-kampala"), proto.BridgedSource("ug"), 10)
	wantCode(t, "a mission reading BRIDGED", err, proto.CodeForbidden)
}

// TestReturnPath: a partner answers what a bridge delivered through that
// bridge: a sealed answer for a mailbox and its own signed ack token; the
// bridge reads them back. Nobody else writes or reads there.
func TestReturnPath(t *testing.T) {
	w, url := bridgeWorld(t)
	p := w.ConnectAs(t, url, "partner")
	alert := routing.NewID()
	answer := sealToDefender(t, w, "partner", newIdentity(t), "we act")
	mbox := proto.MailboxFor("a defender's key")
	if _, err := p.Publish(proto.ReturnMailbox("bridge", mbox).Target(), answer); err != nil {
		t.Fatal(err)
	}
	tok := envelope.SignAck(alert, w.Keyrings["partner"].Identity, time.Now())
	if _, err := p.Publish(proto.ReturnAck("bridge", alert).Target(), tok); err != nil {
		t.Fatal(err)
	}
	_, err := p.Publish(proto.ReturnAck("bridge", alert).Target(), envelope.SignAck(alert, w.Keyrings["nl-kampala"].Identity, time.Now()))
	wantCode(t, "a partner returning a mission's token", err, proto.CodeBadSig)
	_, err = p.Publish(proto.ReturnMailbox("nobody", mbox).Target(), answer)
	wantCode(t, "returning through a bridge not in the directory", err, proto.CodeForbidden)
	_, err = w.ConnectAs(t, url, "nl-kampala").Publish(proto.ReturnMailbox("bridge", mbox).Target(), answer)
	wantCode(t, "a mission writing RETURN", err, proto.CodeForbidden)

	got, err := fetch(t, w.ConnectAs(t, url, "bridge"), proto.ReturnSource, 10)
	if err != nil || len(got) != 2 || got[0].Subject != proto.ReturnMailbox("bridge", mbox).String() ||
		got[1].Subject != proto.ReturnAck("bridge", alert).String() {
		t.Fatalf("bridge reading what goes back: %d messages, %v", len(got), err)
	}
	_, err = fetch(t, p, proto.ReturnSource, 10)
	wantCode(t, "a partner reading RETURN", err, proto.CodeForbidden)
}

// TestReceiptsAndCarriedAcks: on the sending network's relay, a bridge
// stores its own signed receipts (in a mailbox and, once per envelope
// and partner, in RECEIPTS) and carries back ack tokens only when a
// partner of the directory signed them; an institution reads the roll-up
// of an alert, a defender does not.
func TestReceiptsAndCarriedAcks(t *testing.T) {
	w, url := bridgeWorld(t)
	br := w.ConnectAs(t, url, "bridge")
	alert := routing.NewID()
	rc := signReceipt(t, w, alert, "bridge")
	mbox := proto.MailboxFor("a defender's key")
	if _, err := br.Publish(proto.MailboxTarget(mbox), rc); err != nil {
		t.Fatal(err)
	}
	if r, err := br.Publish(proto.Receipt(alert, "partner").Target(), rc); err != nil || r.Duplicate {
		t.Fatalf("receipt: %+v, %v", r, err)
	}
	again, _ := receipt.Sign(alert, "ug", "partner", time.Now(), w.Keyrings["bridge"].Identity)
	if r, err := br.Publish(proto.Receipt(alert, "partner").Target(), again); err != nil || !r.Duplicate {
		t.Errorf("a second receipt for the same envelope and partner: %+v, %v; want a duplicate", r, err)
	}
	forged := signReceipt(t, w, alert, "nl-kampala")
	_, err := br.Publish(proto.Receipt(routing.NewID(), "partner").Target(), forged)
	wantCode(t, "a receipt signed by another identity", err, proto.CodeBadSig)
	_, err = w.ConnectAs(t, url, "nl-kampala").Publish(proto.Receipt(alert, "partner").Target(), rc)
	wantCode(t, "a mission writing a receipt", err, proto.CodeForbidden)

	if _, err := br.Publish(proto.AckTarget(alert), envelope.SignAck(alert, w.Keyrings["partner"].Identity, time.Now())); err != nil {
		t.Errorf("carrying back a partner's ack token: %v", err)
	}
	_, err = br.Publish(proto.AckTarget(alert), envelope.SignAck(alert, w.Keyrings["nl-kampala"].Identity, time.Now()))
	wantCode(t, "carrying back a mission's ack token", err, proto.CodeForbidden)
	// What a bridge carries back may have waited at the partner's relay
	// longer than the dedup window: taken within the retention.
	older := routing.NewID()
	if _, err := br.Publish(proto.AckTarget(older), envelope.SignAck(older, w.Keyrings["partner"].Identity, time.Now().Add(-72*time.Hour))); err != nil {
		t.Errorf("carrying back a partner's ack token of three days ago: %v", err)
	}
	h := envelope.NewHeader("ug", routing.Urgent)
	h.Created = time.Now().Add(-72 * time.Hour)
	answer, err := envelope.Seal(h, []byte("we act"), w.Keyrings["partner"].Identity, envelope.Signed, envelope.To(newIdentity(t).Public()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := br.Publish(proto.MailboxTarget(mbox), answer); err != nil {
		t.Errorf("carrying back a partner's answer of three days ago: %v", err)
	}
	_, err = relaytest.Connect(t, url, w.Keyrings["nl-kampala"].NKey).Publish(proto.MailboxTarget(mbox), answer)
	wantCode(t, "a mission's answer of three days ago", err, proto.CodeStale)
	if _, err := w.ConnectAs(t, url, "nl-kampala").Publish(proto.AckTarget(alert), envelope.SignAck(alert, w.Keyrings["nl-kampala"].Identity, time.Now())); err != nil {
		t.Fatal(err)
	}

	stmts, err := w.ConnectAs(t, url, "nl-kampala").Relay.RollUp(ctx(t), alert)
	if err != nil || len(stmts) != 3 {
		t.Fatalf("roll-up: %d statements, %v; want two ack tokens and a receipt", len(stmts), err)
	}
	if _, err := receipt.Parse(stmts[2]); err != nil {
		t.Errorf("the roll-up's last statement is not the receipt: %v", err)
	}
	_, err = relaytest.Connect(t, url, nil).Relay.RollUp(ctx(t), alert)
	wantCode(t, "a defender reading a roll-up", err, proto.CodeForbidden)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestAlreadyStoredIsJetStreamsRefusal: the refusal a bridge reads as
// "stored already" is the one JetStream sends for a second message on a
// subject of a stream that keeps one per subject (BRIDGED and RECEIPTS,
// past the dedup window), and not its refusal for a full stream.
func TestAlreadyStoredIsJetStreamsRefusal(t *testing.T) {
	srv := relaytest.StartRaw(t, relay.SyncInterval)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []jetstream.StreamConfig{
		{Name: "ONCE", Subjects: []string{"once.>"}, MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true},
		{Name: "FULL", Subjects: []string{"full.>"}, MaxMsgs: 1, Discard: jetstream.DiscardNew},
	} {
		if _, err := js.CreateStream(ctx(t), c); err != nil {
			t.Fatal(err)
		}
	}
	reply := func(subject, id string) error {
		m := nats.NewMsg(subject)
		m.Header.Set(jetstream.MsgIDHeader, id)
		r, err := nc.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, err = proto.ParseReply(r.Data)
		return err
	}
	for _, c := range []struct {
		subject1, subject2 string
		stored             bool
	}{{"once.x", "once.x", true}, {"full.a", "full.b", false}} {
		if err := reply(c.subject1, "first"); err != nil {
			t.Fatal(err)
		}
		err := reply(c.subject2, "second")
		var perr *proto.Error
		if !errors.As(err, &perr) || perr.AlreadyStored() != c.stored || perr.Code != proto.CodeFull {
			t.Errorf("second store on %s: %v (%+v); want a refusal, AlreadyStored %v", c.subject2, err, perr, c.stored)
		}
	}
}

// TestSettleAppliedBeforeItIsAnswered: once the relay answered a settle,
// a count of what is pending no longer includes what was settled —
// JetStream applies acks after taking them, and the relay waits for its
// confirmation of each.
func TestSettleAppliedBeforeItIsAnswered(t *testing.T) {
	const n = 960
	w, url := bridgeWorld(t)
	def := relaytest.Connect(t, url, nil)
	var batch []relayconn.Outgoing
	for range n {
		batch = append(batch, relayconn.Outgoing{Target: proto.ShareTarget("ug", routing.Urgent),
			Data: sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "shared")})
	}
	for start := 0; start < n; start += 128 {
		_, errs := def.Relay.PublishBatch(ctx(t), batch[start:min(n, start+128)])
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	br := w.ConnectAs(t, url, "bridge")
	for left := n; left > 0; {
		got, err := fetch(t, br, proto.SharedSource("partner"), 128)
		if err != nil || len(got) == 0 {
			t.Fatalf("fetch: %d, %v", len(got), err)
		}
		if err := br.Settle(got); err != nil {
			t.Fatal(err)
		}
		left -= len(got)
		if p, err := br.Relay.Pending(ctx(t), proto.SharedSource("partner")); err != nil || p != uint64(left) {
			t.Fatalf("pending right after settling: %d (%v), want %d", p, err, left)
		}
	}
}

// TestSettleOfATokenJetStreamIgnores: JetStream confirms nothing for an
// ack past what its consumer delivered; such a settle is still answered
// (once the relay stopped waiting for the confirmation), and changes
// nothing.
func TestSettleOfATokenJetStreamIgnores(t *testing.T) {
	w, url := bridgeWorld(t)
	def := relaytest.Connect(t, url, nil)
	if _, err := def.Publish(proto.ShareTarget("ug", routing.Urgent), sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "shared")); err != nil {
		t.Fatal(err)
	}
	br := w.ConnectAs(t, url, "bridge")
	got, err := fetch(t, br, proto.SharedSource("partner"), 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("fetch: %d, %v", len(got), err)
	}
	// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
	tok := strings.Split(got[0].Settle, ".")
	if len(tok) != 9 {
		t.Fatalf("settle token %q: want 9 tokens", got[0].Settle)
	}
	tok[5] = "999999"
	if _, err := br.Svc(proto.SvcSettleTarget, []byte(strings.Join(tok, "."))); err != nil {
		t.Fatalf("settling a token past what was delivered: %v", err)
	}
	if p, err := br.Relay.Pending(ctx(t), proto.SharedSource("partner")); err != nil || p != 1 {
		t.Errorf("pending: %d (%v), want the one share still unsettled", p, err)
	}
}
