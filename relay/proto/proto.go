// Package proto is the relay's protocol as clients see it: subject names,
// stream and consumer names, and the reply to a publish. It imports no NATS
// code, so the client, the bridge and the console share these names with
// the relay from one place.
//
// # Publishing
//
// A client never publishes straight into a stream. It sends a request to
// its ingest subject,
//
//	bcn.in.<mailbox>.<target>
//
// where <mailbox> is its own mailbox (derived from its NKey; the relay's
// permissions let a connection publish under its own mailbox only) and
// <target> is a stream subject without the "bcn." prefix: "to.ug.urgent",
// "share.ug.urgent", "mbox.<mailbox>", "bcast.ug", "ack.<message id>". The
// relay checks the envelope, stores it under "bcn.<target>" and answers with
// a [Reply]. Because the sender's mailbox is in a subject only that sender
// may publish on, the relay can rate-limit per connection key without
// trusting any header.
//
// # Reading
//
// Replies to requests and JetStream pulls arrive under the connection's
// inbox prefix, [InboxPrefix] — the only subjects it may subscribe to
// besides the broadcasts. Mailboxes, alerts and shared alerts are read
// through durable pull consumers whose names and filters the permissions
// fix: [MailboxConsumer], [AlertConsumer].
package proto

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Stream names.
const (
	StreamAlerts     = "ALERTS"
	StreamMailbox    = "MAILBOX"
	StreamShared     = "SHARED"
	StreamBroadcasts = "BROADCASTS"
	StreamAcks       = "ACKS"
	StreamHolds      = "HOLDS"
)

// Stream subjects (what each stream captures).
const (
	SubjectAlerts     = "bcn.to.>"
	SubjectMailbox    = "bcn.mbox.>"
	SubjectShared     = "bcn.share.>"
	SubjectBroadcasts = "bcn.bcast.>"
	SubjectAcks       = "bcn.ack.>"
	SubjectHolds      = "bcn.svc.hold.>"
)

// ingestPrefix starts every ingest subject.
const ingestPrefix = "bcn.in."

// Ingest returns the subject a connection with mailbox mbox publishes to so
// that the relay stores the message under bcn.<target>.
func Ingest(mbox, target string) string { return ingestPrefix + mbox + "." + target }

// IngestWildcard is what a connection with mailbox mbox may publish on.
func IngestWildcard(mbox string) string { return ingestPrefix + mbox + ".>" }

// IngestAll is what the relay's ingest service subscribes to.
const IngestAll = ingestPrefix + "*.>"

// ParseIngest splits an ingest subject into the sender's mailbox and the
// target stream subject ("bcn.<target>").
func ParseIngest(subject string) (mbox, stored string, ok bool) {
	rest, ok := strings.CutPrefix(subject, ingestPrefix)
	if !ok {
		return "", "", false
	}
	mbox, target, ok := strings.Cut(rest, ".")
	if !ok || mbox == "" || target == "" {
		return "", "", false
	}
	return mbox, "bcn." + target, true
}

// Targets, as the part after bcn.in.<mailbox>.
func AlertTarget(cc, priority string) string  { return "to." + cc + "." + priority }
func ShareTarget(cc, priority string) string  { return "share." + cc + "." + priority }
func MailboxTarget(mbox string) string        { return "mbox." + mbox }
func BroadcastTarget(cc string) string        { return "bcast." + cc }
func AckTarget(alertID string) string         { return "ack." + alertID }
func AlertSubject(cc, priority string) string { return "bcn." + AlertTarget(cc, priority) }
func MailboxSubject(mbox string) string       { return "bcn." + MailboxTarget(mbox) }
func BroadcastSubject(cc string) string       { return "bcn." + BroadcastTarget(cc) }

// InboxPrefix is the inbox prefix a connection must use
// (nats.CustomInboxPrefix): the only place replies can reach it.
func InboxPrefix(mbox string) string { return "bcn.inbox." + mbox }

// MailboxConsumer names the durable consumer that reads mailbox mbox.
func MailboxConsumer(mbox string) string { return "mb_" + mbox }

// AlertConsumer names mission id's durable consumer of country cc's alerts.
// Its filter is AlertFilter(cc).
func AlertConsumer(missionID, cc string) string { return "m_" + missionID + "_" + cc }

// AlertFilter is the filter subject of a mission's consumer for cc.
func AlertFilter(cc string) string { return "bcn.to." + cc + ".>" }

// BroadcastConsumer names the consumer a connection reads broadcasts with.
func BroadcastConsumer(mbox string) string { return "bc_" + mbox }

// A Reply answers a publish on an ingest subject: either where the message
// was stored, or why it was refused.
type Reply struct {
	Stream    string `json:"stream,omitempty"`
	Seq       uint64 `json:"seq,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Error     *Error `json:"error,omitempty"`
}

// An Error is a refusal: a stable code to branch on and a description for
// people.
type Error struct {
	Code        Code   `json:"code"`
	Description string `json:"description"`
}

func (e *Error) Error() string { return fmt.Sprintf("relay refused: %s: %s", e.Code, e.Description) }

// Code is a refusal reason. The relay counts refusals by code.
type Code string

// Refusal codes.
const (
	CodeMalformed   Code = "malformed"    // not a well-formed envelope
	CodeTooLarge    Code = "too_large"    // over the size limit
	CodeVersion     Code = "version"      // unsupported envelope version
	CodeMismatch    Code = "mismatch"     // subject does not match the header
	CodeStale       Code = "stale"        // created time outside the freshness window
	CodeForbidden   Code = "forbidden"    // this role may not publish there
	CodeRateLimited Code = "rate_limited" // over the connection's rate limit
	CodeBadTarget   Code = "bad_target"   // no such stream subject
	CodeBadSig      Code = "bad_signature"
	CodeUnavailable Code = "unavailable" // storage failed; try again
)

// Codes lists every refusal code, for metrics.
var Codes = []Code{CodeMalformed, CodeTooLarge, CodeVersion, CodeMismatch, CodeStale, CodeForbidden,
	CodeRateLimited, CodeBadTarget, CodeBadSig, CodeUnavailable}

// ParseReply decodes a relay's reply; a refusal is returned as *Error.
func ParseReply(b []byte) (*Reply, error) {
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("relay reply: %w", err)
	}
	if r.Error != nil {
		return &r, r.Error
	}
	if r.Stream == "" || r.Seq == 0 {
		return nil, fmt.Errorf("relay reply: no stream or sequence")
	}
	return &r, nil
}

// The directory service: a client asks the relay for the signed directory
// it serves (clients verify it themselves against their pinned root). A
// directory can exceed a NATS message, so it comes in chunks: request
// DirectorySubject with the chunk index in decimal as the body ("" is 0).
const (
	DirectorySubject = "bcn.svc.directory"
	// DirectoryChunkSize is the size of every chunk but the last.
	DirectoryChunkSize = 64 << 10
	// Reply headers.
	HeaderDirChunks = "Beacon-Directory-Chunks"
	HeaderDirSerial = "Beacon-Directory-Serial"
	HeaderDirSize   = "Beacon-Directory-Size"
	HeaderError     = "Beacon-Error"
)
