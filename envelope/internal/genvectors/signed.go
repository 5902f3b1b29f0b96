package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Ack tokens and public messages, as envelope/SPEC.md specifies them.
const (
	ackMagic      = "BCA"
	publicMagic   = "BCP"
	ackLabel      = "beacon.envelope.v1/ack"
	publicLabel   = "beacon.envelope.v1/public"
	ackTokenSize  = 4 + idSize + 8 + 32 + signatureSize
	maxPublicBody = 16 << 10
	publicFixed   = 4 + 2 + idSize + 8 + 32 + 2
	maxPublicSize = publicFixed + maxPublicBody + signatureSize
)

// ackBody is the signed part of an ack token.
func ackBody(alert []byte, created time.Time, signer *identity) []byte {
	b := append([]byte(ackMagic), version)
	b = append(b, alert...)
	b = binary.BigEndian.AppendUint64(b, uint64(created.UnixMilli()))
	return append(b, signer.fingerprint()...)
}

func signWith(id *identity, label string, body []byte) []byte {
	return append(bytes.Clone(body), ed25519.Sign(id.sign, append([]byte(label), body...))...)
}

// publicBody is the signed part of a public message.
func publicBody(cc string, msgID []byte, created time.Time, signer *identity, body []byte) []byte {
	b := append([]byte(publicMagic), version)
	b = append(b, cc...)
	b = append(b, msgID...)
	b = binary.BigEndian.AppendUint64(b, uint64(created.UnixMilli()))
	b = append(b, signer.fingerprint()...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

// A signedVector is one ack token or public message and what parsing and
// verifying it must give (envelope/testdata/signed/README.md).
type signedVector struct {
	name, description string
	kind              string // ack | public
	expect, parse     string
	signer            *identity // whom Verify is called with
	fields            [][2]string
	data              []byte
}

func (v *signedVector) render() []byte {
	var b bytes.Buffer
	if strings.Contains(v.description, "\n") {
		panic("multi-line description in " + v.name)
	}
	fmt.Fprintf(&b, "description: %s\nkind: %s\nexpect: %s\nparse: %s\nsigner: %s\n",
		v.description, v.kind, v.expect, v.parse, v.signer.publicText())
	for _, f := range v.fields {
		fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
	}
	b.WriteString("\n")
	writeBase64(&b, v.data)
	return b.Bytes()
}

var (
	ackCreated = time.Date(2025, 6, 1, 12, 31, 2, 500_000_000, time.UTC)
	ackAlert   = derive("id/ack alert", idSize)
)

func signedVectors() []*signedVector {
	var vs []*signedVector
	add := func(v *signedVector) {
		if v.signer == nil {
			v.signer = embassy
		}
		if v.parse == "" {
			v.parse = "ok"
		}
		if v.expect == "" {
			v.expect = v.parse
		}
		vs = append(vs, v)
	}
	okAck := func(name, desc string, alert []byte, created time.Time) {
		add(&signedVector{name: name, kind: "ack", expect: "ok", description: desc,
			data: signWith(embassy, ackLabel, ackBody(alert, created, embassy)),
			fields: [][2]string{{"alert", hex.EncodeToString(alert)}, {"created", created.Format(time.RFC3339Nano)},
				{"signer-fingerprint", fingerprintText(embassy.fingerprint())}}})
	}
	ack := signWith(embassy, ackLabel, ackBody(ackAlert, ackCreated, embassy))
	// badAck is the honest token, changed.
	badAck := func(name, kind, parse, expect, desc string, f func([]byte) []byte) {
		add(&signedVector{name: name, kind: kind, parse: parse, expect: expect, description: desc, data: f(bytes.Clone(ack))})
	}
	// resignedAck is a token its signer wrote with a bad field.
	resignedAck := func(name, parse, desc string, f func(body []byte) []byte) {
		add(&signedVector{name: name, kind: "ack", parse: parse, description: desc,
			data: signWith(embassy, ackLabel, f(ackBody(ackAlert, ackCreated, embassy)))})
	}

	okAck("ok-ack", "an embassy acknowledges an alert", ackAlert, ackCreated)
	okAck("ok-ack-last-millisecond", "created 2099-12-31T23:59:59.999Z, the last time allowed", ackAlert,
		time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Millisecond))
	badAck("ack-truncated", "ack", "ErrTruncated", "", "the last byte missing", func(b []byte) []byte { return b[:len(b)-1] })
	badAck("ack-empty", "ack", "ErrTruncated", "", "no bytes", func([]byte) []byte { return nil })
	badAck("ack-trailing-byte", "ack", "ErrMalformed", "", "one zero byte after the signature", func(b []byte) []byte { return append(b, 0) })
	resignedAck("ack-bad-magic", "ErrMalformed", "the magic is BCP, a public message's", func(b []byte) []byte { b[2] = 'P'; return b })
	resignedAck("ack-version-2", "ErrUnsupportedVersion", "version 2", func(b []byte) []byte { b[3] = 2; return b })
	resignedAck("ack-zero-alert", "ErrMalformed", "an all-zero alert id", func(b []byte) []byte { clear(b[4:20]); return b })
	resignedAck("ack-created-before-2020", "ErrMalformed", "created 2019-12-31T23:59:59.999Z", func(b []byte) []byte {
		binary.BigEndian.PutUint64(b[20:], uint64(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()-1))
		return b
	})
	resignedAck("ack-created-2100", "ErrMalformed", "created 2100-01-01T00:00:00Z", func(b []byte) []byte {
		binary.BigEndian.PutUint64(b[20:], uint64(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()))
		return b
	})
	resignedAck("ack-created-top-bit", "ErrMalformed", "created with the top bit set: negative as a signed integer",
		func(b []byte) []byte { b[20] |= 0x80; return b })
	add(&signedVector{name: "ack-other-signer", kind: "ack", expect: "ErrBadAuthentication", signer: mission,
		description: "verified with another identity than the one the token names", data: bytes.Clone(ack)})
	add(&signedVector{name: "ack-names-other-signer", kind: "ack", expect: "ErrBadAuthentication",
		description: "signed by the embassy but naming the mission's fingerprint; verified with the embassy",
		data:        signWith(embassy, ackLabel, append(ackBody(ackAlert, ackCreated, embassy)[:28], mission.fingerprint()...))})
	badAck("ack-signature-bit-flip", "ack", "ok", "ErrBadAuthentication", "one bit of the signature flipped",
		func(b []byte) []byte { b[len(b)-20] ^= 0x02; return b })
	badAck("ack-alert-changed", "ack", "ok", "ErrBadAuthentication", "the alert id changed after signing",
		func(b []byte) []byte { b[19] ^= 0x01; return b })
	badAck("ack-signature-s-unreduced", "ack", "ok", "ErrBadAuthentication", "S replaced by S + L",
		func(b []byte) []byte { return append(b[:60], unreducedS(b[60:])...) })
	add(&signedVector{name: "ack-public-label", kind: "ack", expect: "ErrBadAuthentication",
		description: "signed under the public message's label instead of the ack's",
		data:        signWith(embassy, publicLabel, ackBody(ackAlert, ackCreated, embassy))})

	// Public messages.
	pubID := derive("id/public", idSize)
	bcast := []byte("Security training for human rights defenders: Friday 10:00 at the usual place. Bring no phones.")
	okPublic := func(name, desc, cc string, body []byte) {
		add(&signedVector{name: name, kind: "public", expect: "ok", description: desc,
			data: signWith(embassy, publicLabel, publicBody(cc, pubID, ackCreated, embassy, body)),
			fields: [][2]string{{"id", hex.EncodeToString(pubID)}, {"country", cc}, {"created", ackCreated.Format(time.RFC3339Nano)},
				{"signer-fingerprint", fingerprintText(embassy.fingerprint())}, {"body-sha256", sha256Hex(body)}}})
	}
	okPublic("ok-public", "an embassy's broadcast to Uganda", "ug", bcast)
	okPublic("ok-public-empty", "an empty broadcast", "ke", nil)
	okPublic("ok-public-max-body", fmt.Sprintf("a %d-byte body, the largest allowed", maxPublicBody), "ug",
		bytes.Repeat([]byte("x"), maxPublicBody))
	pub := signWith(embassy, publicLabel, publicBody("ug", pubID, ackCreated, embassy, bcast))
	badPublic := func(name, parse, expect, desc string, f func([]byte) []byte) {
		add(&signedVector{name: name, kind: "public", parse: parse, expect: expect, description: desc, data: f(bytes.Clone(pub))})
	}
	resignedPublic := func(name, parse, desc string, f func(b []byte) []byte) {
		add(&signedVector{name: name, kind: "public", parse: parse, description: desc,
			data: signWith(embassy, publicLabel, f(publicBody("ug", pubID, ackCreated, embassy, bcast)))})
	}
	over := signWith(embassy, publicLabel, publicBody("ug", pubID, ackCreated, embassy, bytes.Repeat([]byte("x"), maxPublicBody)))
	add(&signedVector{name: "public-too-large", kind: "public", parse: "ErrTooLarge",
		description: fmt.Sprintf("%d bytes, one more than the largest public message", maxPublicSize+1), data: append(over, 0)})
	resignedPublic("public-body-length-too-large", "ErrTooLarge",
		fmt.Sprintf("the body length says %d, one more than the limit", maxPublicBody+1),
		func(b []byte) []byte { binary.BigEndian.PutUint16(b[publicFixed-2:], maxPublicBody+1); return b })
	badPublic("public-truncated-fixed", "ErrTruncated", "", "127 bytes: shorter than the fixed part and a signature",
		func(b []byte) []byte { return b[:publicFixed+signatureSize-1] })
	badPublic("public-truncated", "ErrTruncated", "", "the last byte missing", func(b []byte) []byte { return b[:len(b)-1] })
	badPublic("public-trailing-byte", "ErrMalformed", "", "one zero byte after the signature", func(b []byte) []byte { return append(b, 0) })
	resignedPublic("public-bad-magic", "ErrMalformed", "the magic is BCA, an ack token's", func(b []byte) []byte { b[2] = 'A'; return b })
	resignedPublic("public-version-2", "ErrUnsupportedVersion", "version 2", func(b []byte) []byte { b[3] = 2; return b })
	resignedPublic("public-country-unknown", "ErrMalformed", "country zz", func(b []byte) []byte { copy(b[4:], "zz"); return b })
	resignedPublic("public-country-upper-case", "ErrMalformed", "country UG", func(b []byte) []byte { copy(b[4:], "UG"); return b })
	resignedPublic("public-zero-id", "ErrMalformed", "an all-zero id", func(b []byte) []byte { clear(b[6:22]); return b })
	resignedPublic("public-created-2100", "ErrMalformed", "created 2100-01-01T00:00:00Z", func(b []byte) []byte {
		binary.BigEndian.PutUint64(b[22:], uint64(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()))
		return b
	})
	add(&signedVector{name: "public-other-signer", kind: "public", expect: "ErrBadAuthentication", signer: mission,
		description: "verified with another identity than the one the message names", data: bytes.Clone(pub)})
	badPublic("public-body-changed", "ok", "ErrBadAuthentication", "one byte of the body changed after signing",
		func(b []byte) []byte { b[publicFixed+3] ^= 0x20; return b })
	badPublic("public-country-changed", "ok", "ErrBadAuthentication", "the country changed from ug to ke after signing",
		func(b []byte) []byte { copy(b[4:], "ke"); return b })
	badPublic("public-signature-bit-flip", "ok", "ErrBadAuthentication", "one bit of the signature flipped",
		func(b []byte) []byte { b[len(b)-1] ^= 0x01; return b })
	add(&signedVector{name: "public-ack-label", kind: "public", expect: "ErrBadAuthentication",
		description: "signed under the ack token's label",
		data:        signWith(embassy, ackLabel, publicBody("ug", pubID, ackCreated, embassy, bcast))})
	return vs
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
