package relay

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// admission decides whether a walk-in's envelope may be stored: a proof
// of work when the relay is under load, then the walk-ins' global budget.
// It follows Tor's onion-service proof of work (proposal 327): the
// difficulty is near zero while the relay is quiet and rises while the
// walk-ins ask for more than the budget, and a client that is refused
// raises its effort. Unlike Tor, the relay keeps no queue to serve the
// highest effort first; instead the last quarter of the budget is open
// only to proofs above the current difficulty, so a client that was
// refused for want of budget and solved one bit harder gets through ahead
// of everyone still at the current difficulty.
//
// Lock order: admission.mu is a leaf; nothing is called while it is held.
type admission struct {
	cfg   AdmissionConfig
	clock clockwork.Clock
	key   []byte // MAC key of challenges, shared by a cluster's nodes
	m     *admissionMetrics

	mu     sync.Mutex
	bits   int
	demand float64 // envelopes past the proof check in this period
	msgs   reserveBucket
	bytes  reserveBucket
	// seen holds the proofs checked in the last two challenge lifetimes:
	// a proof replayed for the same envelope costs nothing more.
	seen, seenOld map[[32]byte]struct{}
	rotated       time.Time
}

// reserveShare is the part of the walk-in budget kept for proofs above
// the current difficulty.
const reserveShare = 0.25

// maxSeenProofs bounds the replay memory between rotations; past it the
// oldest generation is dropped early. A proof dropped from it can be
// replayed once more, for the same envelope, which JetStream stores once.
const maxSeenProofs = 1 << 18

func newAdmission(cfg AdmissionConfig, key []byte, clock clockwork.Clock, reg prometheus.Registerer) *admission {
	now := clock.Now()
	a := &admission{cfg: cfg, clock: clock, key: key, bits: cfg.MinBits,
		msgs:  newBucket(cfg.Rate, float64(cfg.Burst), now),
		bytes: newBucket(float64(cfg.BytesPerSecond), float64(cfg.BytesBurst), now),
		seen:  map[[32]byte]struct{}{}, seenOld: map[[32]byte]struct{}{}, rotated: now,
		m: newAdmissionMetrics(reg)}
	a.m.bits.Set(float64(a.bits))
	return a
}

// run adjusts the difficulty every AdjustEvery until ctx ends.
func (a *admission) run(ctx context.Context) {
	t := a.clock.NewTicker(a.cfg.AdjustEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
			a.adjust()
		}
	}
}

// adjust is one step of the controller. Demand above the budget raises
// the difficulty by as many bits as it takes to halve the demand below
// it (a flooder's rate halves with every bit); demand under a quarter of
// the budget lowers it one bit, so it comes down slowly after an attack.
func (a *admission) adjust() {
	a.mu.Lock()
	defer a.mu.Unlock()
	budget := a.cfg.Rate * a.cfg.AdjustEvery.Seconds()
	switch {
	case a.demand > budget:
		a.bits += max(1, int(math.Floor(math.Log2(a.demand/budget))))
	case a.demand < budget/4:
		a.bits--
	}
	a.bits = min(max(a.bits, a.cfg.MinBits), a.cfg.MaxBits)
	a.demand = 0
	a.m.bits.Set(float64(a.bits))
}

// difficulty is the number of bits a proof must reach now.
func (a *admission) difficulty() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bits
}

// admit checks a walk-in's envelope (data, sent by mbox) and its proof
// header, if any. It returns nil when the envelope may be stored.
func (a *admission) admit(mbox routing.Mailbox, data []byte, header string) *refusal {
	now := a.clock.Now()
	d := a.difficulty()
	achieved := 0
	if d > 0 || header != "" {
		var ref *refusal
		if achieved, ref = a.checkProof(mbox, data, header, d, now); ref != nil {
			a.m.outcome.WithLabelValues(string(ref.code)).Inc()
			return ref
		}
	}
	a.mu.Lock()
	a.demand++
	reserve := 0.0
	if achieved <= a.bits {
		reserve = reserveShare
	}
	ok := a.msgs.take(now, 1, reserve) && a.bytes.take(now, float64(len(data)), reserve)
	if ok {
		a.mu.Unlock()
		a.m.outcome.WithLabelValues("admitted").Inc()
		return nil
	}
	a.mu.Unlock()
	a.m.outcome.WithLabelValues("budget").Inc()
	ref := refuse(proto.CodeAdmission, "the relay is under load and the walk-ins' budget is spent; solve the challenge at %d bits and send it again", achieved+1)
	ref.challenge = a.challenge(mbox, max(d, achieved+1), now)
	return ref
}

