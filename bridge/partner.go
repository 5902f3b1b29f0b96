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
}

// forward is the forwarder: read a batch of what is shared with the
// partner, keep what is in its scope, store it on the partner's relay,
// send the receipts, and only then settle the batch with the home relay.
// What the partner's relay did not take is retried, with exponential
// backoff and jitter, until it does; nothing is settled before it is
// stored and receipted, so a crash anywhere re-reads it, and the
// partner's relay keeps it once (the message id is the key).
//
// The three steps run as a pipeline, one goroutine each, batches passing
// in order: while one batch is delivered, the next is read and the
// receipts of the one before go out. They wait on different relays and
// streams, so their round trips and writes overlap. At most four batches
// are unsettled at once, within what the relay lets a consumer hold.
func (p *partner) forward(ctx context.Context) {
	fetched := make(chan []*item)
	stored := make(chan []*item, receiptQueue)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); defer close(fetched); p.fetcher(ctx, fetched) }()
	go func() { defer wg.Done(); p.receipter(ctx, stored) }()
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
			if len(done) > 0 {
				select {
				case stored <- done:
				case <-ctx.Done():
				}
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
		if len(held) == 0 {
			continue
		}
		select {
		case out <- held:
		case <-ctx.Done():
			return
		}
	}
}

// receiptQueue is how many stored batches may wait for their receipts.
const receiptQueue = 1

// receipter sends the receipts of each stored batch and settles it,
// retrying with backoff what the home relay does not take.
func (p *partner) receipter(ctx context.Context, queue <-chan []*item) {
	bo := relayconn.Backoff{Min: p.b.cfg.Retry.Min, Max: p.b.cfg.Retry.Max}
	for batch := range queue {
		for len(batch) > 0 && ctx.Err() == nil {
			settle, retry := p.receipts(ctx, batch)
			p.settleHome(ctx, settle)
			p.b.emit(Event{Partner: p.cfg.ID, Settled: len(settle), Retry: len(retry)})
			batch = retry
			if len(batch) > 0 {
				p.m.retries.Inc()
				p.b.wait(ctx, bo.Next())
			} else {
				bo.Reset()
			}
		}
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

// receipts sends the signed receipt for each stored envelope to the
// sender's reply mailbox (if it gave one) and to RECEIPTS, and returns
// the settle tokens of the envelopes whose receipts the home relay took,
// and the items whose receipts to send again.
func (p *partner) receipts(ctx context.Context, stored []*item) (settle []string, retry []*item) {
	now := p.b.clock.Now()
	signed := make([][]byte, len(stored))
	errs := make([]error, len(stored))
	// Signing is the costly step (an Ed25519 signature each): spread it
	// over the cores.
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(len(stored), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(stored); i = int(next.Add(1) - 1) {
				it := stored[i]
				signed[i], errs[i] = receipt.Sign(it.d.ID, it.d.Country, p.cfg.ID, now, p.b.kr.Identity)
			}
		})
	}
	wg.Wait()
	var outs []relayconn.Outgoing
	owner := make([]int, 0, 2*len(stored))
	for i, it := range stored {
		r, err := signed[i], errs[i]
		if err != nil {
			// Only a partner id message.Receipt refuses; Validate checked it.
			p.b.log.Error("signing a receipt", "partner", p.cfg.ID, "err", err)
			settle = append(settle, it.settle)
			continue
		}
		if !it.replyTo.IsZero() {
			outs = append(outs, relayconn.Outgoing{Target: proto.MailboxTarget(it.replyTo), Data: r})
			owner = append(owner, i)
		}
		outs = append(outs, relayconn.Outgoing{Target: proto.Receipt(it.d.ID, p.cfg.ID).Target(), Data: r})
		owner = append(owner, i)
	}
	failed := make([]bool, len(stored))
	for start := 0; start < len(outs); start += relayconn.MaxBatch {
		end := min(len(outs), start+relayconn.MaxBatch)
		rctx, cancel := context.WithTimeout(ctx, p.b.cfg.Timeout)
		_, errs := p.b.home.PublishBatch(rctx, outs[start:end])
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
		p.m.receipts.Inc()
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
			_, errs := p.b.home.PublishBatch(hctx, outs[start:end])
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
