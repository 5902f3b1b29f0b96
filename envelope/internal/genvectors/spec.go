package main

// An independent implementation of what the envelope format specifies,
// from the standard library's primitives only: X-Wing (draft-connolly-
// cfrg-xwing, as HPKE KEM 0x647a of draft-ietf-hpke-pq), the HPKE base-mode
// key schedule of RFC 9180, HKDF, HMAC, SHA-256, Ed25519, X25519 and
// ChaCha20-Poly1305. Nothing here imports beacon/envelope or beacon/keys:
// if this code and the package disagree on a byte, a vector fails.
//
// Two things are derandomised so that the vectors are reproducible: the
// X-Wing encapsulation (ML-KEM's message via crypto/mlkem/mlkemtest, the
// ephemeral X25519 key from the same stream) and the content key. Both
// come from a ChaCha8 stream seeded by the vector's name.

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	mathrand "math/rand/v2"

	"golang.org/x/crypto/chacha20poly1305"
)

// The wire format, as the spec states it.
const (
	magic       = "BCN"
	version     = 1
	flagReplyTo = 0x01

	idSize      = 16
	mailboxSize = 16
	// routingSize: magic, version, flags, priority, country, id, created
	// (ms, big endian), then size class and recipient count.
	routingSize = 3 + 1 + 1 + 1 + 2 + idSize + 8 + 2

	maxRecipients = 32
	minClass      = 11
	maxClass      = 16

	fileKeySize   = 32
	xwingEncLen   = mlkem.CiphertextSize768 + 32
	stanzaSize    = xwingEncLen + fileKeySize + 16
	headerMACSize = 32
	tagSize       = 16

	signingKeySize     = ed25519.PublicKeySize
	dhKeySize          = 32
	kemKeySize         = mlkem.EncapsulationKeySize768 + 32
	publicIdentitySize = signingKeySize + dhKeySize + kemKeySize
	innerPrefixSize    = 1 + publicIdentitySize + 4
	macSize            = 32
	signatureSize      = ed25519.SignatureSize

	authDeniable = 1
	authSigned   = 2

	maxBodySize = 1<<maxClass - innerPrefixSize - maxRecipients*macSize
	maxSize     = routingSize + mailboxSize + maxRecipients*stanzaSize + headerMACSize + 1<<maxClass + tagSize
)

// Domain-separation labels.
const (
	stanzaLabel    = "beacon.envelope.v1/stanza"
	headerMACLabel = "beacon.envelope.v1/header-mac"
	payloadLabel   = "beacon.envelope.v1/payload"
	authLabel      = "beacon.envelope.v1/auth"
	deniableLabel  = "beacon.envelope.v1/deniable"
)

// Key text forms (beacon/keys).
const (
	publicIdentityPrefix = "bcn-id:"
	secretIdentityPrefix = "BCN-SECRET-ID:"
	inboxSecretPrefix    = "BCN-SECRET-INBOX:"
)

var b64 = base64.RawURLEncoding

// HPKE suite: X-Wing, HKDF-SHA256, ChaCha20-Poly1305.
const (
	kemID  = 0x647a
	kdfID  = 0x0001
	aeadID = 0x0003
	// xwingLabel is X-Wing's combiner label, the ASCII art \./ /^\.
	xwingLabel = "\\./" + "/^\\"
)

// derive returns n bytes that depend only on label: the key seeds of the
// vectors' identities.
func derive(label string, n int) []byte {
	return sha3.SumSHAKE256([]byte("beacon genvectors v1\x00"+label), n)
}

// newRand returns the randomness stream of one vector.
func newRand(name string) io.Reader {
	return mathrand.NewChaCha8(sha256.Sum256([]byte("beacon genvectors v1 rand\x00" + name)))
}

func read(r io.Reader, n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		panic(err)
	}
	return b
}

// xwingKey expands a 32-byte X-Wing seed as draft-ietf-hpke-pq does:
// SHAKE256(seed) gives the 64-byte ML-KEM-768 seed, then the X25519 scalar.
func xwingKey(seed []byte) (*mlkem.DecapsulationKey768, *ecdh.PrivateKey) {
	xof := sha3.SumSHAKE256(seed, mlkem.SeedSize+32)
	pq, err := mlkem.NewDecapsulationKey768(xof[:mlkem.SeedSize])
	if err != nil {
		panic(err)
	}
	t, err := ecdh.X25519().NewPrivateKey(xof[mlkem.SeedSize:])
	if err != nil {
		panic(err)
	}
	return pq, t
}

// xwingPublic returns the encapsulation key: ML-KEM's, then X25519's.
func xwingPublic(seed []byte) []byte {
	pq, t := xwingKey(seed)
	return append(pq.EncapsulationKey().Bytes(), t.PublicKey().Bytes()...)
}

