package relay

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// testChain is a check-in chain as a client keeps it.
type testChain struct {
	id   routing.ID
	seed proto.Link
	n    uint32
}

func newTestChain(n uint32) *testChain {
	c := &testChain{id: routing.NewID(), n: n}
	rand.Read(c.seed[:])
	return c
}

func (c *testChain) link(i uint32) *proto.CheckIn {
	return &proto.CheckIn{ID: c.id, Index: i, Value: proto.ChainValue(c.id, c.seed, c.n, i)}
}

func (c *testChain) plan(every, grace time.Duration) *proto.CheckInPlan {
	return &proto.CheckInPlan{ID: c.id, Every: proto.SecondsOf(every), Grace: proto.SecondsOf(grace),
		Chain: proto.ChainValue(c.id, c.seed, c.n, 0), Length: c.n}
}

func testHoldConfig() *Config {
	c := DefaultConfig("/nonexistent")
	c.Holds.MinCheckInInterval = time.Minute
	return c
}

func refusalCode(r *refusal) proto.Code {
	if r == nil {
		return ""
	}
	return r.code
}

// TestCheckInLogic walks a plan through time on a fake clock: each
// check-in in time moves the deadline to every + grace after it; a
// replayed, forged, skipped or late check-in is refused and changes
// nothing.
func TestCheckInLogic(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 12, 0, 0, 400e6, time.UTC))
	cfg := testHoldConfig()
	ch := newTestChain(4)
	env := envelope.Info{Header: envelope.Header{ID: routing.NewID(), Country: "ug", Priority: routing.Urgent}}
	st, ref := newCheckInPlan(ch.plan(time.Hour, 10*time.Minute), env, clock.Now(), cfg)
	if ref != nil {
		t.Fatal(ref.msg)
	}
	// Rounded up: 12:00:00.4 + 1h10m is due at 13:10:01, never before.
	if want := time.Date(2026, 3, 1, 13, 10, 1, 0, time.UTC); !st.Deadline.Equal(want) || st.Target != "bcn.to.ug.urgent" {
		t.Fatalf("armed: deadline %s target %s, want %s bcn.to.ug.urgent", st.Deadline, st.Target, want)
	}

	clock.Advance(50 * time.Minute)
	if ref := st.checkIn(ch.id, ch.link(1), clock.Now()); ref != nil {
		t.Fatalf("check-in in time: %s", ref.msg)
	}
	if want := ceilSecond(clock.Now().Add(70 * time.Minute)); !st.Deadline.Equal(want) || st.Gen != 2 || st.Index != 1 {
		t.Fatalf("after a check-in: deadline %s gen %d index %d, want %s 2 1", st.Deadline, st.Gen, st.Index, want)
	}
	before := *st
	unchanged := func(what string) {
		t.Helper()
		if st.Deadline != before.Deadline || st.Gen != before.Gen || st.Index != before.Index || st.Chain != before.Chain {
			t.Errorf("%s changed the plan", what)
		}
	}
	clock.Advance(time.Minute)
	for _, c := range []struct {
		what string
		ci   *proto.CheckIn
	}{
		{"a replay of check-in 1", ch.link(1)},
		{"check-in 3 before 2", ch.link(3)},
		{"a forged link", &proto.CheckIn{ID: ch.id, Index: 2, Value: proto.Link{1, 2, 3}}},
		{"link 2 of another plan's chain", (&testChain{id: ch.id, seed: proto.Link{9}, n: 4}).link(2)},
		{"index 0, the tip itself", ch.link(0)},
	} {
		if got := refusalCode(st.checkIn(ch.id, c.ci, clock.Now())); got != proto.CodeChain {
			t.Errorf("%s: refusal %q, want %q", c.what, got, proto.CodeChain)
		}
		unchanged(c.what)
	}
	// A link of the plan checked under another hold id is another chain.
	if got := refusalCode(st.checkIn(routing.NewID(), ch.link(2), clock.Now())); got != proto.CodeChain {
		t.Errorf("link 2 under another hold id: %q, want %q", got, proto.CodeChain)
	}

	// Too late: within a second of the deadline, and after it.
	clock.Advance(st.Deadline.Sub(clock.Now()) - 500*time.Millisecond)
	if got := refusalCode(st.checkIn(ch.id, ch.link(2), clock.Now())); got != proto.CodeLate {
		t.Errorf("half a second before the deadline: %q, want %q", got, proto.CodeLate)
	}
	unchanged("a late check-in")

	// Disarmed (a tombstone), the plan takes no check-in at all.
	tomb := st.ended(proto.HoldDisarmed, clock.Now())
	if got := refusalCode(tomb.verifyLink(ch.id, ch.link(2))); got != proto.CodeNoHold {
		t.Errorf("check-in on a disarmed plan: %q, want %q", got, proto.CodeNoHold)
	}
	if !tomb.Chain.IsZero() || tomb.Gen <= st.Gen {
		t.Error("a tombstone keeps the chain, or does not outdate the plan's timer")
	}
}

