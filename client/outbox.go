package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// An outboxEntry is a message waiting for the relay. It keeps the body so
// that an envelope that waited longer than the relay's freshness window
// can be sealed again under the same message id, and so that a message
// queued while no directory was current (Envelope empty) can be sealed
// once one arrives.
type outboxEntry struct {
	ID       routing.ID       `json:"id"`
	Target   string           `json:"target"` // ingest target, e.g. to.ug.urgent
	Envelope []byte           `json:"envelope"`
	Missions []string         `json:"missions,omitempty"` // the directory ids it is sealed to
	Body     []byte           `json:"body"`
	Country  string           `json:"country"`
	Priority routing.Priority `json:"priority"`
	Share    bool             `json:"share"` // sealed to partners, for the bridge
	// To, when set, are the recipients (a reply to a defender); otherwise
	// the recipients are the missions covering Country.
	To []*keys.PublicIdentity `json:"to,omitempty"`
	// ToIDs, when set, are directory ids (missions, partners,
	// headquarters) sealed to at their current inbox keys.
	ToIDs  []string     `json:"to_ids,omitempty"`
	Kind   message.Kind `json:"kind"`
	Queued time.Time    `json:"queued"`
	// Hold marks a hold request that goes with a message (its escalation,
	// its drill mark), queued just before it: not counted or listed apart
	// while it waits, since its message waits with it.
	Hold bool `json:"hold,omitempty"`
	// Refused is set once the relay refused the message for good: it is
	// kept, visible, and never sent again.
	Refused *Refusal `json:"refused,omitempty"`
}

