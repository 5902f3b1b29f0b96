package relay_test

// Held envelopes end to end: real relays, real timers fired by
// JetStream, deadlines of a few seconds. Nothing sleeps: a test waits for
// a release with a fetch that long-polls until it arrives, and for its
// absence with a fetch that long-polls past the deadline.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// holder is a defender handing over holds: a connection and the chains
// of the plans it armed.
type holder struct {
	c      *relaytest.Conn
	id     *keys.Identity
	chains map[routing.ID]*chain
}

type chain struct {
	id   routing.ID
	seed proto.Link
	n    uint32
	used uint32
}

func newHolder(t testing.TB, url string) *holder {
	t.Helper()
	return &holder{c: relaytest.Connect(t, url, nil), id: newIdentity(t), chains: map[routing.ID]*chain{}}
}

// request sends a hold request and decodes the answer; a refusal is a
// *proto.Error.
func (h *holder) request(op proto.HoldOp, body []byte) (*proto.HoldReply, error) {
	m, err := h.c.Request(proto.Ingest(h.c.Mailbox, proto.HoldTarget(op)), body, 20*time.Second)
	if err != nil {
		return nil, err
	}
	return proto.ParseHoldReply(m.Data)
}

func (h *holder) requestJSON(op proto.HoldOp, v any) (*proto.HoldReply, error) {
	b, _ := json.Marshal(v)
	return h.request(op, b)
}

// seal seals body for the missions of w covering cc, as a defender does.
func (h *holder) seal(t testing.TB, w *relaytest.World, cc string, body string, to ...string) ([]byte, routing.ID) {
	t.Helper()
	if len(to) == 0 {
		for _, m := range w.Dir.MissionsFor(cc) {
			to = append(to, m.ID)
		}
	}
	var rcpt []envelope.Recipient
	for _, id := range to {
		kr := w.Keyrings[id]
		rcpt = append(rcpt, envelope.ToInbox(kr.Identity.Public(), kr.Inboxes[0].Key.Public()))
	}
	hd := envelope.NewHeader(cc, routing.Urgent)
	env, err := envelope.Seal(hd, []byte(body), h.id, envelope.Deniable, rcpt...)
	if err != nil {
		t.Fatal(err)
	}
	return env, hd.ID
}

// arm arms a check-in plan of every + grace holding env.
func (h *holder) arm(t testing.TB, env []byte, every, grace time.Duration, panicLock *proto.Link, id routing.ID) (*proto.HoldInfo, error) {
	t.Helper()
	if id.IsZero() {
		id = routing.NewID()
	}
	ch := &chain{id: id, n: 16}
	rand.Read(ch.seed[:])
	plan := &proto.CheckInPlan{ID: id, Every: proto.SecondsOf(every), Grace: proto.SecondsOf(grace),
		Chain: proto.ChainValue(id, ch.seed, ch.n, 0), Length: ch.n, Panic: panicLock}
	body, err := proto.FrameHold(plan, env)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := h.request(proto.HoldArmCheckIn, body)
	if err != nil {
		return nil, err
	}
	if len(rep.Holds) != 1 || rep.Holds[0].ID != id || rep.Stream != proto.StreamHolds || rep.Seq == 0 {
		t.Fatalf("arm answered %+v", rep)
	}
	h.chains[id] = ch
	return &rep.Holds[0], nil
}

// next spends the next link of plan id on op.
func (h *holder) next(id routing.ID, op proto.HoldOp) (*proto.HoldReply, error) {
	ch := h.chains[id]
	ch.used++
	return h.requestJSON(op, &proto.CheckIn{ID: id, Index: ch.used, Value: proto.ChainValue(id, ch.seed, ch.n, ch.used)})
}

func (h *holder) status(t testing.TB, ids ...routing.ID) map[routing.ID]proto.HoldInfo {
	t.Helper()
	rep, err := h.requestJSON(proto.HoldStatus, &proto.StatusRequest{IDs: ids})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	out := map[routing.ID]proto.HoldInfo{}
	for _, hi := range rep.Holds {
		out[hi.ID] = hi
	}
	return out
}

// awaitReleased waits until hold id's status says released, and returns
// it. The relay records a release once the envelope it released is
// stored, a moment after a reader may see it, and no event says when.
func (h *holder) awaitReleased(t *testing.T, id routing.ID) proto.HoldInfo {
	t.Helper()
	var st proto.HoldInfo
	waitUntil(t, "hold "+id.String()+" released", func() (bool, string) {
		st = h.status(t, id)[id]
		return st.State == proto.HoldReleased, st.State
	})
	return st
}