// checkProof verifies a proof header for d bits and returns the bits it
// reached. Cheapest first: the token's MAC and lifetime, the replay
// memory, the SHA-256 stamp, and only then one Argon2id call.
func (a *admission) checkProof(mbox routing.Mailbox, data []byte, header string, d int, now time.Time) (int, *refusal) {
	again := func(format string, args ...any) (int, *refusal) {
		ref := refuse(proto.CodeAdmission, format, args...)
		ref.challenge = a.challenge(mbox, d, now)
		return 0, ref
	}
	if header == "" {
		return again("the relay is under load: solve the challenge (%d bits) and send it again", d)
	}
	pr, err := proto.ParseProof(header)
	if err != nil {
		return again("the proof is not well formed")
	}
	p, raw, err := proto.ParseChallenge(pr.Token)
	if err != nil || !hmac.Equal(raw[proto.ChallengeSize-16:], a.mac(mbox, raw[:proto.ChallengeSize-16])) {
		return again("the challenge was not issued by this relay for this connection")
	}
	if !now.Before(p.Expires) {
		return again("the challenge expired")
	}
	digest := sha256.Sum256(data)
	seenKey := sha256.Sum256(append(append([]byte{}, raw...), digest[:]...))
	a.mu.Lock()
	_, replay := a.seen[seenKey]
	if !replay {
		_, replay = a.seenOld[seenKey]
	}
	a.mu.Unlock()
	if replay {
		return again("this proof was used already")
	}
	claimed := proto.LeadingZeros(pr.Work[:])
	if claimed < d {
		return again("the proof reaches %d bits; the relay asks for %d now", claimed, d)
	}
	stamp := proto.ProofStamp(raw, mbox, &digest, pr.Nonce, &pr.Work, pr.Stamp)
	if proto.LeadingZeros(stamp[:]) < p.StampBits {
		return again("the proof's stamp is short of %d bits", p.StampBits)
	}
	if work := proto.ProofWork(p, raw, mbox, &digest, pr.Nonce); !hmac.Equal(work[:], pr.Work[:]) {
		return again("the proof's work is not what it claims")
	}
	got := claimed
	a.remember(seenKey, now)
	return got, nil
}

// remember records a checked proof, rotating the replay memory once per
// challenge lifetime (a proof's token is dead after one).
func (a *admission) remember(k [32]byte, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(a.rotated) >= a.cfg.ChallengeLifetime || len(a.seen) >= maxSeenProofs {
		a.seenOld, a.seen, a.rotated = a.seen, map[[32]byte]struct{}{}, now
	}
	a.seen[k] = struct{}{}
}

// challenge issues a token for mbox asking for bits.
func (a *admission) challenge(mbox routing.Mailbox, bits int, now time.Time) *proto.Challenge {
	p := proto.ChallengeParams{Bits: min(bits, proto.MaxProofBits), StampBits: a.cfg.StampBits,
		MemoryKiB: uint32(a.cfg.MemoryKiB), Passes: uint32(a.cfg.Passes), Expires: now.Add(a.cfg.ChallengeLifetime)}
	rand.Read(p.Random[:])
	body := p.Body()
	return &proto.Challenge{Token: proto.EncodeChallenge(body, a.mac(mbox, body)), Bits: p.Bits}
}

func (a *admission) mac(mbox routing.Mailbox, body []byte) []byte {
	h := hmac.New(sha256.New, a.key)
	h.Write([]byte("beacon.admission.v1/challenge"))
	h.Write(mbox[:])
	h.Write(body)
	return h.Sum(nil)[:16]
}

// A reserveBucket is a token bucket that can keep a reserve: take with a
// reserve fails while fewer than reserve × burst tokens would remain.
type reserveBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate, burst float64, now time.Time) reserveBucket {
	return reserveBucket{rate: rate, burst: burst, tokens: burst, last: now}
}

func (b *reserveBucket) take(now time.Time, n, reserve float64) bool {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
		b.last = now
	}
	if b.tokens-n < reserve*b.burst {
		return false
	}
	b.tokens -= n
	return true
}

type admissionMetrics struct {
	bits    prometheus.Gauge
	outcome *prometheus.CounterVec
}

func newAdmissionMetrics(reg prometheus.Registerer) *admissionMetrics {
	m := &admissionMetrics{
		bits: prometheus.NewGauge(prometheus.GaugeOpts{Name: "beacon_relay_admission_bits",
			Help: "The proof-of-work difficulty walk-ins must reach now (leading zero bits)."}),
		outcome: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "beacon_relay_admission_total",
			Help: "Walk-in envelopes at admission: admitted, refused for want of budget, or refused for the proof."},
			[]string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.bits, m.outcome)
	}
	return m
}

// admissionBucket is the KV bucket holding the challenges' MAC key, so
// that every node of a cluster accepts the others' challenges.
const admissionBucket = "beacon_admission"

// admissionKey returns the challenges' MAC key, creating it once for the
// whole cluster: the first node to store it wins, the others read it.
func (r *Relay) admissionKey(ctx context.Context) ([]byte, error) {
	key := make([]byte, 32)
	rand.Read(key)
	for {
		// Bounded attempts, as for the streams: nodes starting together
		// race to create the bucket and a meta leader may leave one
		// unanswered.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		got, err := r.readOrCreateKey(actx, key)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return got, err
		}
	}
}

func (r *Relay) readOrCreateKey(ctx context.Context, key []byte) ([]byte, error) {
	kv, err := r.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: admissionBucket,
		Description: "the MAC key of admission challenges", Replicas: r.cfg.Storage.Replicas, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	if _, err := kv.Create(ctx, "mac", key); err == nil {
		return key, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, err
	}
	e, err := kv.Get(ctx, "mac")
	if err != nil {
		return nil, err
	}
	return e.Value(), nil
}
