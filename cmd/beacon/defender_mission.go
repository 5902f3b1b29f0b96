package main

import (
	"fmt"
	"strings"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
)

// printMeetingsAndLiaisons shows, under a case, where its meeting stands
// with each mission and who the defender's liaison is there.
func printMeetingsAndLiaisons(e *env, k *client.Case) {
	for _, m := range k.Meetings() {
		var ts []string
		for _, t := range m.Times {
			ts = append(ts, t.UTC().Format("2006-01-02 15:04 UTC"))
		}
		line := "  meeting with " + m.Mission + ": " + m.State
		if len(ts) > 0 {
			line += ", " + strings.Join(ts, "; ")
		}
		fmt.Fprintln(e.stdout, line)
	}
	for _, l := range k.Liaisons() {
		fmt.Fprintf(e.stdout, "  your liaison at %s: %s\n", l.Mission, l.Officer)
	}
}

// printCommitments shows what a post commits to: how fast it acknowledges
// and what it offers, from the signed directory.
func printCommitments(e *env, m keys.Mission) {
	r := m.Response
	fmt.Fprintf(e.stdout, "  %-20s commits to acknowledge urgent alerts within %s, high within %s, routine within %s\n", "",
		roughDur(r.Urgent), roughDur(r.High), roughDur(r.Routine))
	if s := m.Offers.Services(); len(s) > 0 {
		fmt.Fprintf(e.stdout, "  %-20s offers %s\n", "", strings.Join(s, ", "))
	}
	if c := m.Offers.EmergencyContact; c != "" {
		fmt.Fprintf(e.stdout, "  %-20s emergency contact: %s\n", "", c)
	}
}
