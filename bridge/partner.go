package bridge

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hrdbeacon/beacon/bridge/receipt"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// A partner is one partner government: its transport, its forwarder (the
// home relay's SHARED to the partner's relay) and its carrier of answers
// (the partner's RETURN to the home relay). Each partner has goroutines,
// a backoff and a position on SHARED of its own, so a slow or dead
// partner delays no other.
type partner struct {
	b     *Bridge
	cfg   PartnerConfig
	prios []routing.Priority
	t     Transport
	m     *partnerMetrics

	mu     sync.Mutex
	oldest time.Time // created time of the oldest envelope held and not yet stored; zero if none
}

// An item is one envelope read from SHARED and not yet settled.
type item struct {
	settle  string
	d       Delivery
	replyTo routing.Mailbox
	created time.Time
	// receipt is the signed receipt once the partner's relay stored it
	// (nil if it could not be signed).
	receipt []byte
}

// forward is the forwarder: read a batch of what is shared with the
// partner, keep what is in its scope, store it on the partner's relay,
// sign and send the receipts, and only then settle the batch with the
// home relay. What the partner's relay did not take is retried, with
// exponential backoff and jitter, until it does; nothing is settled
// before it is stored and receipted, so a crash anywhere re-reads it,
// and the partner's relay keeps it once (the message id is the key).
//
// The five steps run as a pipeline, one goroutine each, batches passing
// in order: while one batch is delivered, the next is read, the one
// before is signed, the one before that has its receipts stored and an
// older one is settled. They wait on different relays, streams and
// cores, so their round trips and work overlap; over a wide-area link
// no step waits for another's round trip. What is unsettled at once is
// bounded by what the home relay lets one reader hold and by the queues
// between the steps.
//
// Deliveries stay in order: a batch the partner's relay did not wholly
// take is retried, with backoff, before the next is delivered.
func (p *partner) forward(ctx context.Context) {
	fetched := make(chan []*item)
	stored := make(chan []*item, stageQueue)
	signed := make(chan []*item, stageQueue)
	settles := make(chan []string, settleQueue)
	var wg sync.WaitGroup
	wg.Go(func() { defer close(fetched); p.fetcher(ctx, fetched) })
	wg.Go(func() { defer close(signed); p.signer(ctx, stored, signed) })
	wg.Go(func() { defer close(settles); p.receipter(ctx, signed, settles) })
	wg.Go(func() { p.settler(ctx, settles) })
	defer wg.Wait()
	defer close(stored)
	bo := relayconn.Backoff{Min: p.b.cfg.Retry.Min, Max: p.b.cfg.Retry.Max}
	for held := range fetched {
		p.setOldest(held)
		for len(held) > 0 && ctx.Err() == nil {
			done, settle, retry, ev := p.deliver(ctx, held)
			p.settleHome(ctx, settle)
			ev.Partner, ev.Settled, ev.Retry = p.cfg.ID, len(settle), len(retry)
			p.b.emit(ev)
			if len(done) > 0 && !send(ctx, stored, done) {
				return
			}
			held = retry
			p.setOldest(held)
			if len(held) > 0 && ctx.Err() == nil {
				p.m.retries.Inc()
				p.b.wait(ctx, bo.Next())
			} else {
				bo.Reset()
			}
		}
	}
}

