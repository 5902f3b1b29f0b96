package relay_test

// Mailbox reads at scale, ids that cannot be squatted, envelopes at the
// size limit, proofs of work that cannot be replayed or shared, junk
// removal and operators' purges.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// TestHundredThousandMailboxes: 100,000 distinct mailboxes are read once
// each (through the relay's ingest and fetch service, as their owners'
// connections would); then a new defender reads its reply. The MAILBOX
// stream has no consumer at all (the relay's tail follows its notices)
// and the process's heap grows by a bounded amount.
func TestHundredThousandMailboxes(t *testing.T) {
	const mailboxes = 100_000
	const withReply = 100
	w, r, _ := startWorld(t, func(c *relay.Config) { c.Limits.ServiceRate, c.Limits.ServiceBurst = 1e6, 1e6 })
	mission := connectMission(t, w, r, "nl-kampala")
	mbs := make([]routing.Mailbox, mailboxes)
	for i := range mbs {
		rand.Read(mbs[i][:])
	}
	for i := range withReply {
		mustStore(t, mission, proto.MailboxTarget(mbs[i]), sealToDefender(t, w, "nl-kampala", newIdentity(t), "reply"))
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()

	nc := relay.InternalConn(r)
	const window = 256
	slots := make(chan struct{}, window)
	var msgs, ends, refusals atomic.Int64
	sub, err := nc.Subscribe("bcn.reply.*.m", func(m *nats.Msg) {
		switch {
		case m.Header.Get(proto.HeaderEnd) != "":
			ends.Add(1)
			<-slots
		case m.Header.Get(proto.HeaderSubject) != "":
			msgs.Add(1)
		default:
			refusals.Add(1)
			<-slots
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	defer sub.Unsubscribe()
	body := []byte(`{"max":4}`)
	for _, mb := range mbs {
		slots <- struct{}{}
		if err := nc.PublishRequest(proto.Ingest(mb, proto.SvcFetchMbox), proto.ReplyPrefix(mb)+".m", body); err != nil {
			t.Fatal(err)
		}
	}
	for range window {
		slots <- struct{}{} // every answer is in
	}
	if ends.Load() != mailboxes || refusals.Load() != 0 || msgs.Load() != withReply {
		t.Fatalf("%d batches, %d refusals, %d messages; want %d, 0, %d", ends.Load(), refusals.Load(), msgs.Load(), mailboxes, withReply)
	}
	after := heap()
	st := streamStates(t, r)[proto.StreamMailbox]
	t.Logf("heap %d MiB before the reads, %d MiB after; MAILBOX consumers %d", before>>20, after>>20, st.Consumers)
	if st.Consumers != 0 {
		t.Errorf("MAILBOX has %d consumers; want none", st.Consumers)
	}
	// The reads keep per-key rate buckets until they refill, and nothing
	// per mailbox past that: a bound far below a consumer per mailbox
	// (~60–100 KiB each, NATS.md).
	if grown := int64(after) - int64(before); grown > 64<<20 {
		t.Errorf("the heap grew by %d MiB over %d mailbox reads", grown>>20, mailboxes)
	}

	me := newIdentity(t)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	reply := sealToDefender(t, w, "nl-kampala", me, "we are on our way")
	mustStore(t, mission, proto.MailboxTarget(d.Mailbox), reply)
	got := fetchOne(t, d, proto.SvcFetchMbox, reply)
	if o, err := envelope.Open(got.Data, me); err != nil || string(o.Body) != "we are on our way" {
		t.Fatalf("the new defender's reply: %v", err)
	}
}

// TestSquattedIDs: a mission that read a defender's alert stores
// something else under its id in every stream it may publish to, before
// the defender's share and its retry. The defender's share is stored (not
// "duplicate"), its retry of the alert is the duplicate of its own, and
// another mission receives the defender's alert intact.
func TestSquattedIDs(t *testing.T) {
	w, r := startTwoUG(t)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	nl := connectMission(t, w, r, "nl-kampala")
	h := header("ug", routing.Urgent, time.Now())
	alert := sealAlert(t, w, h, "the real alert")
	share := sealAlert(t, w, h, "the real alert, for partners")
	first := mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), alert)
	got := fetchOne(t, nl, proto.SvcFetchAlerts("ug"), alert)
	nl.Settle([]relaytest.Fetched{got})

	// The squatter knows the id from the alert's header.
	info, err := envelope.Parse(got.Data)
	if err != nil {
		t.Fatal(err)
	}
	id := info.Header.ID
	squat := func(cc string, p routing.Priority) []byte {
		sh := header(cc, p, time.Now())
		sh.ID = id
		env, err := envelope.Seal(sh, []byte("garbage"), w.Keyrings["nl-kampala"].Identity, envelope.Signed, envelope.To(newIdentity(t).Public()))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	for _, target := range []string{proto.ShareTarget("ug", routing.Urgent), proto.AlertTarget("ug", routing.Urgent),
		proto.AlertTarget("ug", routing.Routine), proto.MailboxTarget(d.Mailbox)} {
		cc, p := "ug", routing.Urgent
		if strings.HasSuffix(target, "routine") {
			p = routing.Routine
		}
		if rep := mustStore(t, nl, target, squat(cc, p)); rep.Duplicate {
			t.Fatalf("the squat on %s was taken for a duplicate", target)
		}
	}
	mustStore(t, nl, proto.BroadcastTarget("ug"), mustSignPublic(t, "ug", "squatting", w.Keyrings["nl-kampala"].Identity, time.Now()))

	rep := mustStore(t, d, proto.ShareTarget("ug", routing.Urgent), share)
	if rep.Duplicate {
		t.Fatalf("the defender's share was answered duplicate: %+v", rep)
	}
	again := mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), alert)
	if !again.Duplicate || again.Seq != first.Seq {
		t.Fatalf("the defender's retry: %+v; want the duplicate of seq %d", again, first.Seq)
	}
	// SHARED holds both, the defender's byte for byte.
	js, err := jetstream.New(relay.InternalConn(r))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), proto.StreamShared)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.GetMsg(context.Background(), rep.Seq)
	if err != nil || !bytes.Equal(stored.Data, share) {
		t.Fatalf("SHARED seq %d: %v; not the defender's share", rep.Seq, err)
	}
	// Another mission reads ug's alerts: the real one opens, the squat
	// does not.
	de := connectMission(t, w, r, "de-kampala")
	kr := w.Keyrings["de-kampala"]
	var opened []string
	for _, m := range fetchAll(t, de, proto.SvcFetchAlerts("ug"), 3) { // the alert and two squats
		if o, err := envelope.Open(m.Data, kr.Identity, kr.InboxKeys()...); err == nil {
			opened = append(opened, string(o.Body))
		}
	}
	if len(opened) != 1 || opened[0] != "the real alert" {
		t.Fatalf("de-kampala opened %q", opened)
	}
}

