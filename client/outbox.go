package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// An outboxEntry is a message waiting for the relay. It keeps the body so
// that an envelope that waited longer than the relay's freshness window
// can be sealed again under the same message id.
type outboxEntry struct {
	ID       routing.ID       `json:"id"`
	Target   string           `json:"target"` // ingest target, e.g. to.ug.urgent
	Envelope []byte           `json:"envelope"`
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
	// Refused is set once the relay refused the message for good: it is
	// kept, visible, and never sent again.
	Refused *Refusal `json:"refused,omitempty"`
}

// A Refusal is the relay's permanent refusal of a queued message.
type Refusal struct {
	Code   string    `json:"code"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
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
	return c.st.Do(func() error { return c.outbox.Put(e.key(), b) })
}

func (c *Client) removeOutbox(e *outboxEntry) error {
	return c.st.Do(func() error { return c.outbox.Delete(e.key()) })
}

// listOutbox returns the entries, oldest first.
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
	// Refused, if set, says the relay refused it for good and why: it
	// stays here, visible, until the user deletes it, and is not sent.
	Refused *Refusal
}

// Outbox lists the messages waiting for the relay and those it refused,
// oldest first.
func (c *Client) Outbox() ([]Queued, error) {
	es, err := c.listOutbox()
	if err != nil {
		return nil, err
	}
	out := make([]Queued, len(es))
	for i, e := range es {
		out[i] = Queued{ID: e.ID, Kind: e.Kind, Country: e.Country, Priority: e.Priority, Shared: e.Share, Since: e.Queued, Refused: e.Refused}
	}
	return out, nil
}

// Flush tries to deliver everything waiting in the outbox now. It stops
// at the first message the relay cannot take yet. A message the relay
// refuses for good is marked refused, with the reason, in the outbox and
// in its case; it is never deleted without the user knowing. Flushes do
// not overlap: one started while the background flush runs waits for it.
func (c *Client) Flush(ctx context.Context) (sent int, err error) {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	es, err := c.listOutbox()
	if err != nil {
		return 0, err
	}
	for _, e := range es {
		if e.Refused != nil {
			continue
		}
		err := c.deliver(ctx, e)
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			e.Refused = &Refusal{Code: string(refused.Reason.Code), Reason: refused.Reason.Description, At: c.clock.Now()}
			if perr := c.putOutbox(e); perr != nil {
				return sent, perr
			}
			c.log.Warn("outbox message refused by the relay", "code", refused.Reason.Code)
			c.recordOrLog(&caseRecord{Refused: &refusedRec{ID: e.ID, Reason: refused.Reason.Error()}})
			continue
		case err != nil:
			return sent, err
		}
		if err := c.removeOutbox(e); err != nil {
			return sent, err
		}
		sent++
		c.delivered.Add(1)
		c.recordOrLog(&caseRecord{Sent: &e.ID})
	}
	return sent, nil
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

// outboxLoop refreshes the directory and flushes the outbox whenever the
// client (re)connects, and retries with backoff while the relay cannot
// take what waits. Close ends it, cancelling a round in progress.
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
	backoff := relayconn.Backoff{Min: time.Second, Max: 5 * time.Minute}
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
		case <-timer.Chan():
		}
		next := outboxRetry
		if c.conn.Connected() {
			ctx, cancel := context.WithTimeout(base, 30*time.Second)
			if err := c.RefreshDirectory(ctx); err != nil {
				c.log.Info("directory refresh", "err", err)
			} else {
				c.log.Info("directory refresh")
			}
			n, err := c.Flush(ctx)
			cancel()
			if n > 0 || err != nil {
				c.log.Info("outbox flushed", "sent", n, "err", err)
			}
			switch {
			case errors.Is(err, nats.ErrNoResponders):
				next = time.Second // the relay is starting; it serves in a moment
			case err != nil:
				next = backoff.Next()
			default:
				backoff.Reset()
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.Chan():
			default:
			}
		}
		timer.Reset(next)
	}
}
