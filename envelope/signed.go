package envelope

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hrdbeacon/beacon/country"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

// Two small signed statements travel in the clear, because the relay or
// the public must check them: an [AckToken] tells the relay a mission
// acknowledged an alert (stopping escalation), and a [Public] message is a
// mission's broadcast. Both name their signer by fingerprint; the reader
// looks the signer up in the verified directory.

const (
	ackMagic    = "BCA"
	publicMagic = "BCP"

	// AckTokenSize is the exact size of an ack token.
	AckTokenSize = 4 + routing.IDSize + 8 + keys.FingerprintSize + signatureSize

	// MaxPublicBody bounds a broadcast: an announcement, not a document.
	MaxPublicBody = 16 << 10
	publicFixed   = 4 + 2 + routing.IDSize + 8 + keys.FingerprintSize + 2
	// MaxPublicSize is the largest well-formed public message.
	MaxPublicSize = publicFixed + MaxPublicBody + signatureSize

	ackLabel    = "beacon.envelope.v1/ack"
	publicLabel = "beacon.envelope.v1/public"
)

// An AckToken is a mission's or partner's signed statement that it has
// acknowledged the alert with message id Alert.
type AckToken struct {
	Alert   routing.ID
	Created time.Time
	Signer  keys.Fingerprint
	raw     []byte
}

