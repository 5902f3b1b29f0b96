package envelope

import (
	"bytes"
	"crypto/hmac"
	"crypto/hpke"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hrdbeacon/beacon/keys"
)

// Opened is a decrypted, authenticated envelope.
type Opened struct {
	Info
	// Sender is the authenticated author.
	Sender *keys.PublicIdentity
	// Auth is how the sender authenticated the envelope.
	Auth Auth
	// Body is the plaintext.
	Body []byte
	// Signature is the Ed25519 signature of a Signed envelope, which
	// [VerifySigned] checks for anyone. Nil for a Deniable one.
	Signature []byte
	// Stanza is the index of the recipient stanza that opened.
	Stanza int
}

// Open decrypts and authenticates an envelope addressed to id, or to one of
// its inbox keys. It checks, in order: structure ([Parse]), that a stanza
// opens ([ErrNotForMe]) to the content key the header MAC commits to
// ([ErrTampered]), the payload ([ErrTampered]), the plaintext's structure
// ([ErrMalformed], [ErrTooLarge]) and the sender's authenticator
// ([ErrBadAuthentication]). Nothing is returned unless every check passes.
//
// Open does not check freshness or replays: the caller keeps a seen-set of
// message ids.
func Open(env []byte, id *keys.Identity, inboxes ...*keys.InboxKey) (*Opened, error) {
	info, err := Parse(env)
	if err != nil {
		return nil, err
	}
	// Inbox keys first, newest (last) first: a mission receives on its
	// current inbox key, so its identity key would be a wasted attempt.
	// The order changes the cost, never the outcome (SPEC.md, "Finding
	// the stanza").
	candidates := make([]hpke.PrivateKey, 0, 1+len(inboxes))
	for i := len(inboxes) - 1; i >= 0; i-- {
		candidates = append(candidates, inboxes[i].KEMKey())
	}
	candidates = append(candidates, id.KEMKey())
	hdrLen := info.HeaderSize + info.Recipients*StanzaSize
	stanza, payloadKey, opened := findStanza(env, info, candidates)
	switch {
	case stanza < 0 && !opened:
		return nil, ErrNotForMe
	case stanza < 0:
		return nil, fmt.Errorf("%w: header MAC does not match", ErrTampered)
	}

	aead, _ := chacha20poly1305.New(payloadKey)
	inner, err := aead.Open(nil, make([]byte, aead.NonceSize()), env[hdrLen+headerMACSize:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: payload does not decrypt", ErrTampered)
	}

	o := &Opened{Info: info, Auth: Auth(inner[0]), Stanza: stanza}
	if o.Auth != Deniable && o.Auth != Signed {
		return nil, fmt.Errorf("%w: unknown authentication mode %d", ErrMalformed, inner[0])
	}
	o.Sender, err = keys.NewPublicIdentity(inner[1 : 1+keys.PublicIdentitySize])
	if err != nil {
		return nil, fmt.Errorf("%w: sender identity: %w", ErrMalformed, err)
	}
	bodyLen := binary.BigEndian.Uint32(inner[1+keys.PublicIdentitySize:])
	authLen := o.Auth.authSize(info.Recipients)
	// room is negative when the authenticator alone overflows the class
	// (many deniable recipients in a small class).
	if room := len(inner) - innerPrefixSize - authLen; room < 0 || uint64(bodyLen) > uint64(room) {
		return nil, fmt.Errorf("%w: body length %d does not fit the padded size", ErrMalformed, bodyLen)
	}
	// A body Seal would refuse is refused here too: what one
	// implementation cannot send, no implementation accepts.
	if bodyLen > MaxBodySize {
		return nil, fmt.Errorf("%w: body is %d bytes, the limit is %d", ErrTooLarge, bodyLen, MaxBodySize)
	}
	end := innerPrefixSize + int(bodyLen)
	// Padding must be zeros: no second encoding of the same message, and no
	// covert channel in the padding.
	if pad := inner[end+authLen:]; bytes.Count(pad, []byte{0}) != len(pad) {
		return nil, fmt.Errorf("%w: padding is not zero", ErrMalformed)
	}
	// The padded size must be the smallest class that fits, or the sender
	// could leak bits through the choice of class.
	if info.PaddedSize > 1<<minSizeClass && end+authLen <= info.PaddedSize/2 {
		return nil, fmt.Errorf("%w: padded to %d bytes, but %d fit a smaller size", ErrMalformed, info.PaddedSize, end+authLen)
	}
	o.Body = inner[innerPrefixSize:end:end]
	authenticator := inner[end : end+authLen]
	ad := authData(env[:hdrLen], inner[:end])
	switch o.Auth {
	case Deniable:
		want, err := deniableMAC(id, o.Sender, id.Public(), ad)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadAuthentication, err)
		}
		if !hmac.Equal(want, authenticator[stanza*macSize:(stanza+1)*macSize]) {
			return nil, fmt.Errorf("%w: deniable MAC does not verify", ErrBadAuthentication)
		}
	case Signed:
		if !o.Sender.Verify(ad, authenticator) {
			return nil, fmt.Errorf("%w: signature does not verify", ErrBadAuthentication)
		}
		o.Signature = authenticator
	}
	return o, nil
}

