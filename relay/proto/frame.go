package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// A frame carries many publishes in one NATS message. A bridge stores a
// batch of envelopes on a partner's relay, and a batch of receipts on its
// home relay, a frame at a time rather than a message at a time: on a
// busy relay the cost of a publish is mostly its trips through the
// server (sender to server, server to the relay's ingest), not its
// checks or its store, and a frame pays them once for all its parts.
//
// Only bridges of the directory may send frames (their publishes are not
// rate-limited per key); any other key's frame is refused whole
// (CodeForbidden), and a walk-in's key has no permission to publish one,
// so nothing about the others' checks, limits or admission changes. Each
// part is checked and stored as the same publish sent alone would be,
// and answered alone: part i of a frame sent with reply subject R is
// answered on [FramePartReply](R, i), with a [Reply] or a refusal. A frame
// that cannot be read, or may not be sent, is refused whole, on R; the
// sender then publishes its parts one by one (a relay that predates
// frames refuses one as CodeBadTarget).
//
// A frame is its parts, each:
//
//	uvarint len(target) | target | uvarint hops | uvarint len(data) | data
//
// where hops is the part's [HeaderHops] (0: none). The frame's size is
// bounded by the relay's maximum payload.
const FrameTarget = "frame"

// MaxFrameParts bounds the parts of one frame: four times a fetch, a
// bridge's receipts for a whole batch. More is refused whole.
const MaxFrameParts = 4 * MaxFetch

// maxFrameTarget bounds a part's target; the longest target (a bridged
// envelope's: bridge id, country, priority, id and digest) is under 200
// bytes.
const maxFrameTarget = 256

// maxFrameData bounds a part's data as the frame is read: no frame is
// larger than a relay's maximum payload (relayconn.MaxPayload at most).
const maxFrameData = 8 << 20

// maxFrameHops bounds a part's hops as the frame is read; whether they
// are allowed is the part's check, as for a publish sent alone.
const maxFrameHops = 255

// A FramePart is one publish of a frame.
type FramePart struct {
	Target string
	Hops   int // HeaderHops; 0 for none
	Data   []byte
}

// ErrFrame means a frame could not be read.
var ErrFrame = errors.New("malformed frame")

// FramePartSize is how many bytes p adds to a frame.
func FramePartSize(p FramePart) int {
	return uvarintLen(len(p.Target)) + len(p.Target) + uvarintLen(p.Hops) + uvarintLen(len(p.Data)) + len(p.Data)
}

// AppendFramePart appends p to the frame b.
func AppendFramePart(b []byte, p FramePart) []byte {
	b = binary.AppendUvarint(b, uint64(len(p.Target)))
	b = append(b, p.Target...)
	b = binary.AppendUvarint(b, uint64(p.Hops))
	b = binary.AppendUvarint(b, uint64(len(p.Data)))
	return append(b, p.Data...)
}

// ParseFrame reads a frame's parts. Their Data alias b.
func ParseFrame(b []byte) ([]FramePart, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrFrame)
	}
	var parts []FramePart
	for len(b) > 0 {
		if len(parts) == MaxFrameParts {
			return nil, fmt.Errorf("%w: more than %d parts", ErrFrame, MaxFrameParts)
		}
		var p FramePart
		tl, rest, ok := uvarint(b, maxFrameTarget)
		if !ok || tl == 0 || tl > len(rest) {
			return nil, fmt.Errorf("%w: part %d: bad target length", ErrFrame, len(parts))
		}
		p.Target, rest = string(rest[:tl]), rest[tl:]
		if p.Hops, rest, ok = uvarint(rest, maxFrameHops); !ok {
			return nil, fmt.Errorf("%w: part %d: bad hops", ErrFrame, len(parts))
		}
		dl, rest, ok := uvarint(rest, maxFrameData)
		if !ok || dl > len(rest) {
			return nil, fmt.Errorf("%w: part %d: bad data length", ErrFrame, len(parts))
		}
		p.Data, b = rest[:dl:dl], rest[dl:]
		parts = append(parts, p)
	}
	return parts, nil
}

// FramePartReply is where part i of a frame sent with reply subject
// reply is answered.
func FramePartReply(reply string, i int) string { return reply + "." + strconv.Itoa(i) }

// uvarint reads a uvarint of at most limit from b.
func uvarint(b []byte, limit int) (int, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 || v > uint64(limit) {
		return 0, nil, false
	}
	return int(v), b[n:], true
}

func uvarintLen(v int) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], uint64(v))
}
