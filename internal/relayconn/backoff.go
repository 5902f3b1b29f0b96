package relayconn

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jonboulle/clockwork"
)

// ReconnectDelay is the delay before reconnect attempt n: exponential from
// 250 ms to 30 s, with jitter so that a relay restart is not met by every
// client at once.
func ReconnectDelay(n int) time.Duration {
	return jitter(250*time.Millisecond<<min(n, 7), 30*time.Second)
}

// A Backoff spaces out the retries of a loop that talks to the relay (an
// outbox flush, a follow, the bridge's forwarding): each failure doubles
// the delay from Min to Max, with jitter; a success resets it. The zero
// value uses 250 ms and 30 s.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the delay before the next attempt and counts a failure.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 250 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	d := lo << min(b.n, 20)
	if d <= 0 || d > hi {
		d = hi
	}
	b.n++
	return jitter(d, hi)
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.n = 0 }

// Failures is how many failures have been counted since the last Reset.
func (b *Backoff) Failures() int { return b.n }

// jitter returns a delay in [d/2, d], capped at hi.
func jitter(d, hi time.Duration) time.Duration {
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d on clock, or until ctx ends, and then returns ctx's error.
// Loops that talk to the relay wait with it, so a test's fake clock
// decides when they try again.
func Sleep(ctx context.Context, clock clockwork.Clock, d time.Duration) error {
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
