package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
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

func printAnswerHint(e *env, b *client.Bulletin) {
	if b.ValidUntilPassed() {
		return
	}
	fmt.Fprintf(e.stdout, "  to answer: beacon answer %s apply|ask TEXT\n", b.ID.String()[:12])
}

type answerCmd struct {
	ID     string `arg:"" help:"The broadcast's id (as beacon news prints it)."`
	Intent string `arg:"" enum:"apply,ask" help:"apply, or ask about it."`
	Text   string `arg:"" help:"Your message to the mission."`
	clientFlags
}

// Run answers a broadcast: sealed to the mission that signed it alone.
func (c *answerCmd) Run(e *env) error {
	cleanText(e, &c.Text)
	// An answer's text follows a reply's rules: checked before the
	// passphrase is asked for.
	if err := (&message.Reply{Ref: routing.NewID(), Text: c.Text}).Validate(); err != nil {
		return err
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	if !c.connect(e, cl) {
		return withHint(errors.New("the relay is not reachable: the broadcast cannot be looked up"), "try again when it is reachable")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	bs, err := cl.News(ctx, "")
	if err != nil {
		return err
	}
	var found []*client.Bulletin
	for _, b := range bs {
		if strings.HasPrefix(b.ID.String(), strings.ToLower(c.ID)) && len(c.ID) >= 8 {
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		return withHint(fmt.Errorf("no single broadcast %s (%d match)", c.ID, len(found)), "beacon news lists them with the id to answer")
	}
	s, err := c.send(e, cl, "answer", func(ctx context.Context) (*client.Sent, error) {
		return cl.AnswerBroadcast(ctx, found[0], message.AnswerIntent(c.Intent), c.Text)
	})
	if err != nil {
		return err
	}
	report(e, "answer", found[0].Country, s)
	return nil
}
