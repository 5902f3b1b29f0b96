package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/client/console"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// missionCmd is the console's terminal mode: the same cases, the same
// store, the same actions, for officers without a browser. It may run
// while the console runs: both see each other's changes.
type missionCmd struct {
	Inbox     missionInboxCmd     `cmd:"" help:"Receive new alerts and list the cases, most pressing first."`
	Show      missionShowCmd      `cmd:"" help:"Show a case: details, thread, meeting, observation, internal notes."`
	Ack       missionAckCmd       `cmd:"" help:"Acknowledge a case: a signed ack to the defender, an ack token to the relay."`
	Reply     missionReplyCmd     `cmd:"" help:"Reply to the defender in the case thread."`
	Assign    missionAssignCmd    `cmd:"" help:"Assign (or reassign) a case to an officer; the defender is told who their liaison is."`
	Note      missionNoteCmd      `cmd:"" help:"Add an internal note. Notes never leave the mission."`
	Meet      missionMeetCmd      `cmd:"" help:"Answer a meeting request: accept, propose, confirm or cancel."`
	Observe   missionObserveCmd   `cmd:"" help:"Trial observation: assign an observer, confirm to the defender, record the outcome."`
	Share     missionShareCmd     `cmd:"" help:"Re-share an alert with partner governments (only with the defender's consent)."`
	Report    missionReportCmd    `cmd:"" help:"Send headquarters an encrypted case report."`
	Resolve   missionResolveCmd   `cmd:"" help:"Resolve a case (or --reopen it)."`
	Broadcast missionBroadcastCmd `cmd:"" help:"Publish a signed broadcast to everyone in a country."`
}

// officeFlags are every mission command's.
type officeFlags struct {
	Config  string        `short:"c" default:"configs/console.yaml" help:"Console config (see configs/console.yaml)." placeholder:"FILE" predictor:"file"`
	Timeout time.Duration `default:"10s" help:"How long to try to reach the relay."`
	passphraseFlags
}

// actFlags are the flags of the commands that act on a case.
type actFlags struct {
	Officer string `required:"" env:"BEACON_OFFICER" help:"Who acts: an officer id from the console config (or set BEACON_OFFICER)." placeholder:"ID"`
	officeFlags
}

func (f *officeFlags) open(e *env) (*console.Office, error) {
	return openOffice(e, f.Config, &f.passphraseFlags)
}

// run opens the office, reaches the relay and runs fn with a context
// bounded by the timeout.
func (f *officeFlags) run(e *env, fn func(context.Context, *console.Office) error) error {
	o, err := f.open(e)
	if err != nil {
		return err
	}
	defer o.Close()
	reachRelay(e, o, f.Timeout)
	ctx, cancel := context.WithTimeout(context.Background(), max(f.Timeout, time.Second))
	defer cancel()
	return fn(ctx, o)
}

// caseID resolves a full case id or a unique prefix of one (as inbox
// prints it).
func caseID(o *console.Office, s string) (routing.ID, error) {
	if id, err := routing.ParseID(s); err == nil {
		return id, nil
	}
	if len(s) < 4 {
		return routing.ID{}, withHint(fmt.Errorf("%q is not a case id", s), "beacon mission inbox lists the cases; give an id or at least its first 4 characters")
	}
	var found []routing.ID
	for _, k := range o.Store.Cases() {
		if strings.HasPrefix(k.ID.String(), strings.ToLower(s)) {
			found = append(found, k.ID)
		}
	}
	switch len(found) {
	case 0:
		return routing.ID{}, withHint(fmt.Errorf("no case %s", s), "beacon mission inbox lists the cases")
	case 1:
		return found[0], nil
	}
	return routing.ID{}, fmt.Errorf("%d cases start with %s; give more of the id", len(found), s)
}

type missionInboxCmd struct {
	All bool `help:"Include resolved cases."`
	officeFlags
}

