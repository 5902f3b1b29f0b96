package proto

import "github.com/hrdbeacon/beacon/routing"

// The report service ("svc.report") gives headquarters and missions the
// figures of how posts answer, from metadata the relay already holds and
// no content: for each envelope stored on a country's alert channel its
// id, country, priority and when it was stored, and for each ack token
// which mission signed it and when it was stored. Headquarters is given
// every post it oversees ([keys.Headquarters.Missions]); a mission only
// itself. Nobody else may ask.
//
// The request body is a [ReportRequest]. The answer is a batch, like a
// fetch: messages whose header [HeaderSubject] is [ReportSubject], each a
// JSON [ReportChunk] of at most [MaxReportChunk] bytes, then the end
// marker [HeaderEnd] with the count.
const SvcReport ServiceName = "report"

// SvcReportTarget is the report service's target.
var SvcReportTarget = Service{Name: SvcReport}.Target()

// ReportSubject is the HeaderSubject of a report chunk.
const ReportSubject = "report"

// A ReportRequest bounds a report to alerts stored in [SinceMS, UntilMS)
// (Unix milliseconds); acks are included up to the time of the request.
type ReportRequest struct {
	SinceMS int64 `json:"since_ms"`
	UntilMS int64 `json:"until_ms"`
}

// Limits of the report service.
const (
	// MaxReportChunk bounds one chunk of a report: well under a relay's
	// maximum payload.
	MaxReportChunk = 48 << 10
	// MaxReportChunks bounds the chunks of one report; with
	// MaxReportChunk it keeps a report under MaxFetchBytes, about 200,000
	// alerts. A longer period is asked for in parts.
	MaxReportChunks = MaxFetchBytes / MaxReportChunk
	// MaxReportSpan bounds the period of one request.
	MaxReportSpan = 400 * 24 * 60 * 60 * 1000
)

// A ReportChunk is part of a report.
type ReportChunk struct {
	// Missions, in the first chunk, are the posts the report covers.
	Missions []string      `json:"missions,omitempty"`
	Alerts   []ReportAlert `json:"alerts,omitempty"`
	Acks     []ReportAck   `json:"acks,omitempty"`
	// Truncated says the relay stopped at its limit: ask for a shorter
	// period.
	Truncated bool `json:"truncated,omitempty"`
}

// A ReportAlert is one envelope stored on a country's alert channel.
type ReportAlert struct {
	ID       routing.ID       `json:"id"`
	Country  string           `json:"cc"`
	Priority routing.Priority `json:"p"`
	StoredMS int64            `json:"t"`
}

// A ReportAck is one ack token: which mission acknowledged which id.
type ReportAck struct {
	Alert   routing.ID `json:"id"`
	Mission string     `json:"m"`
	AtMS    int64      `json:"t"`
}
