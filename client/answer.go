package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// An Addressee is whom a mission answers on a case: the author of the
// message that opened it and where replies reach them. A mission's store
// keeps it with the case, so the mission can answer after a restart.
type Addressee struct {
	Identity *keys.PublicIdentity
	ReplyTo  routing.Mailbox
	Country  string
	Priority routing.Priority
	// Bridge, for a partner answering what a bridge delivered, is that
	// bridge: the answer goes back through it.
	Bridge string `json:",omitempty"`
}

// Addressee is whom an answer to r goes to.
func (r *Received) Addressee() Addressee {
	return Addressee{Identity: r.Sender, ReplyTo: r.Header.ReplyTo, Country: r.Header.Country, Priority: r.Header.Priority,
		Bridge: r.Bridge}
}

// ErrNoRecipient means a directory id names no mission, partner or
// headquarters with a current inbox key.
var ErrNoRecipient = errors.New("no such recipient with a current inbox key in the directory")

// AnswerTo seals m to the addressee, signed, and sends it to their reply
// mailbox; queued in the outbox if the relay cannot take it now.
func (c *Client) AnswerTo(ctx context.Context, to Addressee, m message.Message) (*Sent, error) {
	if to.ReplyTo.IsZero() {
		return nil, ErrNoReplyMailbox
	}
	if to.Identity == nil {
		return nil, errors.New("answer: no recipient identity")
	}
	return c.sendEntry(ctx, m, &outboxEntry{Target: to.target(), Country: to.Country, Priority: to.Priority,
		To: []*keys.PublicIdentity{to.Identity}})
}

