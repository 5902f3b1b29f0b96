package proto

import (
	"strconv"
	"strings"
	"time"
)

// Junk and purges.
//
// A mission that fetched an alert it cannot open (no stanza is for any of
// its keys) reports it with [SvcJunkTarget]: the body is the settle
// tokens of those alerts, one per line, as for a settle; the relay
// settles them too. Once every mission covering the alert's country has
// reported it, the relay deletes it. It never reads the envelope: the
// reports are the only evidence.
//
// An operator (a key listed in the relay's config) inspects the streams
// with [SvcInspectTarget] and purges them with [SvcPurgeTarget], both with
// a [PurgeRequest] body and a [PurgeReply] answer.

// The stream of junk reports: one subject per reported message, one
// message per mission reporting it. Only the relay publishes there.
const (
	StreamJunk  = "JUNK"
	SubjectJunk = "bcn.junk.>"
)

// JunkSubject is where reports of the message at seq of stream are kept.
func JunkSubject(stream string, seq uint64) string {
	return "bcn.junk." + strings.ToLower(stream) + "." + strconv.FormatUint(seq, 10)
}

// Services of junk removal and of operators.
const (
	SvcJunk    ServiceName = "junk"
	SvcInspect ServiceName = "inspect"
	SvcPurge   ServiceName = "purge"
)

// Their targets.
var (
	SvcJunkTarget    = Service{Name: SvcJunk}.Target()
	SvcInspectTarget = Service{Name: SvcInspect}.Target()
	SvcPurgeTarget   = Service{Name: SvcPurge}.Target()
)

// PurgeStreams are the streams an operator may inspect and purge.
var PurgeStreams = []string{StreamAlerts, StreamShared, StreamMailbox, StreamBroadcasts}

// A PurgeRequest selects stored messages: those of one stream, of one
// country (ALERTS, SHARED, BROADCASTS) and priority (ALERTS, SHARED) if
// given, stored before a time.
type PurgeRequest struct {
	Stream   string `json:"stream"`
	Country  string `json:"country,omitempty"`
	Priority string `json:"priority,omitempty"`
	// Before selects messages stored before this time; zero for all.
	Before time.Time `json:"before,omitzero"`
}

// A PurgeReply says what a request selected (inspect) or removed (purge),
// per subject.
type PurgeReply struct {
	Subjects map[string]uint64 `json:"subjects"`
	Total    uint64            `json:"total"`
	Error    *Error            `json:"error,omitempty"`
}

// MaxPurgeSubjects bounds the subjects one inspect or purge reports: a
// stream of every country and priority has 3 × 250 channels; MAILBOX is
// reported as one total.
const MaxPurgeSubjects = 1024
