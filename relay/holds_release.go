package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// The release path. A timer fires into the hold's due subject; the
// release consumer hands it to a worker, which reads the state and, if
// it is armed and of the timer's generation, publishes the held envelope
// into its channel with the relay's own connection, then replaces the
// state with its tombstone, and only then acknowledges the firing.
//
// A release is not a publish. It does not pass the ingest: the envelope
// was checked when it was handed over, and it is older than the
// freshness window by design (a check-in plan waits days). What keeps it
// from being stored twice is its message id, the dedup key in the
// channel's stream: a worker that stopped after publishing and before
// the tombstone publishes again when the firing is offered again, and
// JetStream drops the copy (within the dedup window; past it the
// recipients' seen-sets do).

// onDue handles one firing of a timer. JetStream names the timer that
// fired in the Nats-Scheduler header; only the relay writes HOLDS.
func (h *holds) onDue(ctx context.Context, m jetstream.Msg) {
	part, id, err := proto.ParseHoldSubject(m.Headers().Get(hdrScheduler))
	if err != nil || part != "timer" {
		m.Term()
		return
	}
	gen, _ := strconv.ParseUint(m.Headers().Get(hdrHoldGen), 10, 64)
	ctx, cancel := context.WithTimeout(ctx, serviceTimeout)
	defer cancel()
	if err := h.fired(ctx, id, gen); err != nil {
		if ctx.Err() == nil {
			h.retryFailed(err)
		}
		m.NakWithDelay(holdRetry)
		return
	}
	if err := m.Ack(); err != nil {
		return // offered again: the tombstone makes that a no-op
	}
	// The firing is done with; the stream keeps only live holds.
	if meta, err := m.Metadata(); err == nil {
		if err := h.stream.DeleteMsg(ctx, meta.Sequence.Stream); err != nil && !isNotFound(err) {
			h.r.log.Debug("holds: deleting a firing", "err", err)
		}
	}
}

// fired acts on the firing of hold id's timer of generation gen.
func (h *holds) fired(ctx context.Context, id routing.ID, gen uint64) error {
	st, env, seq, err := h.load(ctx, id)
	switch {
	case err != nil:
		return err
	case st == nil || !st.armed():
		return nil // disarmed, stopped or released already
	case st.Gen != gen:
		// A check-in came after this timer was set: the state is newer,
		// and its own timer may have been lost. Arm it again.
		h.outcomes.WithLabelValues(st.Kind, "rearmed").Inc()
		return h.setTimer(ctx, id, st)
	case st.Kind == proto.HoldKindEscalation:
		return h.escalate(ctx, id, st, env, seq)
	}
	return h.release(ctx, id, st, env, seq, []channel{{subject: st.Target, msgID: st.Msg.String()}})
}

// A channel is where a released envelope is stored, with its dedup key.
type channel struct{ subject, msgID string }

// release stores env in each channel and ends the hold as released.
func (h *holds) release(ctx context.Context, id routing.ID, st *holdState, env []byte, seq uint64, chans []channel) error {
	for _, c := range chans {
		m := nats.NewMsg(c.subject)
		m.Data = env
		m.Header.Set(jetstream.MsgIDHeader, c.msgID)
		m.Header.Set(proto.HeaderReleased, st.Kind)
		if _, err := h.r.js.PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("releasing a held envelope: %w", err)
		}
	}
	err := h.end(ctx, id, st, seq, proto.HoldReleased)
	if errors.Is(err, errConflict) {
		// A request changed the hold after its timer fired (a panic, or a
		// check-in in the last second). It is released all the same.
		cur, _, cseq, lerr := h.load(ctx, id)
		if lerr != nil {
			return lerr
		}
		if cur != nil && cur.armed() {
			return h.end(ctx, id, cur, cseq, proto.HoldReleased)
		}
		return nil
	}
	return err
}

// escalate releases tier st.Tier of an escalation unless enough
// institutions acknowledged the alert; if they did, the escalation stops
// here, and its later tiers with it.
func (h *holds) escalate(ctx context.Context, id routing.ID, st *holdState, env []byte, seq uint64) error {
	plan := h.plan(st)
	if plan != nil {
		met, err := h.answered(ctx, plan, st.Alert, st.Tier)
		if err != nil {
			return err
		}
		if met {
			return h.stopFrom(ctx, st.Alert, st.Tier)
		}
	}
	chans := escalationChannels(plan, st)
	if len(chans) == 0 {
		// The directory changed since the hold was handed over, and
		// lists no one for the tier any more.
		h.r.log.Warn("holds: an escalation tier has no recipients in the directory; not released", "tier", st.Tier)
		return h.end(ctx, id, st, seq, proto.HoldStopped)
	}
	return h.release(ctx, id, st, env, seq, chans)
}

