package relay_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// escalationRelay: ug-a and ug-b cover ug and promise to acknowledge
// urgent alerts within 3 seconds; ug-a escalates to ke-hub (which covers
// ke) and wants two acknowledgements before it; hq oversees every post;
// tz-x covers tz.
func escalationRelay(t *testing.T) (*relaytest.World, *relay.Relay) {
	t.Helper()
	w, r, _ := escalationRelayAt(t)
	return w, r
}

func escalationRelayAt(t *testing.T) (*relaytest.World, *relay.Relay, string) {
	t.Helper()
	w := relaytest.NewWorld(t,
		relaytest.MissionSpec{ID: "ug-a", Countries: []string{"ug"}, Urgent: 3 * time.Second, Escalation: "ke-hub", Quorum: []int{2}},
		relaytest.MissionSpec{ID: "ug-b", Countries: []string{"ug"}, Urgent: 3 * time.Second},
		relaytest.MissionSpec{ID: "ke-hub", Countries: []string{"ke"}, Urgent: 3 * time.Second},
		relaytest.MissionSpec{ID: "tz-x", Countries: []string{"tz"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	return w, relaytest.Start(t, cfg), cfg.DataDir
}

// escalation is one alert's escalation, handed over tier by tier.
type escalation struct {
	alert routing.ID
	envs  map[int][]byte
	info  map[int]proto.HoldInfo
}

// handOver seals tier 1 to ke-hub and tier 2 to hq, as the defender's
// client does from the directory's plan, and hands both over.
func handOver(t *testing.T, h *holder, w *relaytest.World, body string) *escalation {
	t.Helper()
	e := &escalation{alert: routing.NewID(), envs: map[int][]byte{}, info: map[int]proto.HoldInfo{}}
	plan := w.Dir.Escalation("ug", routing.Urgent, false)
	for _, tier := range plan.Tiers {
		var ids []string
		for _, r := range tier.Recipients {
			ids = append(ids, r.ID)
		}
		env, _ := h.seal(t, w, "ug", body, ids...)
		req, err := proto.FrameHold(&proto.EscalationHold{Alert: e.alert, Tier: tier.Tier}, env)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := h.request(proto.HoldArmEscalation, req)
		if err != nil {
			t.Fatalf("tier %d: %v", tier.Tier, err)
		}
		hi := rep.Holds[0]
		if hi.ID != proto.EscalationHoldID(e.alert, tier.Tier) || hi.State != proto.HoldArmed || hi.Tier != tier.Tier {
			t.Fatalf("tier %d armed as %+v", tier.Tier, hi)
		}
		e.envs[tier.Tier], e.info[tier.Tier] = env, hi
	}
	if len(e.envs) != 2 {
		t.Fatalf("%d tiers, want the escalation target's and headquarters'", len(e.envs))
	}
	return e
}

func ack(t *testing.T, w *relaytest.World, r *relay.Relay, mission string, alert routing.ID) {
	t.Helper()
	c := w.ConnectAs(t, r.ClientURL(), mission)
	if _, err := c.Publish(proto.AckTarget(alert), envelope.SignAck(alert, w.Keyrings[mission].Identity, time.Now())); err != nil {
		t.Fatalf("%s acknowledging: %v", mission, err)
	}
}

// awaitMailbox long-polls id's mailbox until something arrives or wait
// passes; it settles what it got.
func awaitMailbox(t *testing.T, w *relaytest.World, r *relay.Relay, id string, wait time.Duration) []relaytest.Fetched {
	t.Helper()
	c := w.ConnectAs(t, r.ClientURL(), id)
	got, err := c.Fetch(proto.SvcFetchMbox, 16, wait)
	if err != nil {
		t.Fatalf("%s mailbox: %v", id, err)
	}
	if len(got) > 0 {
		if err := c.Settle(got); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// TestEscalationUnansweredReachesEveryTier: an acknowledgement from tz-x,
// a mission of another country, does not stop the escalation: at its
// deadline tier 1 goes to ke-hub's mailbox and ke-hub decrypts what the
// defender wrote; at the next, tier 2 goes to headquarters, which can
// too.
func TestEscalationUnansweredReachesEveryTier(t *testing.T) {
	t.Parallel()
	w, r, dataDir := escalationRelayAt(t)
	h := newHolder(t, r.ClientURL())
	const body = "raided at dawn, nobody answers: Kafu road"
	e := handOver(t, h, w, body)
	ack(t, w, r, "tz-x", e.alert)
	for _, c := range []struct {
		tier int
		to   string
	}{{keys.TierTarget, "ke-hub"}, {keys.TierHeadquarters, "hq"}} {
		got := awaitMailbox(t, w, r, c.to, 20*time.Second)
		if len(got) != 1 || !bytes.Equal(got[0].Data, e.envs[c.tier]) {
			t.Fatalf("%s received %d messages, want tier %d's envelope", c.to, len(got), c.tier)
		}
		if late := time.Since(e.info[c.tier].Deadline); late < 0 {
			t.Errorf("tier %d released %s before its deadline", c.tier, -late)
		} else {
			t.Logf("tier %d released %s after its deadline", c.tier, late)
		}
		kr := w.Keyrings[c.to]
		o, err := envelope.Open(got[0].Data, kr.Identity, kr.InboxKeys()...)
		if err != nil || string(o.Body) != body || !o.Sender.Equal(h.id.Public()) {
			t.Fatalf("%s opening the escalation: %v", c.to, err)
		}
	}
	for _, id := range []routing.ID{proto.EscalationHoldID(e.alert, 1), proto.EscalationHoldID(e.alert, 2)} {
		h.awaitReleased(t, id)
	}
	assertNoPlaintext(t, dataDir, body)
}

// TestEscalationQuorumOfTwo: ug-a requires two acknowledgements before
// its escalation target; one (ug-b's) is not enough, and tier 1 reaches
// ke-hub. Headquarters' tier needs one, which ug-b's is: it stops there.
func TestEscalationQuorumOfTwo(t *testing.T) {
	t.Parallel()
	w, r := escalationRelay(t)
	h := newHolder(t, r.ClientURL())
	e := handOver(t, h, w, "one answer of two")
	ack(t, w, r, "ug-b", e.alert)
	if got := awaitMailbox(t, w, r, "ke-hub", 20*time.Second); len(got) != 1 || !bytes.Equal(got[0].Data, e.envs[keys.TierTarget]) {
		t.Fatalf("ke-hub received %d messages, want tier 1's envelope", len(got))
	}
	wait := time.Until(e.info[keys.TierHeadquarters].Deadline) + 2*time.Second
	if got := awaitMailbox(t, w, r, "hq", wait); len(got) != 0 {
		t.Errorf("hq received %d messages, though its tier's quorum of one was met", len(got))
	}
	st := h.status(t, proto.EscalationHoldID(e.alert, 1), proto.EscalationHoldID(e.alert, 2))
	if a, b := st[proto.EscalationHoldID(e.alert, 1)].State, st[proto.EscalationHoldID(e.alert, 2)].State; a != proto.HoldReleased || b != proto.HoldStopped {
		t.Errorf("tiers %s and %s, want released and stopped", a, b)
	}
}

// TestEscalationStoppedByQuorum: both missions covering ug acknowledge;
// the escalation stops at once, and nothing reaches ke-hub or
// headquarters past the deadlines.
func TestEscalationStoppedByQuorum(t *testing.T) {
	t.Parallel()
	w, r := escalationRelay(t)
	h := newHolder(t, r.ClientURL())
	e := handOver(t, h, w, "answered in time")
	ack(t, w, r, "ug-a", e.alert)
	ack(t, w, r, "ug-b", e.alert)
	ids := []routing.ID{proto.EscalationHoldID(e.alert, 1), proto.EscalationHoldID(e.alert, 2)}
	waitUntil(t, "the escalation stopped", func() (bool, string) {
		st := h.status(t, ids...)
		return st[ids[0]].State == proto.HoldStopped && st[ids[1]].State == proto.HoldStopped, st[ids[0]].State + " " + st[ids[1]].State
	})
	wait := time.Until(e.info[keys.TierHeadquarters].Deadline) + 2*time.Second
	if got := awaitMailbox(t, w, r, "ke-hub", wait); len(got) != 0 {
		t.Errorf("ke-hub received %d messages of a stopped escalation", len(got))
	}
	if got := awaitMailbox(t, w, r, "hq", time.Second); len(got) != 0 {
		t.Errorf("hq received %d messages of a stopped escalation", len(got))
	}
}

// TestEscalationTierRefusals: the relay arms only what the directory
// has a tier for, and each tier once.
func TestEscalationTierRefusals(t *testing.T) {
	t.Parallel()
	w, r := escalationRelay(t)
	h := newHolder(t, r.ClientURL())
	alert := routing.NewID()
	env, _ := h.seal(t, w, "ke", "x", "hq")
	frame := func(e *proto.EscalationHold, env []byte) []byte {
		b, err := proto.FrameHold(e, env)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// ke-hub has no escalation target.
	_, err := h.request(proto.HoldArmEscalation, frame(&proto.EscalationHold{Alert: alert, Tier: 1}, env))
	wantCode(t, "tier 1 for ke", err, proto.CodeNoTier)
	_, err = h.request(proto.HoldArmEscalation, frame(&proto.EscalationHold{Alert: alert, Tier: 3}, env))
	wantCode(t, "partners without consent", err, proto.CodeBadRequest)
	ug, _ := h.seal(t, w, "ug", "x", "ke-hub")
	if _, err := h.request(proto.HoldArmEscalation, frame(&proto.EscalationHold{Alert: alert, Tier: 1}, ug)); err != nil {
		t.Fatal(err)
	}
	other, _ := h.seal(t, w, "ug", "y", "ke-hub")
	_, err = h.request(proto.HoldArmEscalation, frame(&proto.EscalationHold{Alert: alert, Tier: 1}, other))
	wantCode(t, "tier 1 of the same alert again, another envelope", err, proto.CodeConflict)
}
