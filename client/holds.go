package client

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// Escalation. An alert at a priority the posts of its country escalate
// (urgent, and others where the directory says so) carries its
// escalation: for each tier of the directory's plan
// ([keys.Directory.Escalation]) — the posts' escalation target, their
// headquarters, and, with the defender's consent, partner governments —
// the client seals the alert to that tier when it sends it, and hands the
// envelope to the relay as a hold, before the alert itself. The relay
// releases a tier to its recipients if too few institutions covering the
// country acknowledged the alert by the tier's deadline; an ack token
// stops it. A drill escalates too, marked, but never to partners.

// holdsFile lists the holds this device handed over: ids, kinds and
// deadlines, so that their owner can list them ([Client.Holds]).
const holdsFile = "holds"

// A holdEntry is one hold this device handed over.
type holdEntry struct {
	ID       routing.ID `json:"id"`
	Kind     string     `json:"kind"`
	Alert    routing.ID `json:"alert,omitzero"`
	Tier     int        `json:"tier,omitempty"`
	Deadline time.Time  `json:"deadline"`
}

// noteHold records a hold handed over, replacing an entry with its id;
// the newest proto.MaxStatusIDs are kept. A failure is logged: the hold
// itself is at the relay.
func (c *Client) noteHold(e holdEntry) {
	err := c.st.Do(func() error {
		list, err := c.loadHolds()
		if err != nil {
			return err
		}
		list = slices.DeleteFunc(list, func(x holdEntry) bool { return x.ID == e.ID })
		list = append(list, e)
		if n := len(list); n > proto.MaxStatusIDs {
			list = list[n-proto.MaxStatusIDs:]
		}
		b, err := json.Marshal(list)
		if err != nil {
			return err
		}
		return c.st.WriteFile(holdsFile, b, true)
	})
	if err != nil {
		c.log.Warn("recording a hold", "err", err)
	}
}

func (c *Client) loadHolds() ([]holdEntry, error) {
	b, err := c.st.ReadFile(holdsFile, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []holdEntry
	return list, json.Unmarshal(b, &list)
}

// HoldGone is the state of a hold the relay no longer knows: it ended
// longer ago than the relay's retention, or was never armed.
const HoldGone = "gone"

// Holds lists the holds handed over from this device, newest last, with
// what the relay says of each: ids, kinds, states and deadlines, never
// content.
func (c *Client) Holds(ctx context.Context) ([]proto.HoldInfo, error) {
	var list []holdEntry
	if err := c.st.Do(func() (err error) { list, err = c.loadHolds(); return err }); err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, nil
	}
	ids := make([]routing.ID, len(list))
	for i, e := range list {
		ids[i] = e.ID
	}
	b, _ := json.Marshal(&proto.StatusRequest{IDs: ids})
	rep, err := c.conn.Hold(ctx, proto.HoldStatus, b)
	if err != nil {
		return nil, err
	}
	known := map[routing.ID]proto.HoldInfo{}
	for _, h := range rep.Holds {
		known[h.ID] = h
	}
	out := make([]proto.HoldInfo, len(list))
	for i, e := range list {
		if h, ok := known[e.ID]; ok {
			out[i] = h
		} else {
			out[i] = proto.HoldInfo{ID: e.ID, Kind: e.Kind, State: HoldGone, Deadline: e.Deadline, Alert: e.Alert, Tier: e.Tier}
		}
	}
	return out, nil
}

var tierNames = map[int]message.EscalationTier{keys.TierTarget: message.TierTarget,
	keys.TierHeadquarters: message.TierHeadquarters, keys.TierPartners: message.TierPartners}

// armEscalation seals alert a (message id id) to each tier of its
// escalation and hands the tiers to the relay, or to the outbox, queued
// just before the alert so that they leave first. It returns the tiers
// handed over or queued; a tier the relay refuses is logged, and the
// alert goes all the same.
func (c *Client) armEscalation(ctx context.Context, a *message.Alert, id routing.ID, share bool) ([]int, error) {
	d, err := c.Directory()
	if err != nil {
		return nil, nil // the alert itself will say so
	}
	plan := d.Escalation(a.Country, a.Priority, share)
	if plan == nil {
		return nil, nil
	}
	now := c.clock.Now()
	var armed []int
	for _, tier := range plan.Tiers {
		var to []envelope.Recipient
		for _, r := range tier.Recipients {
			if in := keys.CurrentInbox(r.InboxKeys, now); in != nil {
				to = append(to, envelope.ToInbox(r.Identity, in))
			}
		}
		if len(to) == 0 || len(to) > envelope.MaxRecipients {
			c.log.Warn("an escalation tier has no one to seal to", "tier", tier.Tier)
			continue
		}
		body, err := message.Marshal(&message.Escalation{Ref: id, Tier: tierNames[tier.Tier], Alert: *a})
		if err != nil {
			return nil, err
		}
		h := envelope.Header{ID: routing.NewID(), Created: now, Country: a.Country, Priority: a.Priority, ReplyTo: c.Mailbox()}
		env, err := envelope.Seal(h, body, c.id, envelope.Deniable, to...)
		if err != nil {
			return nil, err
		}
		req, err := proto.FrameHold(&proto.EscalationHold{Alert: id, Tier: tier.Tier, Share: share}, env)
		if err != nil {
			return nil, err
		}
		e := &outboxEntry{ID: h.ID, Target: proto.HoldTarget(proto.HoldArmEscalation), Envelope: req, Country: a.Country,
			Priority: a.Priority, Kind: message.KindEscalation, Queued: now.Add(-time.Microsecond), Hold: true}
		switch err := c.submit(ctx, e); {
		case err == nil, isTransient(err):
			armed = append(armed, tier.Tier)
			c.noteHold(holdEntry{ID: proto.EscalationHoldID(id, tier.Tier), Kind: proto.HoldKindEscalation, Alert: id, Tier: tier.Tier,
				Deadline: now.Add(tier.After)})
		default:
			c.log.Warn("the relay refused an escalation tier", "tier", tier.Tier, "err", err)
		}
	}
	return armed, nil
}

// markDrill tells the relay, before the alert goes, that alert id is a
// drill, so that response reports (computed by the relay from metadata)
// leave it out; queued like an escalation when the relay cannot take it
// now, and ahead of it.
func (c *Client) markDrill(ctx context.Context, a *message.Alert, id routing.ID) {
	b, _ := json.Marshal(&proto.DrillMark{Alert: id})
	e := &outboxEntry{ID: routing.NewID(), Target: proto.HoldTarget(proto.HoldDrill), Envelope: b, Country: a.Country,
		Priority: a.Priority, Kind: message.Kind(proto.HoldKindDrill), Queued: c.clock.Now().Add(-2 * time.Microsecond), Hold: true}
	if err := c.submit(ctx, e); err != nil && !isTransient(err) {
		c.log.Warn("the relay refused a drill mark", "err", err)
	}
}
