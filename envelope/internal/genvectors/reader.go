package main

import (
	"crypto/ed25519"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
)

// An opened envelope, as this implementation reads it.
type opened struct {
	sender, body []byte
	auth         byte
	stanza       int
}

// openIndependently opens an envelope with this implementation only: the
// generator's own reader, which finds the stanza by SPEC.md's rule (every
// stanza in order, with each of the reader's KEM seeds, until one opens
// to the content key the header MAC commits to). It checks less than a
// receiver must (identities are not validated): it is here to compute the
// outcome of the valid vectors and to open what package envelope seals.
func openIndependently(env []byte, me *identity, kemSeeds ...[]byte) (*opened, error) {
	if len(env) < routingSize || string(env[:3]) != magic || env[offVersion] != version {
		return nil, errors.New("not an envelope")
	}
	n := routingSize
	if env[offFlags]&flagReplyTo != 0 {
		n += mailboxSize
	}
	class, count := int(env[n-2]), int(env[n-1])
	hdrLen := n + count*stanzaSize
	if len(env) != hdrLen+headerMACSize+1<<class+tagSize {
		return nil, fmt.Errorf("length %d", len(env))
	}
	var payloadKey []byte
	stanza := -1
search:
	for i := range count {
		for _, seed := range kemSeeds {
			fk, err := hpkeOpen(seed, stanzaLabel, env[n+i*stanzaSize:n+(i+1)*stanzaSize])
			if err != nil {
				continue
			}
			macKey, pk := contentKeys(fk)
			if hmac.Equal(hmacSHA256(macKey, env[:hdrLen]), env[hdrLen:hdrLen+headerMACSize]) {
				payloadKey, stanza = pk, i
				break search
			}
		}
	}
	if payloadKey == nil {
		return nil, errors.New("no stanza opens to the committed content key")
	}
	_, open := payloadAEAD(payloadKey)
	inner, err := open(env[hdrLen+headerMACSize:])
	if err != nil {
		return nil, err
	}
	o := &opened{auth: inner[0], sender: inner[1 : 1+publicIdentitySize], stanza: stanza}
	bodyLen := int(binary.BigEndian.Uint32(inner[1+publicIdentitySize:]))
	authLen := signatureSize
	if o.auth == authDeniable {
		authLen = count * macSize
	}
	end := innerPrefixSize + bodyLen
	if end+authLen > len(inner) || bodyLen > maxBodySize {
		return nil, errors.New("body length")
	}
	for _, c := range inner[end+authLen:] {
		if c != 0 {
			return nil, errors.New("padding")
		}
	}
	if class > minClass && end+authLen <= 1<<(class-1) {
		return nil, errors.New("over-padded")
	}
	ad := authData(env[:hdrLen], inner[:end])
	authenticator := inner[end : end+authLen]
	switch o.auth {
	case authDeniable:
		senderDH := o.sender[signingKeySize : signingKeySize+dhKeySize]
		mac, err := deniableMAC(me.dh, senderDH, senderDH, me.dhPublic(), ad)
		if err != nil {
			return nil, err
		}
		if !hmac.Equal(mac, authenticator[stanza*macSize:(stanza+1)*macSize]) {
			return nil, errors.New("deniable MAC")
		}
	case authSigned:
		if !ed25519.Verify(ed25519.PublicKey(o.sender[:signingKeySize]), ad, authenticator) {
			return nil, errors.New("signature")
		}
	default:
		return nil, errors.New("auth mode")
	}
	o.body = inner[innerPrefixSize:end]
	return o, nil
}
