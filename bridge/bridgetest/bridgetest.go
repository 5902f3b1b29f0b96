// Package bridgetest fakes a partner government's relay for tests of the
// bridge: a [Partner] is a [bridge.Transport] that keeps what it is
// delivered in memory, once per message id, and that a test can take
// down, slow down and inspect. The same tests run against real relays
// through bridge.NewNATS and bridge.NewWebSocket.
package bridgetest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hrdbeacon/beacon/bridge"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/routing"
)

// A Partner is an in-memory partner relay. The zero value is not usable;
// call [New].
type Partner struct {
	mu       sync.Mutex
	down     bool
	gate     chan struct{} // closed: deliveries go through
	stored   map[routing.ID][]byte
	order    []routing.ID
	attempts int
	returns  []bridge.Return
	seq      int
	closed   bool

	// Attempts receives the number of envelopes in each Deliver call, as
	// it starts.
	Attempts chan int
	// Stored receives the id of each envelope the first time it is
	// stored.
	Stored chan routing.ID

	connected chan struct{} // closed while up
	wake      chan struct{} // a value when an answer is queued
}

var _ bridge.Transport = (*Partner)(nil)

// New returns a partner relay that is up.
func New() *Partner {
	p := &Partner{gate: make(chan struct{}), stored: map[routing.ID][]byte{}, Attempts: make(chan int, 1<<16),
		Stored: make(chan routing.ID, 1<<16), connected: make(chan struct{}), wake: make(chan struct{}, 1)}
	close(p.gate)
	close(p.connected)
	return p
}

// Down makes the partner unreachable: every delivery fails as a relay
// that cannot be reached does, and nothing is stored.
func (p *Partner) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.down {
		p.down = true
		p.connected = make(chan struct{})
	}
}

// Up makes it reachable again.
func (p *Partner) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		p.down = false
		close(p.connected)
	}
}

// Hold makes deliveries wait (a slow partner) until Release, or until
// their context ends.
func (p *Partner) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default:
	}
}

// Release lets held deliveries through.
func (p *Partner) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// Deliver implements bridge.Transport.
func (p *Partner) Deliver(ctx context.Context, batch []bridge.Delivery) []bridge.Result {
	p.mu.Lock()
	p.attempts++
	gate := p.gate
	p.mu.Unlock()
	select {
	case p.Attempts <- len(batch):
	default:
	}
	out := make([]bridge.Result, len(batch))
	select {
	case <-gate:
	case <-ctx.Done():
		for i := range out {
			out[i].Err = fmt.Errorf("%w: %w", relayconn.ErrNotConnected, ctx.Err())
		}
		return out
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, d := range batch {
		switch {
		case p.closed:
			out[i].Err = relayconn.ErrClosed
		case p.down:
			out[i].Err = relayconn.ErrNotConnected
		case d.Hops < 1:
			out[i].Err = fmt.Errorf("bridgetest: hops %d", d.Hops)
		case p.stored[d.ID] != nil:
			out[i].Duplicate = true
		default:
			p.stored[d.ID] = d.Envelope
			p.order = append(p.order, d.ID)
			select {
			case p.Stored <- d.ID:
			default:
			}
		}
	}
	return out
}

// Has reports whether an envelope with id is stored.
func (p *Partner) Has(id routing.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stored[id] != nil
}

// IDs returns the ids stored, in the order they were first stored.
func (p *Partner) IDs() []routing.ID {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]routing.ID(nil), p.order...)
}

// DeliverCalls is how many times Deliver was called.
func (p *Partner) DeliverCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.attempts
}

// Answer queues an answer for the bridge to carry back (the partner's
// console answering through its relay).
func (p *Partner) Answer(r bridge.Return) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	r.Settle = "fake." + strconv.Itoa(p.seq)
	p.returns = append(p.returns, r)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Unsettled is how many answers wait to be carried back.
func (p *Partner) Unsettled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.returns)
}

// Returns implements bridge.Transport: what is queued; when nothing is,
// it long-polls as a relay does, until an answer is queued, wait passes
// (on the real clock, as the relay's own) or ctx ends.
func (p *Partner) Returns(ctx context.Context, max int, wait time.Duration) ([]bridge.Return, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		p.mu.Lock()
		if p.down || p.closed {
			p.mu.Unlock()
			return nil, relayconn.ErrNotConnected
		}
		out := append([]bridge.Return(nil), p.returns[:min(max, len(p.returns))]...)
		p.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-t.C:
			return nil, nil
		case <-p.wake:
		}
	}
}

// Settle implements bridge.Transport.
func (p *Partner) Settle(_ context.Context, tokens []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return relayconn.ErrNotConnected
	}
	for _, tok := range tokens {
		for i, r := range p.returns {
			if r.Settle == tok {
				p.returns = append(p.returns[:i], p.returns[i+1:]...)
				break
			}
		}
	}
	return nil
}

// WaitConnected implements bridge.Transport.
func (p *Partner) WaitConnected(ctx context.Context) error {
	p.mu.Lock()
	ch := p.connected
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", relayconn.ErrNotConnected, ctx.Err())
	}
}

// Connected implements bridge.Transport.
func (p *Partner) Connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.down && !p.closed
}

// Close implements bridge.Transport.
func (p *Partner) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
}
