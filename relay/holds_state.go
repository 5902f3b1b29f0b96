package relay

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// A hold lives in stream HOLDS under two subjects of its id
// (proto.HoldStateSubject, proto.HoldTimerSubject):
//
//	state  the sealed envelope, with the hold's condition in header
//	       Beacon-Hold (holdState as JSON). Every change replaces it (a
//	       roll-up), guarded by the sequence it replaces, so two changes
//	       never both win. Once the hold ends, a tombstone without the
//	       envelope says how, for status, until the retention drops it.
//	timer  a message schedule (Nats-Schedule: @at <deadline>) carrying
//	       the state's generation. JetStream stores and replicates it,
//	       and fires it when it falls due.
//
// Timers fire into one subject, proto.HoldDue, which the relay's release
// consumer reads: a firing names its timer (Nats-Scheduler), and the
// relay releases the envelope only if the state is still armed and of
// the timer's generation.
//
// A check-in raises the generation, replaces the state, then the timer.
// A timer of an older generation (a check-in came between its firing and
// its processing, or the relay stopped between the two writes) makes the
// release consumer arm the timer again from the state, never release.
// The state is the truth; the timer only wakes the relay.

// Header names of HOLDS messages.
const (
	hdrHold      = "Beacon-Hold"     // on a state: the holdState
	hdrHoldGen   = "Beacon-Hold-Gen" // on a timer and what it fires: the generation
	hdrScheduler = "Nats-Scheduler"  // on a firing, set by JetStream: the timer's subject
)

// holdState is a hold's condition and progress.
type holdState struct {
	Kind  string `json:"kind"`  // proto.HoldKindCheckIn or proto.HoldKindEscalation
	State string `json:"state"` // proto.HoldArmed, … Released, Disarmed, Stopped
	Gen   uint64 `json:"gen"`
	// Deadline is when an armed hold is released (whole seconds); for
	// one that ended, when it ended.
	Deadline time.Time `json:"deadline"`
	// Msg is the held envelope's id: its dedup key where it is released.
	Msg routing.ID `json:"msg"`

	// A check-in plan: released into Target at Every+Grace after the
	// last check-in. Chain is link number Index of a chain of Length;
	// Panic the lock of its panic secret, if it has one.
	Target string        `json:"target,omitempty"`
	Every  proto.Seconds `json:"every,omitempty"`
	Grace  proto.Seconds `json:"grace,omitempty"`
	Chain  proto.Link    `json:"chain,omitzero"`
	Index  uint32        `json:"index,omitempty"`
	Length uint32        `json:"length,omitempty"`
	Panic  *proto.Link   `json:"panic,omitempty"`

	// An escalation: tier Tier of alert Alert, for Country at Priority.
	Alert    routing.ID       `json:"alert,omitzero"`
	Tier     int              `json:"tier,omitempty"`
	Share    bool             `json:"share,omitempty"`
	Country  string           `json:"country,omitempty"`
	Priority routing.Priority `json:"priority,omitempty"`
}

func (st *holdState) armed() bool { return st.State == proto.HoldArmed }

func (st *holdState) encode() string {
	b, _ := json.Marshal(st)
	return string(b)
}

func decodeHoldState(s string) (*holdState, error) {
	var st holdState
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return nil, err
	}
	if st.Kind != proto.HoldKindCheckIn && st.Kind != proto.HoldKindEscalation || st.Gen == 0 {
		return nil, errors.New("relay: not a hold state")
	}
	return &st, nil
}

// info is what a status request is told of the hold.
func (st *holdState) info(id routing.ID) proto.HoldInfo {
	return proto.HoldInfo{ID: id, Kind: st.Kind, State: st.State, Deadline: st.Deadline,
		Index: st.Index, Length: st.Length, Alert: st.Alert, Tier: st.Tier}
}

// ceilSecond rounds t up to a whole second: schedules fire on whole
// seconds, and a deadline rounded down would fire early.
func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second).UTC()
	}
	return t.UTC()
}

// checkInLead is how long before its deadline a plan stops taking
// check-ins: JetStream fires schedules on a quarter-second tick, so a
// check-in in the last moment could race the release it was meant to
// prevent, and lose to it after being told it won.
const checkInLead = time.Second

// newCheckInPlan is the state of a plan armed at now, or the refusal.
func newCheckInPlan(p *proto.CheckInPlan, env envelope.Info, now time.Time, cfg *Config) (*holdState, *refusal) {
	if err := p.Check(); err != nil {
		return nil, refuse(proto.CodeBadRequest, "check-in plan: %v", err)
	}
	every, grace := p.Every.Duration(), p.Grace.Duration()
	if min := cfg.Holds.MinCheckInInterval; every < min {
		return nil, refuse(proto.CodeBadRequest, "check-ins every %s: this relay's shortest interval is %s", every, min)
	}
	// The stream's MaxAge drops what is older than the retention: a
	// plan must fall due before its state could be dropped.
	if every+grace >= cfg.Storage.Retention-time.Hour {
		return nil, refuse(proto.CodeBadRequest, "every + grace must be under %s, this relay's retention less an hour", cfg.Storage.Retention)
	}
	return &holdState{Kind: proto.HoldKindCheckIn, State: proto.HoldArmed, Gen: 1,
		Deadline: ceilSecond(now.Add(every + grace)), Msg: env.ID,
		Target: proto.AlertSubject(env.Country, env.Priority), Every: p.Every, Grace: p.Grace,
		Chain: p.Chain, Length: p.Length, Panic: p.Panic}, nil
}