// awaitAlerts long-polls mission's alerts of cc until one arrives or
// wait passes, and settles what it got.
func awaitAlerts(t testing.TB, m *relaytest.Conn, cc string, wait time.Duration) []relaytest.Fetched {
	t.Helper()
	got, err := m.Fetch(proto.SvcFetchAlerts(cc), 16, wait)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(got) > 0 {
		if err := m.Settle(got); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// holdsWorld is a relay whose plans may check in every second, with a
// mission for each of the countries the tests use: each test reads its
// own country, so they run side by side.
func holdsWorld(t *testing.T, opts ...relay.Option) (*relaytest.World, *relay.Relay) {
	t.Helper()
	return holdsWorldMin(t, time.Second, opts...)
}

func holdsWorldMin(t *testing.T, min time.Duration, opts ...relay.Option) (*relaytest.World, *relay.Relay) {
	t.Helper()
	var specs []relaytest.MissionSpec
	for _, cc := range []string{"ug", "ke", "tz", "rw", "bi", "et"} {
		specs = append(specs, relaytest.MissionSpec{ID: "m-" + cc, Countries: []string{cc}})
	}
	w := relaytest.NewWorld(t, specs...)
	cfg := relaytest.Config(t)
	cfg.Holds.MinCheckInInterval = min
	w.Configure(cfg)
	return w, relaytest.Start(t, cfg, opts...)
}

// TestCheckInPlanMissedIsReleasedOnce: a plan nobody checks in on is
// released at its deadline (every + grace after arming, to the second
// rounded up), exactly once, into the alerts of its country, where the
// mission reads the envelope as it was sealed.
func TestCheckInPlanMissedIsReleasedOnce(t *testing.T) {
	t.Parallel()
	w, r := holdsWorld(t)
	h := newHolder(t, r.ClientURL())
	m := w.ConnectAs(t, r.ClientURL(), "m-ug")
	env, _ := h.seal(t, w, "ug", "I did not check in: detained?")
	armed := time.Now()
	info, err := h.arm(t, env, time.Second, time.Second, nil, routing.ID{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Deadline.Before(armed.Add(2*time.Second)) || info.Deadline.After(time.Now().Add(3*time.Second)) {
		t.Fatalf("deadline %s, armed between %s and now with every 1s grace 1s", info.Deadline, armed)
	}
	got := awaitAlerts(t, m, "ug", 20*time.Second)
	at := time.Now()
	if len(got) != 1 || !bytes.Equal(got[0].Data, env) || got[0].Subject != proto.AlertSubject("ug", routing.Urgent) {
		t.Fatalf("released %d messages, want the held envelope once under bcn.to.ug.urgent", len(got))
	}
	if at.Before(info.Deadline) {
		t.Errorf("released at %s, before its deadline %s", at, info.Deadline)
	}
	t.Logf("released %s after its deadline", at.Sub(info.Deadline))
	h.awaitReleased(t, info.ID)
	// Once: nothing more comes, and the plan takes no more check-ins.
	if more := awaitAlerts(t, m, "ug", 1500*time.Millisecond); len(more) != 0 {
		t.Errorf("%d more messages after the release", len(more))
	}
	_, err = h.next(info.ID, proto.HoldOK)
	wantCode(t, "a check-in after the release", err, proto.CodeNoHold)
}

// TestCheckInPostpones: on the relay's clock (a fake one here, started
// at the real time) a check-in moves the deadline to every + grace after
// it; JetStream fires at the new deadline, not the old one.
func TestCheckInPostpones(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(time.Now())
	w, r := holdsWorld(t, relay.WithClock(clock))
	h := newHolder(t, r.ClientURL())
	m := w.ConnectAs(t, r.ClientURL(), "m-ke")
	env, _ := h.seal(t, w, "ke", "silent")
	info, err := h.arm(t, env, 3*time.Second, 0, nil, routing.ID{})
	if err != nil {
		t.Fatal(err)
	}
	// A second later, and more than the lead (a second) before the
	// deadline, rounded up to at least 3s after arming.
	clock.Advance(time.Second)
	want := clock.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second) // rounded up
	rep, err := h.next(info.ID, proto.HoldOK)
	if err != nil {
		t.Fatalf("check-in in time: %v", err)
	}
	moved := rep.Holds[0].Deadline
	if !moved.Equal(want) || !moved.After(info.Deadline) || rep.Holds[0].Index != 1 {
		t.Fatalf("after the check-in: deadline %s index %d, want %s 1", moved, rep.Holds[0].Index, want)
	}
	if early := awaitAlerts(t, m, "ke", time.Until(info.Deadline)+time.Second); len(early) != 0 {
		t.Fatal("released at the deadline the check-in moved")
	}
	if got := awaitAlerts(t, m, "ke", 20*time.Second); len(got) != 1 || !bytes.Equal(got[0].Data, env) {
		t.Fatalf("released %d messages at the new deadline, want 1", len(got))
	}
	if time.Now().Before(moved) {
		t.Errorf("released before the new deadline %s", moved)
	}
}

// TestCheckInRefusals: a replayed or forged check-in is refused, and a
// disarmed plan never fires; a late check-in is refused (the relay's
// clock is past the deadline); only defenders hand over holds, at no
// less than the relay's minimum interval.
func TestCheckInRefusals(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(time.Now())
	w, r := holdsWorldMin(t, 2*time.Second, relay.WithClock(clock))
	h := newHolder(t, r.ClientURL())
	m := w.ConnectAs(t, r.ClientURL(), "m-tz")
	env, _ := h.seal(t, w, "tz", "silent")
	info, err := h.arm(t, env, 2*time.Second, 0, nil, routing.ID{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.next(info.ID, proto.HoldOK); err != nil {
		t.Fatalf("check-in 1: %v", err)
	}
	ch := h.chains[info.ID]
	_, err = h.requestJSON(proto.HoldOK, &proto.CheckIn{ID: info.ID, Index: 1, Value: proto.ChainValue(info.ID, ch.seed, ch.n, 1)})
	wantCode(t, "check-in 1 replayed", err, proto.CodeChain)
	var forged proto.Link
	rand.Read(forged[:])
	_, err = h.requestJSON(proto.HoldOK, &proto.CheckIn{ID: info.ID, Index: 2, Value: forged})
	wantCode(t, "a forged check-in", err, proto.CodeChain)
	_, err = h.requestJSON(proto.HoldOK, &proto.CheckIn{ID: routing.NewID(), Index: 1, Value: forged})
	wantCode(t, "a check-in on no plan", err, proto.CodeNoHold)
	rep, err := h.next(info.ID, proto.HoldDisarm)
	if err != nil || rep.Holds[0].State != proto.HoldDisarmed {
		t.Fatalf("disarm: %+v %v", rep, err)
	}
	_, err = h.next(info.ID, proto.HoldOK)
	wantCode(t, "a check-in on a disarmed plan", err, proto.CodeNoHold)
	if got := awaitAlerts(t, m, "tz", time.Until(info.Deadline)+3*time.Second); len(got) != 0 {
		t.Errorf("a disarmed plan released %d messages", len(got))
	}

	late, err := h.arm(t, env, time.Hour, 0, nil, routing.ID{})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	_, err = h.next(late.ID, proto.HoldOK)
	wantCode(t, "a check-in an hour late", err, proto.CodeLate)

	_, err = h.arm(t, env, time.Second, 0, nil, routing.ID{})
	wantCode(t, "check-ins every second, under the relay's minimum of 2s", err, proto.CodeBadRequest)
	mh := &holder{c: w.ConnectAs(t, r.ClientURL(), "m-tz"), id: h.id, chains: map[routing.ID]*chain{}}
	_, err = mh.arm(t, env, time.Hour, 0, nil, routing.ID{})
	wantCode(t, "a mission arming a plan", err, proto.CodeForbidden)
	_, err = h.arm(t, env[:len(env)-1], time.Hour, 0, nil, routing.ID{})
	wantCode(t, "a truncated envelope", err, proto.CodeMalformed)
}

// TestPanicReleasesAtOnce: the panic secret releases a plan within a
// second, far before its deadline; a wrong secret changes nothing.
func TestPanicReleasesAtOnce(t *testing.T) {
	t.Parallel()
	w, r := holdsWorld(t)
	h := newHolder(t, r.ClientURL())
	m := w.ConnectAs(t, r.ClientURL(), "m-rw")
	duress := make([]byte, 32)
	rand.Read(duress)
	id := proto.PanicID(duress)
	lock := proto.PanicLock(id, proto.PanicSecret(duress))
	env, _ := h.seal(t, w, "rw", "under duress")
	info, err := h.arm(t, env, time.Hour, 0, &lock, id)
	if err != nil {
		t.Fatal(err)
	}
	var wrong proto.Link
	rand.Read(wrong[:])
	_, err = h.requestJSON(proto.HoldPanic, &proto.PanicRequest{ID: id, Secret: wrong})
	wantCode(t, "a wrong panic secret", err, proto.CodeNoHold)
	if _, err := h.requestJSON(proto.HoldPanic, &proto.PanicRequest{ID: id, Secret: proto.PanicSecret(duress)}); err != nil {
		t.Fatalf("panic: %v", err)
	}
	if got := awaitAlerts(t, m, "rw", 10*time.Second); len(got) != 1 || !bytes.Equal(got[0].Data, env) {
		t.Fatalf("panic released %d messages, want 1", len(got))
	}
	if st := h.awaitReleased(t, id); !st.Deadline.Before(info.Deadline) {
		t.Errorf("after the panic: %+v", st)
	}
	// The same id may be armed again, with a new envelope, once the
	// plan ended; the same envelope again is the old plan, not re-armed.
	if again, err := h.arm(t, env, time.Hour, 0, &lock, id); err == nil && again.State != proto.HoldReleased {
		t.Errorf("the released envelope handed over again was armed again: %+v", again)
	}
	env2, _ := h.seal(t, w, "rw", "under duress, again")
	if again, err := h.arm(t, env2, time.Hour, 0, &lock, id); err != nil || again.State != proto.HoldArmed {
		t.Errorf("arming the panic id again: %+v %v", again, err)
	}
}

// TestHeldBytesHoldNoPlaintext: what the relay writes to disk for a held
// envelope, its chain and its release, contains none of the plaintext.
func TestHeldBytesHoldNoPlaintext(t *testing.T) {
	t.Parallel()
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "m-ug", Countries: []string{"ug"}})
	cfg := relaytest.Config(t)
	cfg.Holds.MinCheckInInterval = time.Second
	w.Configure(cfg)
	r := relaytest.Start(t, cfg)
	h := newHolder(t, r.ClientURL())
	m := w.ConnectAs(t, r.ClientURL(), "m-ug")
	const secret = "PLAINTEXT-MARKER: taken to the station on Kafu road"
	env, _ := h.seal(t, w, "ug", secret)
	if _, err := h.arm(t, env, time.Second, 0, nil, routing.ID{}); err != nil {
		t.Fatal(err)
	}
	if got := awaitAlerts(t, m, "ug", 20*time.Second); len(got) != 1 {
		t.Fatalf("released %d", len(got))
	}
	assertNoPlaintext(t, cfg.DataDir, secret)
}

func assertNoPlaintext(t *testing.T, dir, secret string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("Kafu")) {
			t.Errorf("%s holds plaintext", path)
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walking %s: %d files, %v", dir, files, err)
	}
}

// TestCheckInPlansSurviveKillNine arms two plans on a relay process and
// kills it with SIGKILL at once; the relay restarts on its data
// directory. The plan that fell due while it was down is released when
// it is back, the other at its deadline: each once.
func TestCheckInPlansSurviveKillNine(t *testing.T) {
	t.Parallel()
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "m-ug", Countries: []string{"ug"}})
	cfgPath := writeChildConfig(t, t.TempDir(), w, "always")
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("holds:\n  min_checkin_interval: 1s\n")
	f.Close()
	first, err := startChild(t, cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	h := newHolder(t, first.url)
	envs := map[string]bool{}
	var ids []routing.ID
	var deadlines []time.Time
	for _, every := range []time.Duration{time.Second, 6 * time.Second} {
		env, _ := h.seal(t, w, "ug", "silent for "+every.String())
		info, err := h.arm(t, env, every, 0, nil, routing.ID{})
		if err != nil {
			t.Fatal(err)
		}
		envs[string(env)] = true
		ids = append(ids, info.ID)
		deadlines = append(deadlines, info.Deadline)
	}
	h.c.Close()
	first.kill9(t)
	killed := time.Now()
	// The scenario, not a wait for an event: the first plan falls due
	// while no relay runs.
	<-time.After(time.Until(deadlines[0]))
	second, err := startChild(t, cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("down for %s; the plans fell due %s and %s after the kill", time.Since(killed), deadlines[0].Sub(killed), deadlines[1].Sub(killed))
	if !time.Now().Before(deadlines[1]) {
		t.Fatal("the restart took past the second deadline; the test shows less than it should")
	}
	m := w.ConnectAs(t, second.url, "m-ug")
	for len(envs) > 0 {
		got := awaitAlerts(t, m, "ug", 20*time.Second)
		if len(got) == 0 {
			t.Fatalf("%d plans not released", len(envs))
		}
		for _, g := range got {
			if !envs[string(g.Data)] {
				t.Fatal("released a message twice, or one never held")
			}
			delete(envs, string(g.Data))
		}
	}
	if more := awaitAlerts(t, m, "ug", 1500*time.Millisecond); len(more) != 0 {
		t.Errorf("%d more messages after both releases", len(more))
	}
	h2 := &holder{c: relaytest.Connect(t, second.url, nil)}
	for _, id := range ids {
		if st := h2.status(t, id)[id]; st.State != proto.HoldReleased {
			t.Errorf("plan %s: %+v, want released", id, st)
		}
	}
}

// TestCheckInPlanSurvivesNodeLoss runs the shipped 3-node cluster (R3
// streams), arms a plan through one node and stops the node that leads
// HOLDS before the deadline: the release still happens, once, through
// the nodes left.
func TestCheckInPlanSurvivesNodeLoss(t *testing.T) {
	t.Parallel()
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "m-ug", Countries: []string{"ug"}})
	cfgs := clusterConfigs(t, w)
	for _, c := range cfgs {
		c.Holds.MinCheckInInterval = time.Second
	}
	nodes := startNodes(t, cfgs...)
	var leader string
	waitUntil(t, "HOLDS leader", func() (bool, string) {
		if c := streamDetails(t, nodes[0].Server())[proto.StreamHolds].Cluster; c != nil {
			leader = c.Leader
		}
		return leader != "", "no leader"
	})
	down := -1
	for i, c := range cfgs {
		if c.ServerName == leader {
			down = i
		}
	}
	if down < 0 {
		t.Fatalf("HOLDS leader %q is none of the nodes", leader)
	}
	via := nodes[(down+1)%3]
	h := newHolder(t, via.ClientURL())
	env, _ := h.seal(t, w, "ug", "silent in a cluster")
	info, err := h.arm(t, env, 6*time.Second, 0, nil, routing.ID{})
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[down].Shutdown(t.Context()); err != nil {
		t.Fatalf("stopping %s: %v", leader, err)
	}
	if left := time.Until(info.Deadline); left <= 0 {
		t.Fatalf("stopping the leader took past the deadline; the test shows nothing")
	} else {
		t.Logf("stopped %s (the HOLDS leader) %s before the deadline", leader, left)
	}
	m := w.ConnectAs(t, nodes[(down+2)%3].ClientURL(), "m-ug")
	got := awaitAlertsFailingOver(t, m, "ug", 30*time.Second)
	if len(got) != 1 || !bytes.Equal(got[0].Data, env) {
		t.Fatalf("released %d messages with a node down, want the envelope once", len(got))
	}
	t.Logf("released %s after the deadline", time.Since(info.Deadline))
	if more := awaitAlertsFailingOver(t, m, "ug", 2*time.Second); len(more) != 0 {
		t.Errorf("%d more messages after the release", len(more))
	}
	if st := h.status(t, info.ID)[info.ID]; st.State != proto.HoldReleased {
		t.Errorf("status: %+v", st)
	}
}

