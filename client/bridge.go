package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/hrdbeacon/beacon/bridge/receipt"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// What the client does for the bridge to partner governments:
//
//   - A defender's mailbox receives the bridge's signed receipts ("stored
//     at partner P at time T", package bridge/receipt) and, through the
//     bridge, the partners' signed acks and replies. [Client.Cases] keeps
//     them in the alert's case; until a partner's receipt arrives, its
//     status is "waiting to be delivered", never "delivered".
//   - A mission re-shares a case with the partners, re-sealed and signed
//     by the mission, only where the defender consented
//     ([Client.ShareCase]).
//   - A partner government reads, on its own relay, what bridges
//     delivered for its countries ([Client.ReceiveBridged]); its
//     [Client.Acknowledge] and [Client.Reply] on such a message go back
//     through the bridge that delivered it.
//   - [Client.RollUp] and [Client.FetchRollUp] say, for a coordinated
//     alert, which government received it, acknowledged it and acts.

// ErrNoConsent means the defender did not consent to sharing the alert
// with partner governments.
var ErrNoConsent = errors.New("the defender did not consent to sharing this alert")

// ErrNotAPartner means this identity is not a partner in the directory
// of the relay it reads.
var ErrNotAPartner = errors.New("this identity is not a partner in the directory")

// openReceipt opens a bridge's signed receipt. ok is false for anything
// that is not one (an envelope): open goes on with it.
func (c *Client) openReceipt(data []byte) (r *Received, ok bool, err error) {
	if _, perr := envelope.ParsePublic(data); perr != nil {
		return nil, false, nil
	}
	s, err := receipt.Parse(data)
	if err != nil {
		return nil, true, err
	}
	d, err := c.Directory()
	if err != nil {
		return nil, true, err
	}
	bridgeID, err := s.Verify(d)
	if err != nil {
		return nil, true, errUnverified
	}
	var ident *keys.PublicIdentity
	for _, b := range d.Bridges {
		if b.ID == bridgeID {
			ident = b.Identity
		}
	}
	if s.Created.Before(c.clock.Now().Add(-seenRetention)) {
		return nil, true, errTooOld
	}
	// Every copy of a receipt (the bridge may send one again after a
	// crash) has the same key: the seen-set and the case keep it once.
	key := s.Key()
	return &Received{ID: key, Header: envelope.Header{ID: key, Created: s.Created, Country: s.Country},
		Sender: ident, From: bridgeID, FromRole: keys.RoleBridge, Auth: envelope.Signed, Message: s.Receipt, Case: s.Ref}, true, nil
}

// ShareCase re-shares a defender's alert with the partner governments
// covering its country: body (the console's re-share; nil carries the
// alert itself) is sealed to their current inbox keys, signed by this
// mission — the defender's own authenticator never leaves the mission —
// and stored in SHARED for the bridge, under a new message id whose
// receipts and answers come back to this mission's mailbox. It refuses
// with [ErrNoConsent] unless r is an alert whose defender consented to
// sharing.
func (c *Client) ShareCase(ctx context.Context, r *Received, body message.Message) (*Sent, error) {
	a, ok := r.Message.(*message.Alert)
	if !ok || r.FromRole != keys.RoleDefender {
		return nil, fmt.Errorf("%w: only a defender's alert can be shared", ErrNoConsent)
	}
	if !a.Share {
		return nil, ErrNoConsent
	}
	if c.role != keys.RoleMission {
		return nil, fmt.Errorf("client: a %s does not re-share alerts", c.role)
	}
	if body == nil {
		body = a
	}
	b, err := message.Marshal(body)
	if err != nil {
		return nil, err
	}
	e := &outboxEntry{ID: routing.NewID(), Target: proto.ShareTarget(r.Header.Country, r.Header.Priority), Body: b,
		Country: r.Header.Country, Priority: r.Header.Priority, Share: true, Kind: body.Kind(), Queued: c.clock.Now()}
	ids, err := c.seal(e)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no partner government covers %s", r.Header.Country)
	}
	s := &Sent{ID: e.ID, Partners: ids}
	if err := c.submit(ctx, e); err != nil {
		if !isTransient(err) {
			return nil, err
		}
		s.Queued = true
	}
	return s, nil
}

// partnerSelf returns this client's partner entry in the directory of
// the relay it reads.
func (c *Client) partnerSelf() (*keys.Partner, error) {
	d, err := c.Directory()
	if err != nil {
		return nil, err
	}
	for i := range d.Partners {
		if d.Partners[i].Identity.Equal(c.id.Public()) {
			return &d.Partners[i], nil
		}
	}
	return nil, ErrNotAPartner
}

// ReceiveBridged receives, for a partner government on its own relay,
// one batch of what bridges delivered for each country its directory
// entry covers, and hands each new message to h (the two-phase receive:
// nothing is settled before h kept it). Each message's Bridge names the
// bridge that delivered it; [Client.Acknowledge] and [Client.Reply] send
// the answer back through it. Only the first country's fetch waits.
func (c *Client) ReceiveBridged(ctx context.Context, o FetchOptions, h Handler) (Batch, error) {
	p, err := c.partnerSelf()
	if err != nil {
		return Batch{}, err
	}
	var all Batch
	for i, cc := range p.Countries {
		oc := o
		if i > 0 {
			oc.Wait = 0
		}
		b, err := c.receive(ctx, proto.BridgedSource(cc), oc, h)
		all.Handled += b.Handled
		all.Dropped += b.Dropped
		all.Failed += b.Failed
		if all.Err == nil {
			all.Err = b.Err
		}
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// target is where an answer to the addressee goes: its mailbox, or, for
// a message a bridge delivered, back through that bridge.
func (to Addressee) target() string {
	if to.Bridge != "" {
		return proto.ReturnMailbox(to.Bridge, to.ReplyTo).Target()
	}
	return proto.MailboxTarget(to.ReplyTo)
}

// ackTarget is where the ack token for r goes.
func ackTarget(r *Received) string {
	if r.Bridge != "" {
		return proto.ReturnAck(r.Bridge, r.Case).Target()
	}
	return proto.AckTarget(r.Case)
}

// annotateBridge keeps in a case entry what the roll-up reads: the
// partner of a receipt (and when it stored the alert), who acts for an
// ack.
func annotateBridge(e *Entry, m message.Message) {
	switch m := m.(type) {
	case *message.Receipt:
		e.Partner, e.At = m.Partner, m.StoredAt
	case *message.Ack:
		e.Acts = m.By
	}
}
