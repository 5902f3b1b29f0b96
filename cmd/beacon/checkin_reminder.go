package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hrdbeacon/beacon/client"
)

// The check-in reminder of beacon watch, which runs watchCheckIns beside
// its follow: a checkInReminder whose remind is called on every tick,
//
//	next := rem.remind(out, cl, time.Now()) // wake again within next
//
// It reminds the defender before a check-in falls due, and once more when
// it is overdue; it never checks in by itself: a device that checks in
// on its own would keep checking in for a defender who was taken.
type checkInReminder struct {
	said    time.Time // the due time last reminded of
	overdue time.Time // the due time last said to be overdue
}

// reminderLead is how long before the check-in falls due the defender is
// reminded: a quarter of the interval, at most half an hour.
func reminderLead(every time.Duration) time.Duration { return min(every/4, 30*time.Minute) }

// next says what to tell the defender about plan p at now, if anything,
// and how long until there may be something to say.
func (r *checkInReminder) next(p *client.Plan, now time.Time) (string, time.Duration) {
	lead := reminderLead(p.Every)
	switch {
	case !now.Before(p.Due) && r.overdue != p.Due:
		r.overdue, r.said = p.Due, p.Due
		return fmt.Sprintf("your check-in is overdue: without one the relay releases your message at %s (beacon checkin ok)",
			p.Release.Local().Format(time.TimeOnly)), p.Release.Sub(now)
	case !now.Before(p.Due.Add(-lead)) && now.Before(p.Due) && r.said != p.Due:
		r.said = p.Due
		return fmt.Sprintf("check in before %s (beacon checkin ok); without it the relay releases your message at %s",
			p.Due.Local().Format(time.TimeOnly), p.Release.Local().Format(time.TimeOnly)), p.Due.Sub(now)
	case now.Before(p.Due.Add(-lead)):
		return "", p.Due.Add(-lead).Sub(now)
	case now.Before(p.Due):
		return "", p.Due.Sub(now)
	}
	return "", p.Release.Sub(now)
}

// remind prints the reminder for the plan armed from this device, if one
// is due, and returns how long until the next may be.
func (r *checkInReminder) remind(out io.Writer, cl *client.Client, now time.Time) time.Duration {
	p, err := cl.LocalPlan()
	if err != nil {
		return time.Hour
	}
	msg, next := r.next(p, now)
	if msg != "" {
		fmt.Fprintln(out, "reminder: "+msg)
	}
	return max(next, time.Second)
}

// reminderRecheck is how often watch looks at the plan even when no
// reminder is near: another beacon command may have armed, checked in on
// or disarmed it.
const reminderRecheck = time.Minute

// watchCheckIns reminds the defender of check-ins until ctx ends (beacon
// watch runs it beside its follow).
func watchCheckIns(ctx context.Context, out io.Writer, cl *client.Client) {
	var r checkInReminder
	for {
		t := time.NewTimer(min(r.remind(out, cl, time.Now()), reminderRecheck))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