func TestCheckInChainUsedUp(t *testing.T) {
	clock := clockwork.NewFakeClock()
	ch := newTestChain(2)
	st, _ := newCheckInPlan(ch.plan(time.Hour, 0), envelope.Info{Header: envelope.Header{Country: "ke", Priority: routing.High}}, clock.Now(), testHoldConfig())
	for i := uint32(1); i <= 2; i++ {
		clock.Advance(time.Minute)
		if ref := st.checkIn(ch.id, ch.link(i), clock.Now()); ref != nil {
			t.Fatalf("check-in %d: %s", i, ref.msg)
		}
	}
	if got := refusalCode(st.checkIn(ch.id, ch.link(3), clock.Now())); got != proto.CodeChain {
		t.Errorf("a third check-in on a chain of 2: %q, want %q", got, proto.CodeChain)
	}
}

func TestCheckInPlanBounds(t *testing.T) {
	now := time.Now()
	cfg := testHoldConfig()
	env := envelope.Info{Header: envelope.Header{Country: "ug", Priority: routing.Urgent}}
	ch := newTestChain(8)
	for _, c := range []struct {
		what string
		p    *proto.CheckInPlan
	}{
		{"under the minimum interval", ch.plan(59*time.Second, 0)},
		{"beyond the retention", ch.plan(cfg.Storage.Retention, 0)},
		{"a negative grace", &proto.CheckInPlan{ID: ch.id, Every: 3600, Grace: -1, Chain: proto.Link{1}, Length: 8}},
		{"a zero tip", &proto.CheckInPlan{ID: ch.id, Every: 3600, Length: 8}},
		{"a zero id", &proto.CheckInPlan{Every: 3600, Chain: proto.Link{1}, Length: 8}},
		{"a chain too long", &proto.CheckInPlan{ID: ch.id, Every: 3600, Chain: proto.Link{1}, Length: proto.MaxChainLength + 1}},
	} {
		if _, ref := newCheckInPlan(c.p, env, now, cfg); refusalCode(ref) != proto.CodeBadRequest {
			t.Errorf("%s: %q, want %q", c.what, refusalCode(ref), proto.CodeBadRequest)
		}
	}
}

// TestPanicLock: only the secret whose lock the plan holds releases it.
func TestPanicLock(t *testing.T) {
	duress := make([]byte, 32)
	rand.Read(duress)
	id, secret := proto.PanicID(duress), proto.PanicSecret(duress)
	lock := proto.PanicLock(id, secret)
	ch := newTestChain(4)
	ch.id = id
	p := ch.plan(time.Hour, 0)
	p.Panic = &lock
	st, _ := newCheckInPlan(p, envelope.Info{Header: envelope.Header{Country: "ug", Priority: routing.Urgent}}, time.Now(), testHoldConfig())
	if !st.panicMatches(id, secret) {
		t.Fatal("the panic secret does not open its lock")
	}
	other := make([]byte, 32)
	rand.Read(other)
	if st.panicMatches(id, proto.PanicSecret(other)) || st.panicMatches(routing.NewID(), secret) {
		t.Error("another secret, or the secret under another id, opens the lock")
	}
	if st.ended(proto.HoldReleased, time.Now()).panicMatches(id, secret) {
		t.Error("an ended plan still opens with its panic secret")
	}
}

// escalationWorld: two missions cover ug (ug-a escalates to ke-hub and
// wants 2 acks before its target), ke-hub covers ke, hq oversees ug-a,
// and a partner covers ug.
func escalationWorld(t *testing.T) (*keys.Directory, map[string]*keys.Identity) {
	t.Helper()
	ids := map[string]*keys.Identity{}
	id := func(name string) *keys.PublicIdentity {
		i, err := keys.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = i
		return i.Public()
	}
	resp := keys.ResponseTargets{Urgent: 15 * time.Minute, High: 4 * time.Hour, Routine: 72 * time.Hour}
	d := &keys.Directory{Roster: keys.Roster{
		Missions: []keys.Mission{
			{ID: "ug-a", Countries: []string{"ug"}, Identity: id("ug-a"), Response: resp, Escalation: "ke-hub", Quorum: []int{2}},
			{ID: "ug-b", Countries: []string{"ug"}, Identity: id("ug-b"), Response: keys.ResponseTargets{Urgent: 10 * time.Minute, High: time.Hour, Routine: time.Hour}},
			{ID: "ke-hub", Countries: []string{"ke"}, Identity: id("ke-hub"), Response: resp},
		},
		Partners:     []keys.Partner{{ID: "partner", Countries: []string{"ug"}, Identity: id("partner")}},
		Headquarters: []keys.Headquarters{{ID: "hq", Identity: id("hq"), Missions: []string{"ug-a"}}},
	}}
	return d, ids
}

