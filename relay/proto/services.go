package proto

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hrdbeacon/beacon/country"
	"github.com/hrdbeacon/beacon/routing"
)

// A Source is what a fetch reads: the connection's own mailbox, or (for a
// mission) the alerts of one country it covers, or one of the bridge's
// sources ([SharedSource], [BridgedSource], [ReturnSource]). At most one
// of Alerts, Shared, Bridged and Return is set; none is the mailbox.
type Source struct {
	Alerts  bool   // a mission's alerts of Country
	Country string // with Alerts or Bridged
	Shared  string // a bridge's read of what is shared with this partner
	Bridged bool   // a partner's read of what bridges delivered for Country
	Return  bool   // a bridge's read of what partners send back through it
}

// MailboxSource is the connection's own mailbox.
var MailboxSource = Source{}

// AlertsSource is country cc's alerts, for a mission covering it.
func AlertsSource(cc string) Source { return Source{Alerts: true, Country: cc} }

// String is the source as the service subjects spell it: "mbox" or
// "alerts.<cc>".
func (s Source) String() string {
	switch {
	case s.Alerts:
		return "alerts." + s.Country
	case s.Shared != "":
		return "shared." + s.Shared
	case s.Bridged:
		return "bridged." + s.Country
	case s.Return:
		return "return"
	}
	return "mbox"
}

// Consumed reports whether the source is read through a durable consumer
// (settled by acknowledging), rather than by direct get (the mailbox).
func (s Source) Consumed() bool { return s != MailboxSource }

// ParseSource parses "mbox" or "alerts.<cc>".
func ParseSource(s string) (Source, error) {
	if s == "mbox" {
		return MailboxSource, nil
	}
	if cc, ok := strings.CutPrefix(s, "alerts."); ok && country.Known(cc) {
		return AlertsSource(cc), nil
	}
	if src, ok := parseBridgeSource(s); ok {
		return src, nil
	}
	return Source{}, fmt.Errorf("%w: no source %q", ErrSubject, s)
}

// A ServiceName names one of the relay's read services.
type ServiceName string

// Services.
const (
	SvcFetch     ServiceName = "fetch"
	SvcPending   ServiceName = "pending"
	SvcSettle    ServiceName = "settle"
	SvcNews      ServiceName = "news"
	SvcDirectory ServiceName = "directory"
)

const svcPrefix = "svc."

// A Service is a parsed service target.
type Service struct {
	Name ServiceName
	// Source is what fetch and pending read.
	Source Source
	// Country is what news reads; "" for every country.
	Country string
	// ID is the alert a roll-up is about.
	ID routing.ID
}

// Target is the service's target after bcn.in.<mailbox>.
func (s Service) Target() string {
	switch s.Name {
	case SvcFetch, SvcPending:
		return svcPrefix + string(s.Name) + "." + s.Source.String()
	case SvcNews:
		cc := s.Country
		if cc == "" {
			cc = "all"
		}
		return svcPrefix + string(s.Name) + "." + cc
	case SvcRollUp:
		return svcPrefix + string(s.Name) + "." + s.ID.String()
	}
	return svcPrefix + string(s.Name)
}

// IsService reports whether an ingest target is a service request.
func IsService(target string) bool { return strings.HasPrefix(target, svcPrefix) }

// ParseService parses a service target ("svc.fetch.alerts.ug").
func ParseService(target string) (Service, error) {
	rest, ok := strings.CutPrefix(target, svcPrefix)
	if !ok {
		return Service{}, fmt.Errorf("%w: %q is not a service", ErrSubject, target)
	}
	name, arg, _ := strings.Cut(rest, ".")
	s := Service{Name: ServiceName(name)}
	switch s.Name {
	case SvcFetch, SvcPending:
		src, err := ParseSource(arg)
		if err != nil {
			return Service{}, err
		}
		s.Source = src
	case SvcNews:
		if arg != "all" {
			if !country.Known(arg) {
				return Service{}, fmt.Errorf("%w: news for unknown country %q", ErrSubject, arg)
			}
			s.Country = arg
		}
	case SvcRollUp:
		id, err := routing.ParseID(arg)
		if err != nil {
			return Service{}, fmt.Errorf("%w: roll-up of %q: %v", ErrSubject, arg, err)
		}
		s.ID = id
	case SvcSettle, SvcDirectory, SvcReport, SvcJunk, SvcInspect, SvcPurge:
		if arg != "" {
			return Service{}, fmt.Errorf("%w: %q takes no argument", ErrSubject, target)
		}
	default:
		return Service{}, fmt.Errorf("%w: no service %q", ErrSubject, name)
	}
	return s, nil
}

