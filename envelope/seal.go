package envelope

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hrdbeacon/beacon/keys"
)

// Auth is how the sender authenticates an envelope.
type Auth uint8

const (
	// Deniable is a defender's authentication: one MAC per recipient, keyed
	// from a static-static X25519 exchange, so the recipient knows who wrote
	// it but could have computed the same MAC itself and holds no proof a
	// third party would accept.
	Deniable Auth = 1
	// Signed is an institution's authentication: an Ed25519 signature that
	// anyone holding the envelope and its plaintext can verify.
	Signed Auth = 2
)

// String names the mode.
func (a Auth) String() string {
	switch a {
	case Deniable:
		return "deniable"
	case Signed:
		return "signed"
	}
	return fmt.Sprintf("auth(%d)", uint8(a))
}

// authSize returns the length of the authenticator for n recipients.
func (a Auth) authSize(n int) int {
	if a == Signed {
		return signatureSize
	}
	return n * macSize
}

// A Recipient is one reader of an envelope: the KEM key its stanza is sealed
// to and the identity whose DH key a deniable authenticator is keyed with.
type Recipient struct {
	id  *keys.PublicIdentity
	kem hpke.PublicKey
}

// To addresses an envelope to an identity's own KEM key (a defender).
func To(id *keys.PublicIdentity) Recipient { return Recipient{id: id, kem: id.KEMKey()} }

// ToInbox addresses an envelope to a mission's current inbox key.
func ToInbox(id *keys.PublicIdentity, inbox *keys.InboxPublicKey) Recipient {
	return Recipient{id: id, kem: inbox.KEMKey()}
}

// The HPKE suite of every stanza: X-Wing, HKDF-SHA256, ChaCha20-Poly1305.
var (
	suiteKDF  = hpke.HKDFSHA256()
	suiteAEAD = hpke.ChaCha20Poly1305()
)

// Seal encrypts body to the recipients under header h, authenticated as
// from with the given mode. The body is encrypted once; each recipient costs
// one KEM encapsulation (and, for Deniable, one cached DH).
func Seal(h Header, body []byte, from *keys.Identity, auth Auth, to ...Recipient) ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	h.Created = h.Created.Truncate(0)
	n := len(to)
	if n < 1 || n > MaxRecipients {
		return nil, fmt.Errorf("%w: %d recipients, want 1–%d", ErrTooManyRecipients, n, MaxRecipients)
	}
	if auth != Deniable && auth != Signed {
		return nil, fmt.Errorf("envelope: unknown authentication mode %d", auth)
	}
	if len(body) > MaxBodySize {
		return nil, fmt.Errorf("%w: body is %d bytes, the limit is %d", ErrTooLarge, len(body), MaxBodySize)
	}
	innerLen := innerPrefixSize + len(body) + auth.authSize(n)
	class := minSizeClass
	for 1<<class < innerLen {
		class++
	}

	fileKey := make([]byte, fileKeySize)
	rand.Read(fileKey)

	hdrLen := h.size() + n*StanzaSize
	out := make([]byte, 0, hdrLen+headerMACSize+1<<class+tagSize)
	out = h.appendHeader(out, class, n)
	for i, r := range to {
		if r.kem == nil || r.id == nil {
			return nil, fmt.Errorf("envelope: recipient %d is empty", i)
		}
		st, err := hpke.Seal(r.kem, suiteKDF, suiteAEAD, []byte(stanzaLabel), fileKey)
		if err != nil {
			return nil, fmt.Errorf("envelope: wrapping the key for recipient %d: %w", i, err)
		}
		if len(st) != StanzaSize {
			return nil, fmt.Errorf("envelope: recipient %d: stanza is %d bytes, want %d", i, len(st), StanzaSize)
		}
		out = append(out, st...)
	}
	macKey, payloadKey := deriveKeys(fileKey)
	out = append(out, headerMAC(macKey, out)...)

	inner := make([]byte, 1<<class, 1<<class+tagSize)
	inner[0] = byte(auth)
	copy(inner[1:], from.Public().Bytes())
	binary.BigEndian.PutUint32(inner[1+keys.PublicIdentitySize:], uint32(len(body)))
	copy(inner[innerPrefixSize:], body)
	ad := authData(out[:hdrLen], inner[:innerPrefixSize+len(body)])
	authenticator := inner[innerPrefixSize+len(body) : innerLen]
	switch auth {
	case Deniable:
		for i, r := range to {
			mac, err := deniableMAC(from, from.Public(), r.id, ad)
			if err != nil {
				return nil, fmt.Errorf("envelope: authenticating to recipient %d: %w", i, err)
			}
			copy(authenticator[i*macSize:], mac)
		}
	case Signed:
		copy(authenticator, from.Sign(ad))
	}

	aead, _ := chacha20poly1305.New(payloadKey)
	out = aead.Seal(out, make([]byte, aead.NonceSize()), inner, nil)
	return out, nil
}

// deriveKeys derives the header MAC key and the payload key from the
// content key. The payload key is used for exactly one message, so its
// nonce is zero.
func deriveKeys(fileKey []byte) (macKey, payloadKey []byte) {
	macKey, _ = hkdf.Key(sha256.New, fileKey, nil, headerMACLabel, 32)
	payloadKey, _ = hkdf.Key(sha256.New, fileKey, nil, payloadLabel, chacha20poly1305.KeySize)
	return macKey, payloadKey
}

// headerMAC binds the header and every stanza to the content key, so that
// the ciphertext commits to its key (ChaCha20-Poly1305 alone does not).
func headerMAC(key, hdr []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(hdr)
	return m.Sum(nil)
}

// authData is what the sender authenticates: the routing header, every
// stanza (so the envelope cannot be re-addressed), the auth mode, the
// sender's identity and the body (so a co-recipient who knows the content
// key cannot swap the body under another recipient's MAC).
func authData(hdrAndStanzas, innerPrefixAndBody []byte) []byte {
	h := sha256.New()
	h.Write([]byte(authLabel))
	h.Write(hdrAndStanzas)
	h.Write(innerPrefixAndBody)
	return h.Sum(nil)
}

// deniableMAC computes the MAC from sender to recipient over ad. Either side
// can compute it: self is the sender's or the recipient's own identity.
func deniableMAC(self *keys.Identity, sender, recipient *keys.PublicIdentity, ad []byte) ([]byte, error) {
	peer := recipient
	if self.Public().Equal(recipient) {
		peer = sender
	}
	shared, err := self.SharedSecret(peer)
	if err != nil {
		return nil, err
	}
	// The KDF binds both DH keys in sender-then-recipient order, so the MAC
	// from A to B is not also a MAC from B to A.
	info := make([]byte, 0, len(deniableLabel)+2*keys.DHKeySize)
	info = append(info, deniableLabel...)
	info = append(info, dhKey(sender)...)
	info = append(info, dhKey(recipient)...)
	key, err := hkdf.Key(sha256.New, shared, nil, string(info), 32)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(ad)
	return m.Sum(nil), nil
}

func dhKey(p *keys.PublicIdentity) []byte {
	return p.Bytes()[keys.SigningKeySize : keys.SigningKeySize+keys.DHKeySize]
}