// TestEscalationQuorum: who counts toward each tier's quorum, by the
// plan the directory gives.
func TestEscalationQuorum(t *testing.T) {
	d, ids := escalationWorld(t)
	fp := func(name string) keys.Fingerprint { return ids[name].Public().Fingerprint() }
	plan := d.Escalation("ug", routing.Urgent, true)
	if plan == nil || plan.Step != 10*time.Minute || len(plan.Tiers) != 3 {
		t.Fatalf("plan: %+v", plan)
	}
	for i, want := range []struct {
		tier   int
		to     string
		quorum int
		after  time.Duration
	}{{keys.TierTarget, "ke-hub", 2, 10 * time.Minute}, {keys.TierHeadquarters, "hq", 1, 20 * time.Minute}, {keys.TierPartners, "partner", 1, 30 * time.Minute}} {
		got := plan.Tiers[i]
		if got.Tier != want.tier || len(got.Recipients) != 1 || got.Recipients[0].ID != want.to || got.Quorum != want.quorum || got.After != want.after {
			t.Errorf("tier %d: %d to %v quorum %d after %s; want %d to %s quorum %d after %s", i, got.Tier, got.Recipients, got.Quorum, got.After, want.tier, want.to, want.quorum, want.after)
		}
	}
	for _, c := range []struct {
		what    string
		tier    int
		signers []string
		met     bool
	}{
		{"no ack", keys.TierTarget, nil, false},
		{"one of the two ug acks the quorum of 2 needs", keys.TierTarget, []string{"ug-a"}, false},
		{"both ug missions", keys.TierTarget, []string{"ug-a", "ug-b"}, true},
		{"the same mission twice", keys.TierTarget, []string{"ug-a", "ug-a"}, false},
		{"ke-hub covers ke, and tier 1 is not released yet", keys.TierTarget, []string{"ug-a", "ke-hub"}, false},
		{"the partner covers ug", keys.TierTarget, []string{"ug-b", "partner"}, true},
		{"ke-hub, once tier 1 reached it", keys.TierHeadquarters, []string{"ke-hub"}, true},
		{"hq, before its own tier", keys.TierHeadquarters, []string{"hq"}, false},
	} {
		var fps []keys.Fingerprint
		for _, s := range c.signers {
			fps = append(fps, fp(s))
		}
		if got := quorumMet(plan, c.tier, fps); got != c.met {
			t.Errorf("%s: quorum met %v, want %v", c.what, got, c.met)
		}
	}
	// Without consent no partner is in the plan; routine alerts do not
	// escalate here; ke's only post has no escalation target but has no
	// headquarters either.
	if p := d.Escalation("ug", routing.Urgent, false); len(p.Tiers) != 2 || p.Tier(keys.TierPartners) != nil {
		t.Errorf("without consent: %+v", p.Tiers)
	}
	if d.Escalation("ug", routing.Routine, true) != nil {
		t.Error("routine alerts escalate, though no post lists them")
	}
	if p := d.Escalation("ke", routing.Urgent, false); p == nil || len(p.Tiers) != 0 {
		t.Errorf("ke: %+v", p)
	}
}

func TestNewEscalation(t *testing.T) {
	d, _ := escalationWorld(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	env := envelope.Info{Header: envelope.Header{ID: routing.NewID(), Country: "ug", Priority: routing.Urgent}}
	alert := routing.NewID()
	st, ref := newEscalation(&proto.EscalationHold{Alert: alert, Tier: keys.TierHeadquarters}, env, d.Escalation("ug", routing.Urgent, false), now)
	if ref != nil || !st.Deadline.Equal(now.Add(20*time.Minute)) || st.Alert != alert {
		t.Fatalf("tier 2: %+v %v", st, ref)
	}
	if _, ref := newEscalation(&proto.EscalationHold{Alert: alert, Tier: keys.TierPartners}, env, d.Escalation("ug", routing.Urgent, false), now); refusalCode(ref) != proto.CodeBadRequest {
		t.Errorf("partners without consent: %q", refusalCode(ref))
	}
	ke := envelope.Info{Header: envelope.Header{ID: routing.NewID(), Country: "ke", Priority: routing.Urgent}}
	if _, ref := newEscalation(&proto.EscalationHold{Alert: alert, Tier: keys.TierTarget}, ke, d.Escalation("ke", routing.Urgent, false), now); refusalCode(ref) != proto.CodeNoTier {
		t.Errorf("a tier the directory has no one for: %q", refusalCode(ref))
	}
	if _, ref := newEscalation(&proto.EscalationHold{Alert: alert, Tier: 1}, env, nil, now); refusalCode(ref) != proto.CodeNoTier {
		t.Errorf("no plan: %q", refusalCode(ref))
	}
}

func TestCeilSecond(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)
	if got := ceilSecond(at); !got.Equal(at) {
		t.Errorf("a whole second moved: %s", got)
	}
	if got := ceilSecond(at.Add(time.Nanosecond)); !got.Equal(at.Add(time.Second)) {
		t.Errorf("rounded down: %s", got)
	}
}
