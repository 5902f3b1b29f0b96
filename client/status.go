package client

import (
	"fmt"
	"time"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// A RelayDirectoryError says the relay served a directory this client
// refused: not signed by the pinned root ([keys.ErrUntrustedRoot]),
// changed after it was signed ([keys.ErrBadSignature],
// [keys.ErrInvalidDirectory]), expired ([keys.ErrExpired]), older than one
// this device has seen ([keys.ErrRollback]), or sent outside the protocol
// (relayconn's ErrHostile). It unwraps to the reason.
//
// It is a security event, not a transient failure: an honest relay never
// serves a directory that fails to verify or goes back in time, and one
// that serves an expired directory leaves its users without the missions
// and keys added since. The client keeps the directory it holds and says
// so ([Status], [EventDirectoryRefused]); the user should hear of it.
type RelayDirectoryError struct {
	Err error
	At  time.Time
	// Held is the version this device holds (and keeps), if any.
	Held *keys.DirVersion
}

func (e *RelayDirectoryError) Error() string {
	return "the relay served a directory this device refuses: " + e.Err.Error()
}

func (e *RelayDirectoryError) Unwrap() error { return e.Err }

// A DirectoryExpiredError says the newest directory this device holds has
// expired: it is kept (its version still refuses older ones) but not
// used to seal. It matches both [ErrNoDirectory] and [keys.ErrExpired].
type DirectoryExpiredError struct {
	Serial  uint64
	Expired time.Time
}

func (e *DirectoryExpiredError) Error() string {
	return fmt.Sprintf("the directory this device holds (serial %d) expired at %s", e.Serial, e.Expired.UTC().Format(time.RFC3339))
}

// Is makes errors.Is match ErrNoDirectory and keys.ErrExpired.
func (e *DirectoryExpiredError) Is(target error) bool {
	return target == ErrNoDirectory || target == keys.ErrExpired
}

// An EventKind names what an [Event] reports.
type EventKind string

// Events, in the order a defender's watch would see them.
const (
	// EventConnected: the client reached the relay.
	EventConnected EventKind = "connected"
	// EventDisconnected: the connection was lost (Err says why); queued
	// messages wait on the device.
	EventDisconnected EventKind = "disconnected"
	// EventDirectory: a newer directory was accepted (Directory).
	EventDirectory EventKind = "directory"
	// EventDirectoryRefused: the relay served a directory this client
	// refused (Err is a *RelayDirectoryError): a security event.
	EventDirectoryRefused EventKind = "directory_refused"
	// EventSent: a queued message (ID, Message) left the outbox: the
	// relay stored it. Nobody has read it yet; acknowledgements arrive in
	// the mailbox.
	EventSent EventKind = "sent"
	// EventRefused: a queued message (ID, Message) was refused for good
	// (Refusal); it stays in the outbox, marked, until discarded.
	EventRefused EventKind = "refused"
	// EventJunkReported: a mission told the relay of alerts it cannot
	// open (Junk of them; Removed is how many the relay then removed,
	// because every mission of their country had said so).
	EventJunkReported EventKind = "junk_reported"
)

// An Event is something the client's background work did or found, for a
// program that shows it as it happens (beacon watch, the console).
type Event struct {
	Kind EventKind
	At   time.Time
	// ID and Message are the queued message of EventSent and
	// EventRefused.
	ID      routing.ID
	Message message.Kind
	// Refusal is why, for EventRefused.
	Refusal *Refusal
	// Err is why, for EventDisconnected and EventDirectoryRefused.
	Err error
	// Directory is the version accepted, for EventDirectory.
	Directory *keys.DirVersion
	// Junk and Removed count the alerts of EventJunkReported.
	Junk, Removed int
}

func (c *Client) emit(e Event) {
	if c.cfg.OnEvent == nil {
		return
	}
	if e.At.IsZero() {
		e.At = c.clock.Now()
	}
	c.cfg.OnEvent(e)
}

// Status is what a client can say about itself without the relay: for a
// status line or a console banner.
type Status struct {
	// Connected is whether the relay is reachable now.
	Connected bool
	// Relay is why the client refused the relay for good (it broke the
	// protocol when connecting), or nil.
	Relay error
	// Directory is the current directory, or nil; DirectoryErr then says
	// why (a *DirectoryExpiredError, or ErrNoDirectory).
	Directory    *keys.Directory
	DirectoryErr error
	// DirectoryRefused is the last directory the relay served that this
	// client refused, since it last accepted one: a security event. Nil
	// when the last directory the relay served was accepted.
	DirectoryRefused *RelayDirectoryError
	// Waiting and Refused count the outbox: messages waiting for the
	// relay (AwaitingDirectory of them not sealed yet, for want of a
	// current directory), and messages refused for good.
	Waiting, AwaitingDirectory, Refused int
	// HeldBack is how many mailbox messages are held, unread and unsettled,
	// because their signer is not in the directory this device holds; a
	// newer directory may name it.
	HeldBack int
}

// Status returns the client's status now.
func (c *Client) Status() (Status, error) {
	s := Status{Connected: c.conn.Connected(), Relay: c.conn.Refused(), HeldBack: int(c.heldBack.Load())}
	s.Directory, s.DirectoryErr = c.Directory()
	c.dirMu.RLock()
	s.DirectoryRefused = c.refused
	c.dirMu.RUnlock()
	es, err := c.listOutbox()
	if err != nil {
		return s, err
	}
	for _, e := range es {
		switch {
		case e.Refused != nil:
			s.Refused++
		case e.Hold:
			// It goes with its message, which waits too.
		case len(e.Envelope) == 0:
			s.Waiting++
			s.AwaitingDirectory++
		default:
			s.Waiting++
		}
	}
	return s, nil
}
