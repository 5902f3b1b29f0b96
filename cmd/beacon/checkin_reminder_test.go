package main

import (
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hrdbeacon/beacon/client"
)

// TestCheckInReminder walks a plan's interval on a fake clock: nothing
// until a quarter of the interval before the check-in is due, one
// reminder then, one more once it is overdue, and none after a check-in
// until the next lead.
func TestCheckInReminder(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	armed := clock.Now()
	p := &client.Plan{Every: 4 * time.Hour, Grace: 30 * time.Minute, Due: armed.Add(4 * time.Hour), Release: armed.Add(4*time.Hour + 30*time.Minute)}
	var r checkInReminder
	say := func() string {
		msg, next := r.next(p, clock.Now())
		if next < 0 {
			t.Errorf("at %s: wake again in %s", clock.Now(), next)
		}
		return msg
	}
	if msg := say(); msg != "" {
		t.Errorf("at arming: %q", msg)
	}
	if _, next := r.next(p, clock.Now()); next != 3*time.Hour+30*time.Minute {
		t.Errorf("first wake in %s, want 3h30m (the lead is 30m)", next)
	}
	clock.Advance(3*time.Hour + 29*time.Minute)
	if msg := say(); msg != "" {
		t.Errorf("a minute before the lead: %q", msg)
	}
	clock.Advance(time.Minute)
	if msg := say(); !strings.HasPrefix(msg, "check in before ") {
		t.Errorf("at the lead: %q", msg)
	}
	if msg := say(); msg != "" {
		t.Errorf("the reminder said twice: %q", msg)
	}
	clock.Advance(30 * time.Minute)
	if msg := say(); !strings.HasPrefix(msg, "your check-in is overdue") {
		t.Errorf("at the due time: %q", msg)
	}
	if msg := say(); msg != "" {
		t.Errorf("overdue said twice: %q", msg)
	}
	// A check-in moves the plan: the next reminder comes a lead before it.
	p.Due, p.Release = clock.Now().Add(4*time.Hour), clock.Now().Add(4*time.Hour+30*time.Minute)
	if msg := say(); msg != "" {
		t.Errorf("right after a check-in: %q", msg)
	}
	clock.Advance(3*time.Hour + 30*time.Minute)
	if msg := say(); !strings.HasPrefix(msg, "check in before ") {
		t.Errorf("at the next lead: %q", msg)
	}
	// A short interval has a short lead.
	if got := reminderLead(10 * time.Minute); got != 150*time.Second {
		t.Errorf("lead of a 10m interval: %s", got)
	}
}