// newEscalation is the state of tier req.Tier of an escalation handed
// over at now, by plan (the directory's, for the envelope's country and
// priority), or the refusal.
func newEscalation(req *proto.EscalationHold, env envelope.Info, plan *keys.EscalationPlan, now time.Time) (*holdState, *refusal) {
	if err := req.Check(); err != nil {
		return nil, refuse(proto.CodeBadRequest, "escalation: %v", err)
	}
	if plan == nil {
		return nil, refuse(proto.CodeNoTier, "no post covering %s escalates %s alerts", env.Country, env.Priority)
	}
	tier := plan.Tier(req.Tier)
	if tier == nil {
		return nil, refuse(proto.CodeNoTier, "the directory lists no one for escalation tier %d of %s", req.Tier, env.Country)
	}
	return &holdState{Kind: proto.HoldKindEscalation, State: proto.HoldArmed, Gen: 1,
		Deadline: ceilSecond(now.Add(tier.After)), Msg: env.ID, Alert: req.Alert, Tier: req.Tier,
		Share: req.Share, Country: env.Country, Priority: env.Priority}, nil
}

// verifyLink checks a check-in's link against the plan: it must be the
// next link, within the chain, and hash to the link held. A forged link
// does not hash to it; a replayed one is not the next.
func (st *holdState) verifyLink(id routing.ID, ci *proto.CheckIn) *refusal {
	if st.Kind != proto.HoldKindCheckIn || !st.armed() {
		return refuse(proto.CodeNoHold, "no armed check-in plan has that id")
	}
	if st.Index >= st.Length {
		return refuse(proto.CodeChain, "the plan's chain is used up; arm a new plan")
	}
	want := proto.ChainLink(id, ci.Index, ci.Value)
	if ci.Index != st.Index+1 || subtle.ConstantTimeCompare(want[:], st.Chain[:]) != 1 {
		return refuse(proto.CodeChain, "the check-in does not verify: not the next link of the plan's chain")
	}
	return nil
}

// checkIn applies a verified check-in at now: the link is used, and the
// plan falls due every + grace from now. A check-in that comes too late
// (the plan is due, or nearly) is refused.
func (st *holdState) checkIn(id routing.ID, ci *proto.CheckIn, now time.Time) *refusal {
	if ref := st.verifyLink(id, ci); ref != nil {
		return ref
	}
	if !now.Add(checkInLead).Before(st.Deadline) {
		return refuse(proto.CodeLate, "the plan fell due at %s; it is being released", st.Deadline.Format(time.RFC3339))
	}
	st.Index, st.Chain = ci.Index, ci.Value
	st.Gen++
	st.Deadline = ceilSecond(now.Add(st.Every.Duration() + st.Grace.Duration()))
	return nil
}

// releaseNow makes an armed plan fall due at once.
func (st *holdState) releaseNow(now time.Time) {
	st.Gen++
	st.Deadline = ceilSecond(now)
}

// panicMatches reports whether secret opens the plan's panic lock.
func (st *holdState) panicMatches(id routing.ID, secret proto.Link) bool {
	if st.Kind != proto.HoldKindCheckIn || !st.armed() || st.Panic == nil {
		return false
	}
	lock := proto.PanicLock(id, secret)
	return subtle.ConstantTimeCompare(lock[:], st.Panic[:]) == 1
}

// ended returns the tombstone of st: state, at now, without the chain.
func (st *holdState) ended(state string, now time.Time) *holdState {
	t := *st
	t.State, t.Deadline, t.Gen = state, now.UTC().Truncate(time.Second), st.Gen+1
	t.Chain, t.Panic = proto.Link{}, nil
	return &t
}

// quorumMet reports whether the acknowledgements by signers (their
// fingerprints, one per ack token) stop tier of plan: enough of them
// count ([keys.EscalationPlan.Counts]), each once.
func quorumMet(plan *keys.EscalationPlan, tier int, signers []keys.Fingerprint) bool {
	need := 1
	if t := plan.Tier(tier); t != nil {
		need = t.Quorum
	}
	counted := map[keys.Fingerprint]bool{}
	for _, fp := range signers {
		if plan.Counts(fp, tier) {
			counted[fp] = true
		}
	}
	return len(counted) >= need
}