// send hands v to the next step of the pipeline, unless ctx ends first.
func send[T any](ctx context.Context, ch chan<- T, v T) bool {
	select {
	case ch <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// fetcher reads what is shared with the partner, settles at once what is
// out of its scope, and hands the rest on.
func (p *partner) fetcher(ctx context.Context, out chan<- []*item) {
	bo := relayconn.Backoff{Min: p.b.cfg.Retry.Min, Max: p.b.cfg.Retry.Max}
	for ctx.Err() == nil {
		msgs, err := p.b.home.Fetch(ctx, proto.SharedSource(p.cfg.ID), relayconn.FetchOptions{Max: p.b.cfg.Batch, Wait: p.b.cfg.Wait})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.b.log.Warn("reading what is shared", "partner", p.cfg.ID, "err", err)
			p.b.wait(ctx, bo.Next())
			continue
		}
		bo.Reset()
		held, drop := p.classify(msgs)
		if len(drop) > 0 {
			p.settleHome(ctx, drop)
			p.b.emit(Event{Partner: p.cfg.ID, Settled: len(drop), Dropped: len(drop)})
		}
		if len(held) > 0 && !send(ctx, out, held) {
			return
		}
	}
}

const (
	// stageQueue is how many batches may wait between two steps of the
	// forwarder.
	stageQueue = 1
	// settleQueue is how many receipted batches may wait to be settled;
	// the settler takes every one waiting in one request.
	settleQueue = 4
)

// signer signs the receipts of each stored batch and hands it on.
func (p *partner) signer(ctx context.Context, in <-chan []*item, out chan<- []*item) {
	for batch := range in {
		// Once ctx ends it drains: what is not settled is read again.
		if ctx.Err() == nil {
			p.sign(batch)
			send(ctx, out, batch)
		}
	}
}

// receipter stores the receipts of each signed batch on the home relay
// and hands the settle tokens of those stored to the settler, retrying
// with backoff what the home relay does not take.
func (p *partner) receipter(ctx context.Context, in <-chan []*item, settles chan<- []string) {
	bo := relayconn.Backoff{Min: p.b.cfg.Retry.Min, Max: p.b.cfg.Retry.Max}
	for batch := range in {
		for len(batch) > 0 && ctx.Err() == nil {
			settle, retry := p.receipts(ctx, batch)
			if len(settle) > 0 && !send(ctx, settles, settle) {
				break
			}
			batch = retry
			if len(batch) > 0 {
				p.b.emit(Event{Partner: p.cfg.ID, Retry: len(batch)})
				p.m.retries.Inc()
				p.b.wait(ctx, bo.Next())
				// Signed again: a receipt is refused once it is older
				// than the home relay's dedup window.
				p.sign(batch)
			} else {
				bo.Reset()
			}
		}
	}
}

// settler settles what was stored and receipted, taking every batch
// that waits in one request.
func (p *partner) settler(ctx context.Context, in <-chan []string) {
	for tokens := range in {
	more:
		for len(tokens) < proto.MaxSettle {
			select {
			case t, ok := <-in:
				if !ok {
					break more
				}
				tokens = append(tokens, t...)
			default:
				break more
			}
		}
		if ctx.Err() != nil {
			continue // drain: the home relay offers them again
		}
		p.settleHome(ctx, tokens)
		p.b.emit(Event{Partner: p.cfg.ID, Settled: len(tokens)})
	}
}

// classify keeps the envelopes of a batch that are in the partner's
// scope; the rest are settled at once, never forwarded.
func (p *partner) classify(msgs []relayconn.Fetched) (keep []*item, drop []string) {
	dp := p.b.partnerOf(p.cfg.ID)
	for _, m := range msgs {
		subj, err := proto.ParseSubject(m.Subject)
		info, perr := envelope.Parse(m.Data)
		switch {
		case err != nil || subj.Kind != proto.KindShare || perr != nil ||
			info.Country != subj.Country || info.Priority != subj.Priority:
			// The relay checked all this when it stored it; a relay that
			// serves otherwise is not to be followed.
			p.m.dropped.WithLabelValues("malformed").Inc()
			drop = append(drop, m.Settle)
		case !p.inScope(dp, subj.Country, subj.Priority):
			p.m.dropped.WithLabelValues("out_of_scope").Inc()
			drop = append(drop, m.Settle)
		default:
			keep = append(keep, &item{settle: m.Settle, replyTo: info.ReplyTo, created: info.Created,
				d: Delivery{ID: info.ID, Country: info.Country, Priority: info.Priority, Envelope: m.Data, Hops: 1}})
		}
	}
	return keep, drop
}

// inScope reports whether an envelope of country cc and priority pr is
// for the partner: the home directory gives the partner cc (the sender
// sealed it to the partners the directory lists for cc), the config does
// not narrow cc away, and the config forwards pr.
func (p *partner) inScope(dp *keys.Partner, cc string, pr routing.Priority) bool {
	if dp == nil || !slices.Contains(dp.Countries, cc) {
		return false
	}
	if len(p.cfg.Countries) > 0 && !slices.Contains(p.cfg.Countries, cc) {
		return false
	}
	return slices.Contains(p.prios, pr)
}

// deliver stores held on the partner's relay; it returns what it stored
// (for the receipter), the settle tokens of what was refused for good,
// and the items to retry.
func (p *partner) deliver(ctx context.Context, held []*item) (stored []*item, settle []string, retry []*item, ev Event) {
	batch := make([]Delivery, len(held))
	for i, it := range held {
		batch[i] = it.d
	}
	dctx, cancel := context.WithTimeout(ctx, p.b.cfg.Timeout)
	results := p.t.Deliver(dctx, batch)
	cancel()
	for i, r := range results {
		it := held[i]
		switch {
		case r.Err == nil:
			stored = append(stored, it)
			ev.Stored++
			if r.Duplicate {
				ev.Duplicates++
				p.m.duplicates.Inc()
			} else {
				p.m.forwarded.Inc()
			}
		case refusedForGood(r.Err):
			p.b.log.Warn("the partner's relay refused an envelope for good", "partner", p.cfg.ID, "err", r.Err)
			p.m.dropped.WithLabelValues("refused").Inc()
			ev.Dropped++
			settle = append(settle, it.settle)
		default:
			if i == 0 || !errors.Is(r.Err, results[0].Err) {
				p.b.log.Info("the partner's relay did not take an envelope; retrying", "partner", p.cfg.ID, "err", r.Err)
			}
			retry = append(retry, it)
		}
	}
	if len(stored) > 0 {
		p.m.lastSuccess.Set(float64(p.b.clock.Now().UnixNano()) / 1e9)
	}
	return stored, settle, retry, ev
}

// refusedForGood reports whether a relay's refusal is about the message
// itself, so that sending it again cannot succeed. A refusal about the
// bridge (forbidden: a directory does not list it, or lists another key;
// a subject the relay does not know) is a configuration to fix, and the
// message waits for it rather than being dropped.
func refusedForGood(err error) bool {
	var perr *proto.Error
	if !errors.As(err, &perr) {
		return false
	}
	switch perr.Code {
	case proto.CodeMalformed, proto.CodeTooLarge, proto.CodeVersion, proto.CodeMismatch, proto.CodeStale:
		return true
	}
	return false
}

// sign signs the receipt of each item of a stored batch. Signing is
// the costly step (an Ed25519 signature each): it is spread over the
// cores.
func (p *partner) sign(batch []*item) {
	now := p.b.clock.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(len(batch), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(batch); i = int(next.Add(1) - 1) {
				it := batch[i]
				r, err := receipt.Sign(it.d.ID, it.d.Country, p.cfg.ID, now, p.b.kr.Identity)
				if err != nil {
					// Only a partner id message.Receipt refuses; Validate checked it.
					p.b.log.Error("signing a receipt", "partner", p.cfg.ID, "err", err)
				}
				it.receipt = r
			}
		})
	}
	wg.Wait()
}

