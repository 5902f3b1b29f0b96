package console

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/client/report"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// TestReportService: the relay's report service gives headquarters every
// post it oversees and a mission only itself, from what the relay holds
// in the clear; a defender gets nothing.
func TestReportService(t *testing.T) {
	tb := newTestbed(t)
	nl, se := tb.office("nl-kampala"), tb.office("se-kampala")
	def := tb.defender()
	var ids []routing.ID
	for _, p := range []routing.Priority{routing.Urgent, routing.Urgent, routing.High} {
		s, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: p, Category: message.CategoryThreat, Summary: "x"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	if _, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ke", Priority: routing.Routine, Category: message.CategoryOther, Summary: "y"}); err != nil {
		t.Fatal(err)
	}
	tb.receiveAll(nl, 3)
	tb.receiveAll(se, 3)
	for _, id := range ids[:2] {
		if err := nl.Acknowledge(tb.ctx, id, "avries", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := se.Acknowledge(tb.ctx, ids[0], "avries", ""); err != nil {
		t.Fatal(err)
	}
	// Acknowledge returns once the relay stored the tokens.

	since, until := time.Now().Add(-time.Hour), time.Now().Add(time.Minute)
	hq := tb.client(tb.w.Keyrings["hq"])
	d, err := hq.Report(tb.ctx, since, until)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Missions, []string{"nl-kampala", "se-kampala", "de-nairobi"}) || len(d.Alerts) != 4 || len(d.Acks) != 3 || d.Truncated {
		t.Fatalf("headquarters: missions %v, %d alerts, %d acks", d.Missions, len(d.Alerts), len(d.Acks))
	}
	dir, _ := hq.Directory()
	rows, spreads := report.Compute(d, dir, time.Now())
	byKey := map[string]report.Row{}
	for _, r := range rows {
		byKey[r.Mission+"/"+r.Country+"/"+r.Priority.String()] = r
	}
	if r := byKey["nl-kampala/ug/urgent"]; r.Received != 2 || r.Acknowledged != 2 || r.OnTime != 2 {
		t.Errorf("nl urgent %+v", r)
	}
	if r := byKey["se-kampala/ug/urgent"]; r.Received != 2 || r.Acknowledged != 1 || r.Unacknowledged != 1 {
		t.Errorf("se urgent %+v", r)
	}
	if r := byKey["de-nairobi/ke/routine"]; r.Received != 1 || r.Acknowledged != 0 {
		t.Errorf("de routine %+v", r)
	}
	if len(spreads) == 0 || spreads[0].Country != "ug" || spreads[0].Posts != 2 {
		t.Errorf("spreads %+v", spreads)
	}

	// A mission sees itself only: its countries' alerts, its own acks.
	d, err = se.Client.Report(tb.ctx, since, until)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Missions, []string{"se-kampala"}) || len(d.Alerts) != 3 || len(d.Acks) != 1 || d.Acks[0].Mission != "se-kampala" {
		t.Fatalf("se-kampala: %v, %d alerts, %d acks", d.Missions, len(d.Alerts), len(d.Acks))
	}
	// A defender is refused.
	var perr *proto.Error
	if _, err := def.Report(tb.ctx, since, until); !errors.As(err, &perr) || perr.Code != proto.CodeForbidden {
		t.Fatalf("a defender's report: %v", err)
	}
}