// TestEnvelopeSizeLimits: under the default max_message_size the largest
// envelope SPEC.md allows (32 recipients, the largest body) is stored and
// read back; one byte more is refused once, as too_large, permanently,
// and the connection does not send it again.
func TestEnvelopeSizeLimits(t *testing.T) {
	var ms []relaytest.MissionSpec
	for i := range envelope.MaxRecipients {
		ms = append(ms, relaytest.MissionSpec{ID: "m" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Countries: []string{"ug"}})
	}
	w := relaytest.NewWorld(t, ms...)
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	if cfg.Storage.MaxMessageSize != envelope.MaxSize {
		t.Fatalf("default max_message_size %d; want the largest envelope, %d", cfg.Storage.MaxMessageSize, envelope.MaxSize)
	}
	r := relaytest.Start(t, cfg)
	h := header("ug", routing.Urgent, time.Now())
	h.ReplyTo = randomMailbox()
	env := sealAlert(t, w, h, strings.Repeat("x", envelope.MaxBodySize))
	if len(env) != envelope.MaxSize {
		t.Fatalf("the largest envelope is %d bytes; SPEC.md says %d", len(env), envelope.MaxSize)
	}
	d := relaytest.Connect(t, r.ClientURL(), nil)
	mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), env)
	fetchOne(t, w.ConnectAs(t, r.ClientURL(), ms[0].ID), proto.SvcFetchAlerts("ug"), env)

	over := append(bytes.Clone(env), 0)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err := d.Relay.Publish(ctx, proto.AlertTarget("ug", routing.Urgent), over)
	var perr *proto.Error
	if !errors.As(err, &perr) || perr.Code != proto.CodeTooLarge || perr.Code.Retryable() || !strings.Contains(perr.Description, "limit") {
		t.Fatalf("one byte over: %v; want a permanent too_large with the limit", err)
	}
	wantRefused(t, r, map[proto.Code]float64{proto.CodeTooLarge: 1})
}

// TestJetStreamRefusalsMapped: the errors JetStream itself puts in an
// acknowledgement map to the relay's codes: too large is permanent, a
// full stream or subject is worth retrying.
func TestJetStreamRefusalsMapped(t *testing.T) {
	for _, c := range []struct {
		ack  string
		want proto.Code
	}{
		{`{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`, proto.CodeTooLarge},
		{`{"error":{"code":503,"err_code":10077,"description":"maximum messages per subject exceeded"}}`, proto.CodeFull},
		{`{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`, proto.CodeFull},
		{`{"error":{"code":503,"err_code":10077,"description":"no space left on device"}}`, proto.CodeUnavailable},
		{`{"error":{"code":"too_large","description":"limit"}}`, proto.CodeTooLarge},
	} {
		_, err := proto.ParseReply([]byte(c.ack))
		var perr *proto.Error
		if !errors.As(err, &perr) || perr.Code != c.want {
			t.Errorf("%s: %v; want %s", c.ack, err, c.want)
		}
	}
	if proto.CodeTooLarge.Retryable() || !proto.CodeFull.Retryable() || !proto.CodeAdmission.Retryable() {
		t.Error("too_large must be permanent, full and admission retryable")
	}
}