// Service targets, as the part after bcn.in.<mailbox>.
var (
	SvcFetchMbox    = Service{Name: SvcFetch, Source: MailboxSource}.Target()
	SvcSettleTarget = Service{Name: SvcSettle}.Target()
	SvcDirTarget    = Service{Name: SvcDirectory}.Target()
)

// FetchTarget is the target that fetches a batch from src.
func FetchTarget(src Source) string { return Service{Name: SvcFetch, Source: src}.Target() }

// SvcFetchAlerts is the target a mission fetches country cc's alerts with.
func SvcFetchAlerts(cc string) string { return FetchTarget(AlertsSource(cc)) }

// PendingTarget is the target that counts what waits in src.
func PendingTarget(src Source) string { return Service{Name: SvcPending, Source: src}.Target() }

// SvcPendingAlerts counts what waits for a mission in country cc.
func SvcPendingAlerts(cc string) string { return PendingTarget(AlertsSource(cc)) }

// NewsTarget reads the broadcasts for cc ("" for every country).
func NewsTarget(cc string) string { return Service{Name: SvcNews, Country: cc}.Target() }

// A FetchRequest is the body of a fetch.
type FetchRequest struct {
	// Max is the most messages to return, 1 to MaxFetch.
	Max int `json:"max"`
	// MaxBytes bounds the bytes of the envelopes returned; 0 means
	// MaxFetchBytes. The relay always returns at least one message if
	// there is one, so a batch may exceed it by one envelope.
	MaxBytes int `json:"max_bytes,omitempty"`
	// WaitMS is how long to wait for the first message, at most
	// MaxFetchWait; 0 returns what is there now.
	WaitMS int `json:"wait_ms"`
	// After, for a mailbox, is the reader's cursor: only messages stored
	// after this stream sequence are returned. A reader keeps it for as
	// long as it runs, so a message it could not keep (and did not settle)
	// is not offered to it again at once; a reader that starts over sends
	// 0 and is offered everything unsettled.
	After uint64 `json:"after,omitempty"`
}

// Limits of the read services.
const (
	// MaxFetch bounds the messages of one fetch.
	MaxFetch = 1024
	// MaxFetchBytes bounds the bytes of one fetch: a reader decides how
	// much it takes in before any of it arrives.
	MaxFetchBytes = 16 << 20
	// MaxFetchWait bounds a long-poll, in milliseconds.
	MaxFetchWait = 60_000
	// MaxSettle bounds the tokens of one settle request.
	MaxSettle = 1024
	// MaxNews bounds the broadcasts one news request returns.
	MaxNews = 1024
)

// Headers of fetched messages.
const (
	HeaderSettle  = "Beacon-Settle"  // the token to settle this message with
	HeaderSubject = "Beacon-Subject" // the stream subject it was stored under
	HeaderEnd     = "Beacon-End"     // on the empty message that ends a batch: the count
	HeaderSeq     = "Beacon-Seq"     // a mailbox message's stream sequence, for the reader's cursor
)

// A mailbox message is settled with its stream sequence: the relay checks
// that the message at that sequence is in the settling connection's own
// mailbox and deletes it, so a seized relay holds only unread replies.
const mailboxTokenPrefix = "mbox."

// MailboxToken is the settle token of the mailbox message at seq.
func MailboxToken(seq uint64) string { return mailboxTokenPrefix + strconv.FormatUint(seq, 10) }

// ParseMailboxToken returns the sequence of a mailbox settle token.
func ParseMailboxToken(tok string) (uint64, bool) {
	s, ok := strings.CutPrefix(tok, mailboxTokenPrefix)
	if !ok || s == "" || len(s) > 20 || (s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}

// AlertConsumer names mission id's durable consumer of country cc's
// alerts. Its filter is AlertFilter(cc).
func AlertConsumer(missionID, cc string) string { return "m_" + missionID + "_" + cc }

// The directory service: a client asks the relay for the signed directory
// it serves (clients verify it themselves against their pinned root). A
// directory can exceed a NATS message, so it comes in chunks: request
// SvcDirTarget with the chunk index in decimal as the body ("" is 0).
const (
	// DirectoryChunkSize is the size of every chunk but the last.
	DirectoryChunkSize = 64 << 10
	// Reply headers.
	HeaderDirChunks = "Beacon-Directory-Chunks"
	HeaderDirSerial = "Beacon-Directory-Serial"
	HeaderDirSize   = "Beacon-Directory-Size"
)