// findStanza returns the index of the first stanza that, under one of the
// keys, opens to the content key the header MAC commits to, and the
// payload key. opened reports whether any stanza opened at all, so that an
// envelope with a stanza for us but a wrong MAC is told from one for
// someone else.
//
// A stanza that opens to a key the header MAC refuses does not end the
// search. Anyone can seal a stanza to a public key, so the sender (or a
// co-recipient writing an envelope of its own) can put a decoy before the
// real stanza; stopping at the decoy would make the outcome depend on the
// order a reader tries its keys, and two readers, or two implementations,
// would disagree on one envelope. The header MAC commits to one content
// key, so at most one key passes, whatever the order of the search.
func findStanza(env []byte, info Info, candidates []hpke.PrivateKey) (stanza int, payloadKey []byte, opened bool) {
	hdrLen := info.HeaderSize + info.Recipients*StanzaSize
	mac := env[hdrLen : hdrLen+headerMACSize]
	// Stanzas carry no recipient hint (a hint would let the relay link
	// envelopes to recipients), so each is tried with each key.
	for i := range info.Recipients {
		st := env[info.HeaderSize+i*StanzaSize : info.HeaderSize+(i+1)*StanzaSize]
		for _, k := range candidates {
			fk, err := hpke.Open(k, suiteKDF, suiteAEAD, []byte(stanzaLabel), st)
			if err != nil || len(fk) != fileKeySize {
				continue
			}
			opened = true
			macKey, pk := deriveKeys(fk)
			if hmac.Equal(headerMAC(macKey, env[:hdrLen]), mac) {
				return i, pk, true
			}
		}
	}
	return -1, nil, opened
}

// VerifySigned checks, without any secret key, that a Signed envelope with
// the given plaintext body was signed by sender. It is how a third party,
// such as a partner government, verifies what an institution wrote.
func VerifySigned(env []byte, sender *keys.PublicIdentity, body, sig []byte) error {
	info, err := Parse(env)
	if err != nil {
		return err
	}
	if len(body) > MaxBodySize {
		return fmt.Errorf("%w: body", ErrTooLarge)
	}
	hdrLen := info.HeaderSize + info.Recipients*StanzaSize
	prefix := make([]byte, innerPrefixSize, innerPrefixSize+len(body))
	prefix[0] = byte(Signed)
	copy(prefix[1:], sender.Bytes())
	binary.BigEndian.PutUint32(prefix[1+keys.PublicIdentitySize:], uint32(len(body)))
	if !sender.Verify(authData(env[:hdrLen], append(prefix, body...)), sig) {
		return fmt.Errorf("%w: signature does not verify", ErrBadAuthentication)
	}
	return nil
}