// A Refusal is the permanent refusal of a queued message: by the relay,
// or, when Local is set, by this device, which could not seal it (the
// directory that arrived has no mission for its country).
type Refusal struct {
	Code   string    `json:"code"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Local  bool      `json:"local,omitempty"`
}

func (e *outboxEntry) key() string {
	if e.Share {
		return e.ID.String() + "/share"
	}
	return e.ID.String()
}

func (c *Client) putOutbox(e *outboxEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := c.st.Do(func() error { return c.outbox.Put(e.key(), b) }); err != nil {
		return err
	}
	if e.Refused == nil {
		c.urgent.Store(true)
	}
	return nil
}

func (c *Client) removeOutbox(e *outboxEntry) error {
	return c.st.Do(func() error { return c.outbox.Delete(e.key()) })
}

// listOutbox returns the entries, oldest first, and notes whether any
// waits to be sent.
func (c *Client) listOutbox() ([]*outboxEntry, error) {
	var out []*outboxEntry
	err := c.st.Do(func() error {
		vs, err := c.outbox.List()
		if err != nil {
			return err
		}
		for _, v := range vs {
			var e outboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
			out = append(out, &e)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Queued.Before(out[j].Queued) })
	if err == nil {
		c.urgent.Store(slices.ContainsFunc(out, func(e *outboxEntry) bool { return e.Refused == nil }))
	}
	return out, err
}

// Queued describes one message in the outbox.
type Queued struct {
	ID       routing.ID
	Kind     message.Kind
	Country  string
	Priority routing.Priority
	Shared   bool
	Since    time.Time
	// AwaitingDirectory says it is not sealed yet: it was queued while
	// this device held no current directory, and is sealed to the
	// missions of the first current one the relay gives.
	AwaitingDirectory bool
	// Refused, if set, says it was refused for good and why: it stays
	// here, visible, until the user deletes it, and is not sent.
	Refused *Refusal
}

// Outbox lists the messages waiting for the relay and those it refused,
// oldest first.
func (c *Client) Outbox() ([]Queued, error) {
	es, err := c.listOutbox()
	if err != nil {
		return nil, err
	}
	out := make([]Queued, 0, len(es))
	for _, e := range es {
		if e.Hold && e.Refused == nil {
			continue
		}
		out = append(out, Queued{ID: e.ID, Kind: e.Kind, Country: e.Country, Priority: e.Priority, Shared: e.Share, Since: e.Queued,
			AwaitingDirectory: len(e.Envelope) == 0 && e.Refused == nil, Refused: e.Refused})
	}
	return out, nil
}

// Flush tries to deliver everything waiting in the outbox now. It stops
// at the first message the relay cannot take yet. A message queued
// without a directory is sealed first; while none is current it waits
// (the others still go) and Flush returns ErrNoDirectory at the end. A
// message refused for good — by the relay, or by this device when the
// directory has no mission for its country — is marked refused, with the
// reason, in the outbox and in its case; it is never deleted without the
// user knowing. Flushes do not overlap: one started while the background
// flush runs waits for it.
func (c *Client) Flush(ctx context.Context) (sent int, err error) {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	defer c.listOutbox() // notes whether anything still waits
	es, err := c.listOutbox()
	if err != nil {
		return 0, err
	}
	var awaiting error
	for _, e := range es {
		if e.Refused != nil {
			continue
		}
		err := c.deliver(ctx, e)
		var refused *RefusedError
		switch {
		case errors.Is(err, errNothingToShare):
			c.log.Info("no partner covers the country of a shared copy; dropped it")
			if err := c.removeOutbox(e); err != nil {
				return sent, err
			}
			continue
		case errors.Is(err, ErrNoDirectory):
			awaiting = err
			continue
		case errors.As(err, &refused):
			e.Refused = &Refusal{Code: string(refused.Reason.Code), Reason: refused.Reason.Description, At: c.clock.Now(), Local: refused.Local}
			if perr := c.putOutbox(e); perr != nil {
				return sent, perr
			}
			c.log.Warn("outbox message refused for good", "code", refused.Reason.Code, "local", refused.Local)
			reason := refused.Reason.Error()
			if refused.Local {
				reason = refused.Error()
			}
			c.recordOrLog(&caseRecord{Refused: &refusedRec{ID: e.ID, Reason: reason}})
			c.emit(Event{Kind: EventRefused, ID: e.ID, Message: e.Kind, Refusal: e.Refused})
			continue
		case err != nil:
			return sent, err
		}
		if err := c.removeOutbox(e); err != nil {
			return sent, err
		}
		sent++
		c.delivered.Add(1)
		c.recordOrLog(&caseRecord{Sent: &e.ID, Missions: e.Missions})
		c.emit(Event{Kind: EventSent, ID: e.ID, Message: e.Kind})
	}
	return sent, awaiting
}

// DiscardRefused deletes a refused message from the outbox, once the user
// has seen why. A message still waiting is not touched.
func (c *Client) DiscardRefused(id routing.ID) error {
	es, err := c.listOutbox()
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.ID == id && e.Refused != nil {
			if err := c.removeOutbox(e); err != nil {
				return err
			}
		}
	}
	return nil
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

// outboxRetry is how often a connected client looks at its outbox when
// nothing prompts it: another process may have queued something.
const outboxRetry = 30 * time.Second

// minRoundGap spaces the background rounds: a relay that drops and
// takes the connection again and again cannot make the client download
// the directory at that pace. A queued message still leaves within a
// second of the relay coming back.
const minRoundGap = time.Second

// outboxLoop flushes the outbox and refreshes the directory whenever the
// client (re)connects, and every outboxRetry while connected. A round
// that fails while connected is retried with backoff, and no prompt
// (such as a reconnect) runs a round sooner than the backoff allows.
// Close ends it, cancelling a round in progress.
func (c *Client) outboxLoop() {
	defer c.wg.Done()
	base, stop := context.WithCancel(context.Background())
	defer stop()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-c.done:
		case <-base.Done():
		}
		stop()
	}()
	timer := c.clock.NewTimer(outboxRetry)
	defer timer.Stop()
	reset := func(d time.Duration) {
		if !timer.Stop() {
			select {
			case <-timer.Chan():
			default:
			}
		}
		timer.Reset(d)
	}
	backoff := relayconn.Backoff{Min: time.Second, Max: 5 * time.Minute}
	var notBefore time.Time
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
		case <-timer.Chan():
		}
		if wait := notBefore.Sub(c.clock.Now()); wait > 0 {
			reset(wait) // the backoff decides when the next round runs
			continue
		}
		if !c.conn.Connected() {
			c.listOutbox() // another process may have queued something: retry reconnecting sooner
			reset(outboxRetry)
			continue
		}
		ctx, cancel := context.WithTimeout(base, 30*time.Second)
		start := c.clock.Now()
		err := c.round(ctx)
		cancel()
		next, gap := outboxRetry, minRoundGap
		switch {
		case err == nil, errors.Is(err, ErrNoDirectory):
			// Nothing failed that a retry would change: a directory comes
			// with the next round.
			backoff.Reset()
		case errors.Is(err, relayconn.ErrNotConnected):
			// The connection's own backoff decides when it is back, and
			// its reconnect starts the next round.
		default:
			next = backoff.Next()
			gap = next
		}
		notBefore = start.Add(gap)
		reset(next)
	}
}

// round is one background round: send what waits (first, so that the
// relay coming back is the moment it leaves), then refresh the
// directory, and if messages were waiting for one, send them now.
func (c *Client) round(ctx context.Context) error {
	n, err := c.Flush(ctx)
	if n > 0 || (err != nil && !errors.Is(err, ErrNoDirectory)) {
		c.log.Info("outbox flushed", "sent", n, "err", err)
	}
	derr := c.RefreshDirectory(ctx)
	if errors.Is(err, ErrNoDirectory) {
		if _, derr := c.Directory(); derr == nil {
			n, err = c.Flush(ctx)
			c.log.Info("outbox flushed", "sent", n, "err", err)
		}
	}
	c.log.Info("directory refresh", "err", derr)
	return err
}
