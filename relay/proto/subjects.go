package proto

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/hrdbeacon/beacon/country"
	"github.com/hrdbeacon/beacon/routing"
)

// ErrSubject is returned, wrapped with the detail, for a subject or target
// that is not in the grammar.
var ErrSubject = errors.New("proto: not a Beacon subject")

// Stream names.
const (
	StreamAlerts     = "ALERTS"
	StreamMailbox    = "MAILBOX"
	StreamShared     = "SHARED"
	StreamBroadcasts = "BROADCASTS"
	StreamAcks       = "ACKS"
	StreamHolds      = "HOLDS"
)

// Stream subjects: what each stream captures.
const (
	SubjectAlerts     = "bcn.to.>"
	SubjectMailbox    = "bcn.mbox.>"
	SubjectShared     = "bcn.share.>"
	SubjectBroadcasts = "bcn.bcast.>"
	SubjectAcks       = "bcn.ack.>"
	SubjectHolds      = "bcn.hold.>"
)

// MailboxNotices is where the MAILBOX stream republishes the headers of
// each message it stores (bcn.notice.mbox.<mailbox>), to wake the
// relay's long-polls. Only the relay's own connection may subscribe to it;
// no stream captures it.
const MailboxNotices = "bcn.notice.mbox.>"

const (
	root         = "bcn."
	ingestPrefix = root + "in."
	replyRoot    = root + "reply."
)

// A Kind is what a stored subject holds.
type Kind uint8

// Kinds of stored subjects.
const (
	KindAlert     Kind = iota + 1 // bcn.to.<cc>.<priority>
	KindShare                     // bcn.share.<cc>.<priority>
	KindMailbox                   // bcn.mbox.<mailbox>
	KindBroadcast                 // bcn.bcast.<cc>
	KindAck                       // bcn.ack.<message id>
)

var kindToken = map[Kind]string{KindAlert: "to", KindShare: "share", KindMailbox: "mbox", KindBroadcast: "bcast", KindAck: "ack",
	KindBridged: "bridged", KindReturnMailbox: "return", KindReturnAck: "return", KindReceipt: "rcpt"}

var kindStream = map[Kind]string{KindAlert: StreamAlerts, KindShare: StreamShared, KindMailbox: StreamMailbox,
	KindBroadcast: StreamBroadcasts, KindAck: StreamAcks,
	KindBridged: StreamBridged, KindReturnMailbox: StreamReturn, KindReturnAck: StreamReturn, KindReceipt: StreamReceipts}

// A Subject is a parsed stored subject. Which fields are set depends on
// its Kind.
type Subject struct {
	Kind     Kind
	Country  string           // alert, share, broadcast
	Priority routing.Priority // alert, share
	Mailbox  routing.Mailbox  // mailbox, return mailbox
	ID       routing.ID       // ack, return ack: the alert acknowledged; bridged, receipt: the envelope
	Bridge   string           // bridged, return: the bridge's directory id
	Partner  string           // receipt: the partner's directory id
	Digest   string           // bridged: EnvelopeDigest of the envelope
}

// Stream is the stream that stores the subject.
func (s Subject) Stream() string { return kindStream[s.Kind] }

// Target is the subject without "bcn.": what a client publishes to.
func (s Subject) Target() string {
	t := kindToken[s.Kind]
	switch s.Kind {
	case KindAlert, KindShare:
		return t + "." + s.Country + "." + s.Priority.String()
	case KindMailbox:
		return t + "." + s.Mailbox.String()
	case KindBroadcast:
		return t + "." + s.Country
	case KindAck:
		return t + "." + s.ID.String()
	}
	return s.bridgeTarget()
}

// String is the stored subject.
func (s Subject) String() string { return root + s.Target() }

// ParseSubject parses a stored subject ("bcn.to.ug.urgent").
func ParseSubject(subject string) (Subject, error) {
	target, ok := strings.CutPrefix(subject, root)
	if !ok {
		return Subject{}, fmt.Errorf("%w: %q does not start with %q", ErrSubject, subject, root)
	}
	return ParseTarget(target)
}

