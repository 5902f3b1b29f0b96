package client

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// A Handler keeps one received message: it writes what it needs of r to
// its own durable store and returns nil only once that write is durable
// (fsynced). Only then does the client add r to its seen-set and settle
// it with the relay; an error leaves r pending at the relay and unseen, to
// be received again later.
//
// A crash after the handler's write and before the seen-set's hands r to
// the handler again after a restart, so a handler must be idempotent on
// r.ID: keeping the same message twice must leave its store as keeping it
// once. A handler runs on the caller's goroutine, one message at a time,
// in the order the relay stored them.
type Handler func(ctx context.Context, r *Received) error

// FetchOptions bound one receive.
type FetchOptions struct {
	// Max is the most messages to take (default 256).
	Max int
	// Wait is how long to wait for the first message; 0 returns what is
	// there now.
	Wait time.Duration
}

// A Batch says what became of one receive.
type Batch struct {
	// Handled messages were kept by the handler, are in the seen-set and
	// settled.
	Handled int
	// Dropped messages were not for this client, not authentic, or
	// already seen; they are settled so the relay stops offering them.
	Dropped int
	// Failed messages were refused by the handler: unseen, unsettled,
	// offered again later. Err is the first handler error.
	Failed int
	Err    error
	// Deferred messages lay beyond the decryption work one batch may
	// cost (see maxOpenWork): unopened, unsettled, offered again.
	Deferred int
	// HeldBack messages are signed by someone the directory this device
	// holds does not name, though a newer one may: unseen, unsettled, and
	// offered again once a newer directory arrives (see holdUnknownSigner).
	HeldBack int
}

func (b *Batch) add(o Batch) {
	b.Handled += o.Handled
	b.Dropped += o.Dropped
	b.Failed += o.Failed
	b.Deferred += o.Deferred
	b.HeldBack += o.HeldBack
	if b.Err == nil {
		b.Err = o.Err
	}
}

// Untrusted input bounds of a receive.
const (
	// maxOpenWork bounds the decryption work of one batch, in KEM
	// decapsulations: one per recipient stanza per key tried, ~95 µs
	// each (X-Wing, NATS.md), so under a second of one core. It is
	// decided from each envelope's clear header before any cryptography.
	// An honest batch stays within it (256 alerts sealed to 8 missions
	// and tried with 4 keys); a relay that fills a batch with envelopes
	// of 32 stanzas addressed to others gets no more than this, and what
	// lies beyond waits, unopened and unsettled, for the next batch.
	maxOpenWork = 8192
	// holdUnknownSigner is how long after its creation a message signed
	// by someone the directory held does not name is kept pending rather
	// than dropped: time for a newer directory to reach the relay and the
	// device. Past it, or when a current directory issued after the
	// message was written still does not name its signer, it is dropped.
	holdUnknownSigner = 7 * 24 * time.Hour
	// maxHeldBack bounds the messages held back at once, so that a relay
	// cannot keep a reader's every batch busy with them.
	maxHeldBack = 64
	// unknownSignerRefresh spaces the directory refreshes that messages
	// from unknown signers prompt.
	unknownSignerRefresh = time.Minute
)

// ReceiveMailbox reads one batch from the client's mailbox (acks, replies,
// receipts from institutions) and hands each new message to h.
func (c *Client) ReceiveMailbox(ctx context.Context, o FetchOptions, h Handler) (Batch, error) {
	return c.receive(ctx, proto.MailboxSource, o, h)
}