// SendAckTokens tells the relay, with one signed ack token per id, that
// this mission acknowledged those messages: the relay stops escalating
// them, and reports count them. It returns once the relay has stored
// them (a token sent twice is stored once).
func (c *Client) SendAckTokens(ctx context.Context, ids ...routing.ID) error {
	var errs []error
	for _, id := range ids {
		tok := envelope.SignAck(id, c.id, c.clock.Now())
		if _, err := c.conn.Publish(ctx, proto.AckTarget(id), tok); err != nil {
			errs = append(errs, fmt.Errorf("ack token for %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// NotifyPeers sends m to the other missions covering cc, each at its own
// mailbox (so the note stays out of the country's alert channel, which
// reports count): how missions tell each other who observes a hearing.
// It returns the ids of the missions it reached.
func (c *Client) NotifyPeers(ctx context.Context, cc string, p routing.Priority, m message.Message) ([]string, error) {
	d, err := c.Directory()
	if err != nil {
		return nil, err
	}
	var reached []string
	var errs []error
	for _, peer := range d.MissionsFor(cc) {
		if peer.Identity.Equal(c.id.Public()) {
			continue
		}
		mb := proto.MailboxFor(peer.NKey)
		if _, err := c.sendEntry(ctx, m, &outboxEntry{Target: proto.MailboxTarget(mb), Country: cc, Priority: p, ToIDs: []string{peer.ID}}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", peer.ID, err))
			continue
		}
		reached = append(reached, peer.ID)
	}
	return reached, errors.Join(errs...)
}

// ShareAlert re-seals a defender's alert to the partner governments
// covering its country, signed by this mission, for the bridge. Build s
// with message.ShareFrom, which refuses an alert sent without consent.
func (c *Client) ShareAlert(ctx context.Context, s *message.SharedAlert) (*Sent, error) {
	d, err := c.Directory()
	if err != nil {
		return nil, err
	}
	if len(d.PartnersFor(s.Country)) == 0 {
		return nil, fmt.Errorf("%w: no partner government covers %q", ErrNoRecipient, s.Country)
	}
	sent, err := c.sendEntry(ctx, s, &outboxEntry{Target: proto.ShareTarget(s.Country, s.Priority), Country: s.Country,
		Priority: s.Priority, Share: true})
	if err != nil {
		return nil, err
	}
	for _, p := range d.PartnersFor(s.Country) {
		if keys.CurrentInbox(p.InboxKeys, c.clock.Now()) != nil {
			sent.Partners = append(sent.Partners, p.ID)
		}
	}
	return sent, nil
}

// ReportCase sends r, sealed to this mission's headquarters (the one the
// directory says oversees it), to headquarters' mailbox.
func (c *Client) ReportCase(ctx context.Context, r *message.CaseReport) (*Sent, error) {
	me, err := c.self()
	if err != nil {
		return nil, err
	}
	d, _ := c.Directory()
	hq := d.HeadquartersOf(me.ID)
	if hq == nil {
		return nil, fmt.Errorf("%w: the directory names no headquarters overseeing %s", ErrNoRecipient, me.ID)
	}
	return c.sendEntry(ctx, r, &outboxEntry{Target: proto.MailboxTarget(proto.MailboxFor(hq.NKey)), Country: r.Country,
		Priority: r.Priority, ToIDs: []string{hq.ID}})
}

// AnswerBroadcast answers a verified broadcast ("apply", "ask about
// this"), sealed to the mission that signed it and no other: that a
// defender is interested in a programme is for that mission alone. The
// answer opens a case there, threaded to the broadcast.
func (c *Client) AnswerBroadcast(ctx context.Context, b *Bulletin, intent message.AnswerIntent, text string) (*Sent, error) {
	m := &message.BroadcastAnswer{Ref: b.ID, Country: b.Country, Intent: intent, Text: text}
	s, err := c.sendEntry(ctx, m, &outboxEntry{Target: proto.AlertTarget(b.Country, routing.Routine), Country: b.Country,
		Priority: routing.Routine, ToIDs: []string{b.Mission}})
	if err != nil {
		return nil, err
	}
	s.Missions = []string{b.Mission}
	c.recordSent(s, m, b.Country, routing.Routine, fmt.Sprintf("%s: %s", intent, b.Broadcast.Title))
	return s, nil
}

// sendEntry marshals m into e under a new id, seals it and delivers it,
// queueing it if the relay cannot take it now.
func (c *Client) sendEntry(ctx context.Context, m message.Message, e *outboxEntry) (*Sent, error) {
	body, err := message.Marshal(m)
	if err != nil {
		return nil, err
	}
	e.ID, e.Body, e.Kind, e.Queued = routing.NewID(), body, m.Kind(), c.clock.Now()
	ids, err := c.seal(e)
	if err != nil {
		return nil, err
	}
	if e.Share && len(ids) == 0 {
		return nil, fmt.Errorf("%w: no partner covering %q has a current inbox key", ErrNoRecipient, e.Country)
	}
	s := &Sent{ID: e.ID}
	if err := c.submit(ctx, e); err != nil {
		if !isTransient(err) {
			return nil, err
		}
		s.Queued = true
	}
	return s, nil
}

// recipientsByID addresses the institutions with these directory ids at
// their current inbox keys.
func (c *Client) recipientsByID(ids []string) ([]envelope.Recipient, []string, error) {
	d, err := c.Directory()
	if err != nil {
		return nil, nil, err
	}
	now := c.clock.Now()
	var to []envelope.Recipient
	for _, id := range ids {
		ident, inboxes := institution(d, id)
		in := keys.CurrentInbox(inboxes, now)
		if ident == nil || in == nil {
			return nil, nil, fmt.Errorf("%w: %q", ErrNoRecipient, id)
		}
		to = append(to, envelope.ToInbox(ident, in))
	}
	return to, ids, nil
}

func institution(d *keys.Directory, id string) (*keys.PublicIdentity, []keys.SignedInboxKey) {
	for _, m := range d.Missions {
		if m.ID == id {
			return m.Identity, m.InboxKeys
		}
	}
	for _, p := range d.Partners {
		if p.ID == id {
			return p.Identity, p.InboxKeys
		}
	}
	for _, h := range d.Headquarters {
		if h.ID == id {
			return h.Identity, h.InboxKeys
		}
	}
	return nil, nil
}

// PublishBroadcast is Broadcast, returning the broadcast's message id:
// what defenders' answers to it refer to.
func (c *Client) PublishBroadcast(ctx context.Context, b *message.Broadcast) (routing.ID, error) {
	body, err := message.Marshal(b)
	if err != nil {
		return routing.ID{}, err
	}
	pm, err := envelope.SignPublic(b.Country, body, c.id, c.clock.Now())
	if err != nil {
		return routing.ID{}, err
	}
	p, err := envelope.ParsePublic(pm)
	if err != nil {
		return routing.ID{}, err
	}
	if _, err := c.publish(ctx, proto.BroadcastTarget(b.Country), pm); err != nil {
		return routing.ID{}, err
	}
	return p.ID, nil
}

// ValidUntilPassed reports whether the broadcast's validity date has
// passed (one without a date never expires).
func (b *Bulletin) ValidUntilPassed() bool {
	return !b.Broadcast.ValidUntil.IsZero() && time.Now().After(b.Broadcast.ValidUntil)
}
