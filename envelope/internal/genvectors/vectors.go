package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"
)

// The cast. Every key is derived from its name, so the vectors are the same
// on every run.
var (
	recipientID  = newIdentity("recipient")
	defender     = newIdentity("defender")
	embassy      = newIdentity("embassy")
	mission      = newIdentity("mission")
	missionInbox = newInboxKey("mission/2025-06")
	mallory      = newIdentity("mallory")
	others       = func() []*identity {
		ids := make([]*identity, maxRecipients)
		for i := range ids {
			ids[i] = newIdentity(fmt.Sprintf("other-%02d", i))
		}
		return ids
	}()

	created   = time.Date(2025, 6, 1, 12, 30, 45, 123_000_000, time.UTC)
	alertBody = "I am being followed by two men in a grey car near the court. " +
		"If you do not hear from me by 18:00, please call my lawyer."
)

// A vector is one envelope and what opening it must give.
type vector struct {
	name        string
	description string
	expect      string // "ok", or the name of the sentinel Open returns
	parse       string // "ok", or the name of the sentinel Parse returns
	identity    *identity
	inbox       *inboxKey
	msg         message
	// header edits the routing header before anything is computed over
	// it: a sender who wrote that header.
	header func(h []byte) []byte
	// edit changes the parts after the authenticator is computed and
	// before the header MAC and encryption: a sender or co-recipient who
	// knows the content key.
	edit func(p *parts)
	// after edits the finished envelope: anyone on the path.
	after func(env []byte) []byte
}

func base(name string) message {
	return message{
		country:  "ug",
		priority: 1,
		id:       derive("id/"+name, idSize),
		created:  created,
		from:     defender,
		auth:     authDeniable,
		body:     []byte(alertBody),
		to:       to(recipientID),
	}
}

// flip returns an edit that flips one bit at offset off.
func flip(off, bit int) func([]byte) []byte {
	return func(env []byte) []byte { env[off] ^= 1 << bit; return env }
}

// Offsets in an envelope with one recipient and no reply mailbox.
const (
	stanza0    = routingSize
	ctX0       = stanza0 + xwingEncLen - 32
	wrapped0   = stanza0 + xwingEncLen
	macOffset0 = stanza0 + stanzaSize
	payload    = macOffset0 + 32
)

