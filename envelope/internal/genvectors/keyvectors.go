package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// A keyVector is one input to a parser of package keys and what parsing
// it must give (keys/testdata/vectors/README.md).
type keyVector struct {
	name        string
	description string
	kind        string // which parser: public-identity, secret-identity, ...
	expect      string
	fields      [][2]string // kind-specific, in order
	input       []byte
}

func (v *keyVector) field(k, val string) { v.fields = append(v.fields, [2]string{k, val}) }

func (v *keyVector) render() []byte {
	var b bytes.Buffer
	if strings.Contains(v.description, "\n") {
		panic("multi-line description in " + v.name)
	}
	fmt.Fprintf(&b, "description: %s\nkind: %s\nexpect: %s\n", v.description, v.kind, v.expect)
	for _, f := range v.fields {
		if strings.ContainsAny(f[1], "\r\n") {
			panic("multi-line field in " + v.name)
		}
		fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
	}
	b.WriteString("\n")
	writeBase64(&b, v.input)
	return b.Bytes()
}

// writeBase64 writes standard base64 with padding, wrapped at 76 columns.
func writeBase64(b *bytes.Buffer, data []byte) {
	text := base64.StdEncoding.EncodeToString(data)
	for len(text) > 76 {
		b.WriteString(text[:76] + "\n")
		text = text[76:]
	}
	b.WriteString(text + "\n")
}

// Offsets in a public identity.
const (
	offSign  = 0
	offDH    = signingKeySize
	offKEM   = signingKeySize + dhKeySize
	offKEMX  = offKEM + kemKeySize - 32
	mlkemLen = kemKeySize - 32
)

// Times of the signed inbox key vectors.
var (
	inboxExpires = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	inboxNow     = time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
)

