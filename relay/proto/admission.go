package proto

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/hrdbeacon/beacon/routing"
)

// # Admission
//
// A walk-in's publish may have to carry a proof of work. While the relay
// is quiet it asks for none; under load it refuses a publish without one
// with [CodeAdmission] and a [Challenge] in the [Error]. The client solves
// the challenge for that envelope ([ProofWork], [ProofStamp]) and sends
// the publish again with the proof in header [HeaderProof]:
//
//	Beacon-Proof: <challenge token>.<nonce, 16 hex>.<stamp, 16 hex>.<work, 64 hex>
//
// A proof is bound to the relay that issued the token (its MAC), to the
// connection (the mailbox, in the MAC and in the hash), to the envelope
// (its SHA-256 digest in the hash) and to a time (the token expires), so
// it can be neither replayed for another envelope nor shared with another
// connection, nor computed in advance of the token.
//
// The work is Argon2id: the nonce is good when Argon2id over the
// envelope's digest and the nonce, salted with the token and the mailbox,
// starts with [ChallengeParams.Bits] zero bits. Every try costs the
// memory and time the token names (64 KiB and one pass by default), so a
// flooder's GPUs gain little over a defender's phone. The relay checks a
// proof with one Argon2id call; so that checking bogus proofs costs a
// flooder more than the relay, the proof also carries the work it claims
// and a stamp: SHA-256 over everything above, the claimed work and the
// stamp counter starts with [ChallengeParams.StampBits] zero bits. The
// relay checks the claimed work's bits and the stamp (nanoseconds) before
// it spends the Argon2id call that shows the claim true; a bogus proof
// that gets that far cost its sender 2^StampBits hashes.

// HeaderProof is the header of an ingest publish that carries a proof of
// work.
const HeaderProof = "Beacon-Proof"

// Refusal codes of admission and storage quotas.
const (
	// CodeAdmission: this publish needs a proof of work at the difficulty
	// of the challenge in the refusal (or the proof it carried was not
	// enough, too old, or not for this connection). Solve and send again.
	CodeAdmission Code = "admission"
	// CodeFull: the stream, or this channel (country and priority) of it,
	// or the share of it open to walk-ins, is full. Older messages expire
	// and junk is removed; send it again later.
	CodeFull Code = "full"
)

// A Challenge is the relay's admission challenge, carried in the [Error]
// of a [CodeAdmission] refusal.
type Challenge struct {
	// Token is the challenge itself (base64url); it carries the
	// parameters ([ParseChallenge]).
	Token string `json:"token"`
	// Bits is the difficulty the relay asks for now; a proof must reach
	// at least this many leading zero bits. It may exceed the token's own
	// when the relay asks a refused client to raise its effort.
	Bits int `json:"bits"`
}

// Token layout (all integers big-endian):
//
//	version 1 | bits 1 | stamp bits 1 | memory KiB 4 | passes 1 | expires 8 (unix seconds) | random 16 | mac 16
const (
	challengeVersion = 1
	challengeBody    = 1 + 1 + 1 + 4 + 1 + 8 + 16
	challengeMACSize = 16
	// ChallengeSize is the size of a decoded challenge token.
	ChallengeSize = challengeBody + challengeMACSize
	// ChallengeTextSize is its base64url text size.
	ChallengeTextSize = (ChallengeSize*8 + 5) / 6
)

// Limits a client puts on a challenge: a hostile relay must not make a
// phone spend its battery or its memory. A relay asking for more is not
// answered.
const (
	// MaxProofBits bounds the difficulty: 2^20 Argon2id tries is about a
	// minute on a phone.
	MaxProofBits = 20
	// MaxStampBits bounds the stamp: 2^24 SHA-256 is a few seconds.
	MaxStampBits = 24
	// MaxProofMemoryKiB bounds the memory of one try.
	MaxProofMemoryKiB = 1 << 10
	// MaxProofPasses bounds the passes of one try.
	MaxProofPasses = 4
)

// ChallengeParams are the parameters a challenge token carries.
type ChallengeParams struct {
	Bits      int // the difficulty when issued
	StampBits int
	MemoryKiB uint32
	Passes    uint32
	Expires   time.Time
	Random    [16]byte
}

// ErrChallenge is returned for a challenge or proof that is not well
// formed or exceeds a client's limits.
var ErrChallenge = errors.New("proto: bad admission challenge")

// Body is the token without its MAC: what the relay's MAC covers (with
// the mailbox it is issued to).
func (p ChallengeParams) Body() []byte {
	b := make([]byte, challengeBody)
	b[0] = challengeVersion
	b[1] = byte(p.Bits)
	b[2] = byte(p.StampBits)
	binary.BigEndian.PutUint32(b[3:], p.MemoryKiB)
	b[7] = byte(p.Passes)
	binary.BigEndian.PutUint64(b[8:], uint64(p.Expires.Unix()))
	copy(b[16:], p.Random[:])
	return b
}