// ReadMailbox receives a batch from the mailbox into the client's own
// case threads ([Client.Cases]) and returns what it received. The cases
// are the durable store: a message is settled only once it is recorded.
func (c *Client) ReadMailbox(ctx context.Context, o FetchOptions) ([]*Received, error) {
	var out []*Received
	b, err := c.ReceiveMailbox(ctx, o, func(ctx context.Context, r *Received) error {
		if err := c.recordReceived(r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err == nil {
		err = b.Err
	}
	return out, err
}

// receive is the two-phase receive: fetch a batch, open each message,
// hand the new ones to h, record the handled ones in the seen-set, and
// only then settle them (and the dropped ones) with the relay.
func (c *Client) receive(ctx context.Context, src proto.Source, o FetchOptions, h Handler) (Batch, error) {
	if c.closed() {
		return Batch{}, ErrClosed
	}
	if err := c.conn.WaitConnected(ctx); err != nil {
		return Batch{}, err
	}
	fo := relayconn.FetchOptions{Max: o.Max, Wait: o.Wait}
	if !src.Consumed() {
		c.cursorMu.Lock()
		fo.After = c.cursor
		c.cursorMu.Unlock()
	}
	msgs, err := c.conn.Fetch(ctx, src, fo)
	if err != nil {
		return Batch{}, err
	}
	// Cheapest first: what each envelope would cost to open is read from
	// its clear header, and only what fits the bound is opened.
	n := c.withinWork(msgs)
	opened, errs := c.openAll(msgs[:n])
	c.resolveUnknown(ctx, opened, errs)

	var b Batch
	var settle, junk []string
	var keep []routing.ID
	inBatch := map[routing.ID]bool{}
	var lastSeq uint64
	for i, m := range msgs {
		if i >= n {
			b.Deferred++ // the cursor stays before it
			continue
		}
		lastSeq = max(lastSeq, m.Seq)
		r, err := opened[i], errs[i]
		if r != nil && err == nil && src.Bridged {
			if s, serr := proto.ParseSubject(m.Subject); serr == nil && s.Kind == proto.KindBridged {
				r.Bridge = s.Bridge
			}
		}
		unknown := errors.Is(err, errUnknownSigner)
		if r != nil && (err == nil || unknown) && inBatch[r.Key()] {
			err, unknown = errReplay, false
		}
		if r != nil && (err == nil || unknown) {
			var seen bool
			if err := c.st.Do(func() error {
				if err := c.seen.Sync(); err != nil {
					return err
				}
				seen = c.seen.Has(r.Key())
				return nil
			}); err != nil {
				return b, err // nothing settled: everything is offered again
			}
			if seen {
				err, unknown = errReplay, false
			}
		}
		if unknown {
			if c.holdBack(r) {
				b.HeldBack++
				c.log.Info("held back a message from a signer not in the directory")
				continue // unseen, unsettled
			}
			err = errUnverified
		}
		if r != nil {
			c.releaseHeld(r.ID)
		}
		if err != nil {
			c.log.Info("dropped a message", "source", kindOf(src), "reason", err)
			b.Dropped++
			if src.Alerts && isJunk(err) {
				junk = append(junk, m.Settle)
			} else {
				settle = append(settle, m.Settle)
			}
			continue
		}
		inBatch[r.Key()] = true
		if herr := h(ctx, r); herr != nil {
			b.Failed++
			if b.Err == nil {
				b.Err = fmt.Errorf("keeping a received message: %w", herr)
			}
			continue
		}
		b.Handled++
		keep = append(keep, r.Key())
		settle = append(settle, m.Settle)
	}
	if len(keep) > 0 {
		if err := c.st.Do(func() error {
			if err := c.seen.Sync(); err != nil {
				return err
			}
			return c.seen.Add(keep...)
		}); err != nil {
			// Not settled: the relay offers them again and the handler,
			// being idempotent, keeps them once.
			return b, err
		}
	}
	if lastSeq > 0 {
		c.cursorMu.Lock()
		c.cursor = max(c.cursor, lastSeq)
		c.cursorMu.Unlock()
	}
	if len(settle) > 0 {
		// A lost settle only means the relay offers them again, which the
		// seen-set drops.
		if err := c.conn.Settle(ctx, settle); err != nil {
			c.log.Info("settling with the relay", "err", err)
		}
	}
	if len(junk) > 0 {
		c.reportJunk(junk)
	}
	return b, nil
}

// isJunk reports whether an alert that failed to open is junk to this
// mission: no stanza opens with its keys, or one opens but the envelope
// does not authenticate under it. Junk to every mission of its country is
// junk to all, and the relay removes it once they all said so.
func isJunk(err error) bool {
	return errors.Is(err, envelope.ErrNotForMe) || errors.Is(err, envelope.ErrTampered)
}

// junkQueue bounds the junk reports waiting to go out: a flood makes many,
// and a report that cannot be queued is settled instead (the relay then
// keeps the junk until the other missions' reports or its retention).
const junkQueue = 64

// reportJunk hands the settle tokens of junk alerts to the reporter,
// off the read path: a report costs the relay a lookup per alert, and a
// real alert behind a flood must not wait for them.
func (c *Client) reportJunk(tokens []string) {
	select {
	case c.junk <- tokens:
	default:
		ctx, cancel := context.WithTimeout(context.Background(), junkTimeout)
		defer cancel()
		if err := c.conn.Settle(ctx, tokens); err != nil {
			c.log.Info("settling junk with the relay", "err", err)
		}
	}
}

// junkTimeout bounds one junk report.
const junkTimeout = 30 * time.Second

// junkLoop sends the queued junk reports until Close. A report that fails
// leaves its alerts unsettled: the relay offers them again after its
// redelivery wait, and they are reported again then.
func (c *Client) junkLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case tokens := <-c.junk:
			ctx, cancel := context.WithTimeout(c.base, junkTimeout)
			removed, err := c.conn.ReportJunk(ctx, tokens)
			cancel()
			if err != nil {
				c.log.Info("reporting junk to the relay", "err", err)
				continue
			}
			c.emit(Event{Kind: EventJunkReported, Junk: len(tokens), Removed: int(removed)})
		}
	}
}