// TestProofsBoundToEnvelopeAndConnection: under a difficulty, a publish
// without a proof is refused with a challenge; relayconn solves it; the
// same proof for another envelope, from another connection, or again is
// refused; a mission never pays.
func TestProofsBoundToEnvelopeAndConnection(t *testing.T) {
	w, r, _ := startWorld(t, func(c *relay.Config) {
		c.Admission.MinBits, c.Admission.MaxBits = 4, 4
		c.Admission.StampBits = 4
		c.Admission.MemoryKiB = 8
	})
	d := relaytest.Connect(t, r.ClientURL(), nil)
	target := proto.AlertTarget("ug", routing.Urgent)
	env := sealAlert(t, w, header("ug", routing.Urgent, time.Now()), "one")
	rep, err := d.Conn.Request(proto.Ingest(d.Mailbox, target), env, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	_, err = proto.ParseReply(rep.Data)
	var perr *proto.Error
	if !errors.As(err, &perr) || perr.Code != proto.CodeAdmission || perr.Challenge == nil || perr.Challenge.Bits != 4 {
		t.Fatalf("no proof: %v; want admission with a 4-bit challenge", err)
	}
	// Solve it by hand, as relayconn does.
	p, raw, err := proto.ParseChallenge(perr.Challenge.Token)
	if err != nil {
		t.Fatal(err)
	}
	proof := solveFor(t, p, raw, d.Mailbox, env, perr.Challenge)
	send := func(c *relaytest.Conn, data []byte, pr string) proto.Code {
		m := &nats.Msg{Subject: proto.Ingest(c.Mailbox, target), Data: data, Header: nats.Header{proto.HeaderProof: []string{pr}}}
		rep, err := c.Conn.RequestMsg(m, waitFor)
		if err != nil {
			t.Fatal(err)
		}
		_, err = proto.ParseReply(rep.Data)
		if errors.As(err, &perr) {
			return perr.Code
		}
		if err != nil {
			t.Fatal(err)
		}
		return ""
	}
	other := sealAlert(t, w, header("ug", routing.Urgent, time.Now()), "two")
	if code := send(d, other, proof); code != proto.CodeAdmission {
		t.Errorf("the proof for another envelope: %q; want admission", code)
	}
	thief := relaytest.Connect(t, r.ClientURL(), nil)
	if code := send(thief, env, proof); code != proto.CodeAdmission {
		t.Errorf("the proof from another connection: %q; want admission", code)
	}
	if code := send(d, env, proof); code != "" {
		t.Fatalf("the proof: %q; want stored", code)
	}
	if code := send(d, env, proof); code != proto.CodeAdmission {
		t.Errorf("the proof again: %q; want admission", code)
	}
	// relayconn solves what it is asked.
	third := sealAlert(t, w, header("ug", routing.Urgent, time.Now()), "three")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := d.Relay.Publish(ctx, target, third); err != nil || d.Relay.ProofTries() == 0 {
		t.Fatalf("relayconn under admission: %v, %d tries", err, d.Relay.ProofTries())
	}
	// A mission is never asked.
	nl := connectMission(t, w, r, "nl-kampala")
	if _, code := publishCode(t, nl, target, sealAlert(t, w, header("ug", routing.Urgent, time.Now()), "mission")); code != "" {
		t.Errorf("a mission's alert: %q", code)
	}
}

func solveFor(t *testing.T, p proto.ChallengeParams, raw []byte, mb routing.Mailbox, env []byte, ch *proto.Challenge) string {
	t.Helper()
	digest := sha256Sum(env)
	for nonce := uint64(0); nonce < 1<<16; nonce++ {
		work := proto.ProofWork(p, raw, mb, &digest, nonce)
		if proto.LeadingZeros(work[:]) < ch.Bits {
			continue
		}
		for stamp := uint64(0); ; stamp++ {
			s := proto.ProofStamp(raw, mb, &digest, nonce, &work, stamp)
			if proto.LeadingZeros(s[:]) >= p.StampBits {
				return proto.Proof{Token: ch.Token, Nonce: nonce, Stamp: stamp, Work: work}.String()
			}
		}
	}
	t.Fatal("no proof found")
	return ""
}

// TestJunkNeedsEveryMission: an alert none of ug's missions can open is
// removed only once both have reported it; one report alone removes
// nothing, and a defender may not report.
func TestJunkNeedsEveryMission(t *testing.T) {
	w, r := startTwoUG(t)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	junk := junkTemplate(t, "ug", routing.Urgent)()
	mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), junk)
	report := func(id string) uint64 {
		c := connectMission(t, w, r, id)
		got := fetchOne(t, c, proto.SvcFetchAlerts("ug"), junk)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		n, err := c.Relay.ReportJunk(ctx, []string{got.Settle})
		if err != nil {
			t.Fatalf("%s reports: %v", id, err)
		}
		return n
	}
	if n := report("nl-kampala"); n != 0 || streamMsgs(t, r)[proto.StreamAlerts] != 1 {
		t.Fatalf("one mission's report removed %d", n)
	}
	if code := svcCode(t, d, proto.SvcJunkTarget, []byte("$JS.ACK.ALERTS.m_nl-kampala_ug.1.1.1.1.0")); code != proto.CodeForbidden {
		t.Errorf("a defender's junk report: %q", code)
	}
	if n := report("de-kampala"); n != 1 || streamMsgs(t, r)[proto.StreamAlerts] != 0 {
		t.Fatalf("both missions' reports removed %d", n)
	}
	if g := gather(t, r)["beacon_relay_junk_removed_total,country=ug"]; g != 1 {
		t.Errorf("junk removed metric %v", g)
	}
}