func xwingCombine(ssM, ssX, ctX, pkX []byte) []byte {
	h := sha3.New256()
	h.Write(ssM)
	h.Write(ssX)
	h.Write(ctX)
	h.Write(pkX)
	h.Write([]byte(xwingLabel))
	return h.Sum(nil)
}

// xwingEncap is X-Wing encapsulation with its randomness taken from r.
func xwingEncap(pk []byte, r io.Reader) (ss, enc []byte) { return xwingEncapShare(pk, r, nil) }

// xwingEncapShare is xwingEncap with the X25519 share and secret passed
// through edit, if not nil: a sender's crafted encapsulation.
func xwingEncapShare(pk []byte, r io.Reader, edit func(ctX, ssX []byte) ([]byte, []byte)) (ss, enc []byte) {
	ek, err := mlkem.NewEncapsulationKey768(pk[:mlkem.EncapsulationKeySize768])
	if err != nil {
		panic(err)
	}
	ssM, ctM, err := mlkemtest.Encapsulate768(ek, read(r, 32))
	if err != nil {
		panic(err)
	}
	eph, err := ecdh.X25519().NewPrivateKey(read(r, 32))
	if err != nil {
		panic(err)
	}
	pkX := pk[mlkem.EncapsulationKeySize768:]
	peer, err := ecdh.X25519().NewPublicKey(pkX)
	if err != nil {
		panic(err)
	}
	ssX, err := eph.ECDH(peer)
	if err != nil {
		panic(err)
	}
	ctX := eph.PublicKey().Bytes()
	if edit != nil {
		ctX, ssX = edit(ctX, ssX)
	}
	return xwingCombine(ssM, ssX, ctX, pkX), append(ctM, ctX...)
}

// hpkeSealShare is hpkeSeal over xwingEncapShare.
func hpkeSealShare(pk []byte, info string, plaintext []byte, r io.Reader, edit func(ctX, ssX []byte) ([]byte, []byte)) []byte {
	ss, enc := xwingEncapShare(pk, r, edit)
	key, nonce := hpkeKeySchedule(ss, []byte(info))
	aead, _ := chacha20poly1305.New(key)
	return aead.Seal(enc, nonce, plaintext, nil)
}

// xwingDecap is X-Wing decapsulation (used by the generator's own tests).
func xwingDecap(seed, enc []byte) ([]byte, error) {
	if len(enc) != xwingEncLen {
		return nil, fmt.Errorf("encapsulation is %d bytes", len(enc))
	}
	pq, t := xwingKey(seed)
	ssM, err := pq.Decapsulate(enc[:mlkem.CiphertextSize768])
	if err != nil {
		return nil, err
	}
	ctX := enc[mlkem.CiphertextSize768:]
	peer, err := ecdh.X25519().NewPublicKey(ctX)
	if err != nil {
		return nil, err
	}
	ssX, err := t.ECDH(peer)
	if err != nil {
		return nil, err
	}
	return xwingCombine(ssM, ssX, ctX, t.PublicKey().Bytes()), nil
}

// hpkeKeySchedule is RFC 9180's KeySchedule in base mode (no PSK) for the
// suite above: it returns the AEAD key and base nonce.
func hpkeKeySchedule(sharedSecret, info []byte) (key, nonce []byte) {
	suite := []byte("HPKE")
	suite = binary.BigEndian.AppendUint16(suite, kemID)
	suite = binary.BigEndian.AppendUint16(suite, kdfID)
	suite = binary.BigEndian.AppendUint16(suite, aeadID)
	labeledExtract := func(salt []byte, label string, ikm []byte) []byte {
		in := append(append(append([]byte("HPKE-v1"), suite...), label...), ikm...)
		prk, err := hkdf.Extract(sha256.New, in, salt)
		if err != nil {
			panic(err)
		}
		return prk
	}
	labeledExpand := func(prk []byte, label string, info []byte, n int) []byte {
		in := binary.BigEndian.AppendUint16(nil, uint16(n))
		in = append(append(append(append(in, "HPKE-v1"...), suite...), label...), info...)
		out, err := hkdf.Expand(sha256.New, prk, string(in), n)
		if err != nil {
			panic(err)
		}
		return out
	}
	ctx := []byte{0} // mode_base
	ctx = append(ctx, labeledExtract(nil, "psk_id_hash", nil)...)
	ctx = append(ctx, labeledExtract(nil, "info_hash", info)...)
	secret := labeledExtract(sharedSecret, "secret", nil)
	return labeledExpand(secret, "key", ctx, chacha20poly1305.KeySize),
		labeledExpand(secret, "base_nonce", ctx, chacha20poly1305.NonceSize)
}

// hpkeSeal is RFC 9180 single-shot SealBase: enc || ciphertext.
func hpkeSeal(pk []byte, info string, plaintext []byte, r io.Reader) []byte {
	return hpkeSealShare(pk, info, plaintext, r, nil)
}