func keyVectors() []*keyVector {
	var vs []*keyVector
	add := func(v *keyVector) *keyVector { vs = append(vs, v); return v }
	text := func(name, kind, expect, desc, input string) *keyVector {
		return add(&keyVector{name: name, kind: kind, expect: expect, description: desc, input: []byte(input)})
	}
	// identityWith is the defender's public identity with bytes from off
	// replaced.
	identityWith := func(off int, b []byte) string {
		pub := bytes.Clone(defender.pub)
		copy(pub[off:], b)
		return publicText(pub)
	}
	bad := func(name, desc, input string) { text(name, "public-identity", "ErrMalformedKey", desc, input) }

	// Public identities.
	ok := text("ok-public-identity", "public-identity", "ok", "a defender's public identity", defender.publicText())
	ok.field("fingerprint", fingerprintText(defender.fingerprint()))
	ok.field("safety-number", safetyNumber(defender.pub))

	// A signing key with a torsion component: no honest key has one, but it
	// is a canonical point of large order, so it is accepted (keys/SPEC.md).
	_, pubA := ed25519Scalar(defender.secret[:32])
	mixed := bytes.Clone(defender.pub)
	copy(mixed, pubA.add(torsion8).encode())
	if p, ok := edDecode(mixed[:32]); !ok || p.isSmallOrder() || p.mul(groupL).equal(edIdentity()) {
		panic("mixed-order key")
	}
	ok = text("ok-public-identity-mixed-order-signing-key", "public-identity", "ok",
		"the signing key is A + T, T of order 8: a canonical point of large order, accepted", publicText(mixed))
	ok.field("fingerprint", fingerprintText(sha256Label(fingerprintLabel, mixed)))
	ok.field("safety-number", safetyNumber(mixed))

	pt := defender.publicText()
	bad("public-identity-upper-case-prefix", "the prefix in upper case, BCN-ID:", "BCN-ID:"+strings.TrimPrefix(pt, publicIdentityPrefix))
	bad("public-identity-no-prefix", "the base64url payload without its prefix", strings.TrimPrefix(pt, publicIdentityPrefix))
	bad("public-identity-inbox-text", "an inbox key's text given as an identity", missionInbox.publicText())
	bad("public-identity-padded", "the payload with base64 padding appended", pt+"=")
	bad("public-identity-short", "the last character dropped", pt[:len(pt)-1])
	bad("public-identity-long", "one character more", pt+"A")
	bad("public-identity-standard-alphabet", "the first payload character replaced by +, which base64url does not use",
		publicIdentityPrefix+"+"+pt[len(publicIdentityPrefix)+1:])
	bad("public-identity-trailing-bits", "the two unused bits of the last character set: a second text for the same bytes",
		pt[:len(pt)-1]+string(b64url[strings.IndexByte(b64url, pt[len(pt)-1])|3]))
	bad("public-identity-line-break", "a line break after 76 characters, one character dropped so the length is right",
		pt[:76]+"\n"+pt[76:len(pt)-1])
	bad("public-identity-space", "a trailing space", pt+" ")

	order8 := smallOrderPoints[1] // some point of order 8 or less
	for _, p := range smallOrderPoints {
		if !p.mul(big.NewInt(4)).equal(edIdentity()) {
			order8 = p
			break
		}
	}
	bad("public-identity-signing-key-small-order", "the signing key is a point of order 8", identityWith(offSign, order8.encode()))
	bad("public-identity-signing-key-identity", "the signing key is the identity point (y = 1)", identityWith(offSign, edIdentity().encode()))
	bad("public-identity-signing-key-not-on-curve",
		fmt.Sprintf("the signing key's y = %d has no x on the curve", fromLE(notOnCurveY()).Int64()), identityWith(offSign, notOnCurveY()))
	nonCanon, canon := nonCanonicalEd()
	bad("public-identity-signing-key-non-canonical",
		fmt.Sprintf("the signing key is y = p + %d, a second encoding of a valid key", fromLE(canon[:31]).Int64()), identityWith(offSign, nonCanon))
	bad("public-identity-signing-key-zero", "an all-zero signing key", identityWith(offSign, make([]byte, 32)))

	lowU := func(i int) []byte { return lowOrderU[i] }
	bad("public-identity-dh-zero", "an all-zero DH key (u = 0, order 2)", identityWith(offDH, make([]byte, 32)))
	for i, u := range lowOrderU {
		if fromLE(u).Sign() == 0 {
			continue
		}
		bad(fmt.Sprintf("public-identity-dh-low-order-%d", i), "the DH key is a point of small order, "+shortU(u), identityWith(offDH, u))
	}
	bad("public-identity-dh-non-canonical", "the DH key is u = p + 9, a second encoding of u = 9",
		identityWith(offDH, le(new(big.Int).Add(fieldP, big.NewInt(9)))))
	topBit := bytes.Clone(defender.dhPublic())
	topBit[31] |= 0x80
	bad("public-identity-dh-top-bit", "the DH key with its top bit set, which X25519 ignores", identityWith(offDH, topBit))
	bad("public-identity-kem-x25519-low-order", "the X25519 part of the KEM key is a point of small order, "+shortU(lowU(3)),
		identityWith(offKEMX, lowU(3)))
	bad("public-identity-kem-x25519-zero", "the X25519 part of the KEM key is all zeros", identityWith(offKEMX, make([]byte, 32)))
	kemTop := bytes.Clone(defender.pub[offKEMX:])
	kemTop[31] |= 0x80
	bad("public-identity-kem-x25519-top-bit", "the X25519 part of the KEM key with its top bit set", identityWith(offKEMX, kemTop))
	bad("public-identity-kem-mlkem-modulus", "the first ML-KEM coefficient is 4095, not below q = 3329 (FIPS 203 modulus check)",
		identityWith(offKEM, mlkemOutOfRange(defender.pub[offKEM:])))
	bad("public-identity-kem-mlkem-zero", "the ML-KEM part of the KEM key is all zeros", identityWith(offKEM, make([]byte, mlkemLen)))

	// Secret identities.
	ok = text("ok-secret-identity", "secret-identity", "ok", "a defender's secret identity", defender.secretText())
	ok.field("public", defender.publicText())
	ok.field("fingerprint", fingerprintText(defender.fingerprint()))
	ok.field("safety-number", safetyNumber(defender.pub))
	ok = text("ok-secret-identity-mission", "secret-identity", "ok", "a mission's secret identity", mission.secretText())
	ok.field("public", mission.publicText())
	ok.field("fingerprint", fingerprintText(mission.fingerprint()))
	ok.field("safety-number", safetyNumber(mission.pub))
	st := defender.secretText()
	text("secret-identity-lower-case-prefix", "secret-identity", "ErrMalformedKey", "the secret prefix in lower case",
		"bcn-secret-id:"+strings.TrimPrefix(st, secretIdentityPrefix))
	text("secret-identity-short", "secret-identity", "ErrMalformedKey", "the last character dropped", st[:len(st)-1])
	text("secret-identity-public-text", "secret-identity", "ErrMalformedKey", "a public identity given as a secret", defender.publicText())
	text("secret-identity-inbox-secret", "secret-identity", "ErrMalformedKey", "an inbox secret given as an identity secret", missionInbox.secretText())

	// Inbox keys.
	text("ok-inbox-public", "inbox-public", "ok", "a mission's inbox public key", missionInbox.publicText())
	inboxWith := func(off int, b []byte) string {
		pub := bytes.Clone(missionInbox.pub)
		copy(pub[off:], b)
		return inboxPublicPrefix + b64.EncodeToString(pub)
	}
	text("inbox-public-x25519-low-order", "inbox-public", "ErrMalformedKey", "the X25519 part is a point of small order, "+shortU(lowU(1)),
		inboxWith(mlkemLen, lowU(1)))
	text("inbox-public-x25519-non-canonical", "inbox-public", "ErrMalformedKey", "the X25519 part is u = p + 9",
		inboxWith(mlkemLen, le(new(big.Int).Add(fieldP, big.NewInt(9)))))
	text("inbox-public-mlkem-modulus", "inbox-public", "ErrMalformedKey", "the first ML-KEM coefficient is 4095",
		inboxWith(0, mlkemOutOfRange(missionInbox.pub)))
	text("inbox-public-identity-text", "inbox-public", "ErrMalformedKey", "a public identity given as an inbox key", mission.publicText())
	ok = text("ok-inbox-secret", "inbox-secret", "ok", "a mission's inbox secret key", missionInbox.secretText())
	ok.field("public", missionInbox.publicText())
	is := missionInbox.secretText()
	text("inbox-secret-short", "inbox-secret", "ErrMalformedKey", "the last character dropped", is[:len(is)-1])
	text("inbox-secret-public-text", "inbox-secret", "ErrMalformedKey", "an inbox public key given as a secret", missionInbox.publicText())

	// Fingerprints.
	fp := fingerprintText(mission.fingerprint())
	text("ok-fingerprint", "fingerprint", "ok", "a mission's fingerprint", fp)
	text("fingerprint-upper-case", "fingerprint", "ErrMalformedKey", "the hex digits in upper case", fingerprintPrefix+strings.ToUpper(fp[len(fingerprintPrefix):]))
	text("fingerprint-short", "fingerprint", "ErrMalformedKey", "63 hex digits", fp[:len(fp)-1])
	text("fingerprint-prefix", "fingerprint", "ErrMalformedKey", "the prefix bcn-id: instead of bcn-fp:", publicIdentityPrefix+fp[len(fingerprintPrefix):])
	text("fingerprint-base64url", "fingerprint", "ErrMalformedKey", "the digest in base64url instead of hex", fingerprintPrefix+b64.EncodeToString(mission.fingerprint()))

	vs = append(vs, signedInboxKeyVectors()...)
	vs = append(vs, keyFileVectors()...)
	return vs
}

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func sha256Label(label string, b []byte) []byte {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write(b)
	return h.Sum(nil)
}

