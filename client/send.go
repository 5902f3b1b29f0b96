package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// Sent reports what became of a message handed to the client.
type Sent struct {
	ID routing.ID
	// Queued is true when the relay could not be reached (or asked to
	// retry): the sealed envelope waits in the encrypted outbox and goes
	// out when the relay is back. It is not a failure. Queued and not
	// Queued both say nothing of whether anyone has read it: only an
	// acknowledgement from a mission says that.
	Queued bool
	// AwaitingDirectory is true when the message could not be sealed
	// yet: this device holds no current directory (it expired) and the
	// relay gave none. The message waits in the outbox, encrypted at rest
	// like everything there, and is sealed to the missions of the first
	// current directory the relay gives, then sent. Missions is empty,
	// and DirectoryErr says why (a *DirectoryExpiredError, or
	// ErrNoDirectory).
	AwaitingDirectory bool
	DirectoryErr      error
	// Missions are the directory ids of the missions it is sealed to.
	Missions []string
	// Partners are the partner governments a shared alert is sealed to.
	Partners []string
	// Escalation lists the tiers of the alert's escalation handed to the
	// relay (or queued with it): keys.TierTarget and the others.
	Escalation []int
}

// SendAlert seals an alert to every mission covering its country, so all
// of them read the same alert, and sends it; with a.Share, a second
// envelope sealed to the partner governments covering the country goes to
// the bridge. Its escalation (see holds.go) is handed to the relay first.
// A drill (a.Exercise) is never shared with partners.
func (c *Client) SendAlert(ctx context.Context, a *message.Alert) (*Sent, error) {
	p := a.Priority
	if !p.Valid() {
		return nil, fmt.Errorf("alert priority: %w", message.ErrInvalid)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	share := a.Share && !a.Exercise
	id := routing.NewID()
	if a.Exercise {
		c.markDrill(ctx, a, id)
	}
	esc, err := c.armEscalation(ctx, a, id, share)
	if err != nil {
		return nil, err
	}
	s, err := c.send(ctx, a, a.Country, p, id, share)
	if err != nil {
		return nil, err
	}
	s.Escalation = esc
	title := a.Summary
	if a.Exercise {
		title = "DRILL: " + title
	}
	c.recordSent(s, a, a.Country, p, title)
	return s, nil
}

// SendUpdate adds new facts to an earlier alert, for the same missions.
func (c *Client) SendUpdate(ctx context.Context, ref routing.ID, text string) (*Sent, error) {
	cs, err := c.caseFor(ref)
	if err != nil {
		return nil, err
	}
	u := &message.Update{Ref: ref, Text: text}
	s, err := c.send(ctx, u, cs.Country, cs.Priority, routing.ID{}, false)
	if err != nil {
		return nil, err
	}
	c.appendEntry(ref, Entry{At: c.clock.Now(), From: "you", Kind: message.KindUpdate, Text: text, ID: s.ID, Queued: s.Queued})
	return s, nil
}

// Cancel tells the missions an earlier alert is over: the defender is safe
// or it was a false alarm.
func (c *Client) Cancel(ctx context.Context, ref routing.ID, reason message.CancelReason, text string) (*Sent, error) {
	cs, err := c.caseFor(ref)
	if err != nil {
		return nil, err
	}
	m := &message.Cancel{Ref: ref, Reason: reason, Text: text}
	s, err := c.send(ctx, m, cs.Country, cs.Priority, routing.ID{}, false)
	if err != nil {
		return nil, err
	}
	c.appendEntry(ref, Entry{At: c.clock.Now(), From: "you", Kind: message.KindCancel, Text: Summarize(m), ID: s.ID, Queued: s.Queued})
	return s, nil
}

// RequestMeeting asks the missions covering the country for a meeting.
func (c *Client) RequestMeeting(ctx context.Context, m *message.MeetingRequest) (*Sent, error) {
	s, err := c.send(ctx, m, m.Country, routing.Routine, routing.ID{}, false)
	if err != nil {
		return nil, err
	}
	c.recordSent(s, m, m.Country, routing.Routine, "meeting: "+m.Purpose)
	return s, nil
}

// RequestObservation asks the missions covering the country to observe a
// hearing.
func (c *Client) RequestObservation(ctx context.Context, o *message.ObservationRequest) (*Sent, error) {
	s, err := c.send(ctx, o, o.Country, routing.High, routing.ID{}, false)
	if err != nil {
		return nil, err
	}
	c.recordSent(s, o, o.Country, routing.High, "trial observation: "+o.Court+", "+o.Case)
	return s, nil
}

// recipients returns the missions (or partners) covering cc, addressed to
// their current inbox keys.
func (c *Client) recipients(cc string, partners bool) ([]envelope.Recipient, []string, error) {
	d, err := c.Directory()
	if err != nil {
		return nil, nil, err
	}
	now := c.clock.Now()
	var to []envelope.Recipient
	var ids []string
	add := func(id string, ident *keys.PublicIdentity, inboxes []keys.SignedInboxKey) {
		if in := keys.CurrentInbox(inboxes, now); in != nil {
			to = append(to, envelope.ToInbox(ident, in))
			ids = append(ids, id)
		} else {
			c.log.Warn("skipping a recipient with no current inbox key", "id", id)
		}
	}
	if partners {
		for _, p := range d.PartnersFor(cc) {
			add(p.ID, p.Identity, p.InboxKeys)
		}
		return to, ids, nil
	}
	ms := d.MissionsFor(cc)
	if len(ms) == 0 {
		return nil, nil, &CountryNotCoveredError{Country: cc, Covered: d.Countries()}
	}
	for _, m := range ms {
		add(m.ID, m.Identity, m.InboxKeys)
	}
	if len(to) == 0 {
		return nil, nil, fmt.Errorf("the missions covering %q have no current inbox key; the directory needs renewing", cc)
	}
	if len(to) > envelope.MaxRecipients {
		return nil, nil, fmt.Errorf("%d missions cover %q, more than the %d an envelope can carry", len(to), cc, envelope.MaxRecipients)
	}
	return to, ids, nil
}

// send marshals m, seals it to the missions covering cc (and the partners,
// with share), and delivers it, queueing it in the outbox if the relay
// cannot take it now.
func (c *Client) send(ctx context.Context, m message.Message, cc string, p routing.Priority, id routing.ID, share bool) (*Sent, error) {
	body, err := message.Marshal(m)
	if err != nil {
		return nil, err
	}
	if id.IsZero() {
		id = routing.NewID()
	}
	s := &Sent{ID: id}
	now := c.clock.Now()
	entries := []*outboxEntry{{ID: id, Target: proto.AlertTarget(cc, p), Body: body, Country: cc,
		Priority: p, Kind: m.Kind(), Queued: now}}
	if share {
		entries = append(entries, &outboxEntry{ID: id, Target: proto.ShareTarget(cc, p), Body: body,
			Country: cc, Priority: p, Share: true, Kind: m.Kind(), Queued: now})
	}
	for _, e := range entries {
		ids, err := c.seal(e)
		switch {
		case errors.Is(err, ErrNoDirectory):
			s.AwaitingDirectory, s.DirectoryErr = true, err
		case err != nil:
			return nil, err
		}
		if e.Share {
			s.Partners = ids
		} else {
			s.Missions = ids
		}
	}
	if s.AwaitingDirectory {
		// Sealing to the missions of an expired directory could reach a
		// key headquarters has since revoked; the message waits, unsealed
		// and encrypted at rest, for a current directory (see Sent).
		for _, e := range entries {
			e.Envelope, e.Missions = nil, nil
			if err := c.putOutbox(e); err != nil {
				return nil, fmt.Errorf("no current directory to seal to, and queueing failed: %w", err)
			}
		}
		s.Queued, s.Missions, s.Partners = true, nil, nil
		c.kickOutbox()
		return s, nil
	}
	for _, e := range entries {
		if e.Share && len(s.Partners) == 0 {
			continue // no partner covers the country: nothing to share
		}
		switch err := c.submit(ctx, e); {
		case err == nil:
		case isTransient(err):
			s.Queued = true
		default:
			return nil, err
		}
	}
	return s, nil
}

// submit delivers a freshly sealed message, and only if the relay cannot
// take it now writes it to the encrypted outbox for later. Writing first
// would cost a file and two fsyncs on every message, and protect nothing
// the caller does not already know: a message is sent once submit returns
// nil, queued once it returns a transient error.
func (c *Client) submit(ctx context.Context, e *outboxEntry) error {
	err := c.deliver(ctx, e)
	if err == nil || !isTransient(err) {
		return err
	}
	if perr := c.putOutbox(e); perr != nil {
		return fmt.Errorf("the relay is unreachable (%v) and queueing failed: %w", err, perr)
	}
	return &transientError{err}
}

// seal (re)seals e's body under its message id, with a fresh created
// time, to the current recipients, and notes them in e.
func (c *Client) seal(e *outboxEntry) ([]string, error) {
	var to []envelope.Recipient
	var ids []string
	var err error
	if len(e.To) > 0 {
		for _, id := range e.To {
			to = append(to, envelope.To(id))
		}
	} else if len(e.ToIDs) > 0 {
		if to, ids, err = c.recipientsByID(e.ToIDs); err != nil {
			return nil, err
		}
	} else if to, ids, err = c.recipients(e.Country, e.Share); err != nil || len(to) == 0 {
		return ids, err
	}
	h := envelope.Header{ID: e.ID, Created: c.clock.Now(), Country: e.Country, Priority: e.Priority, ReplyTo: c.Mailbox()}
	auth := envelope.Signed
	if c.role == keys.RoleDefender {
		auth = envelope.Deniable
	}
	if e.Envelope, err = envelope.Seal(h, e.Body, c.id, auth, to...); err != nil {
		return nil, err
	}
	e.Missions = ids
	return ids, nil
}

// errNothingToShare: a shared copy queued without a directory, and the
// directory that arrived has no partner for its country.
var errNothingToShare = errors.New("no partner government covers the country")

// sealQueued seals a message that was queued while no directory was
// current, and keeps the envelope in the outbox. Without a current
// directory it is ErrNoDirectory, to wait; a directory with no mission
// for the country is a permanent, local refusal.
func (c *Client) sealQueued(e *outboxEntry) error {
	ids, err := c.seal(e)
	switch {
	case errors.Is(err, ErrNoDirectory):
		return err
	case err != nil:
		return &RefusedError{ID: e.ID, Local: true, Reason: &proto.Error{Code: "not_sealed", Description: err.Error()}}
	case len(ids) == 0 && e.Share:
		return errNothingToShare
	}
	return c.putOutbox(e)
}

// transientError marks a failure after which the message stays queued.
type transientError struct{ err error }

func (t *transientError) Error() string { return t.err.Error() }
func (t *transientError) Unwrap() error { return t.err }

// A RefusedError is a permanent refusal: sending the same message again
// cannot succeed. It is the relay's, or with Local this device's, which
// could not seal a message queued without a directory.
type RefusedError struct {
	ID     routing.ID
	Reason *proto.Error
	Local  bool
}

func (e *RefusedError) Error() string {
	if e.Local {
		return "this device cannot seal the message: " + e.Reason.Description
	}
	return "the relay refused the message: " + e.Reason.Error()
}
func (e *RefusedError) Unwrap() error { return e.Reason }

// deliver publishes e once. A stale envelope (it waited longer than the
// relay's freshness window) is sealed again under the same id, so
// recipients still see it once, and published again. A permanent refusal
// is a *RefusedError; everything else that fails is transient.
func (c *Client) deliver(ctx context.Context, e *outboxEntry) error {
	if len(e.Envelope) == 0 {
		if err := c.sealQueued(e); err != nil {
			return err
		}
	}
	_, err := c.conn.Publish(ctx, e.Target, e.Envelope)
	var rerr *proto.Error
	if errors.As(err, &rerr) && rerr.Code == proto.CodeStale {
		if _, serr := c.seal(e); serr != nil {
			return serr
		}
		_, err = c.conn.Publish(ctx, e.Target, e.Envelope)
	}
	switch {
	case err == nil:
		return nil
	case isTransient(err), !errors.As(err, &rerr):
		return &transientError{err}
	}
	return &RefusedError{ID: e.ID, Reason: rerr}
}

// publish sends data to an ingest target and waits for the relay's reply.
func (c *Client) publish(ctx context.Context, target string, data []byte) (*proto.Reply, error) {
	return c.conn.Publish(ctx, target, data)
}