// TestOperatorPurge: an operator inspects and purges one country's
// alerts stored before a time; other countries' stay; the purge is
// logged; nobody else may purge.
func TestOperatorPurge(t *testing.T) {
	op, _ := nkeys.CreateUser()
	opPub, _ := op.PublicKey()
	var logs syncBuffer
	w, r, _ := startWorld(t, func(c *relay.Config) {
		c.Operators = []relay.OperatorConfig{{Name: "duty-officer", NKey: opPub}}
	}, relay.WithLogger(newTextLogger(&logs)))
	d := relaytest.Connect(t, r.ClientURL(), nil)
	for _, cc := range []string{"ug", "ug", "ke"} {
		mustStore(t, d, proto.AlertTarget(cc, routing.Routine), sealAlert(t, w, header(cc, routing.Routine, time.Now()), "x"))
	}
	oc := relaytest.Connect(t, r.ClientURL(), op)
	call := func(c *relaytest.Conn, target string, req proto.PurgeRequest) (proto.PurgeReply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		b, _ := json.Marshal(req)
		m, err := c.Conn.RequestWithContext(ctx, proto.Ingest(c.Mailbox, target), b)
		if err != nil {
			t.Fatal(err)
		}
		var rep proto.PurgeReply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Error != nil {
			return rep, rep.Error
		}
		return rep, nil
	}
	req := proto.PurgeRequest{Stream: proto.StreamAlerts, Country: "ug", Before: time.Now().Add(time.Minute)}
	ins, err := call(oc, proto.SvcInspectTarget, req)
	if err != nil || ins.Total != 2 || ins.Subjects["bcn.to.ug.routine"] != 2 {
		t.Fatalf("inspect: %+v, %v", ins, err)
	}
	// Nothing was stored before an hour ago.
	if old, err := call(oc, proto.SvcInspectTarget, proto.PurgeRequest{Stream: proto.StreamAlerts, Before: time.Now().Add(-time.Hour)}); err != nil || old.Total != 0 {
		t.Fatalf("inspect an hour back: %+v, %v", old, err)
	}
	if _, err := call(d, proto.SvcPurgeTarget, req); !errors.As(err, new(*proto.Error)) || !strings.Contains(err.Error(), string(proto.CodeForbidden)) {
		t.Fatalf("a defender's purge: %v", err)
	}
	got, err := call(oc, proto.SvcPurgeTarget, req)
	if err != nil || got.Total != 2 {
		t.Fatalf("purge: %+v, %v", got, err)
	}
	if n := streamMsgs(t, r)[proto.StreamAlerts]; n != 1 {
		t.Fatalf("ALERTS holds %d after the purge; want ke's one", n)
	}
	if !strings.Contains(logs.String(), "operator purge") || !strings.Contains(logs.String(), "duty-officer") {
		t.Errorf("the purge was not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), d.Mailbox.String()) {
		t.Error("the log names a mailbox")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startTwoUG is a relay whose directory has two missions covering ug.
func startTwoUG(t *testing.T) (*relaytest.World, *relay.Relay) {
	t.Helper()
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "de-kampala", Countries: []string{"ug"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	return w, relaytest.Start(t, cfg)
}

func randomMailbox() routing.Mailbox {
	var m routing.Mailbox
	rand.Read(m[:])
	return m
}