// hpkeOpen is RFC 9180 single-shot OpenBase.
func hpkeOpen(seed []byte, info string, ct []byte) ([]byte, error) {
	ss, err := xwingDecap(seed, ct[:xwingEncLen])
	if err != nil {
		return nil, err
	}
	key, nonce := hpkeKeySchedule(ss, []byte(info))
	aead, _ := chacha20poly1305.New(key)
	return aead.Open(nil, nonce, ct[xwingEncLen:], nil)
}

// hkdfSHA256 is HKDF-SHA256 with an empty salt.
func hkdfSHA256(secret []byte, info string) []byte {
	prk, err := hkdf.Extract(sha256.New, secret, nil)
	if err != nil {
		panic(err)
	}
	out, err := hkdf.Expand(sha256.New, prk, info, 32)
	if err != nil {
		panic(err)
	}
	return out
}

// contentKeys derives the header MAC key and the payload key from the
// content ("file") key.
func contentKeys(fileKey []byte) (macKey, payloadKey []byte) {
	return hkdfSHA256(fileKey, headerMACLabel), hkdfSHA256(fileKey, payloadLabel)
}

func hmacSHA256(key []byte, msgs ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, b := range msgs {
		m.Write(b)
	}
	return m.Sum(nil)
}

// payloadAEAD encrypts or decrypts the payload: ChaCha20-Poly1305 under the
// payload key, zero nonce (the key is used once), no additional data.
func payloadAEAD(payloadKey []byte) (seal func(inner []byte) []byte, open func(ct []byte) ([]byte, error)) {
	aead, _ := chacha20poly1305.New(payloadKey)
	nonce := make([]byte, chacha20poly1305.NonceSize)
	return func(inner []byte) []byte { return aead.Seal(nil, nonce, inner, nil) },
		func(ct []byte) ([]byte, error) { return aead.Open(nil, nonce, ct, nil) }
}

// authData is what the sender's authenticator covers: SHA-256 over the
// label, the routing header and every stanza, and the inner plaintext up
// to the end of the body.
func authData(headerAndStanzas, prefixAndBody []byte) []byte {
	h := sha256.New()
	h.Write([]byte(authLabel))
	h.Write(headerAndStanzas)
	h.Write(prefixAndBody)
	return h.Sum(nil)
}

// deniableMAC is the MAC from sender to recipient: HMAC-SHA256 keyed with
// HKDF-SHA256(X25519(self, peer), info = label || sender DH || recipient DH).
func deniableMAC(self *ecdh.PrivateKey, peer, senderDH, recipientDH, ad []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, err
	}
	shared, err := self.ECDH(p)
	if err != nil {
		return nil, err
	}
	info := deniableLabel + string(senderDH) + string(recipientDH)
	return hmacSHA256(hkdfSHA256(shared, info), ad), nil
}

// An identity is a Beacon secret identity: 96 bytes, the Ed25519 seed, the
// X25519 scalar and the X-Wing seed.
type identity struct {
	name   string
	secret []byte
	sign   ed25519.PrivateKey
	dh     *ecdh.PrivateKey
	pub    []byte // signing key, DH key, KEM key
}

func newIdentity(name string) *identity {
	return identityFromSecret(name, derive("identity/"+name, 96))
}

func identityFromSecret(name string, secret []byte) *identity {
	id := &identity{name: name, secret: secret, sign: ed25519.NewKeyFromSeed(secret[:32])}
	var err error
	if id.dh, err = ecdh.X25519().NewPrivateKey(secret[32:64]); err != nil {
		panic(err)
	}
	id.pub = append(append(append([]byte(nil), id.sign.Public().(ed25519.PublicKey)...),
		id.dh.PublicKey().Bytes()...), xwingPublic(secret[64:])...)
	return id
}

func (id *identity) kemSeed() []byte    { return id.secret[64:] }
func (id *identity) kemPublic() []byte  { return id.pub[signingKeySize+dhKeySize:] }
func (id *identity) dhPublic() []byte   { return id.pub[signingKeySize : signingKeySize+dhKeySize] }
func (id *identity) publicText() string { return publicIdentityPrefix + b64.EncodeToString(id.pub) }
func (id *identity) secretText() string { return secretIdentityPrefix + b64.EncodeToString(id.secret) }

// An inboxKey is a mission's rotating X-Wing key: a 32-byte seed.
type inboxKey struct {
	seed []byte
	pub  []byte
}

func newInboxKey(name string) *inboxKey { return inboxFromSeed(derive("inbox/"+name, 32)) }

func inboxFromSeed(seed []byte) *inboxKey { return &inboxKey{seed: seed, pub: xwingPublic(seed)} }

func (k *inboxKey) secretText() string { return inboxSecretPrefix + b64.EncodeToString(k.seed) }