func (c *missionInboxCmd) Run(e *env) error {
	return c.run(e, func(ctx context.Context, o *console.Office) error {
		if o.Client.Connected() {
			if b, err := o.Receive(ctx, 0); err != nil || b.Err != nil {
				fmt.Fprintf(e.stderr, "note: could not receive new alerts: %v\n", firstErr(err, b.Err))
			}
			if b, err := o.ReceiveMailbox(ctx, 0); err != nil || b.Err != nil {
				fmt.Fprintf(e.stderr, "note: could not read the mailbox: %v\n", firstErr(err, b.Err))
			}
		}
		printInbox(e.stdout, o, c.All, time.Now())
		return nil
	})
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// printInbox lists the cases: open before resolved, then by priority and
// age, each with its countdown to the post's committed target.
func printInbox(w io.Writer, o *console.Office, all bool, now time.Time) {
	cases := o.Store.Cases()
	sort.SliceStable(cases, func(i, j int) bool {
		a, b := cases[i], cases[j]
		if (a.State == console.StateResolved) != (b.State == console.StateResolved) {
			return b.State == console.StateResolved
		}
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		return a.Opened.Before(b.Opened)
	})
	shown := 0
	for _, k := range cases {
		if k.State == console.StateResolved && !all {
			continue
		}
		shown++
		flags := ""
		if k.Unread > 0 {
			flags += " *"
		}
		for _, f := range k.Flags {
			flags += " [" + f + "]"
		}
		who := ""
		if k.Assignee != "" {
			who = " → " + k.Assignee
		}
		fmt.Fprintf(w, "%s  %-7s  %s  %-12s  %-24s  %s%s%s\n", k.ID.String()[:8], k.Priority, k.Country, k.State,
			countdown(o.Due(k), k.AckedAt, now), k.Title, who, flags)
	}
	if shown == 0 {
		fmt.Fprintln(w, "no open cases")
	}
}

// countdown says how long is left to the committed acknowledgement.
func countdown(due, acked time.Time, now time.Time) string {
	switch {
	case due.IsZero():
		return "-"
	case !acked.IsZero() && acked.After(due):
		return "acked " + roughDur(acked.Sub(due)) + " late"
	case !acked.IsZero():
		return "acked in time"
	case now.After(due):
		return "OVERDUE " + roughDur(now.Sub(due))
	}
	return roughDur(due.Sub(now)) + " left"
}

func roughDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

type missionShowCmd struct {
	ID string `arg:"" help:"The case id (or its first characters)."`
	officeFlags
}

func (c *missionShowCmd) Run(e *env) error {
	o, err := c.open(e)
	if err != nil {
		return err
	}
	defer o.Close()
	id, err := caseID(o, c.ID)
	if err != nil {
		return err
	}
	k, err := o.Store.Case(id)
	if err != nil {
		return err
	}
	w := e.stdout
	fmt.Fprintf(w, "case %s  %s\n", k.ID, k.Title)
	fmt.Fprintf(w, "  %s, %s, %s; opened %s; %s\n", k.Priority, k.Country, k.State, k.Opened.Local().Format("2006-01-02 15:04:05"),
		countdown(o.Due(k), k.AckedAt, time.Now()))
	if k.Category != "" {
		fmt.Fprintf(w, "  category %s", k.Category)
		if k.Location != "" {
			fmt.Fprintf(w, ", location %s", k.Location)
		}
		fmt.Fprintf(w, "; consent to share with partners: %s, to publicise: %s\n", yesNo(k.Share), yesNo(k.Publicise))
	}
	if k.SafetyNumber != "" {
		fmt.Fprintf(w, "  defender's safety number %s\n", k.SafetyNumber)
	}
	if k.Assignee != "" {
		fmt.Fprintf(w, "  assigned to %s\n", k.Assignee)
	}
	if k.Cancelled != "" {
		fmt.Fprintf(w, "  called off by the defender: %s\n", k.Cancelled)
	}
	if m := k.Meeting; m != nil {
		fmt.Fprintf(w, "  meeting %s (%s): %s\n", m.State, m.Place, m.Purpose)
		for i, t := range m.Proposed {
			fmt.Fprintf(w, "    proposed %d: %s\n", i+1, t.Local().Format("Mon 2006-01-02 15:04"))
		}
		for _, t := range m.Times {
			fmt.Fprintf(w, "    %s: %s\n", m.State, t.Local().Format("Mon 2006-01-02 15:04"))
		}
	}
	if ob := k.Observation; ob != nil && ob.Court != "" {
		fmt.Fprintf(w, "  hearing %s, %s, %s\n", ob.Court, ob.Case, ob.Hearing.Local().Format("Mon 2006-01-02 15:04"))
		if ob.Observer != "" {
			fmt.Fprintf(w, "    we: %s (%s)\n", ob.Observer, ob.Status)
		}
		for _, p := range ob.Peers {
			fmt.Fprintf(w, "    %s: %s (%s)\n", p.Mission, p.Observer, p.Status)
		}
		if ob.Observer == "" && len(ob.Peers) == 0 {
			fmt.Fprintln(w, "    no post has said it will attend")
		}
	}
	fmt.Fprintln(w, "thread:")
	for _, en := range k.Thread {
		state := ""
		if en.Queued {
			state = "  [waiting for the relay]"
		}
		fmt.Fprintf(w, "  %s  %-12s %s%s\n", en.At.Local().Format("2006-01-02 15:04:05"), en.From, strings.ReplaceAll(en.Text, "\n", "\n      "), state)
	}
	if len(k.Notes) > 0 {
		fmt.Fprintln(w, "internal notes (never leave the mission):")
		for _, n := range k.Notes {
			fmt.Fprintf(w, "  %s  %-12s %s\n", n.At.Local().Format("2006-01-02 15:04:05"), n.Officer, strings.ReplaceAll(n.Text, "\n", "\n      "))
		}
	}
	if k.Alert() != nil {
		printMissionRollUp(e, o, k, c.Timeout)
	}
	return nil
}

// printMissionRollUp says who received, acknowledged and acts, across the
// posts of the country and the partners, from the signed statements the
// relay holds; without the relay, that it cannot say.
func printMissionRollUp(e *env, o *console.Office, k *console.Case, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), max(timeout, time.Second))
	defer cancel()
	ru, err := o.RollUp(ctx, k)
	if err != nil {
		fmt.Fprintf(e.stdout, "governments: cannot say who received and acknowledged it now: %v\n", err)
		return
	}
	fmt.Fprintln(e.stdout, "governments:")
	for _, p := range ru.Parties {
		what := "mission"
		if p.Role == keys.RolePartner {
			what = "partner government"
		}
		fmt.Fprintf(e.stdout, "  %-20s %-12s %s\n", what, p.ID, p.Status())
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// caseAction runs an action on the case c names and says what it did.
func (f *actFlags) caseAction(e *env, idArg, did string, fn func(context.Context, *console.Office, routing.ID) error) error {
	return f.run(e, func(ctx context.Context, o *console.Office) error {
		id, err := caseID(o, idArg)
		if err != nil {
			return err
		}
		if err := fn(ctx, o, id); err != nil {
			return err
		}
		k, _ := o.Store.Case(id)
		queued := ""
		if k != nil && len(k.Thread) > 0 && k.Thread[len(k.Thread)-1].Queued {
			queued = " (queued: the relay is not reachable; it leaves when it is)"
		}
		fmt.Fprintf(e.stdout, "%s case %s%s\n", did, id, queued)
		return nil
	})
}

type missionAckCmd struct {
	ID   string `arg:"" help:"The case id."`
	Next string `help:"The next step, as the defender is told it."`
	actFlags
}

func (c *missionAckCmd) Run(e *env) error {
	return c.caseAction(e, c.ID, "acknowledged", func(ctx context.Context, o *console.Office, id routing.ID) error {
		return o.Acknowledge(ctx, id, c.Officer, c.Next)
	})
}

type missionReplyCmd struct {
	ID   string `arg:"" help:"The case id."`
	Text string `arg:"" help:"The reply."`
	actFlags
}

func (c *missionReplyCmd) Run(e *env) error {
	cleanText(e, &c.Text)
	return c.caseAction(e, c.ID, "replied on", func(ctx context.Context, o *console.Office, id routing.ID) error {
		return o.Reply(ctx, id, c.Officer, c.Text)
	})
}

type missionAssignCmd struct {
	ID     string `arg:"" help:"The case id."`
	To     string `arg:"" help:"The officer id to assign it to."`
	NoTell bool   `name:"no-tell" help:"Do not tell the defender who their liaison is."`
	actFlags
}

func (c *missionAssignCmd) Run(e *env) error {
	return c.caseAction(e, c.ID, "assigned to "+c.To+":", func(ctx context.Context, o *console.Office, id routing.ID) error {
		return o.Assign(ctx, id, c.Officer, c.To, !c.NoTell)
	})
}

type missionNoteCmd struct {
	ID   string `arg:"" help:"The case id."`
	Text string `arg:"" help:"The note (for colleagues only)."`
	actFlags
}

func (c *missionNoteCmd) Run(e *env) error {
	cleanText(e, &c.Text)
	o, err := c.open(e) // a note needs no relay
	if err != nil {
		return err
	}
	defer o.Close()
	id, err := caseID(o, c.ID)
	if err != nil {
		return err
	}
	if err := o.Note(id, c.Officer, c.Text); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "noted on case %s (internal: it never leaves the mission)\n", id)
	return nil
}

