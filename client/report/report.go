// Package report turns what a relay knows about alerts and acks —
// message ids, times, countries, priorities, and which mission signed
// which ack token, never any content — into the figures that show whether
// every post answers as it committed to, and alike.
//
// Headquarters runs `beacon report` for all the posts it oversees; a
// mission for itself. The figures come from the relay's report service
// ([github.com/hrdbeacon/beacon/client.Client.Report]); [Compute] works
// on them and the directory's commitments alone, so it can be checked
// against known times.
//
// # The figures
//
// For each post, each country it covers and each priority:
//
//   - received: envelopes stored on the country's channel at that
//     priority in the period. Every post covering a country is offered
//     the same envelopes, which is what makes posts comparable.
//   - acknowledged: those the post sent an ack token for (the earliest
//     token counts).
//   - median and p90: time from storage to the post's ack, over the
//     acknowledged ones (nearest rank).
//   - on time: acknowledged within the post's committed target for the
//     priority, as a share of the envelopes that were acknowledged or
//     whose target has passed (one still inside its target is not late
//     yet).
//   - unacknowledged, and overdue: not acknowledged, and of those the
//     ones past the target now.
//
// # Consistency across posts
//
// For each country and priority covered by more than one post, the
// spread is the difference between the best and the worst post's on-time
// share and median: what a defender's experience depends on the post
// that answers. A spread near zero means posts answer alike.
//
// # What the relay cannot tell apart
//
// The relay does not know the kind of an envelope (DESIGN.md: an alert
// and a meeting request look alike), so "received" counts every envelope
// on the channel: alerts, requests, updates and cancellations, and
// answers to broadcasts. The console sends an ack token for each
// defender message it files in a case once the case is acknowledged, so
// follow-ups count as acknowledged with their case; an answer to a
// broadcast is sealed to the broadcasting post only, and other posts of
// the country cannot acknowledge it: at routine priority their figures
// show it unacknowledged.
package report

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// Data is what the relay's report service returned for a period.
type Data struct {
	Since, Until time.Time
	// Missions are the posts the requester may see.
	Missions  []string
	Alerts    []proto.ReportAlert
	Acks      []proto.ReportAck
	Truncated bool
}

// A Row is one post's figures for one country and priority.
type Row struct {
	Mission  string           `json:"mission"`
	Country  string           `json:"country"`
	Priority routing.Priority `json:"priority"`
	// Target is the post's committed acknowledgement time.
	Target         time.Duration `json:"target_ns"`
	Received       int           `json:"received"`
	Acknowledged   int           `json:"acknowledged"`
	Unacknowledged int           `json:"unacknowledged"`
	Overdue        int           `json:"overdue"`
	// Due counts what was acknowledged or is past its target; OnTime
	// those of them acknowledged within it.
	Due    int `json:"due"`
	OnTime int `json:"on_time"`
	// Median and P90 are over the acknowledged; 0 when none is.
	Median time.Duration `json:"median_ns"`
	P90    time.Duration `json:"p90_ns"`
}

// OnTimeShare is OnTime/Due, or NaN when nothing is due.
func (r Row) OnTimeShare() float64 {
	if r.Due == 0 {
		return math.NaN()
	}
	return float64(r.OnTime) / float64(r.Due)
}

// A Spread compares the posts covering one country at one priority.
type Spread struct {
	Country  string           `json:"country"`
	Priority routing.Priority `json:"priority"`
	Posts    int              `json:"posts"`
	// OnTime is the best post's on-time share minus the worst's (posts
	// with something due); Median the slowest post's median minus the
	// fastest's (posts with an ack).
	OnTime float64       `json:"on_time_spread"`
	Median time.Duration `json:"median_spread_ns"`
}

// Compute works out the figures of d at now, against the response
// targets of the directory's posts. Rows come sorted by post, country and
// priority; spreads by country and priority.
func Compute(d *Data, dir *keys.Directory, now time.Time) ([]Row, []Spread) {
	type key struct {
		cc string
		p  routing.Priority
	}
	byKey := map[key][]proto.ReportAlert{}
	for _, a := range d.Alerts {
		byKey[key{a.Country, a.Priority}] = append(byKey[key{a.Country, a.Priority}], a)
	}
	// The earliest ack of each post for each id.
	type ackKey struct {
		m  string
		id routing.ID
	}
	acked := map[ackKey]int64{}
	for _, a := range d.Acks {
		k := ackKey{a.Mission, a.Alert}
		if t, ok := acked[k]; !ok || a.AtMS < t {
			acked[k] = a.AtMS
		}
	}
	var rows []Row
	for _, m := range dir.Missions {
		if !slices.Contains(d.Missions, m.ID) {
			continue
		}
		for _, cc := range m.Countries {
			for _, p := range routing.Priorities {
				r := Row{Mission: m.ID, Country: cc, Priority: p, Target: target(m.Response, p)}
				var lat []time.Duration
				for _, a := range byKey[key{cc, p}] {
					r.Received++
					stored := time.UnixMilli(a.StoredMS)
					t, ok := acked[ackKey{m.ID, a.ID}]
					if !ok {
						r.Unacknowledged++
						if now.Sub(stored) > r.Target {
							r.Overdue++
							r.Due++
						}
						continue
					}
					l := max(time.UnixMilli(t).Sub(stored), 0)
					lat = append(lat, l)
					r.Acknowledged++
					r.Due++
					if l <= r.Target {
						r.OnTime++
					}
				}
				r.Median, r.P90 = percentile(lat, 0.5), percentile(lat, 0.9)
				rows = append(rows, r)
			}
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Mission != b.Mission {
			return a.Mission < b.Mission
		}
		if a.Country != b.Country {
			return a.Country < b.Country
		}
		return a.Priority < b.Priority
	})
	return rows, spreads(rows)
}

func spreads(rows []Row) []Spread {
	type key struct {
		cc string
		p  routing.Priority
	}
	groups := map[key][]Row{}
	var keysInOrder []key
	for _, r := range rows {
		k := key{r.Country, r.Priority}
		if _, ok := groups[k]; !ok {
			keysInOrder = append(keysInOrder, k)
		}
		groups[k] = append(groups[k], r)
	}
	sort.Slice(keysInOrder, func(i, j int) bool {
		if keysInOrder[i].cc != keysInOrder[j].cc {
			return keysInOrder[i].cc < keysInOrder[j].cc
		}
		return keysInOrder[i].p < keysInOrder[j].p
	})
	var out []Spread
	for _, k := range keysInOrder {
		g := groups[k]
		if len(g) < 2 {
			continue
		}
		s := Spread{Country: k.cc, Priority: k.p, Posts: len(g)}
		lo, hi := math.Inf(1), math.Inf(-1)
		var mlo, mhi time.Duration = math.MaxInt64, -1
		for _, r := range g {
			if v := r.OnTimeShare(); !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			if r.Acknowledged > 0 {
				mlo, mhi = min(mlo, r.Median), max(mhi, r.Median)
			}
		}
		if hi >= lo {
			s.OnTime = hi - lo
		}
		if mhi >= mlo {
			s.Median = mhi - mlo
		}
		out = append(out, s)
	}
	return out
}

func target(t keys.ResponseTargets, p routing.Priority) time.Duration {
	switch p {
	case routing.Urgent:
		return t.Urgent
	case routing.High:
		return t.High
	}
	return t.Routine
}

// percentile is the nearest-rank percentile of ds: the smallest value
// with at least q of the values at or below it.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}
