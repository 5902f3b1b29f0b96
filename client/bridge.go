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
//     ([Client.ShareAlert] with message.ShareFrom); its receipts come to
//     the mission's mailbox, under the re-share's id.
//   - A partner government reads, on its own relay, what bridges
//     delivered for its countries ([Client.ReceiveBridged]); its
//     [Client.Acknowledge] and [Client.Reply] on such a message go back
//     through the bridge that delivered it.
//   - [Client.RollUp] and [Client.FetchRollUp] say, for a coordinated
//     alert, which government received it, acknowledged it and acts.

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

// SendAckTokensVia is [Client.SendAckTokens] for a partner answering what
// bridge delivered: the tokens go back through the bridge, to the sending
// network's relay, where they stop escalation and count in roll-ups.
func (c *Client) SendAckTokensVia(ctx context.Context, bridge string, ids ...routing.ID) error {
	var errs []error
	for _, id := range ids {
		tok := envelope.SignAck(id, c.id, c.clock.Now())
		if _, err := c.conn.Publish(ctx, proto.ReturnAck(bridge, id).Target(), tok); err != nil {
			errs = append(errs, fmt.Errorf("ack token for %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