// receipts stores the signed receipt of each stored envelope in the
// sender's reply mailbox (if it gave one) and in RECEIPTS, and returns
// the settle tokens of the envelopes whose receipts the home relay took,
// and the items whose receipts to send again.
func (p *partner) receipts(ctx context.Context, stored []*item) (settle []string, retry []*item) {
	var outs []relayconn.Outgoing
	owner := make([]int, 0, 2*len(stored))
	for i, it := range stored {
		if it.receipt == nil {
			continue // could not be signed: settled without one
		}
		if !it.replyTo.IsZero() {
			outs = append(outs, relayconn.Outgoing{Target: proto.MailboxTarget(it.replyTo), Data: it.receipt})
			owner = append(owner, i)
		}
		outs = append(outs, relayconn.Outgoing{Target: proto.Receipt(it.d.ID, p.cfg.ID).Target(), Data: it.receipt})
		owner = append(owner, i)
	}
	failed := make([]bool, len(stored))
	for start := 0; start < len(outs); start += relayconn.MaxBatch {
		end := min(len(outs), start+relayconn.MaxBatch)
		rctx, cancel := context.WithTimeout(ctx, p.b.cfg.Timeout)
		_, errs := p.b.home.PublishFrames(rctx, outs[start:end])
		cancel()
		for j, err := range errs {
			switch {
			case err == nil, alreadyStored(err):
			case refusedForGood(err):
				p.b.log.Warn("the home relay refused a receipt", "partner", p.cfg.ID, "err", err)
			default:
				failed[owner[start+j]] = true
			}
		}
	}
	for i, it := range stored {
		if failed[i] {
			retry = append(retry, it)
			continue
		}
		if it.receipt != nil {
			p.m.receipts.Inc()
		}
		settle = append(settle, it.settle)
	}
	return settle, retry
}

