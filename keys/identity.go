package keys

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"sync"
)

// b64 is the text encoding of key material: URL-safe so a key can sit in a
// URL or a NATS subject, unpadded, and strict so that each key has exactly one
// text form.
var b64 = base64.RawURLEncoding.Strict()

// kem is the key encapsulation mechanism of every Beacon KEM key: X-Wing.
var kem = hpke.MLKEM768X25519()

// A PublicIdentity is the public half of an [Identity]: what a mission lists
// in the directory and what a defender's envelope carries inside its
// ciphertext. It is immutable and safe for concurrent use.
type PublicIdentity struct {
	raw  [PublicIdentitySize]byte
	sign ed25519.PublicKey
	dh   *ecdh.PublicKey
	kem  hpke.PublicKey
}

// An Identity is a secret key: an Ed25519 signing key for what an
// institution writes, an X25519 key for a defender's deniable authenticator,
// and an X-Wing KEM key that envelopes are sealed to. It is safe for
// concurrent use.
type Identity struct {
	secret [secretIdentitySize]byte
	sign   ed25519.PrivateKey
	dh     *ecdh.PrivateKey
	kem    hpke.PrivateKey
	pub    *PublicIdentity

	// shared caches X25519 results per peer: the exchange is static-static,
	// so its result never changes, and caching it makes each extra
	// recipient of an envelope cost one key wrap and no DH.
	sharedMu sync.Mutex
	shared   map[[DHKeySize]byte][]byte
}

// maxSharedCache bounds the DH cache of an Identity. A mission sees many
// defenders; when the cache is full it is emptied rather than grown.
const maxSharedCache = 4096

// GenerateIdentity returns a new random identity.
func GenerateIdentity() (*Identity, error) {
	var secret [secretIdentitySize]byte
	rand.Read(secret[:])
	return newIdentity(secret)
}

func newIdentity(secret [secretIdentitySize]byte) (*Identity, error) {
	id := &Identity{secret: secret}
	id.sign = ed25519.NewKeyFromSeed(secret[:32])
	dh, err := ecdh.X25519().NewPrivateKey(secret[32:64])
	if err != nil {
		return nil, fmt.Errorf("%w: X25519 key: %v", ErrMalformedKey, err)
	}
	id.dh = dh
	id.kem, err = kem.NewPrivateKey(secret[64:96])
	if err != nil {
		return nil, fmt.Errorf("%w: X-Wing key: %v", ErrMalformedKey, err)
	}
	var raw [PublicIdentitySize]byte
	copy(raw[:], id.sign.Public().(ed25519.PublicKey))
	copy(raw[SigningKeySize:], dh.PublicKey().Bytes())
	copy(raw[SigningKeySize+DHKeySize:], id.kem.PublicKey().Bytes())
	id.pub, err = NewPublicIdentity(raw[:])
	if err != nil {
		// A secret that yields a degenerate public key (all-zero X25519
		// scalar is clamped, so this needs an astronomically unlucky seed
		// or a hostile file) is refused rather than used.
		return nil, err
	}
	return id, nil
}

// ParseIdentity parses the text form of a secret identity, as made by
// [Identity.SecretString].
func ParseIdentity(s string) (*Identity, error) {
	b, err := decodeText(s, secretIdentityPrefix, secretIdentitySize, "secret identity")
	if err != nil {
		return nil, err
	}
	return newIdentity([secretIdentitySize]byte(b))
}

// Public returns the public identity.
func (id *Identity) Public() *PublicIdentity { return id.pub }

// SecretString returns the text form of the secret identity. It is the only
// way to get it: [Identity.String] is redacted so that a secret cannot reach
// a log line by accident.
func (id *Identity) SecretString() string {
	return secretIdentityPrefix + b64.EncodeToString(id.secret[:])
}

// String returns a redacted form that names the identity by fingerprint.
func (id *Identity) String() string {
	return "BCN-SECRET-ID:<redacted " + id.pub.Fingerprint().Short() + ">"
}

// GoString keeps %#v from printing the secret fields.
func (id *Identity) GoString() string { return id.String() }

// Format prints the redacted form for every verb: fmt would otherwise print
// the secret fields for verbs such as %d and %x.
func (id *Identity) Format(f fmt.State, _ rune) { io.WriteString(f, id.String()) }

