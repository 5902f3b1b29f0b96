package relayconn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/relay/proto"
)

// # Admission
//
// A relay under load asks walk-ins for a proof of work on each envelope
// (proto's "Admission"). [Conn.Publish] does it without being asked: a
// refusal with proto.CodeAdmission carries a challenge, which the
// connection solves for that envelope on one core and sends again, until
// the publish is stored, refused for another reason, or ctx ends. A
// refusal for want of budget asks for more bits than the current
// difficulty, and the connection raises its effort to that for the
// envelopes after it too, until a publish goes through without a proof.
// Missions, partners and bridges are never asked.
//
// A challenge beyond the limits of proto (bits, memory, passes) is not
// solved: the publish fails with ErrHostile, for an honest relay never
// asks that much.

// ErrAdmission wraps a failure to solve a relay's challenge in time.
var ErrAdmission = errors.New("relay admission")

// maxAdmissionRounds bounds how often one publish is sent again with a
// new proof: an honest relay refuses a proof only when its difficulty
// rose or its budget ran out meanwhile.
const maxAdmissionRounds = 16

// admissionState is what a connection remembers of the relay's
// admission: the last challenge and the effort it was asked for.
type admissionState struct {
	mu        sync.Mutex
	challenge *proto.Challenge
	tries     atomic.Uint64 // Argon2id tries made, for measurements
}

// ProofTries is how many Argon2id tries this connection has made in all.
func (c *Conn) ProofTries() uint64 { return c.adm.tries.Load() }

// publishAdmitted publishes data to target, solving the relay's
// challenges as it asks.
func (c *Conn) publishAdmitted(ctx context.Context, target string, data []byte) (*proto.Reply, error) {
	c.adm.mu.Lock()
	ch := c.adm.challenge
	c.adm.mu.Unlock()
	for round := 0; ; round++ {
		var hdr nats.Header
		if ch != nil {
			pr, err := c.solve(ctx, ch, data)
			if err != nil {
				return nil, err
			}
			if pr.Token != "" {
				hdr = nats.Header{proto.HeaderProof: []string{pr.String()}}
			}
		}
		r, err := c.publishOnce(ctx, target, data, hdr)
		var perr *proto.Error
		if errors.As(err, &perr) && perr.Code == proto.CodeAdmission && perr.Challenge != nil && round < maxAdmissionRounds {
			ch = perr.Challenge
			c.adm.mu.Lock()
			c.adm.challenge = ch
			c.adm.mu.Unlock()
			continue
		}
		if err == nil && ch == nil {
			// Through without a proof: the relay is quiet again.
			c.adm.mu.Lock()
			c.adm.challenge = nil
			c.adm.mu.Unlock()
		}
		return r, err
	}
}

func (c *Conn) publishOnce(ctx context.Context, target string, data []byte, hdr nats.Header) (*proto.Reply, error) {
	m, err := c.requestMsg(ctx, target, data, hdr)
	if err != nil {
		return nil, err
	}
	r, err := proto.ParseReply(m.Data)
	if errors.Is(err, proto.ErrBadReply) {
		return nil, fmt.Errorf("%w: %w", ErrHostile, err)
	}
	return r, err
}

// solve finds a proof for data under ch: a nonce whose Argon2id work has
// ch.Bits leading zero bits, then a stamp. It checks ctx between tries.
func (c *Conn) solve(ctx context.Context, ch *proto.Challenge, data []byte) (proto.Proof, error) {
	p, raw, err := proto.ParseChallenge(ch.Token)
	if err != nil || ch.Bits < 0 || ch.Bits > proto.MaxProofBits {
		return proto.Proof{}, fmt.Errorf("%w: a challenge beyond any honest relay's: %v", ErrHostile, err)
	}
	if !c.clock.Now().Before(p.Expires) {
		// An expired token: publishing without a proof gets a fresh one.
		return proto.Proof{}, nil
	}
	digest := sha256.Sum256(data)
	var seed [8]byte
	rand.Read(seed[:])
	nonce := binary.BigEndian.Uint64(seed[:])
	for {
		if err := ctx.Err(); err != nil {
			return proto.Proof{}, fmt.Errorf("%w: solving a challenge of %d bits: %w", ErrAdmission, ch.Bits, err)
		}
		c.adm.tries.Add(1)
		work := proto.ProofWork(p, raw, c.mbox, &digest, nonce)
		if proto.LeadingZeros(work[:]) >= ch.Bits {
			for stamp := uint64(0); ; stamp++ {
				if stamp&0xffff == 0 && ctx.Err() != nil {
					return proto.Proof{}, fmt.Errorf("%w: stamping a proof: %w", ErrAdmission, ctx.Err())
				}
				s := proto.ProofStamp(raw, c.mbox, &digest, nonce, &work, stamp)
				if proto.LeadingZeros(s[:]) >= p.StampBits {
					return proto.Proof{Token: ch.Token, Nonce: nonce, Stamp: stamp, Work: work}, nil
				}
			}
		}
		nonce++
	}
}