// plan is the escalation plan of st by the relay's directory, or nil.
func (h *holds) plan(st *holdState) *keys.EscalationPlan {
	d := h.r.auth.directory()
	if d == nil {
		return nil
	}
	return d.Escalation(st.Country, st.Priority, st.Share)
}

// escalationChannels are where tier st.Tier is released: the mailbox of
// each mission and headquarters of the tier (the same envelope in each,
// deduplicated per mailbox), and the shared alerts of the country for
// partner governments, which the bridge carries to their relays.
func escalationChannels(plan *keys.EscalationPlan, st *holdState) []channel {
	if plan == nil {
		return nil
	}
	tier := plan.Tier(st.Tier)
	if tier == nil {
		return nil
	}
	var out []channel
	shared := false
	for _, r := range tier.Recipients {
		switch {
		case r.Role == keys.RolePartner && st.Share && !shared:
			out = append(out, channel{subject: proto.Share(st.Country, st.Priority).String(), msgID: st.Msg.String()})
			shared = true
		case r.Role == keys.RoleMission || r.Role == keys.RoleHeadquarters:
			mb := proto.MailboxFor(r.NKey)
			out = append(out, channel{subject: proto.MailboxSubject(mb), msgID: st.Msg.String() + "." + mb.String()})
		}
	}
	return out
}

// answered reports whether the acknowledgements of alert stop tier of
// plan. The ingest verified each token against its signer when it stored
// it; here only who signed matters.
func (h *holds) answered(ctx context.Context, plan *keys.EscalationPlan, alert routing.ID, tier int) (bool, error) {
	msgs, err := h.in.svc.directGet(ctx, proto.StreamAcks, directRequest{Seq: 1, NextFor: proto.AckOf(alert).String(), Batch: maxAcksRead})
	if err != nil {
		return false, fmt.Errorf("reading acks: %w", err)
	}
	var signers []keys.Fingerprint
	for _, m := range msgs {
		if tok, err := envelope.ParseAck(m.data); err == nil && tok.Alert == alert {
			signers = append(signers, tok.Signer)
		}
	}
	return quorumMet(plan, tier, signers), nil
}

// stopFrom ends the armed tiers of alert's escalation from tier on.
func (h *holds) stopFrom(ctx context.Context, alert routing.ID, tier int) error {
	for t := tier; t <= proto.MaxEscalationTier; t++ {
		id := proto.EscalationHoldID(alert, t)
		for range 3 { // a conflict means a concurrent stop or release: look again
			st, _, seq, err := h.load(ctx, id)
			if err != nil {
				return err
			}
			if st == nil || !st.armed() {
				break
			}
			if err = h.end(ctx, id, st, seq, proto.HoldStopped); !errors.Is(err, errConflict) {
				if err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// onAck looks at the escalation of an alert that was just acknowledged:
// if the acknowledgements now stop its next tier, it stops at once
// rather than at the tier's deadline, so the relay does not keep an
// escalation that was answered. The check at the deadline decides in
// any case; this only saves the wait.
func (h *holds) onAck(ctx context.Context, alert routing.ID) {
	ctx, cancel := context.WithTimeout(ctx, serviceTimeout)
	defer cancel()
	for t := 1; t <= proto.MaxEscalationTier; t++ {
		st, _, _, err := h.load(ctx, proto.EscalationHoldID(alert, t))
		if err != nil {
			return
		}
		if st == nil || st.State == proto.HoldReleased {
			continue // not handed over, or released: the next tier is the one waiting
		}
		if !st.armed() {
			return
		}
		plan := h.plan(st)
		if plan == nil {
			return
		}
		if met, err := h.answered(ctx, plan, alert, t); err == nil && met {
			if err := h.stopFrom(ctx, alert, t); err != nil {
				h.r.log.Warn("holds: stopping an answered escalation", "err", err)
			}
		}
		return
	}
}