// EncodeChallenge joins a body and its MAC into a token.
func EncodeChallenge(body, mac []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(append([]byte{}, body...), mac[:challengeMACSize]...))
}

// ParseChallenge decodes a token and returns its parameters, its raw bytes
// and the MAC, refusing one outside the client limits above. It does not
// check the MAC: only the relay can.
func ParseChallenge(token string) (ChallengeParams, []byte, error) {
	var p ChallengeParams
	if len(token) != ChallengeTextSize {
		return p, nil, fmt.Errorf("%w: token of %d characters", ErrChallenge, len(token))
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != ChallengeSize || raw[0] != challengeVersion {
		return p, nil, fmt.Errorf("%w: not a version %d token", ErrChallenge, challengeVersion)
	}
	p.Bits, p.StampBits = int(raw[1]), int(raw[2])
	p.MemoryKiB = binary.BigEndian.Uint32(raw[3:])
	p.Passes = uint32(raw[7])
	p.Expires = time.Unix(int64(binary.BigEndian.Uint64(raw[8:])), 0)
	copy(p.Random[:], raw[16:challengeBody])
	if p.Bits > MaxProofBits || p.StampBits > MaxStampBits || p.MemoryKiB < 8 || p.MemoryKiB > MaxProofMemoryKiB ||
		p.Passes < 1 || p.Passes > MaxProofPasses {
		return p, nil, fmt.Errorf("%w: parameters beyond a client's limits", ErrChallenge)
	}
	return p, raw, nil
}

// Domain-separation labels of the proof.
const (
	proofLabel = "beacon.admission.v1/work"
	stampLabel = "beacon.admission.v1/stamp"
)

// ProofWork is one Argon2id try: the work of nonce for the envelope with
// digest (SHA-256 of its bytes), sent by mailbox mb under the token raw.
func ProofWork(p ChallengeParams, raw []byte, mb routing.Mailbox, digest *[32]byte, nonce uint64) [32]byte {
	pass := make([]byte, 0, len(proofLabel)+32+8)
	pass = append(pass, proofLabel...)
	pass = append(pass, digest[:]...)
	pass = binary.BigEndian.AppendUint64(pass, nonce)
	salt := append(append(make([]byte, 0, len(raw)+routing.MailboxSize), raw...), mb[:]...)
	var out [32]byte
	copy(out[:], argon2.IDKey(pass, salt, p.Passes, p.MemoryKiB, 1, 32))
	return out
}

// ProofStamp is the stamp hash over a try's work and the stamp counter.
func ProofStamp(raw []byte, mb routing.Mailbox, digest *[32]byte, nonce uint64, work *[32]byte, stamp uint64) [32]byte {
	h := sha256.New()
	h.Write([]byte(stampLabel))
	h.Write(raw)
	h.Write(mb[:])
	h.Write(digest[:])
	var n [16]byte
	binary.BigEndian.PutUint64(n[:], nonce)
	binary.BigEndian.PutUint64(n[8:], stamp)
	h.Write(n[:8])
	h.Write(work[:])
	h.Write(n[8:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// LeadingZeros counts the leading zero bits of b.
func LeadingZeros(b []byte) int {
	n := 0
	for _, x := range b {
		if x != 0 {
			return n + bits.LeadingZeros8(x)
		}
		n += 8
	}
	return n
}

// A Proof is a parsed [HeaderProof].
type Proof struct {
	Token string
	Nonce uint64
	Stamp uint64
	Work  [32]byte // what ProofWork gave for Nonce, as the sender claims
}

// String is the header value.
func (p Proof) String() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], p.Nonce)
	binary.BigEndian.PutUint64(b[8:], p.Stamp)
	return p.Token + "." + hex.EncodeToString(b[:8]) + "." + hex.EncodeToString(b[8:]) + "." + hex.EncodeToString(p.Work[:])
}

// ProofHeaderSize is the header's exact length.
const ProofHeaderSize = ChallengeTextSize + 1 + 16 + 1 + 16 + 1 + 64

// ParseProof parses a header value.
func ParseProof(s string) (Proof, error) {
	if len(s) != ProofHeaderSize {
		return Proof{}, fmt.Errorf("%w: proof of %d characters", ErrChallenge, len(s))
	}
	f := strings.Split(s, ".")
	if len(f) != 4 || len(f[0]) != ChallengeTextSize || len(f[1]) != 16 || len(f[2]) != 16 || len(f[3]) != 64 {
		return Proof{}, fmt.Errorf("%w: not token.nonce.stamp.work", ErrChallenge)
	}
	var p Proof
	p.Token = f[0]
	var n, st [8]byte
	for i, d := range [][]byte{n[:], st[:], p.Work[:]} {
		h := f[i+1]
		if _, err := hex.Decode(d, []byte(h)); err != nil || strings.ToLower(h) != h {
			return Proof{}, fmt.Errorf("%w: not lower-case hex", ErrChallenge)
		}
	}
	p.Nonce, p.Stamp = binary.BigEndian.Uint64(n[:]), binary.BigEndian.Uint64(st[:])
	return p, nil
}