func signRaw(id *identity, msg []byte) []byte { return ed25519.Sign(id.sign, msg) }

func shortU(u []byte) string {
	s := fromLE(u).String()
	if len(s) > 12 {
		s = s[:6] + "…" + s[len(s)-4:]
	}
	return "u = " + s
}

// mlkemOutOfRange sets the first 12-bit coefficient of an ML-KEM-768
// encapsulation key to 4095.
func mlkemOutOfRange(ek []byte) []byte {
	b := bytes.Clone(ek[:mlkemLen])
	b[0] = 0xff
	b[1] |= 0x0f
	return b
}

func signedInboxKeyVectors() []*keyVector {
	var vs []*keyVector
	sv := func(name, expect, desc string, owner *identity, expires, now time.Time, sig []byte) {
		v := &keyVector{name: name, kind: "signed-inbox-key", expect: expect, description: desc, input: sig}
		v.field("owner", owner.publicText())
		v.field("key", missionInbox.publicText())
		v.field("expires", expires.Format(time.RFC3339Nano))
		v.field("now", now.Format(time.RFC3339Nano))
		vs = append(vs, v)
	}
	msg := inboxKeyMessage(missionInbox.pub, inboxExpires)
	good := mission.signInboxKey(missionInbox.pub, inboxExpires)
	sv("ok-signed-inbox-key", "ok", "a mission's inbox key, signed, before its expiry", mission, inboxExpires, inboxNow, good)
	sv("ok-signed-inbox-key-last-second", "ok", "one second before the expiry", mission, inboxExpires, inboxExpires.Add(-time.Second), good)
	sv("signed-inbox-key-expired", "ErrExpired", "checked at the expiry time itself", mission, inboxExpires, inboxExpires, good)
	sv("signed-inbox-key-other-owner", "ErrBadSignature", "verified with another identity than the signer", defender, inboxExpires, inboxNow, good)
	sv("signed-inbox-key-other-expiry", "ErrBadSignature", "the signature is over an expiry one second later",
		mission, inboxExpires, inboxNow, mission.signInboxKey(missionInbox.pub, inboxExpires.Add(time.Second)))
	flipped := bytes.Clone(good)
	flipped[10] ^= 0x04
	sv("signed-inbox-key-bit-flip", "ErrBadSignature", "one bit of R flipped", mission, inboxExpires, inboxNow, flipped)
	sv("signed-inbox-key-short-signature", "ErrBadSignature", "the signature's last byte missing", mission, inboxExpires, inboxNow, good[:63])
	sv("signed-inbox-key-s-unreduced", "ErrBadSignature", "S replaced by S + L: the equation holds, but S is not below the group order",
		mission, inboxExpires, inboxNow, unreducedS(good))
	r := new(big.Int).Mod(fromLE(derive("signature nonce", 64)), groupL)
	sv("signed-inbox-key-r-small-order", "ErrBadSignature",
		"R is the identity point and S = k·a: the cofactorless equation holds, but R has small order",
		mission, inboxExpires, inboxNow, signWithR(mission.secret[:32], big.NewInt(0), edIdentity(), msg))
	sv("signed-inbox-key-r-mixed-order", "ErrBadSignature",
		"R = [r]B + T, T of order 8: the cofactored equation holds, the cofactorless one does not",
		mission, inboxExpires, inboxNow, signWithR(mission.secret[:32], r, torsion8, msg))
	sv("ok-signed-inbox-key-own-nonce", "ok", "signed with a nonce of the generator's choosing, R = [r]B: any r gives a valid signature",
		mission, inboxExpires, inboxNow, signWithR(mission.secret[:32], r, edIdentity(), msg))
	sv("signed-inbox-key-wrong-label", "ErrBadSignature", "the signature is over the key and expiry under the fingerprint label",
		mission, inboxExpires, inboxNow, signRaw(mission, append([]byte(fingerprintLabel), msg[len(inboxKeyLabel):]...)))
	sv("signed-inbox-key-expiry-fraction", "ErrMalformedKey", "the expiry has a fraction of a second, which the signature cannot cover",
		mission, inboxExpires.Add(500*time.Millisecond), inboxNow, good)
	return vs
}
