package client

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// Received is a message opened, authenticated and decoded.
type Received struct {
	ID     routing.ID
	Header envelope.Header
	// Sender is the authenticated author. For a defender's message it is
	// the defender's identity, known only to the recipients.
	Sender *keys.PublicIdentity
	// From is the sender's directory id, or "" for a defender.
	From string
	// FromRole is the sender's role: defender unless the directory says
	// otherwise.
	FromRole keys.Role
	Auth     envelope.Auth
	Message  message.Message
	// Case is the id of the case the message belongs to: its own id for
	// an alert or request, the id it refers to otherwise.
	Case routing.ID
	// Bridge is, for what a partner reads from its own relay, the
	// directory id of the bridge that delivered it: answers go back
	// through it.
	Bridge string
}

// keyLabel separates a message's key from every other use of SHA-256.
const keyLabel = "beacon.client.v1/message-key"

// MessageKey names a message by its sender and its id. The id is the
// sender's choice and travels in the clear, so anyone who learned it can
// put it on an envelope of their own; the key cannot be taken over that
// way. The seen-set and every store keyed by message keep their entries
// by it: a replay by the sender is dropped, another sender's envelope
// under the same id is a different message, never a "replay" that hides
// the real one.
func MessageKey(sender *keys.PublicIdentity, id routing.ID) routing.ID {
	h := sha256.New()
	h.Write([]byte(keyLabel))
	h.Write(sender.Bytes())
	h.Write(id[:])
	return routing.ID(h.Sum(nil)[:routing.IDSize])
}

// Key is the message's [MessageKey]. A message without a sender (none is
// handed to a handler) is keyed by its id.
func (r *Received) Key() routing.ID {
	if r.Sender == nil {
		return r.ID
	}
	return MessageKey(r.Sender, r.ID)
}

// Reasons a fetched envelope is dropped, for the log (never with content).
var (
	errReplay     = errors.New("already delivered")
	errTooOld     = errors.New("created before the seen-set's memory")
	errUnverified = errors.New("not signed by an institution in the directory")
	// errUnknownSigner: signed, but by someone the directory held does
	// not name (or no directory is current); a newer one may. The message
	// comes with it, to be held back (see holdBack) or dropped.
	errUnknownSigner = errors.New("signed by someone the directory held does not name")
)

// seenRetention is how long an id stays in the seen-set. The relay keeps
// envelopes for 30 days by default; a client refuses anything created
// longer ago than this, so an id it has forgotten can never be replayed.
const seenRetention = 90 * 24 * time.Hour

// open opens one envelope addressed to this client and checks who wrote
// it. It does not consult the seen-set. A message whose signer the
// directory held does not name is returned with errUnknownSigner.
func (c *Client) open(data []byte) (*Received, error) {
	if len(data) > envelope.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes", envelope.ErrTooLarge, len(data))
	}
	if r, ok, err := c.openReceipt(data); ok {
		return r, err
	}
	o, err := envelope.Open(data, c.id, c.cfg.Keyring.InboxKeys()...)
	if err != nil {
		return nil, err
	}
	if o.Header.Created.Before(c.clock.Now().Add(-seenRetention)) {
		return nil, errTooOld
	}
	r := &Received{ID: o.Header.ID, Header: o.Header, Sender: o.Sender, Auth: o.Auth, FromRole: keys.RoleDefender, Case: o.Header.ID}
	aerr := c.authorize(r)
	if aerr != nil && !errors.Is(aerr, errUnknownSigner) {
		return nil, aerr
	}
	if r.Message, err = message.Unmarshal(o.Body); err != nil {
		return nil, err
	}
	if ref, ok := refOf(r.Message); ok {
		r.Case = ref
	}
	return r, aerr
}

// authorize decides, with the directory held now, who wrote r and
// whether they may have: institutions sign, a defender's writing is
// deniable. A mailbox only takes what an institution in the directory
// signed, so a stranger cannot pose as a mission to a defender. A signed
// message whose signer the directory does not name — or any signed
// message while no directory is current — is errUnknownSigner: a newer
// directory may name the signer.
func (c *Client) authorize(r *Received) error {
	r.From, r.FromRole = "", keys.RoleDefender
	d, derr := c.Directory()
	if derr == nil {
		r.From, r.FromRole = d.Lookup(r.Sender)
	}
	switch {
	case r.Auth == envelope.Signed && r.From == "" && (c.role == keys.RoleDefender || derr != nil):
		return errUnknownSigner
	case c.role == keys.RoleDefender && r.Auth != envelope.Signed:
		return errUnverified
	case r.FromRole != keys.RoleDefender && r.Auth != envelope.Signed:
		return errUnverified
	}
	return nil
}

// refOf returns the case a message refers to.
func refOf(m message.Message) (routing.ID, bool) {
	switch m := m.(type) {
	case *message.Update:
		return m.Ref, true
	case *message.Cancel:
		return m.Ref, true
	case *message.Ack:
		return m.Ref, true
	case *message.Reply:
		return m.Ref, true
	case *message.Receipt:
		return m.Ref, true
	case *message.Escalation:
		return m.Ref, true
	}
	return missionRef(m)
}

// Summarize renders a message as one line, as a case thread shows it. A
// drill says so first.
func Summarize(m message.Message) string {
	if message.IsExercise(m) {
		return "DRILL: " + summarize(m)
	}
	return summarize(m)
}

func summarize(m message.Message) string {
	switch m := m.(type) {
	case *message.CheckIn:
		return fmt.Sprintf("missed check-in (every %s, grace %s, armed %s): %s", m.Every, m.Grace, m.Armed.Format(time.RFC3339), firstLine(m.Text))
	case *message.Escalation:
		return fmt.Sprintf("escalated to %s, not acknowledged in time: %s", m.Tier, summarize(&m.Alert))
	case *message.Alert:
		return fmt.Sprintf("[%s/%s] %s", m.Priority, m.Category, m.Summary)
	case *message.Update:
		return m.Text
	case *message.Cancel:
		return strings.TrimSpace(fmt.Sprintf("cancelled (%s) %s", m.Reason, m.Text))
	case *message.MeetingRequest:
		return "meeting request: " + m.Purpose
	case *message.ObservationRequest:
		return fmt.Sprintf("trial observation: %s, %s", m.Court, m.Case)
	case *message.Ack:
		s := "acknowledged by " + m.By
		if m.NextStep != "" {
			s += "; next: " + m.NextStep
		}
		return s
	case *message.Reply:
		return m.Text
	case *message.Receipt:
		return fmt.Sprintf("stored at partner %s at %s", m.Partner, m.StoredAt.Format(time.RFC3339))
	case *message.Broadcast:
		return m.Title
	}
	if s, ok := summarizeMission(m); ok {
		return s
	}
	return string(m.Kind())
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
