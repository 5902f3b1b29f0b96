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
// Clients have no JetStream API rights at all: JetStream would deliver a
// pull to whatever reply subject the client named, including a subject a
// stream captures. Instead the relay serves reads as requests on the same
// ingest prefix, scoped by the mailbox in the subject:
//
//	bcn.in.<mailbox>.svc.fetch.mbox          the connection's own mailbox
//	bcn.in.<mailbox>.svc.fetch.alerts.<cc>   a mission's alerts for a country it covers
//	bcn.in.<mailbox>.svc.pending.alerts.<cc> how many of those wait
//	bcn.in.<mailbox>.svc.ack                 acknowledge what was fetched
//	bcn.in.<mailbox>.svc.news.<cc|all>       the public broadcasts
//	bcn.in.<mailbox>.svc.directory           the signed directory, in chunks
//
// Every answer goes to the request's reply subject, which must lie under
// the connection's inbox prefix, [InboxPrefix] — the only subjects it may
// subscribe to. A fetch answers with one message per envelope (header
// [HeaderAck] carries the token to acknowledge it with) and then an empty
// message with header [HeaderEnd].
package proto

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hrdbeacon/beacon/routing"
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

// Service targets.
const (
	SvcDirectory = "svc.directory"
	SvcAck       = "svc.ack"
	SvcFetchMbox = "svc.fetch.mbox"
)

// SvcFetchAlerts is the target a mission fetches country cc's alerts with.
func SvcFetchAlerts(cc string) string { return "svc.fetch.alerts." + cc }

// SvcPendingAlerts is the target that counts what waits for a mission in cc.
func SvcPendingAlerts(cc string) string { return "svc.pending.alerts." + cc }

// SvcNews is the target that reads the broadcasts for cc ("" for all).
func SvcNews(cc string) string {
	if cc == "" {
		cc = "all"
	}
	return "svc.news." + cc
}

// A FetchRequest is the body of a fetch.
type FetchRequest struct {
	// Max is the most messages to return, at most MaxFetch.
	Max int `json:"max"`
	// WaitMS is how long to wait for the first message, at most
	// MaxFetchWait; 0 returns what is there now.
	WaitMS int `json:"wait_ms"`
}

// Fetch limits.
const (
	MaxFetch     = 1024
	MaxFetchWait = 60_000 // ms
	// MaxAcks bounds the tokens in one ack request.
	MaxAcks = 1024
	// MaxNews bounds the broadcasts one news request returns.
	MaxNews = 1024
)

// Headers of fetched messages.
const (
	HeaderAck     = "Beacon-Ack"     // the token to acknowledge this message with
	HeaderSubject = "Beacon-Subject" // the stream subject it was stored under
	HeaderEnd     = "Beacon-End"     // on the empty message that ends a batch: the count
)

// A SvcReply answers ack and pending requests, and refusals of any service
// request.
type SvcReply struct {
	Count uint64 `json:"count"`
	Error *Error `json:"error,omitempty"`
}

// MailboxConsumer names the durable consumer that reads mailbox mbox.
func MailboxConsumer(mbox string) string { return "mb_" + mbox }

// AlertConsumer names mission id's durable consumer of country cc's alerts.
// Its filter is AlertFilter(cc).
func AlertConsumer(missionID, cc string) string { return "m_" + missionID + "_" + cc }

// AlertFilter is the filter subject of a mission's consumer for cc.
func AlertFilter(cc string) string { return "bcn.to." + cc + ".>" }

// A Reply answers a publish on an ingest subject: either where the message
// was stored (JetStream's own acknowledgement, which has this shape), or
// why it was refused.
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

// UnmarshalJSON takes a code, or the number JetStream puts in the error of
// an acknowledgement it sends the sender directly (a full stream, a
// storage failure): those are all CodeUnavailable, worth retrying.
func (c *Code) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] != '"' {
		*c = CodeUnavailable
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*c = Code(s)
	return nil
}

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
	CodeBadRequest  Code = "bad_request" // a service request the relay cannot parse
	CodeBadReply    Code = "bad_reply"   // the reply subject is not the sender's inbox (never answered)
)

// Codes lists every refusal code, for metrics.
var Codes = []Code{CodeMalformed, CodeTooLarge, CodeVersion, CodeMismatch, CodeStale, CodeForbidden,
	CodeRateLimited, CodeBadTarget, CodeBadSig, CodeUnavailable, CodeBadRequest, CodeBadReply}

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
// SvcDirectory with the chunk index in decimal as the body ("" is 0).
const (
	// DirectoryChunkSize is the size of every chunk but the last.
	DirectoryChunkSize = 64 << 10
	// Reply headers.
	HeaderDirChunks = "Beacon-Directory-Chunks"
	HeaderDirSerial = "Beacon-Directory-Serial"
	HeaderDirSize   = "Beacon-Directory-Size"
)

// mailboxLabel separates the mailbox derivation from every other use of
// SHA-256 on an NKey.
const mailboxLabel = "beacon.envelope.v1/mailbox"

// MailboxFor derives the mailbox of a connection key (an NKey's public
// text). The relay grants a connection this mailbox and no other, so a
// defender reads its own replies without an account; rotating the NKey
// rotates the mailbox.
func MailboxFor(nkeyPublic string) routing.Mailbox {
	h := sha256.Sum256([]byte(mailboxLabel + nkeyPublic))
	return routing.Mailbox(h[:routing.MailboxSize])
}