type missionMeetCmd struct {
	ID     string `arg:"" help:"The meeting request's case id."`
	Action string `arg:"" enum:"accept,propose,confirm,cancel" help:"accept, propose, confirm or cancel."`
	When   string `help:"accept: the proposed time (or its number, 1-5, as show lists them); propose: times, RFC 3339, comma-separated." placeholder:"T[,T...]"`
	Note   string `help:"A note to the defender (where exactly, what to bring)."`
	actFlags
}

func (c *missionMeetCmd) Run(e *env) error {
	cleanText(e, &c.Note)
	return c.caseAction(e, c.ID, "meeting "+c.Action+":", func(ctx context.Context, o *console.Office, id routing.ID) error {
		var times []time.Time
		if c.When != "" {
			k, err := o.Store.Case(id)
			if err != nil {
				return err
			}
			if n := 0; k.Meeting != nil && len(c.When) == 1 && c.When[0] >= '1' && c.When[0] <= '5' {
				n = int(c.When[0] - '1')
				if n >= len(k.Meeting.Proposed) {
					return fmt.Errorf("--when %s: the defender proposed %d time(s)", c.When, len(k.Meeting.Proposed))
				}
				times = []time.Time{k.Meeting.Proposed[n]}
			} else if times, err = parseTimes("--when", c.When); err != nil {
				return err
			}
		}
		return o.Meeting(ctx, id, c.Officer, message.MeetingAction(c.Action), times, c.Note)
	})
}