// awaitAlertsFailingOver is awaitAlerts while the cluster fails over: a
// fetch the relay refuses as unavailable (the alerts' consumer has no
// leader yet) is made again, a moment later, for up to a minute.
func awaitAlertsFailingOver(t *testing.T, m *relaytest.Conn, cc string, wait time.Duration) []relaytest.Fetched {
	t.Helper()
	give := time.Now().Add(time.Minute)
	for {
		got, err := m.Fetch(proto.SvcFetchAlerts(cc), 16, wait)
		var perr *proto.Error
		if errors.As(err, &perr) && perr.Code == proto.CodeUnavailable && time.Now().Before(give) {
			<-time.After(100 * time.Millisecond) // a retry of a refused request, not a wait for an event
			continue
		}
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if len(got) > 0 {
			if err := m.Settle(got); err != nil {
				t.Fatal(err)
			}
		}
		return got
	}
}

// TestHoldsFullRefusesNewHolds: HOLDS has no size limit of its own (a
// stream with schedules discards old messages when full, which would drop
// held envelopes); the relay refuses new holds once it holds
// storage.max_bytes, and keeps the ones it has.
func TestHoldsFullRefusesNewHolds(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(time.Now())
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "m-ug", Countries: []string{"ug"}})
	cfg := relaytest.Config(t)
	cfg.Storage.MaxBytes = 1 << 20
	cfg.Holds.MinCheckInInterval = time.Second
	w.Configure(cfg)
	r := relaytest.Start(t, cfg, relay.WithClock(clock))
	h := newHolder(t, r.ClientURL())
	var first routing.ID
	stored := 0
	for stored < 1<<20 {
		env, _ := h.seal(t, w, "ug", "x")
		info, err := h.arm(t, env, time.Hour, 0, nil, routing.ID{})
		if err != nil {
			t.Fatalf("after %d bytes: %v", stored, err)
		}
		if first.IsZero() {
			first = info.ID
		}
		stored += len(env)
	}
	clock.Advance(2 * time.Second) // the relay reads the stream's size once a second
	env, _ := h.seal(t, w, "ug", "x")
	_, err := h.arm(t, env, time.Hour, 0, nil, routing.ID{})
	wantCode(t, "a hold past max_bytes", err, proto.CodeHoldFull)
	if st := h.status(t, first)[first]; st.State != proto.HoldArmed {
		t.Errorf("the first hold: %+v", st)
	}
}

