package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

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
	// out when the relay is back. It is not a failure.
	Queued bool
	// Missions are the directory ids of the missions it is sealed to.
	Missions []string
	// Partners are the partner governments a shared alert is sealed to.
	Partners []string
}

// SendAlert seals an alert to every mission covering its country, so all
// of them read the same alert, and sends it; with a.Share, a second
// envelope sealed to the partner governments covering the country goes to
// the bridge.
func (c *Client) SendAlert(ctx context.Context, a *message.Alert) (*Sent, error) {
	p := a.Priority
	if !p.Valid() {
		return nil, fmt.Errorf("alert priority: %w", message.ErrInvalid)
	}
	s, err := c.send(ctx, a, a.Country, p, routing.ID{}, a.Share)
	if err != nil {
		return nil, err
	}
	c.recordSent(s, a, a.Country, p, a.Summary)
	return s, nil
}

// SendUpdate adds new facts to an earlier alert, for the same missions.
func (c *Client) SendUpdate(ctx context.Context, ref routing.ID, text string) (*Sent, error) {
	cs, err := c.caseFor(ref)
	if err != nil {
		return nil, err
	}
	u := &message.Update{Ref: routing.ID(ref), Text: text}
	s, err := c.send(ctx, u, cs.Country, cs.Priority, routing.ID{}, false)
	if err != nil {
		return nil, err
	}
	c.appendEntry(ref, Entry{At: c.now(), From: "you", Kind: message.KindUpdate, Text: text, ID: s.ID, Queued: s.Queued})
	return s, nil
}