type missionObserveCmd struct {
	ID       string `arg:"" help:"The observation request's case id."`
	Status   string `arg:"" enum:"assigned,confirmed,outcome,withdrawn" help:"assigned (told to the other missions), confirmed (to the defender too), outcome, withdrawn."`
	Observer string `help:"Who attends, as a role (e.g. Second Secretary)."`
	Text     string `help:"The outcome, or a note."`
	actFlags
}

func (c *missionObserveCmd) Run(e *env) error {
	cleanText(e, &c.Observer, &c.Text)
	return c.caseAction(e, c.ID, "observation "+c.Status+":", func(ctx context.Context, o *console.Office, id routing.ID) error {
		return o.Observe(ctx, id, c.Officer, message.ObservationStatus(c.Status), c.Observer, c.Text)
	})
}

type missionShareCmd struct {
	ID   string `arg:"" help:"The alert's case id."`
	Note string `help:"A note to the partner governments."`
	actFlags
}

func (c *missionShareCmd) Run(e *env) error {
	cleanText(e, &c.Note)
	return c.caseAction(e, c.ID, "shared with partner governments:", func(ctx context.Context, o *console.Office, id routing.ID) error {
		return o.Share(ctx, id, c.Officer, c.Note)
	})
}

type missionReportCmd struct {
	ID   string `arg:"" help:"The case id."`
	Text string `arg:"" help:"The report, for headquarters."`
	actFlags
}

func (c *missionReportCmd) Run(e *env) error {
	cleanText(e, &c.Text)
	return c.caseAction(e, c.ID, "reported to headquarters:", func(ctx context.Context, o *console.Office, id routing.ID) error {
		return o.Report(ctx, id, c.Officer, c.Text)
	})
}

type missionResolveCmd struct {
	ID     string `arg:"" help:"The case id."`
	Reason string `arg:"" optional:"" help:"Why (kept in the case)."`
	Reopen bool   `help:"Reopen a resolved case instead."`
	actFlags
}

func (c *missionResolveCmd) Run(e *env) error {
	o, err := c.open(e)
	if err != nil {
		return err
	}
	defer o.Close()
	id, err := caseID(o, c.ID)
	if err != nil {
		return err
	}
	to, did := console.StateResolved, "resolved"
	if c.Reopen {
		to, did = console.StateInProgress, "reopened"
	}
	if err := o.SetState(id, c.Officer, to, c.Reason); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s case %s\n", did, id)
	return nil
}

type missionBroadcastCmd struct {
	Country    string `required:"" help:"The country (one the mission covers)." placeholder:"CC"`
	Category   string `required:"" enum:"programme,grant,training,advisory" help:"${enum}."`
	Title      string `required:"" help:"One line."`
	Text       string `required:"" help:"The notice."`
	ValidUntil string `name:"valid-until" help:"Last day it applies (YYYY-MM-DD)." placeholder:"DATE"`
	actFlags
}

func (c *missionBroadcastCmd) Run(e *env) error {
	cleanText(e, &c.Title, &c.Text)
	b := &message.Broadcast{Country: strings.ToLower(c.Country), Category: message.BroadcastCategory(c.Category), Title: c.Title, Text: c.Text}
	if c.ValidUntil != "" {
		t, err := time.Parse("2006-01-02", c.ValidUntil)
		if err != nil {
			return fmt.Errorf("--valid-until: %q is not a date like 2027-01-31", c.ValidUntil)
		}
		b.ValidUntil = t.Add(24*time.Hour - time.Second)
	}
	if err := b.Validate(); err != nil {
		return err
	}
	return c.run(e, func(ctx context.Context, o *console.Office) error {
		if err := o.Broadcast(ctx, c.Officer, b); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "broadcast to %s: %s\n", b.Country, b.Title)
		return nil
	})
}