// Equal reports, in constant time, whether two secret identities are the same.
func (id *Identity) Equal(other *Identity) bool {
	return subtle.ConstantTimeCompare(id.secret[:], other.secret[:]) == 1
}

// Sign signs msg with the Ed25519 key. Callers prepend a domain-separation
// label of their own.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.sign, msg) }

// KEMKey returns the X-Wing decapsulation key.
func (id *Identity) KEMKey() hpke.PrivateKey { return id.kem }

// SharedSecret returns the X25519 shared secret between this identity and
// peer's DH key. It is the same secret peer computes with this identity's
// public key; callers must feed it to a KDF with a label and both public
// keys, never use it directly.
func (id *Identity) SharedSecret(peer *PublicIdentity) ([]byte, error) {
	var k [DHKeySize]byte
	copy(k[:], peer.raw[SigningKeySize:SigningKeySize+DHKeySize])
	id.sharedMu.Lock()
	s, ok := id.shared[k]
	id.sharedMu.Unlock()
	if ok {
		return bytes.Clone(s), nil
	}
	s, err := id.dh.ECDH(peer.dh)
	if err != nil {
		// X25519 with a low-order point gives all zeros; ecdh refuses it.
		return nil, fmt.Errorf("%w: X25519 exchange: %v", ErrMalformedKey, err)
	}
	id.sharedMu.Lock()
	if id.shared == nil || len(id.shared) >= maxSharedCache {
		id.shared = make(map[[DHKeySize]byte][]byte)
	}
	id.shared[k] = s
	id.sharedMu.Unlock()
	// A copy, so a caller that wipes its secret cannot zero the cache.
	return bytes.Clone(s), nil
}

// NewPublicIdentity parses the binary form of a public identity
// ([PublicIdentity.Bytes]). It refuses a wrong length, any all-zero
// component, and a curve point that is off the curve, non-canonical or of
// small order (keys/SPEC.md), before handing bytes to a primitive that
// might misbehave on them.
func NewPublicIdentity(b []byte) (*PublicIdentity, error) {
	if len(b) != PublicIdentitySize {
		return nil, fmt.Errorf("%w: public identity is %d bytes, want %d", ErrMalformedKey, len(b), PublicIdentitySize)
	}
	raw := [PublicIdentitySize]byte(b)
	if p, ok := parsed.get(raw); ok {
		return p, nil
	}
	p, err := newPublicIdentity(raw)
	if err != nil {
		return nil, err
	}
	parsed.put(raw, p)
	return p, nil
}

// parsed caches public identities already parsed and checked. Parsing the
// ML-KEM key is a fifth of opening an envelope, and a mission sees the same
// defenders, a defender the same missions, again and again. A
// PublicIdentity is immutable, so one value can be shared.
var parsed = &identityCache{m: map[[PublicIdentitySize]byte]*PublicIdentity{}}

// maxParsedIdentities bounds the cache; when full it starts over.
const maxParsedIdentities = 4096

type identityCache struct {
	mu sync.Mutex
	m  map[[PublicIdentitySize]byte]*PublicIdentity
}

func (c *identityCache) get(raw [PublicIdentitySize]byte) (*PublicIdentity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[raw]
	return p, ok
}

func (c *identityCache) put(raw [PublicIdentitySize]byte, p *PublicIdentity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxParsedIdentities {
		c.m = map[[PublicIdentitySize]byte]*PublicIdentity{}
	}
	c.m[raw] = p
}

func newPublicIdentity(raw [PublicIdentitySize]byte) (*PublicIdentity, error) {
	p := &PublicIdentity{raw: raw}
	signKey := p.raw[:SigningKeySize]
	dhKey := p.raw[SigningKeySize : SigningKeySize+DHKeySize]
	kemKey := p.raw[SigningKeySize+DHKeySize:]
	for _, c := range []struct {
		name string
		b    []byte
	}{{"signing key", signKey}, {"DH key", dhKey}, {"KEM key", kemKey}, {"KEM ML-KEM part", kemKey[:1184]}, {"KEM X25519 part", kemKey[1184:]}} {
		if bytes.Count(c.b, []byte{0}) == len(c.b) {
			return nil, fmt.Errorf("%w: public identity's %s is all zeros", ErrMalformedKey, c.name)
		}
	}
	if err := checkEd25519Key(signKey); err != nil {
		return nil, fmt.Errorf("%w: public identity's signing key %w", ErrMalformedKey, err)
	}
	if err := checkX25519Key(dhKey); err != nil {
		return nil, fmt.Errorf("%w: public identity's DH key %w", ErrMalformedKey, err)
	}
	if err := checkX25519Key(kemKey[1184:]); err != nil {
		return nil, fmt.Errorf("%w: public identity's KEM key: its X25519 part %w", ErrMalformedKey, err)
	}
	p.sign = ed25519.PublicKey(signKey)
	var err error
	if p.dh, err = ecdh.X25519().NewPublicKey(dhKey); err != nil {
		return nil, fmt.Errorf("%w: DH key: %v", ErrMalformedKey, err)
	}
	if p.kem, err = kem.NewPublicKey(kemKey); err != nil {
		return nil, fmt.Errorf("%w: KEM key: %v", ErrMalformedKey, err)
	}
	return p, nil
}