// Cancel tells the missions an earlier alert is over: the defender is safe
// or it was a false alarm.
func (c *Client) Cancel(ctx context.Context, ref routing.ID, reason message.CancelReason, text string) (*Sent, error) {
	cs, err := c.caseFor(ref)
	if err != nil {
		return nil, err
	}
	m := &message.Cancel{Ref: routing.ID(ref), Reason: reason, Text: text}
	s, err := c.send(ctx, m, cs.Country, cs.Priority, routing.ID{}, false)
	if err != nil {
		return nil, err
	}
	c.appendEntry(ref, Entry{At: c.now(), From: "you", Kind: message.KindCancel, Text: Summarize(m), ID: s.ID, Queued: s.Queued})
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
	now := c.now()
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
// with share), queues the envelopes in the outbox and tries to deliver them.
func (c *Client) send(ctx context.Context, m message.Message, cc string, p routing.Priority, id routing.ID, share bool) (*Sent, error) {
	body, err := message.Marshal(m)
	if err != nil {
		return nil, err
	}
	if id.IsZero() {
		id = routing.NewID()
	}
	s := &Sent{ID: id}
	entries := []*outboxEntry{{ID: id, Target: proto.AlertTarget(cc, p.String()), Body: body, Country: cc,
		Priority: p.String(), Kind: string(m.Kind()), Queued: c.now()}}
	if share {
		entries = append(entries, &outboxEntry{ID: id, Target: proto.ShareTarget(cc, p.String()), Body: body,
			Country: cc, Priority: p.String(), Share: true, Kind: string(m.Kind()), Queued: c.now()})
	}
	for _, e := range entries {
		ids, err := c.seal(e)
		if err != nil {
			return nil, err
		}
		if e.Share {
			s.Partners = ids
		} else {
			s.Missions = ids
		}
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
	err := c.deliver(ctx, e, false)
	if err == nil || !isTransient(err) {
		return err
	}
	if perr := c.store.putOutbox(e); perr != nil {
		return fmt.Errorf("the relay is unreachable (%v) and queueing failed: %w", err, perr)
	}
	return err
}

// seal (re)seals e's body under its message id, with a fresh created
// time, to the current recipients.
func (c *Client) seal(e *outboxEntry) ([]string, error) {
	var to []envelope.Recipient
	var ids []string
	var err error
	if len(e.toIDs) > 0 {
		for _, id := range e.toIDs {
			to = append(to, envelope.To(id))
		}
	} else if len(e.To) > 0 {
		for _, s := range e.To {
			id, err := keys.ParsePublicIdentity(s)
			if err != nil {
				return nil, err
			}
			to = append(to, envelope.To(id))
		}
	} else if to, ids, err = c.recipients(e.Country, e.Share); err != nil || len(to) == 0 {
		return ids, err
	}
	p, err := routing.ParsePriority(e.Priority)
	if err != nil {
		return nil, err
	}
	h := envelope.Header{ID: e.ID, Created: c.now(), Country: e.Country, Priority: p, ReplyTo: c.mbox}
	auth := envelope.Signed
	if c.role == keys.RoleDefender {
		auth = envelope.Deniable
	}
	if e.Envelope, err = envelope.Seal(h, e.Body, c.id, auth, to...); err != nil {
		return nil, err
	}
	return ids, nil
}

// transientError marks a failure after which the message stays queued.
type transientError struct{ err error }

func (t *transientError) Error() string { return t.err.Error() }
func (t *transientError) Unwrap() error { return t.err }

func isTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// deliver publishes one outbox entry and removes it once the relay has
// stored it (or already had it: a duplicate means an earlier attempt got
// through). A refusal that retrying cannot fix removes it and is returned;
// anything else leaves it queued and is returned as transient.
func (c *Client) deliver(ctx context.Context, e *outboxEntry, queued bool) error {
	if !c.nc.IsConnected() {
		return &transientError{ErrNotConnected}
	}
	done := func() error {
		if queued {
			return c.store.removeOutbox(e.ID, e.Share)
		}
		return nil
	}
	_, err := c.publish(ctx, e.Target, e.Envelope)
	if err == nil {
		return done()
	}
	var rerr *proto.Error
	if !errors.As(err, &rerr) {
		return &transientError{err}
	}
	switch rerr.Code {
	case proto.CodeRateLimited, proto.CodeUnavailable:
		return &transientError{err}
	case proto.CodeStale:
		// Waited longer than the relay's freshness window: seal again
		// under the same id, so recipients still see it once.
		if _, err := c.seal(e); err != nil {
			return err
		}
		if queued {
			if err := c.store.putOutbox(e); err != nil {
				return err
			}
		}
		if _, err := c.publish(ctx, e.Target, e.Envelope); err != nil {
			return &transientError{err}
		}
		return done()
	}
	if queued {
		c.store.removeOutbox(e.ID, e.Share)
	}
	return fmt.Errorf("the relay refused the message: %w", err)
}

// publish sends data to an ingest target and waits for the relay's reply.
func (c *Client) publish(ctx context.Context, target string, data []byte) (*proto.Reply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	m, err := c.nc.RequestWithContext(ctx, proto.Ingest(c.mbox.String(), target), data)
	if err != nil {
		return nil, err
	}
	return proto.ParseReply(m.Data)
}

// Outbox lists the messages waiting for the relay, oldest first.
func (c *Client) Outbox() ([]Queued, error) {
	es, err := c.store.listOutbox()
	if err != nil {
		return nil, err
	}
	out := make([]Queued, len(es))
	for i, e := range es {
		out[i] = Queued{ID: e.ID, Kind: message.Kind(e.Kind), Country: e.Country, Priority: e.Priority, Shared: e.Share, Since: e.Queued}
	}
	return out, nil
}

// Queued describes one message in the outbox.
type Queued struct {
	ID       routing.ID
	Kind     message.Kind
	Country  string
	Priority string
	Shared   bool
	Since    time.Time
}

// Flush tries to deliver everything in the outbox now. It stops at the
// first message the relay cannot take yet. Flushes do not overlap: one
// started while the background flush runs waits for it.
func (c *Client) Flush(ctx context.Context) (sent int, err error) {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	es, err := c.store.listOutbox()
	if err != nil {
		return 0, err
	}
	for _, e := range es {
		if err := c.deliver(ctx, e, true); err != nil {
			if isTransient(err) {
				return sent, err
			}
			c.log.Warn("outbox message refused by the relay", "id", e.ID, "err", err)
			continue
		}
		sent++
		c.delivered.Add(1)
		c.markSentInCases(e.ID)
	}
	return sent, nil
}

// Delivered is how many queued messages the outbox has delivered since
// Open, by any flush, background or not.
func (c *Client) Delivered() int { return int(c.delivered.Load()) }

func (c *Client) kickOutbox() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// outboxRetry is how often a connected client retries a non-empty outbox
// when nothing else prompts it (after a rate limit, say).
const outboxRetry = 30 * time.Second

// outboxSoon is the retry after a relay that answered "no responders":
// it was starting up, and will serve in a moment.
const outboxSoon = time.Second

func (c *Client) outboxLoop() {
	defer c.wg.Done()
	// Close cancels base, so a round in progress ends at once.
	base, stop := context.WithCancel(context.Background())
	go func() { <-c.done; stop() }()
	defer stop()
	t := time.NewTimer(outboxRetry)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
		case <-t.C:
		}
		if base.Err() != nil {
			return
		}
		next := outboxRetry
		if c.nc.IsConnected() {
			ctx, cancel := context.WithTimeout(base, 30*time.Second)
			if err := c.RefreshDirectory(ctx); err != nil {
				c.log.Info("directory refresh", "err", err)
			}
			n, err := c.Flush(ctx)
			if n > 0 || err != nil {
				c.log.Info("outbox flushed", "sent", n, "err", err)
			}
			if errors.Is(err, nats.ErrNoResponders) {
				next = outboxSoon
			}
			cancel()
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}
