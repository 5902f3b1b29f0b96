package envelope

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hrdbeacon/beacon/country"
	"github.com/hrdbeacon/beacon/routing"
)

// Header is the routing header: the only part of an envelope in the clear.
type Header struct {
	ID       routing.ID
	Created  time.Time // millisecond precision on the wire
	Country  string    // ISO 3166-1 alpha-2, lower case
	Priority routing.Priority
	ReplyTo  routing.Mailbox // zero if the sender wants no replies
}

// NewHeader returns a header with a random id and the current time.
func NewHeader(cc string, p routing.Priority) Header {
	return Header{ID: routing.NewID(), Created: time.Now(), Country: cc, Priority: p}
}

// Times outside [minCreated, maxCreated) are impossible for an envelope: the
// format did not exist before 2020, and a far-future time is a broken clock
// or an attempt to outlive retention.
var (
	minCreated = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	maxCreated = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// validate checks the header fields a sender controls.
func (h *Header) validate() error {
	switch {
	case h.ID.IsZero():
		return fmt.Errorf("%w: message id is all zeros", ErrMalformed)
	case !country.Known(h.Country):
		return fmt.Errorf("%w: country %q is not a lower-case ISO 3166-1 alpha-2 code", ErrMalformed, h.Country)
	case !h.Priority.Valid():
		return fmt.Errorf("%w: priority %d is not 1 (urgent), 2 (high) or 3 (routine)", ErrMalformed, h.Priority)
	case h.Created.Before(minCreated) || !h.Created.Before(maxCreated):
		return fmt.Errorf("%w: created time %s is outside 2020–2099", ErrMalformed, h.Created.UTC().Format(time.RFC3339))
	}
	return nil
}

// size returns the length of the routing header on the wire.
func (h *Header) size() int {
	if h.ReplyTo.IsZero() {
		return routingSize
	}
	return routingSize + routing.MailboxSize
}

// appendHeader appends the wire form of h, with its size class and
// recipient count.
func (h *Header) appendHeader(b []byte, class, recipients int) []byte {
	var flags byte
	if !h.ReplyTo.IsZero() {
		flags |= flagReplyTo
	}
	b = append(b, magic...)
	b = append(b, Version, flags, byte(h.Priority), h.Country[0], h.Country[1])
	b = append(b, h.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Created.UnixMilli()))
	if !h.ReplyTo.IsZero() {
		b = append(b, h.ReplyTo[:]...)
	}
	return append(b, byte(class), byte(recipients))
}

// Info is what anyone can learn from an envelope without a key: the routing
// header and the sizes. It is all the relay sees.
type Info struct {
	Header
	// Recipients is the number of recipient stanzas.
	Recipients int
	// PaddedSize is the size of the padded plaintext: a power of two from
	// 2 KiB to 64 KiB.
	PaddedSize int
	// HeaderSize is the length of the routing header on the wire.
	HeaderSize int
}

// Parse checks an envelope's structure and returns its routing header. It
// does no cryptography: it is the check a relay runs on every publish.
// Cheapest checks come first.
func Parse(b []byte) (Info, error) {
	if len(b) > MaxSize {
		return Info{}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(b), MaxSize)
	}
	if len(b) < len(magic) {
		return Info{}, fmt.Errorf("%w: %d bytes", ErrTruncated, len(b))
	}
	if string(b[:len(magic)]) != magic {
		return Info{}, fmt.Errorf("%w: not a Beacon envelope (bad magic)", ErrMalformed)
	}
	if len(b) <= offVersion {
		return Info{}, fmt.Errorf("%w: ends before the version", ErrTruncated)
	}
	if b[offVersion] != Version {
		return Info{}, fmt.Errorf("%w: version %d, this software reads version %d", ErrUnsupportedVersion, b[offVersion], Version)
	}
	if len(b) < routingSize {
		return Info{}, fmt.Errorf("%w: ends inside the routing header", ErrTruncated)
	}
	flags := b[offFlags]
	if flags&^flagReplyTo != 0 {
		return Info{}, fmt.Errorf("%w: unknown flags %#02x", ErrMalformed, flags)
	}
	// The whole header is there before any field is judged, so a short
	// input is ErrTruncated whatever its fields hold (SPEC.md, "Order of
	// checks").
	n := routingSize
	if flags&flagReplyTo != 0 {
		n += routing.MailboxSize
		if len(b) < n {
			return Info{}, fmt.Errorf("%w: ends inside the reply mailbox", ErrTruncated)
		}
	}
	var info Info
	h := &info.Header
	h.Priority = routing.Priority(b[offPriority])
	h.Country = string(b[offCountry : offCountry+2])
	h.ID = routing.ID(b[offID : offID+routing.IDSize])
	ms := binary.BigEndian.Uint64(b[offCreated:])
	if ms >= 1<<62 {
		return Info{}, fmt.Errorf("%w: created time out of range", ErrMalformed)
	}
	h.Created = time.UnixMilli(int64(ms)).UTC()
	if flags&flagReplyTo != 0 {
		h.ReplyTo = routing.Mailbox(b[offMailbox : offMailbox+routing.MailboxSize])
		if h.ReplyTo.IsZero() {
			return Info{}, fmt.Errorf("%w: reply mailbox flag set but the mailbox is all zeros", ErrMalformed)
		}
	}
	if err := h.validate(); err != nil {
		return Info{}, err
	}
	class, count := int(b[n-2]), int(b[n-1])
	if class < minSizeClass || class > maxSizeClass {
		return Info{}, fmt.Errorf("%w: size class %d is not %d–%d", ErrMalformed, class, minSizeClass, maxSizeClass)
	}
	if count < 1 || count > MaxRecipients {
		return Info{}, fmt.Errorf("%w: %d recipients, want 1–%d", ErrTooManyRecipients, count, MaxRecipients)
	}
	info.HeaderSize, info.Recipients, info.PaddedSize = n, count, 1<<class
	switch total := n + count*StanzaSize + headerMACSize + info.PaddedSize + tagSize; {
	case len(b) < total:
		return Info{}, fmt.Errorf("%w: %d of %d bytes", ErrTruncated, len(b), total)
	case len(b) > total:
		return Info{}, fmt.Errorf("%w: %d bytes after the end of the envelope", ErrMalformed, len(b)-total)
	}
	return info, nil
}