// ParseTarget parses a publish target, a stored subject without "bcn."
// ("to.ug.urgent"). The country must be a known code, the priority,
// mailbox and id in their one text form.
func ParseTarget(target string) (Subject, error) {
	tok := strings.Split(target, ".")
	bad := func(what string) (Subject, error) {
		return Subject{}, fmt.Errorf("%w: %q: %s", ErrSubject, target, what)
	}
	if s, ok, err := parseBridgeTarget(target, tok); ok {
		return s, err
	}
	switch {
	case len(tok) == 3 && (tok[0] == "to" || tok[0] == "share"):
		s := Subject{Kind: KindAlert, Country: tok[1]}
		if tok[0] == "share" {
			s.Kind = KindShare
		}
		if !country.Known(s.Country) {
			return bad("unknown country")
		}
		p, err := routing.ParsePriority(tok[2])
		if err != nil {
			return bad("bad priority")
		}
		s.Priority = p
		return s, nil
	case len(tok) == 2 && tok[0] == "mbox":
		m, err := routing.ParseMailbox(tok[1])
		if err != nil {
			return bad("bad mailbox")
		}
		return Subject{Kind: KindMailbox, Mailbox: m}, nil
	case len(tok) == 2 && tok[0] == "bcast":
		if !country.Known(tok[1]) {
			return bad("unknown country")
		}
		return Subject{Kind: KindBroadcast, Country: tok[1]}, nil
	case len(tok) == 2 && tok[0] == "ack":
		id, err := routing.ParseID(tok[1])
		if err != nil {
			return bad("bad message id")
		}
		return Subject{Kind: KindAck, ID: id}, nil
	}
	return bad("no stream takes it")
}

// Alert returns the stored subject of country cc's alerts at priority p.
func Alert(cc string, p routing.Priority) Subject {
	return Subject{Kind: KindAlert, Country: cc, Priority: p}
}

// Share returns the stored subject of country cc's shared alerts at p.
func Share(cc string, p routing.Priority) Subject {
	return Subject{Kind: KindShare, Country: cc, Priority: p}
}

// Mailbox returns the stored subject of mailbox m.
func Mailbox(m routing.Mailbox) Subject { return Subject{Kind: KindMailbox, Mailbox: m} }

// Broadcast returns the stored subject of country cc's broadcasts.
func Broadcast(cc string) Subject { return Subject{Kind: KindBroadcast, Country: cc} }

// AckOf returns the stored subject of the ack tokens for alert id.
func AckOf(id routing.ID) Subject { return Subject{Kind: KindAck, ID: id} }

// Publish targets, as the part after bcn.in.<mailbox>.
func AlertTarget(cc string, p routing.Priority) string { return Alert(cc, p).Target() }
func ShareTarget(cc string, p routing.Priority) string { return Share(cc, p).Target() }
func MailboxTarget(m routing.Mailbox) string           { return Mailbox(m).Target() }
func BroadcastTarget(cc string) string                 { return Broadcast(cc).Target() }
func AckTarget(id routing.ID) string                   { return AckOf(id).Target() }

// Stored subjects, for readers of the streams.
func AlertSubject(cc string, p routing.Priority) string { return Alert(cc, p).String() }
func MailboxSubject(m routing.Mailbox) string           { return Mailbox(m).String() }
func BroadcastSubject(cc string) string                 { return Broadcast(cc).String() }

// AlertFilter is the subject filter of every priority of cc's alerts.
func AlertFilter(cc string) string { return root + kindToken[KindAlert] + "." + cc + ".>" }

// BroadcastFilter is the subject filter of every country's broadcasts.
const BroadcastFilter = SubjectBroadcasts

// Ingest returns the subject a connection with mailbox m publishes to so
// that the relay stores (or serves) target.
func Ingest(m routing.Mailbox, target string) string { return ingestPrefix + m.String() + "." + target }

// IngestWildcard is everything a connection with mailbox m may publish on.
func IngestWildcard(m routing.Mailbox) string { return ingestPrefix + m.String() + ".>" }

// IngestAll is what the relay's ingest subscribes to.
const IngestAll = ingestPrefix + "*.>"

// ParseIngest splits an ingest subject into the sender's mailbox and the
// target after it.
func ParseIngest(subject string) (routing.Mailbox, string, error) {
	rest, ok := strings.CutPrefix(subject, ingestPrefix)
	if !ok {
		return routing.Mailbox{}, "", fmt.Errorf("%w: %q is not an ingest subject", ErrSubject, subject)
	}
	mb, target, ok := strings.Cut(rest, ".")
	if !ok || target == "" {
		return routing.Mailbox{}, "", fmt.Errorf("%w: %q has no target", ErrSubject, subject)
	}
	m, err := routing.ParseMailbox(mb)
	if err != nil {
		return routing.Mailbox{}, "", fmt.Errorf("%w: %q: %v", ErrSubject, subject, err)
	}
	return m, target, nil
}

// ReplyPrefix is the reply prefix of the connection with mailbox m
// (nats.CustomInboxPrefix): the only subjects it may subscribe to, and so
// the only place answers can reach it.
func ReplyPrefix(m routing.Mailbox) string { return replyRoot + m.String() }

// IsReplyOf reports whether subject lies under m's reply prefix.
func IsReplyOf(subject string, m routing.Mailbox) bool {
	rest, ok := strings.CutPrefix(subject, ReplyPrefix(m))
	return ok && len(rest) > 1 && rest[0] == '.'
}

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