// settleHome settles tokens with the home relay. A lost settle only
// means the relay offers the envelopes again; the partner's relay keeps
// each once.
func (p *partner) settleHome(ctx context.Context, tokens []string) {
	if len(tokens) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, p.b.cfg.Timeout)
	defer cancel()
	if err := p.b.home.Settle(sctx, tokens); err != nil && ctx.Err() == nil {
		p.b.log.Info("settling with the home relay", "partner", p.cfg.ID, "err", err)
	}
}

func (p *partner) setOldest(held []*item) {
	var oldest time.Time
	for _, it := range held {
		if oldest.IsZero() || it.created.Before(oldest) {
			oldest = it.created
		}
	}
	p.mu.Lock()
	p.oldest = oldest
	p.mu.Unlock()
}

// oldestAge is the age of the oldest envelope held and not yet stored at
// the partner, or 0.
func (p *partner) oldestAge() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oldest.IsZero() {
		return 0
	}
	return p.b.clock.Since(p.oldest)
}

// carryBack carries the partner's answers — sealed acks and replies for
// senders' mailboxes, signed ack tokens — from the partner's relay to the
// home relay, and settles them there only once the home relay stored
// them (or refused them for good).
func (p *partner) carryBack(ctx context.Context) {
	bo := relayconn.Backoff{Min: p.b.cfg.Retry.Min, Max: p.b.cfg.Retry.Max}
	for ctx.Err() == nil {
		if err := p.t.WaitConnected(ctx); err != nil {
			return
		}
		rs, err := p.t.Returns(ctx, p.b.cfg.Batch, p.b.cfg.Wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.b.log.Info("reading the partner's answers", "partner", p.cfg.ID, "err", err)
			p.b.wait(ctx, bo.Next())
			continue
		}
		if len(rs) == 0 {
			continue
		}
		var outs []relayconn.Outgoing
		var idx []int
		var settle []string
		for i, r := range rs {
			switch r.Subject.Kind {
			case proto.KindReturnMailbox:
				outs = append(outs, relayconn.Outgoing{Target: proto.MailboxTarget(r.Subject.Mailbox), Data: r.Data})
				idx = append(idx, i)
			case proto.KindReturnAck:
				outs = append(outs, relayconn.Outgoing{Target: proto.AckTarget(r.Subject.ID), Data: r.Data})
				idx = append(idx, i)
			default:
				p.m.dropped.WithLabelValues("malformed").Inc()
				settle = append(settle, r.Settle)
			}
		}
		retry := false
		for start := 0; start < len(outs); start += relayconn.MaxBatch {
			end := min(len(outs), start+relayconn.MaxBatch)
			hctx, cancel := context.WithTimeout(ctx, p.b.cfg.Timeout)
			_, errs := p.b.home.PublishFrames(hctx, outs[start:end])
			cancel()
			for j, err := range errs {
				r := rs[idx[start+j]]
				switch {
				case err == nil:
					p.m.returned.Inc()
					settle = append(settle, r.Settle)
				case refusedForGood(err):
					p.b.log.Warn("the home relay refused a partner's answer", "partner", p.cfg.ID, "err", err)
					p.m.dropped.WithLabelValues("refused").Inc()
					settle = append(settle, r.Settle)
				default:
					retry = true // offered again by the partner's relay after its redelivery wait
				}
			}
		}
		if len(settle) > 0 {
			sctx, cancel := context.WithTimeout(ctx, p.b.cfg.Timeout)
			if err := p.t.Settle(sctx, settle); err != nil && ctx.Err() == nil {
				p.b.log.Info("settling with the partner's relay", "partner", p.cfg.ID, "err", err)
			}
			cancel()
		}
		p.b.emit(Event{Partner: p.cfg.ID, Returned: len(settle)})
		if retry {
			p.b.wait(ctx, bo.Next())
		} else {
			bo.Reset()
		}
	}
}