func vectors() []*vector {
	var vs []*vector
	add := func(v *vector) {
		if v.identity == nil {
			v.identity = recipientID
		}
		if v.parse == "" {
			v.parse = "ok"
		}
		if v.msg.from == nil {
			v.msg = base(v.name)
		}
		vs = append(vs, v)
	}
	with := func(name string, f func(m *message)) message {
		m := base(name)
		f(&m)
		return m
	}
	// A parse-level failure: Parse and Open say the same.
	header := func(name, desc, want string, f func(h []byte) []byte) {
		add(&vector{name: name, description: desc, expect: want, parse: want, header: f})
	}
	// A change to the plaintext, re-encrypted with the content key so
	// that it reaches the check it is for.
	inner := func(name, desc, want string, m message, f func(p *parts)) {
		add(&vector{name: name, description: desc, expect: want, msg: m, edit: f})
	}

	// Valid envelopes.
	add(&vector{name: "ok-deniable-1", expect: "ok",
		description: "a defender's alert to one recipient, deniably authenticated"})
	add(&vector{name: "ok-deniable-3", expect: "ok",
		description: "deniable, three recipients; the reader's stanza and MAC are the third",
		msg:         with("ok-deniable-3", func(m *message) { m.to = to(others[0], others[1], recipientID) })})
	add(&vector{name: "ok-signed-3", expect: "ok",
		description: "an embassy's signed acknowledgement to three recipients; the reader's stanza is the second",
		msg: with("ok-signed-3", func(m *message) {
			m.from, m.auth, m.country, m.priority = embassy, authSigned, "ke", 3
			m.body = []byte("Acknowledged. An officer will call you within the hour on the agreed number.")
			m.to = to(others[0], recipientID, others[1])
		})})
	add(&vector{name: "ok-reply-to", expect: "ok",
		description: "with a reply mailbox in the routing header",
		msg: with("ok-reply-to", func(m *message) {
			m.priority = 2
			m.replyTo = derive("mailbox/ok-reply-to", mailboxSize)
		})})
	add(&vector{name: "ok-inbox", expect: "ok", identity: mission, inbox: missionInbox,
		description: "to a mission's inbox key; the deniable MAC is keyed with the mission's identity",
		msg: with("ok-inbox", func(m *message) {
			m.to = []recipient{to(others[0])[0], {id: mission, kem: missionInbox.pub}}
		})})
	add(&vector{name: "ok-empty-body", expect: "ok", description: "an empty body",
		msg: with("ok-empty-body", func(m *message) { m.body = nil })})
	fits11 := 1<<minClass - innerPrefixSize - macSize
	add(&vector{name: "ok-class-11-full", expect: "ok",
		description: fmt.Sprintf("a %d-byte body and one MAC fill size class 11 exactly: no padding", fits11),
		msg:         with("ok-class-11-full", func(m *message) { m.body = bytes.Repeat([]byte("a"), fits11) })})
	add(&vector{name: "ok-class-12", expect: "ok",
		description: fmt.Sprintf("a %d-byte body is one byte too many for class 11 and goes to class 12", fits11+1),
		msg:         with("ok-class-12", func(m *message) { m.body = bytes.Repeat([]byte("a"), fits11+1) })})

	// Structure: refused by Parse, the relay's check.
	add(&vector{name: "truncated", expect: "ErrTruncated", parse: "ErrTruncated",
		description: "the last byte is missing",
		after:       func(env []byte) []byte { return env[:len(env)-1] }})
	add(&vector{name: "truncated-in-header", expect: "ErrTruncated", parse: "ErrTruncated",
		description: "only the first 20 bytes, which end inside the routing header",
		after:       func(env []byte) []byte { return env[:20] }})
	add(&vector{name: "trailing-byte", expect: "ErrMalformed", parse: "ErrMalformed",
		description: "one zero byte after the end of the envelope",
		after:       func(env []byte) []byte { return append(env, 0) }})
	header("bad-magic", "the magic is BCX", "ErrMalformed", func(h []byte) []byte { h[2] = 'X'; return h })
	header("version-2", "version 2", "ErrUnsupportedVersion", func(h []byte) []byte { h[offVersion] = 2; return h })
	header("unknown-flag", "flag bit 0x02, which no version defines", "ErrMalformed", func(h []byte) []byte { h[offFlags] = 0x02; return h })
	header("priority-0", "priority 0", "ErrMalformed", func(h []byte) []byte { h[offPriority] = 0; return h })
	header("priority-4", "priority 4", "ErrMalformed", func(h []byte) []byte { h[offPriority] = 4; return h })
	header("country-unknown", "country zz, user-assigned, not a country", "ErrMalformed", func(h []byte) []byte { copy(h[offCountry:], "zz"); return h })
	header("country-upper-case", "country UG: codes are lower case on the wire", "ErrMalformed", func(h []byte) []byte { copy(h[offCountry:], "UG"); return h })
	header("zero-id", "an all-zero message id", "ErrMalformed", func(h []byte) []byte { clear(h[offID : offID+idSize]); return h })
	header("created-before-2020", "created 2019-12-31T23:59:59.999Z", "ErrMalformed", func(h []byte) []byte {
		binary.BigEndian.PutUint64(h[offCreated:], uint64(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()-1))
		return h
	})
	header("created-2100", "created 2100-01-01T00:00:00Z", "ErrMalformed", func(h []byte) []byte {
		binary.BigEndian.PutUint64(h[offCreated:], uint64(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()))
		return h
	})
	add(&vector{name: "zero-reply-mailbox", expect: "ErrMalformed", parse: "ErrMalformed",
		description: "the reply flag is set and the mailbox is all zeros",
		msg:         with("zero-reply-mailbox", func(m *message) { m.replyTo = make([]byte, mailboxSize) })})
	add(&vector{name: "size-class-10", expect: "ErrMalformed", parse: "ErrMalformed",
		description: "size class 10 (1 KiB payload, which cannot even hold the sender's identity)",
		msg:         with("size-class-10", func(m *message) { m.class = 10 })})
	add(&vector{name: "recipients-0", expect: "ErrTooManyRecipients", parse: "ErrTooManyRecipients",
		description: "no recipient stanza",
		msg:         with("recipients-0", func(m *message) { m.to = nil })})
	add(&vector{name: "recipients-33", expect: "ErrTooManyRecipients", parse: "ErrTooManyRecipients",
		description: "33 stanzas, one more than the limit; the reader's is the first",
		msg:         with("recipients-33", func(m *message) { m.to = to(append([]*identity{recipientID}, others...)...) })})

	// Stanzas: nothing opens.
	add(&vector{name: "not-for-me", expect: "ErrNotForMe",
		description: "sealed to two other identities",
		msg:         with("not-for-me", func(m *message) { m.to = to(others[0], others[1]) })})
	add(&vector{name: "inbox-key-missing", expect: "ErrNotForMe", identity: mission,
		description: "sealed to the mission's inbox key, opened with the mission's identity alone",
		msg:         with("inbox-key-missing", func(m *message) { m.to = []recipient{{id: mission, kem: missionInbox.pub}} })})
	add(&vector{name: "stanza-mlkem-bit-flip", expect: "ErrNotForMe",
		description: "one bit flipped in the stanza's ML-KEM ciphertext", after: flip(stanza0+100, 3)})
	add(&vector{name: "stanza-x25519-bit-flip", expect: "ErrNotForMe",
		description: "one bit flipped in the stanza's X25519 share", after: flip(ctX0+5, 0)})
	add(&vector{name: "stanza-x25519-high-bit", expect: "ErrNotForMe",
		description: "the top bit of the X25519 share, which X25519 ignores, flipped: X-Wing hashes the share's bytes",
		after:       flip(ctX0+31, 7)})
	add(&vector{name: "stanza-wrapped-key-bit-flip", expect: "ErrNotForMe",
		description: "one bit flipped in the wrapped content key", after: flip(wrapped0+7, 6)})
	inner("stanza-wrong-info", "the content key is wrapped with HPKE info beacon.envelope.v0/stanza", "ErrNotForMe",
		base("stanza-wrong-info"), func(p *parts) {
			p.stanzas[0] = hpkeSeal(recipientID.kemPublic(), "beacon.envelope.v0/stanza", p.fileKey, p.rand)
		})

	// The header MAC and the payload: modified after sealing.
	inner("stanza-other-key", "the stanza gives another content key than the one the header MAC and payload use", "ErrTampered",
		base("stanza-other-key"), func(p *parts) {
			p.stanzas[0] = hpkeSeal(recipientID.kemPublic(), stanzaLabel, derive("another content key", fileKeySize), p.rand)
		})
	add(&vector{name: "header-mac-bit-flip", expect: "ErrTampered",
		description: "one bit flipped in the header MAC", after: flip(macOffset0+9, 1)})
	add(&vector{name: "country-changed", expect: "ErrTampered",
		description: "the country rewritten from ug to ke after sealing: Parse accepts it, the header MAC does not",
		after:       func(env []byte) []byte { copy(env[offCountry:], "ke"); return env }})
	add(&vector{name: "priority-changed", expect: "ErrTampered",
		description: "the priority rewritten from urgent to routine after sealing",
		after:       func(env []byte) []byte { env[offPriority] = 3; return env }})
	add(&vector{name: "id-changed", expect: "ErrTampered",
		description: "one bit of the message id flipped after sealing", after: flip(offID+15, 0)})
	add(&vector{name: "reply-to-stripped", expect: "ErrTampered",
		description: "the reply mailbox and its flag removed after sealing",
		msg: with("reply-to-stripped", func(m *message) {
			m.replyTo = derive("mailbox/reply-to-stripped", mailboxSize)
		}),
		after: func(env []byte) []byte {
			env[offFlags] = 0
			return append(env[:offMailbox], env[offMailbox+mailboxSize:]...)
		}})
	add(&vector{name: "payload-bit-flip", expect: "ErrTampered",
		description: "one bit flipped in the encrypted payload", after: flip(payload+500, 4)})
	add(&vector{name: "payload-tag-bit-flip", expect: "ErrTampered",
		description: "one bit flipped in the payload's Poly1305 tag",
		after:       func(env []byte) []byte { env[len(env)-1] ^= 0x80; return env }})

	// The plaintext's structure.
	inner("nonzero-padding", "the last padding byte is 0x01", "ErrMalformed", base("nonzero-padding"),
		func(p *parts) { p.inner[len(p.inner)-1] = 1 })
	add(&vector{name: "over-padded", expect: "ErrMalformed",
		description: "padded to class 12 when class 11 holds the message; the MAC covers class 12 and is valid",
		msg:         with("over-padded", func(m *message) { m.class = 12 })})
	inner("unknown-auth-mode", "authentication mode 3", "ErrMalformed", base("unknown-auth-mode"),
		func(p *parts) { p.inner[0] = 3 })
	inner("sender-malformed", "the sender's public identity is all zeros", "ErrMalformed", base("sender-malformed"),
		func(p *parts) { clear(p.sender()) })
	inner("body-length-overflow", "the body length is 0xffffffff", "ErrMalformed", base("body-length-overflow"),
		func(p *parts) { binary.BigEndian.PutUint32(p.inner[1+publicIdentitySize:], 0xffffffff) })
	inner("body-length-past-authenticator",
		fmt.Sprintf("the body length is %d: one byte more and the MAC would not fit class 11", fits11+1), "ErrMalformed",
		base("body-length-past-authenticator"),
		func(p *parts) { binary.BigEndian.PutUint32(p.inner[1+publicIdentitySize:], uint32(fits11+1)) })
	inner("authenticator-overflows-class",
		"24 recipients in class 11: the sender's identity and 24 MACs (1285+768 bytes) do not fit 2048; the MACs are cut",
		"ErrMalformed",
		with("authenticator-overflows-class", func(m *message) {
			m.body, m.class = nil, minClass
			m.to = to(append([]*identity{recipientID}, others[:23]...)...)
		}), nil)

	// The sender's authenticator.
	inner("bad-deniable-mac", "one bit flipped in the deniable MAC", "ErrBadAuthentication", base("bad-deniable-mac"),
		func(p *parts) { p.authenticator()[3] ^= 0x10 })
	inner("deniable-mac-wrong-slot", "two recipients' MACs swapped; each is valid for the other", "ErrBadAuthentication",
		with("deniable-mac-wrong-slot", func(m *message) { m.to = to(recipientID, others[0]) }),
		func(p *parts) {
			a := p.authenticator()
			m0 := bytes.Clone(a[:macSize])
			copy(a, a[macSize:2*macSize])
			copy(a[macSize:], m0)
		})
	signed := func(name string) message {
		return with(name, func(m *message) { m.from, m.auth = embassy, authSigned })
	}
	inner("bad-signature", "one bit flipped in the Ed25519 signature", "ErrBadAuthentication", signed("bad-signature"),
		func(p *parts) { p.authenticator()[40] ^= 0x01 })
	inner("sender-swapped", "the sender identity replaced by another valid one; the MAC is the original sender's", "ErrBadAuthentication",
		base("sender-swapped"), func(p *parts) { copy(p.sender(), mallory.pub) })
	inner("signed-sender-swapped", "a signed envelope's sender replaced by another valid identity", "ErrBadAuthentication",
		signed("signed-sender-swapped"), func(p *parts) { copy(p.sender(), mallory.pub) })
	inner("sender-low-order-dh", "the sender identity's DH key is a low-order point (u = 1): not an identity",
		"ErrMalformed", base("sender-low-order-dh"), func(p *parts) {
			lowOrder := append([]byte{1}, make([]byte, 31)...)
			copy(p.sender()[signingKeySize:], lowOrder)
		})
	inner("body-swapped", "a co-recipient replaced the body, keeping the MACs", "ErrBadAuthentication",
		with("body-swapped", func(m *message) { m.to = to(others[0], recipientID) }),
		func(p *parts) {
			fake := []byte(strings.Replace(alertBody, "18:00", "23:00", 1))
			copy(p.inner[innerPrefixSize:], fake)
		})
	inner("stanza-dropped",
		"a co-recipient dropped another recipient's stanza and MAC and recomputed the header MAC", "ErrBadAuthentication",
		with("stanza-dropped", func(m *message) { m.to = to(others[0], others[1], recipientID) }),
		func(p *parts) {
			p.stanzas = append(p.stanzas[:1], p.stanzas[2])
			p.header[len(p.header)-1] = 2
			a := p.authenticator()
			copy(a[macSize:], a[2*macSize:3*macSize])
			clear(a[2*macSize : 3*macSize])
		})
	inner("readdressed-country",
		"a co-recipient moved the envelope to country ke and recomputed the header MAC", "ErrBadAuthentication",
		with("readdressed-country", func(m *message) { m.to = to(others[0], recipientID) }),
		func(p *parts) { copy(p.header[offCountry:], "ke") })

	// Degenerate sender keys (keys/SPEC.md), refused in both modes: an
	// identity is refused as a whole, whichever key the mode uses.
	senderKey := func(name, desc string, m message, off int, key []byte) {
		inner(name, desc, "ErrMalformed", m, func(p *parts) { copy(p.sender()[off:], key) })
	}
	senderKey("signed-sender-low-order-dh",
		"a signed envelope whose sender's DH key, unused by the signature, is a low-order point (u = p - 1)",
		signed("signed-sender-low-order-dh"), signingKeySize, lowOrderU[len(lowOrderU)-1])
	senderKey("sender-kem-x25519-low-order", "the X25519 part of the sender's KEM key is a low-order point",
		base("sender-kem-x25519-low-order"), publicIdentitySize-32, lowOrderU[2])
	senderKey("signed-sender-kem-x25519-low-order", "a signed envelope; the X25519 part of the sender's KEM key is a low-order point",
		signed("signed-sender-kem-x25519-low-order"), publicIdentitySize-32, lowOrderU[3])
	senderKey("signed-sender-signing-key-not-on-curve", "the sender's signing key is no point of the curve",
		signed("signed-sender-signing-key-not-on-curve"), 0, notOnCurveY())
	nonCanon, _ := nonCanonicalEd()
	senderKey("signed-sender-signing-key-non-canonical", "the sender's signing key is a non-canonical encoding (y >= p)",
		signed("signed-sender-signing-key-non-canonical"), 0, nonCanon)
	senderKey("signed-sender-signing-key-small-order", "the sender's signing key is a point of order 8",
		signed("signed-sender-signing-key-small-order"), 0, smallOrderPoints[1].encode())
	dhTop := bytes.Clone(defender.dhPublic())
	dhTop[31] |= 0x80
	senderKey("sender-dh-top-bit", "the sender's DH key with its top bit set, which X25519 would ignore",
		base("sender-dh-top-bit"), signingKeySize, dhTop)
	inner("signed-s-unreduced", "a signed envelope whose signature's S is replaced by S + L", "ErrBadAuthentication",
		signed("signed-s-unreduced"), func(p *parts) {
			a := p.authenticator()
			copy(a[:signatureSize], unreducedS(a[:signatureSize]))
		})

	// The body limit applies to what Open accepts, not only to what Seal
	// writes.
	add(&vector{name: "body-too-large", expect: "ErrTooLarge",
		description: fmt.Sprintf("a %d-byte body with one MAC in class 16: it fits the class, but is over the %d-byte limit", maxBodySize+1, maxBodySize),
		msg:         with("body-too-large", func(m *message) { m.body = bytes.Repeat([]byte("b"), maxBodySize+1) })})
	add(&vector{name: "ok-body-max", expect: "ok",
		description: fmt.Sprintf("a %d-byte body, the largest allowed, to one recipient", maxBodySize),
		msg:         with("ok-body-max", func(m *message) { m.body = bytes.Repeat([]byte("b"), maxBodySize) })})
	add(&vector{name: "too-large", expect: "ErrTooLarge", parse: "ErrTooLarge",
		description: fmt.Sprintf("the largest envelope (32 recipients, a mailbox, class 16) and one byte more: %d bytes", maxSize+1),
		msg: with("too-large", func(m *message) {
			m.replyTo = derive("mailbox/too-large", mailboxSize)
			m.to = to(append([]*identity{recipientID}, others[:31]...)...)
			m.body = bytes.Repeat([]byte("c"), maxBodySize)
		}),
		after: func(env []byte) []byte {
			if len(env) != maxSize {
				panic(fmt.Sprintf("largest envelope is %d bytes", len(env)))
			}
			return append(env, 0)
		}})

	// Finding the stanza: a decoy that opens to another key does not end
	// the search.
	decoy := func(kem []byte, name string) func([]byte, io.Reader) []byte {
		return func(_ []byte, r io.Reader) []byte {
			return hpkeSeal(kem, stanzaLabel, derive("decoy content key/"+name, fileKeySize), r)
		}
	}
	add(&vector{name: "ok-decoy-stanza", expect: "ok",
		description: "stanza 0 opens with the reader's key to another content key; stanza 1 is the reader's real one",
		msg: with("ok-decoy-stanza", func(m *message) {
			m.to = []recipient{{id: recipientID, kem: recipientID.kemPublic(), stanza: decoy(recipientID.kemPublic(), "ok-decoy-stanza")},
				to(recipientID)[0], to(others[0])[0]}
		})})
	add(&vector{name: "ok-decoy-stanza-inbox", expect: "ok", identity: mission, inbox: missionInbox,
		description: "a decoy sealed to the mission's inbox key, then the real stanza to its identity key: the order keys are tried in does not matter",
		msg: with("ok-decoy-stanza-inbox", func(m *message) {
			m.to = []recipient{{id: mission, kem: missionInbox.pub, stanza: decoy(missionInbox.pub, "ok-decoy-stanza-inbox")},
				to(mission)[0]}
		})})
	add(&vector{name: "decoy-stanzas-only", expect: "ErrTampered",
		description: "two stanzas open with the reader's key, neither to the content key the header MAC commits to",
		msg: with("decoy-stanzas-only", func(m *message) {
			m.to = []recipient{
				{id: recipientID, kem: recipientID.kemPublic(), stanza: decoy(recipientID.kemPublic(), "decoy-stanzas-only/0")},
				to(others[0])[0],
				{id: recipientID, kem: recipientID.kemPublic(), stanza: decoy(recipientID.kemPublic(), "decoy-stanzas-only/2")}}
		})})
	add(&vector{name: "ok-twice-addressed", expect: "ok",
		description: "the reader's identity has stanzas 1 and 2: the first that opens is the reader's, and so is its MAC slot",
		msg:         with("ok-twice-addressed", func(m *message) { m.to = to(others[0], recipientID, recipientID) })})

	// The X25519 share of a stanza's X-Wing encapsulation.
	share := func(edit func(ctX, ssX []byte) ([]byte, []byte)) func([]byte, io.Reader) []byte {
		return func(fileKey []byte, r io.Reader) []byte {
			return hpkeSealShare(recipientID.kemPublic(), stanzaLabel, fileKey, r, edit)
		}
	}
	add(&vector{name: "stanza-x25519-share-low-order", expect: "ErrNotForMe",
		description: "the sender made the stanza's X25519 share a low-order point and combined an all-zero X25519 secret: the stanza must not open",
		msg: with("stanza-x25519-share-low-order", func(m *message) {
			m.to = []recipient{{id: recipientID, kem: recipientID.kemPublic(), stanza: share(func(_, _ []byte) ([]byte, []byte) {
				return bytes.Clone(lowOrderU[2]), make([]byte, 32)
			})}}
		})})
	add(&vector{name: "ok-stanza-x25519-share-top-bit", expect: "ok",
		description: "the sender set the top bit of the stanza's X25519 share and hashed the share as sent: X25519 ignores the bit, X-Wing hashes it",
		msg: with("ok-stanza-x25519-share-top-bit", func(m *message) {
			m.to = []recipient{{id: recipientID, kem: recipientID.kemPublic(), stanza: share(func(ctX, ssX []byte) ([]byte, []byte) {
				ctX = bytes.Clone(ctX)
				ctX[31] |= 0x80
				return ctX, ssX
			})}}
		})})
	return vs
}