// RewindMailbox makes the next mailbox receive start from the oldest
// unsettled message again, so that messages a handler refused are offered
// once more.
func (c *Client) RewindMailbox() {
	c.cursorMu.Lock()
	c.cursor = 0
	c.cursorMu.Unlock()
}

// withinWork returns how many of msgs, in order, fit the decryption work
// one batch may cost. The first always does, so a batch makes progress.
func (c *Client) withinWork(msgs []relayconn.Fetched) int {
	candidates := len(c.cfg.Keyring.InboxKeys()) + 1
	work := 0
	for i, m := range msgs {
		info, err := envelope.Parse(m.Data)
		if err != nil {
			continue // refused by its structure, at no cost
		}
		work += info.Recipients * candidates
		if work > c.openWork && i > 0 {
			return i
		}
	}
	return len(msgs)
}

// resolveUnknown looks again, once, for the signers that the directory
// held does not name: it refreshes the directory (at most once every
// unknownSignerRefresh) and authorizes those messages against it.
func (c *Client) resolveUnknown(ctx context.Context, opened []*Received, errs []error) {
	if !slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, errUnknownSigner) }) {
		return
	}
	c.heldMu.Lock()
	due := c.lastUnknownRefresh.IsZero() || c.clock.Since(c.lastUnknownRefresh) >= unknownSignerRefresh
	if due {
		c.lastUnknownRefresh = c.clock.Now()
	}
	c.heldMu.Unlock()
	if !due {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := c.RefreshDirectory(rctx)
	cancel()
	if err != nil {
		c.log.Info("directory refresh for an unknown signer", "err", err)
		return
	}
	for i, err := range errs {
		if errors.Is(err, errUnknownSigner) {
			errs[i] = c.authorize(opened[i])
		}
	}
}

// holdBack decides whether r, signed by someone the directory held does
// not name, is kept pending. It is, unless it was written longer ago
// than holdUnknownSigner, or the current directory was issued after r
// was written (so its signer was no institution by then), or
// maxHeldBack messages are held already.
func (c *Client) holdBack(r *Received) bool {
	if c.clock.Since(r.Header.Created) > holdUnknownSigner {
		return false
	}
	if d, err := c.Directory(); err == nil && d.Issued.After(r.Header.Created) {
		return false
	}
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	if c.held[r.ID] {
		return true
	}
	if len(c.held) >= maxHeldBack {
		return false
	}
	c.held[r.ID] = true
	c.heldBack.Store(int64(len(c.held)))
	return true
}

// releaseHeld forgets a held message that has now been kept or dropped.
func (c *Client) releaseHeld(id routing.ID) {
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	if c.held[id] {
		delete(c.held, id)
		c.heldBack.Store(int64(len(c.held)))
	}
}

// openAll opens a batch. Opening is the costly step (a KEM decapsulation
// per stanza tried), so it is spread over the cores.
func (c *Client) openAll(msgs []relayconn.Fetched) ([]*Received, []error) {
	opened := make([]*Received, len(msgs))
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(len(msgs), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(msgs); i = int(next.Add(1) - 1) {
				opened[i], errs[i] = c.open(msgs[i].Data)
			}
		})
	}
	wg.Wait()
	return opened, errs
}

// kindOf names a source in log lines without naming a mailbox.
func kindOf(src proto.Source) string {
	switch {
	case src.Alerts:
		return "alerts"
	case src.Bridged:
		return "bridged"
	}
	return "mailbox"
}

// isTransient reports whether err is worth retrying unchanged: the relay
// was unreachable, busy, or its storage failed.
func isTransient(err error) bool {
	var t *transientError
	if errors.As(err, &t) {
		return true
	}
	var perr *proto.Error
	if errors.As(err, &perr) {
		return perr.Code.Retryable()
	}
	return errors.Is(err, relayconn.ErrNotConnected) || errors.Is(err, context.DeadlineExceeded)
}
