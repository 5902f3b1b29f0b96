package keys

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// An InboxKey is a mission's rotating X-Wing decapsulation key. Defenders
// seal to a mission's current inbox key rather than to its identity, so that
// destroying an old inbox key after the retention window bounds what a seized
// mission key can decrypt.
type InboxKey struct {
	seed [KEMSeedSize]byte
	kem  hpke.PrivateKey
	pub  *InboxPublicKey
}

// An InboxPublicKey is the encapsulation half of an [InboxKey].
type InboxPublicKey struct {
	raw [KEMKeySize]byte
	kem hpke.PublicKey
}

// GenerateInboxKey returns a new random inbox key.
func GenerateInboxKey() (*InboxKey, error) {
	var seed [KEMSeedSize]byte
	rand.Read(seed[:])
	return newInboxKey(seed)
}

func newInboxKey(seed [KEMSeedSize]byte) (*InboxKey, error) {
	k, err := kem.NewPrivateKey(seed[:])
	if err != nil {
		return nil, fmt.Errorf("%w: inbox key: %v", ErrMalformedKey, err)
	}
	pub, err := NewInboxPublicKey(k.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	return &InboxKey{seed: seed, kem: k, pub: pub}, nil
}

// ParseInboxKey parses the text form made by [InboxKey.SecretString].
func ParseInboxKey(s string) (*InboxKey, error) {
	b, err := decodeText(s, inboxSecretPrefix, KEMSeedSize, "secret inbox key")
	if err != nil {
		return nil, err
	}
	return newInboxKey([KEMSeedSize]byte(b))
}

// Public returns the encapsulation key.
func (k *InboxKey) Public() *InboxPublicKey { return k.pub }

// KEMKey returns the X-Wing decapsulation key.
func (k *InboxKey) KEMKey() hpke.PrivateKey { return k.kem }

// SecretString returns the secret text form; String is redacted.
func (k *InboxKey) SecretString() string { return inboxSecretPrefix + b64.EncodeToString(k.seed[:]) }

// String returns a redacted form.
func (k *InboxKey) String() string { return "BCN-SECRET-INBOX:<redacted>" }

// GoString keeps %#v from printing the secret.
func (k *InboxKey) GoString() string { return k.String() }

// Format prints the redacted form for every verb.
func (k *InboxKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// Equal reports, in constant time, whether two inbox keys are the same.
func (k *InboxKey) Equal(o *InboxKey) bool {
	return subtle.ConstantTimeCompare(k.seed[:], o.seed[:]) == 1
}

// NewInboxPublicKey parses the binary form of an inbox public key.
func NewInboxPublicKey(b []byte) (*InboxPublicKey, error) {
	if len(b) != KEMKeySize {
		return nil, fmt.Errorf("%w: inbox key is %d bytes, want %d", ErrMalformedKey, len(b), KEMKeySize)
	}
	// An all-zero ML-KEM half would quietly make the hybrid X25519-only.
	if mlkem, x := b[:1184], b[1184:]; bytes.Count(mlkem, []byte{0}) == len(mlkem) || bytes.Count(x, []byte{0}) == len(x) {
		return nil, fmt.Errorf("%w: inbox key has an all-zero component", ErrMalformedKey)
	}
	if err := checkX25519Key(b[1184:]); err != nil {
		return nil, fmt.Errorf("%w: inbox key's X25519 part %w", ErrMalformedKey, err)
	}
	k, err := kem.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: inbox key: %v", ErrMalformedKey, err)
	}
	return &InboxPublicKey{raw: [KEMKeySize]byte(b), kem: k}, nil
}

// ParseInboxPublicKey parses the text form, "bcn-inbox:" and base64url.
func ParseInboxPublicKey(s string) (*InboxPublicKey, error) {
	b, err := decodeText(s, inboxPublicPrefix, KEMKeySize, "inbox key")
	if err != nil {
		return nil, err
	}
	return NewInboxPublicKey(b)
}

// String returns the text form.
func (p *InboxPublicKey) String() string { return inboxPublicPrefix + b64.EncodeToString(p.raw[:]) }

// Bytes returns the binary form.
func (p *InboxPublicKey) Bytes() []byte { return p.raw[:] }

// KEMKey returns the X-Wing encapsulation key.
func (p *InboxPublicKey) KEMKey() hpke.PublicKey { return p.kem }

// Equal reports, in constant time, whether two inbox keys are the same.
func (p *InboxPublicKey) Equal(o *InboxPublicKey) bool {
	return subtle.ConstantTimeCompare(p.raw[:], o.raw[:]) == 1
}

// MarshalText implements encoding.TextMarshaler.
func (p *InboxPublicKey) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *InboxPublicKey) UnmarshalText(b []byte) error {
	q, err := ParseInboxPublicKey(string(b))
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

// A SignedInboxKey is an inbox public key with its expiry, signed by the
// mission's identity, as listed in the directory.
type SignedInboxKey struct {
	Key       *InboxPublicKey `yaml:"key" json:"key"`
	Expires   time.Time       `yaml:"expires" json:"expires"`
	Signature Signature       `yaml:"signature" json:"signature"`
}

// A Signature is an Ed25519 signature whose text form is unpadded base64url.
type Signature []byte

// MarshalText implements encoding.TextMarshaler.
func (s Signature) MarshalText() ([]byte, error) { return []byte(b64.EncodeToString(s)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Signature) UnmarshalText(b []byte) error {
	d, err := b64.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	*s = d
	return nil
}

// SignInboxKey signs k's public key with the mission identity id.
func SignInboxKey(id *Identity, k *InboxPublicKey, expires time.Time) SignedInboxKey {
	expires = expires.UTC().Truncate(time.Second)
	return SignedInboxKey{Key: k, Expires: expires, Signature: id.Sign(inboxKeyMessage(k, expires))}
}

// Verify checks the signature by owner and that the key has not expired at now.
func (s SignedInboxKey) Verify(owner *PublicIdentity, now time.Time) error {
	if err := s.verifySignature(owner); err != nil {
		return err
	}
	if !now.Before(s.Expires) {
		return fmt.Errorf("%w: inbox key expired at %s", ErrExpired, s.Expires.Format(time.RFC3339))
	}
	return nil
}

// verifySignature checks everything but the expiry.
func (s SignedInboxKey) verifySignature(owner *PublicIdentity) error {
	if s.Key == nil {
		return fmt.Errorf("%w: inbox key missing", ErrMalformedKey)
	}
	// The signature covers whole seconds since 1970: an expiry with a
	// fraction, or before 1970, would be a second form of a signed value.
	if s.Expires.Nanosecond() != 0 || s.Expires.Unix() < 0 {
		return fmt.Errorf("%w: inbox key expiry %s is not a whole second after 1970", ErrMalformedKey, s.Expires.Format(time.RFC3339Nano))
	}
	if !owner.Verify(inboxKeyMessage(s.Key, s.Expires), s.Signature) {
		return fmt.Errorf("%w: inbox key is not signed by its owner", ErrBadSignature)
	}
	return nil
}

// inboxKeyMessage is what the owner signs: the label, the key and the
// expiry in seconds since 1970.
func inboxKeyMessage(k *InboxPublicKey, expires time.Time) []byte {
	msg := append([]byte(inboxKeyLabel), k.raw[:]...)
	return binary.BigEndian.AppendUint64(msg, uint64(expires.Unix()))
}