// SignAck returns the wire form of an ack token for alert, signed by signer.
func SignAck(alert routing.ID, signer *keys.Identity, now time.Time) []byte {
	b := make([]byte, 0, AckTokenSize)
	b = append(b, ackMagic...)
	b = append(b, Version)
	b = append(b, alert[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(now.UnixMilli()))
	fp := signer.Public().Fingerprint()
	b = append(b, fp[:]...)
	return append(b, signer.Sign(append([]byte(ackLabel), b...))...)
}

// ParseAck checks an ack token's structure. It does not verify the
// signature: look the signer up and call [AckToken.Verify].
func ParseAck(b []byte) (AckToken, error) {
	switch {
	case len(b) > AckTokenSize:
		return AckToken{}, fmt.Errorf("%w: ack token is %d bytes, want %d", ErrMalformed, len(b), AckTokenSize)
	case len(b) < AckTokenSize:
		return AckToken{}, fmt.Errorf("%w: ack token is %d bytes, want %d", ErrTruncated, len(b), AckTokenSize)
	case string(b[:3]) != ackMagic:
		return AckToken{}, fmt.Errorf("%w: not an ack token", ErrMalformed)
	case b[3] != Version:
		return AckToken{}, fmt.Errorf("%w: ack token version %d", ErrUnsupportedVersion, b[3])
	}
	a := AckToken{Alert: routing.ID(b[4:20]), raw: b}
	created, err := parseCreated(b[20:28])
	if err != nil {
		return AckToken{}, err
	}
	a.Created = created
	a.Signer = keys.Fingerprint(b[28:60])
	if a.Alert.IsZero() {
		return AckToken{}, fmt.Errorf("%w: ack for an all-zero id", ErrMalformed)
	}
	return a, nil
}

// Verify checks the token's signature by signer, whose fingerprint must be
// the one the token names.
func (a AckToken) Verify(signer *keys.PublicIdentity) error {
	if !signer.Fingerprint().Equal(a.Signer) {
		return fmt.Errorf("%w: ack signed by another identity", ErrBadAuthentication)
	}
	n := AckTokenSize - signatureSize
	if !signer.Verify(append([]byte(ackLabel), a.raw[:n]...), a.raw[n:]) {
		return fmt.Errorf("%w: ack signature does not verify", ErrBadAuthentication)
	}
	return nil
}

// A Public message is signed and readable by anyone: a mission's broadcast
// to everyone in a country.
type Public struct {
	ID      routing.ID
	Created time.Time
	Country string
	Signer  keys.Fingerprint
	Body    []byte
	raw     []byte
}

// SignPublic returns the wire form of a public message for country cc.
func SignPublic(cc string, body []byte, signer *keys.Identity, now time.Time) ([]byte, error) {
	if !country.Known(cc) {
		return nil, fmt.Errorf("%w: country %q is not a lower-case ISO 3166-1 alpha-2 code", ErrMalformed, cc)
	}
	if len(body) > MaxPublicBody {
		return nil, fmt.Errorf("%w: public body is %d bytes, the limit is %d", ErrTooLarge, len(body), MaxPublicBody)
	}
	id := routing.NewID()
	b := make([]byte, 0, publicFixed+len(body)+signatureSize)
	b = append(b, publicMagic...)
	b = append(b, Version, cc[0], cc[1])
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(now.UnixMilli()))
	fp := signer.Public().Fingerprint()
	b = append(b, fp[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	b = append(b, body...)
	return append(b, signer.Sign(append([]byte(publicLabel), b...))...), nil
}

// ParsePublic checks a public message's structure without verifying it.
func ParsePublic(b []byte) (Public, error) {
	switch {
	case len(b) > MaxPublicSize:
		return Public{}, fmt.Errorf("%w: public message is %d bytes, the limit is %d", ErrTooLarge, len(b), MaxPublicSize)
	case len(b) < publicFixed+signatureSize:
		return Public{}, fmt.Errorf("%w: public message", ErrTruncated)
	case string(b[:3]) != publicMagic:
		return Public{}, fmt.Errorf("%w: not a public message", ErrMalformed)
	case b[3] != Version:
		return Public{}, fmt.Errorf("%w: public message version %d", ErrUnsupportedVersion, b[3])
	}
	p := Public{Country: string(b[4:6]), ID: routing.ID(b[6:22]), Signer: keys.Fingerprint(b[30:62]), raw: b}
	if !country.Known(p.Country) {
		return Public{}, fmt.Errorf("%w: country %q is not a lower-case ISO 3166-1 alpha-2 code", ErrMalformed, p.Country)
	}
	if p.ID.IsZero() {
		return Public{}, fmt.Errorf("%w: all-zero id", ErrMalformed)
	}
	created, err := parseCreated(b[22:30])
	if err != nil {
		return Public{}, err
	}
	p.Created = created
	n := int(binary.BigEndian.Uint16(b[62:64]))
	switch want := publicFixed + n + signatureSize; {
	case n > MaxPublicBody:
		return Public{}, fmt.Errorf("%w: public body length %d", ErrTooLarge, n)
	case len(b) < want:
		return Public{}, fmt.Errorf("%w: public message", ErrTruncated)
	case len(b) > want:
		return Public{}, fmt.Errorf("%w: bytes after the public message", ErrMalformed)
	}
	p.Body = b[publicFixed : publicFixed+n : publicFixed+n]
	return p, nil
}

// Verify checks the signature by signer, whose fingerprint must be the one
// the message names.
func (p Public) Verify(signer *keys.PublicIdentity) error {
	if !signer.Fingerprint().Equal(p.Signer) {
		return fmt.Errorf("%w: signed by another identity", ErrBadAuthentication)
	}
	n := len(p.raw) - signatureSize
	if !signer.Verify(append([]byte(publicLabel), p.raw[:n]...), p.raw[n:]) {
		return fmt.Errorf("%w: signature does not verify", ErrBadAuthentication)
	}
	return nil
}

func parseCreated(b []byte) (time.Time, error) {
	ms := binary.BigEndian.Uint64(b)
	if ms >= 1<<62 {
		return time.Time{}, fmt.Errorf("%w: created time out of range", ErrMalformed)
	}
	t := time.UnixMilli(int64(ms)).UTC()
	if t.Before(minCreated) || !t.Before(maxCreated) {
		return time.Time{}, fmt.Errorf("%w: created time %s is outside 2020–2099", ErrMalformed, t.Format(time.RFC3339))
	}
	return t, nil
}
