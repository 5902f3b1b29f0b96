package message

import "time"

// MaxBodySize is the largest body [Unmarshal] reads, in bytes. The envelope
// carries at most about 63 KB of plaintext; 60000 leaves room for its framing.
// The largest valid message (an alert with every text field full of 4-byte
// characters) is about 34 KB, so [Marshal] never produces a body this refuses.
const MaxBodySize = 60000

// maxDepth is how deeply a body may nest: the object, and a list inside it
// (meeting times, defendants). No kind needs more, and refusing more in the
// first pass names the field instead of a decoder error.
const maxDepth = 2

// Text limits, in characters (runes, not bytes, so a defender writing in
// Amharic or Arabic gets the same room as one writing in English).
const (
	// An officer triages on the summary: it must fit a notification and
	// one inbox row.
	maxSummary = 280
	// Several pages of testimony. An alert is written in a hurry; longer
	// accounts follow as updates.
	maxDetails = 8000
	// Coarse on purpose: a district, not an address, so a seized inbox does
	// not pinpoint a defender.
	maxLocation = 120
	// Updates and replies are messages in a conversation, not reports.
	maxUpdateText = 4000
	maxReplyText  = 4000
	// A cancellation says why in a sentence or two; the reason code carries
	// the meaning.
	maxCancelText = 1000
	// A meeting request: what about, and what the mission must know to keep
	// the defender safe on the way.
	maxPurpose     = 1000
	maxSafetyNotes = 1000
	// At most a working week of proposals: enough to agree, too few to be a
	// calendar of the defender's movements.
	maxTimes = 5
	// Court and case are names and numbers as a clerk writes them.
	maxCourt = 200
	maxCase  = 200
	// Mass trials happen; beyond 20, the charges field lists the rest.
	maxDefendants   = 20
	maxDefendantLen = 120
	maxCharges      = 2000
	// "Embassy of X, human rights officer": a role, never a person's life
	// story.
	maxBy       = 200
	maxNextStep = 1000
	// Directory ids are short slugs that also appear in configs and logs.
	maxPartner = 64
	// Broadcasts are read on phones: a headline and a page.
	maxTitle         = 120
	maxBroadcastText = 4000
)

// Times outside [minTime, endTime) are mistakes (an unset clock, a typo in
// the year) or probes, never real plans. Both bounds also keep the year to
// the four digits RFC 3339 requires.
var (
	minTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	endTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// timeLayout is the only time form a body holds: UTC, whole seconds, so each
// instant has one encoding.
const timeLayout = "2006-01-02T15:04:05Z"
