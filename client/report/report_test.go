package report

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// TestComputeKnownTimes checks every figure against a hand-made period:
// two posts for ug with a 15-minute urgent target, one of them slow.
func TestComputeKnownTimes(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	targets := keys.ResponseTargets{Urgent: 15 * time.Minute, High: 4 * time.Hour, Routine: 72 * time.Hour}
	dir := &keys.Directory{Roster: keys.Roster{Missions: []keys.Mission{
		{ID: "nl", Countries: []string{"ug"}, Response: targets},
		{ID: "se", Countries: []string{"ug"}, Response: targets},
		{ID: "de", Countries: []string{"ke"}, Response: targets}, // not in scope
	}}}
	ids := make([]routing.ID, 6)
	for i := range ids {
		ids[i] = routing.NewID()
	}
	d := &Data{Since: t0, Until: t0.Add(24 * time.Hour), Missions: []string{"nl", "se"},
		Alerts: []proto.ReportAlert{
			{ID: ids[0], Country: "ug", Priority: routing.Urgent, StoredMS: ms(0)},
			{ID: ids[1], Country: "ug", Priority: routing.Urgent, StoredMS: ms(time.Hour)},
			{ID: ids[2], Country: "ug", Priority: routing.Urgent, StoredMS: ms(2 * time.Hour)},
			{ID: ids[3], Country: "ug", Priority: routing.Urgent, StoredMS: ms(3 * time.Hour)},
			// Stored 5 minutes before "now": not due yet for anyone.
			{ID: ids[4], Country: "ug", Priority: routing.Urgent, StoredMS: ms(10*time.Hour - 5*time.Minute)},
			{ID: ids[5], Country: "ug", Priority: routing.High, StoredMS: ms(0)},
		},
		Acks: []proto.ReportAck{
			{Alert: ids[0], Mission: "nl", AtMS: ms(2 * time.Minute)},
			{Alert: ids[0], Mission: "nl", AtMS: ms(30 * time.Minute)}, // a later token: the first counts
			{Alert: ids[1], Mission: "nl", AtMS: ms(time.Hour + 4*time.Minute)},
			{Alert: ids[2], Mission: "nl", AtMS: ms(2*time.Hour + 20*time.Minute)},
			{Alert: ids[0], Mission: "se", AtMS: ms(40 * time.Minute)},
			{Alert: ids[5], Mission: "se", AtMS: ms(time.Hour)},
		},
	}
	now := t0.Add(10 * time.Hour)
	rows, spreads := Compute(d, dir, now)
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 2 posts × 3 priorities", len(rows))
	}
	nl, se := rows[0], rows[3]
	want := Row{Mission: "nl", Country: "ug", Priority: routing.Urgent, Target: 15 * time.Minute, Received: 5, Acknowledged: 3,
		Unacknowledged: 2, Overdue: 1, Due: 4, OnTime: 2, Median: 4 * time.Minute, P90: 20 * time.Minute}
	if nl != want {
		t.Errorf("nl urgent:\n got %+v\nwant %+v", nl, want)
	}
	if got := nl.OnTimeShare(); got != 0.5 {
		t.Errorf("nl on time %v, want 0.5", got)
	}
	want = Row{Mission: "se", Country: "ug", Priority: routing.Urgent, Target: 15 * time.Minute, Received: 5, Acknowledged: 1,
		Unacknowledged: 4, Overdue: 3, Due: 4, OnTime: 0, Median: 40 * time.Minute, P90: 40 * time.Minute}
	if se != want {
		t.Errorf("se urgent:\n got %+v\nwant %+v", se, want)
	}
	if h := rows[4]; h.Priority != routing.High || h.Received != 1 || h.Acknowledged != 1 || h.OnTime != 1 || h.Median != time.Hour {
		t.Errorf("se high: %+v", h)
	}
	if r := rows[2]; r.Priority != routing.Routine || r.Received != 0 || !math.IsNaN(r.OnTimeShare()) {
		t.Errorf("nl routine: %+v", r)
	}
	if len(spreads) != 3 {
		t.Fatalf("spreads %+v", spreads)
	}
	if s := spreads[0]; s.Priority != routing.Urgent || s.Posts != 2 || s.OnTime != 0.5 || s.Median != 36*time.Minute {
		t.Errorf("urgent spread %+v, want 0.5 on time and 36m of median", s)
	}
	rep := New(d, rows, spreads, now)
	for _, f := range Formats {
		var b bytes.Buffer
		if err := rep.Write(&b, f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out := b.String()
		switch f {
		case "text":
			if !strings.Contains(out, "nl    ug       urgent    15m00s  5         3             4m00s   20m00s  50%      2               1") {
				t.Errorf("text:\n%s", out)
			}
			if !strings.Contains(out, "ug       urgent    2      50 points       36m00s") {
				t.Errorf("text spread:\n%s", out)
			}
		case "csv":
			if !strings.Contains(out, "nl,ug,urgent,900.000,5,3,240.000,1200.000,2,4,0.5000,2,1\n") {
				t.Errorf("csv:\n%s", out)
			}
		case "html":
			if !strings.Contains(out, "<svg") || !strings.Contains(out, "50% on time of 4 (target 15m00s)") || strings.Contains(out, "<script") {
				t.Errorf("html:\n%s", out)
			}
		}
	}
}
