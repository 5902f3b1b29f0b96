package relay

import (
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"
)

// limiter keeps one token bucket per key (a connection's mailbox, an
// address). Idle
// buckets are dropped so a stream of one-time keys cannot grow it without
// bound: a bucket that has refilled completely holds no state worth
// keeping.
type limiter[K comparable] struct {
	rate  rate.Limit
	burst int
	clock clockwork.Clock

	mu      sync.Mutex
	buckets map[K]*bucket
	ops     int
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// sweepEvery is how many Allow calls pass between sweeps of idle buckets.
const sweepEvery = 4096

func newLimiter[K comparable](perSecond float64, burst int, clock clockwork.Clock) *limiter[K] {
	return &limiter[K]{rate: rate.Limit(perSecond), burst: burst, clock: clock, buckets: make(map[K]*bucket)}
}

// Allow reports whether key may publish now, taking a token if so.
func (l *limiter[K]) Allow(key K) bool {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.last = now
	if l.ops++; l.ops >= sweepEvery {
		l.ops = 0
		l.sweep(now)
	}
	return b.lim.AllowN(now, 1)
}

// sweep drops buckets idle long enough to have refilled.
func (l *limiter[K]) sweep(now time.Time) {
	refill := time.Duration(float64(l.burst) / float64(l.rate) * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) > refill {
			delete(l.buckets, k)
		}
	}
}