// ParsePublicIdentity parses the text form of a public identity, "bcn-id:"
// followed by its binary form in unpadded base64url.
func ParsePublicIdentity(s string) (*PublicIdentity, error) {
	b, err := decodeText(s, publicIdentityPrefix, PublicIdentitySize, "public identity")
	if err != nil {
		return nil, err
	}
	return NewPublicIdentity(b)
}

// String returns the text form.
func (p *PublicIdentity) String() string {
	return publicIdentityPrefix + b64.EncodeToString(p.raw[:])
}

// Bytes returns the binary form: signing key, DH key, KEM key.
func (p *PublicIdentity) Bytes() []byte { return p.raw[:] }

// MarshalText implements encoding.TextMarshaler (for YAML and JSON).
func (p *PublicIdentity) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *PublicIdentity) UnmarshalText(text []byte) error {
	q, err := ParsePublicIdentity(string(text))
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

// Equal reports, in constant time, whether two public identities are the same.
func (p *PublicIdentity) Equal(other *PublicIdentity) bool {
	return subtle.ConstantTimeCompare(p.raw[:], other.raw[:]) == 1
}

// KEMKey returns the X-Wing encapsulation key.
func (p *PublicIdentity) KEMKey() hpke.PublicKey { return p.kem }

// Verify reports whether sig is a valid Ed25519 signature of msg by this
// identity, by the rules of keys/SPEC.md: the cofactorless equation of
// RFC 8032 with S below the group order, R compared by its canonical
// encoding, and R not a point of small order. The last rule is libsodium's;
// with it, what Verify accepts both crypto/ed25519 and libsodium accept. A
// signature of the wrong length is invalid, never a panic.
func (p *PublicIdentity) Verify(msg, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize || isSmallOrderEncoding(sig[:32]) {
		return false
	}
	return ed25519.Verify(p.sign, msg, sig)
}

// Fingerprint returns the SHA-256 fingerprint of the public identity.
func (p *PublicIdentity) Fingerprint() Fingerprint {
	h := sha256.New()
	h.Write([]byte(fingerprintLabel))
	h.Write(p.raw[:])
	return Fingerprint(h.Sum(nil))
}

// decodeText checks the prefix of s, decodes the rest and checks its length.
func decodeText(s, prefix string, size int, what string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return nil, fmt.Errorf("%w: a %s starts with %q", ErrMalformedKey, what, prefix)
	}
	if len(rest) != b64.EncodedLen(size) {
		return nil, fmt.Errorf("%w: %s has %d characters after the prefix, want %d", ErrMalformedKey, what, len(rest), b64.EncodedLen(size))
	}
	// The decoder skips CR and LF even in strict mode, so a text of the
	// right length with line breaks would decode short: refuse them, and
	// check the decoded length too.
	if strings.ContainsAny(rest, "\r\n") {
		return nil, fmt.Errorf("%w: %s contains a line break", ErrMalformedKey, what)
	}
	b, err := b64.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformedKey, what, err)
	}
	if len(b) != size {
		return nil, fmt.Errorf("%w: %s decodes to %d bytes, want %d", ErrMalformedKey, what, len(b), size)
	}
	return b, nil
}

// DeriveKey derives a 32-byte key for label from the secret identity, for
// encrypting a party's local state at rest with a key that exists only
// while the key file is open.
func (id *Identity) DeriveKey(label string) []byte {
	k, _ := hkdf.Key(sha256.New, id.secret[:], nil, "beacon.keys.v1/derive/"+label, 32)
	return k
}