// TestReleaseIntoAFullChannelWaits: a release the channel's quota refuses
// (a flood filled the country's urgent alerts) is not lost. The relay
// tries it again until the channel has room, and it arrives once.
func TestReleaseIntoAFullChannelWaits(t *testing.T) {
	t.Parallel()
	refused := make(chan struct{}, 1)
	log := slog.New(&onMessage{msg: "holds: release failed; trying again", hit: refused})
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "m-bi", Countries: []string{"bi"}})
	cfg := relaytest.Config(t)
	cfg.Storage.ChannelMessages = 1
	cfg.Holds.MinCheckInInterval = time.Second
	w.Configure(cfg)
	r := relaytest.Start(t, cfg, relay.WithLogger(log))
	h := newHolder(t, r.ClientURL())
	m := w.ConnectAs(t, r.ClientURL(), "m-bi")

	filler, _ := h.seal(t, w, "bi", "the flood")
	rep := mustStore(t, h.c, proto.AlertTarget("bi", routing.Urgent), filler)
	duress := make([]byte, 32)
	rand.Read(duress)
	id := proto.PanicID(duress)
	lock := proto.PanicLock(id, proto.PanicSecret(duress))
	env, _ := h.seal(t, w, "bi", "held back by the flood")
	if _, err := h.arm(t, env, time.Hour, 0, &lock, id); err != nil {
		t.Fatal(err)
	}
	if _, err := h.requestJSON(proto.HoldPanic, &proto.PanicRequest{ID: id, Secret: proto.PanicSecret(duress)}); err != nil {
		t.Fatalf("panic: %v", err)
	}
	select {
	case <-refused:
	case <-time.After(20 * time.Second):
		t.Fatal("the release into the full channel was not refused")
	}
	if st := h.status(t, id)[id]; st.State == proto.HoldReleased {
		t.Fatalf("the plan says released while its envelope is not stored: %+v", st)
	}

	// The channel gets room (here: the filler deleted, as junk would be).
	js, err := jetstream.New(relay.InternalConn(r))
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := js.Stream(context.Background(), proto.StreamAlerts)
	if err != nil {
		t.Fatal(err)
	}
	if err := alerts.DeleteMsg(context.Background(), rep.Seq); err != nil {
		t.Fatal(err)
	}
	got := awaitAlerts(t, m, "bi", 20*time.Second)
	if len(got) != 1 || !bytes.Equal(got[0].Data, env) {
		t.Fatalf("after the channel had room: %d messages, want the held envelope", len(got))
	}
	h.awaitReleased(t, id)
	if more := awaitAlerts(t, m, "bi", 2*relay.HoldRetry); len(more) != 0 {
		t.Errorf("%d more messages after the release", len(more))
	}
}

// onMessage is a slog.Handler that signals hit when a record with message
// msg is logged.
type onMessage struct {
	msg string
	hit chan struct{}
}

func (h *onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h *onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.hit <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h *onMessage) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *onMessage) WithGroup(string) slog.Handler      { return h }
