package envelope

import (
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
// opens ([ErrNotForMe]), the header MAC and the payload ([ErrTampered]), the
// plaintext's structure ([ErrMalformed]) and the sender's authenticator
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
	candidates := make([]hpke.PrivateKey, 0, 1+len(inboxes))
	for i := len(inboxes) - 1; i >= 0; i-- {
		candidates = append(candidates, inboxes[i].KEMKey())
	}
	candidates = append(candidates, id.KEMKey())
	hdrLen := info.HeaderSize + info.Recipients*StanzaSize
	stanza, fileKey := -1, []byte(nil)
	// Stanzas carry no recipient hint (a hint would let the relay link
	// envelopes to recipients), so each is tried with each key.
	for i := 0; i < info.Recipients && fileKey == nil; i++ {
		st := env[info.HeaderSize+i*StanzaSize : info.HeaderSize+(i+1)*StanzaSize]
		for _, k := range candidates {
			if fk, err := hpke.Open(k, suiteKDF, suiteAEAD, []byte(stanzaLabel), st); err == nil && len(fk) == fileKeySize {
				stanza, fileKey = i, fk
				break
			}
		}
	}
	if fileKey == nil {
		return nil, ErrNotForMe
	}

	macKey, payloadKey := deriveKeys(fileKey)
	if !hmac.Equal(headerMAC(macKey, env[:hdrLen]), env[hdrLen:hdrLen+headerMACSize]) {
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
	end := innerPrefixSize + int(bodyLen)
	// Padding must be zeros: no second encoding of the same message, and no
	// covert channel in the padding.
	if !isZero(inner[end+authLen:]) {
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
