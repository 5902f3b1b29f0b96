// Package routing holds the three values every layer of Beacon shares: a
// message's [ID], its [Priority] and a reply [Mailbox]. They are the fields
// of an envelope's routing header, the only part the relay sees, and also
// what a message body refers to (the alert a reply belongs to), what the
// relay's subjects carry and what the command line prints. One type each,
// with one text form, so no layer converts them by string parsing.
//
// The package imports nothing of Beacon and nothing of NATS.
package routing

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrSyntax is returned, wrapped with the detail, for a text form that is
// not an ID, a Priority or a Mailbox.
var ErrSyntax = errors.New("routing: bad syntax")

// Sizes on the wire.
const (
	// IDSize is the size of a message id: 128 random bits, so that ids
	// never collide and a replay is recognised by id alone.
	IDSize = 16
	// MailboxSize is the size of a reply mailbox.
	MailboxSize = 16
)

// An ID is a message id: 128 random bits chosen by the sender. The zero ID
// is never a message's id; [ParseID] refuses it.
type ID [IDSize]byte

// NewID returns a random message id.
func NewID() ID {
	var id ID
	rand.Read(id[:])
	return id
}

// ParseID parses the 32 lower-case hex digits of a non-zero id. Upper case
// is refused so that each id has exactly one text form.
func ParseID(s string) (ID, error) {
	var id ID
	if err := parseHex(id[:], s, "message id"); err != nil {
		return ID{}, err
	}
	return id, nil
}

// String returns 32 lower-case hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is all zeros, that is, unset.
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseID]'s rules.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// A Mailbox is where replies to a sender go. The relay derives a
// connection's mailbox from its connection key (package
// [github.com/hrdbeacon/beacon/relay/proto] has the derivation).
type Mailbox [MailboxSize]byte

// ParseMailbox parses 32 lower-case hex digits of a non-zero mailbox.
func ParseMailbox(s string) (Mailbox, error) {
	var m Mailbox
	if err := parseHex(m[:], s, "mailbox"); err != nil {
		return Mailbox{}, err
	}
	return m, nil
}

// String returns 32 lower-case hex digits.
func (m Mailbox) String() string { return hex.EncodeToString(m[:]) }

// IsZero reports whether m is all zeros, meaning no mailbox.
func (m Mailbox) IsZero() bool { return m == Mailbox{} }

// MarshalText implements encoding.TextMarshaler.
func (m Mailbox) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Mailbox) UnmarshalText(b []byte) error {
	v, err := ParseMailbox(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

func parseHex(dst []byte, s, what string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("%w: %s must be %d lower-case hex digits", ErrSyntax, what, 2*len(dst))
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%w: %s must be %d lower-case hex digits", ErrSyntax, what, 2*len(dst))
		}
	}
	hex.Decode(dst, []byte(s)) // cannot fail: checked above
	if bytes.Count(dst, []byte{0}) == len(dst) {
		return fmt.Errorf("%w: %s is all zeros", ErrSyntax, what)
	}
	return nil
}

// Priority is how soon a message needs a response: the routing priority the
// relay and the missions see, which a defender chooses as an alert's
// priority, and which the response targets and escalation deadlines are set
// by.
type Priority uint8

// Priorities, in wire order: the numbers are the envelope's priority byte.
const (
	Urgent  Priority = 1
	High    Priority = 2
	Routine Priority = 3
)

// Priorities lists the priorities, most pressing first.
var Priorities = []Priority{Urgent, High, Routine}

// ParsePriority parses "urgent", "high" or "routine".
func ParsePriority(s string) (Priority, error) {
	for _, p := range Priorities {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: priority %q is not urgent, high or routine", ErrSyntax, s)
}

// String returns the priority's name, as subjects, message bodies and the
// command line spell it.
func (p Priority) String() string {
	switch p {
	case Urgent:
		return "urgent"
	case High:
		return "high"
	case Routine:
		return "routine"
	}
	return fmt.Sprintf("priority(%d)", uint8(p))
}

// Valid reports whether p is one of the three priorities.
func (p Priority) Valid() bool { return p >= Urgent && p <= Routine }

// MarshalText implements encoding.TextMarshaler; an invalid priority is an
// error rather than a name no parser takes back.
func (p Priority) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("%w: priority %d", ErrSyntax, uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
