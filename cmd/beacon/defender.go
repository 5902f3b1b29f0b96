package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/country"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

type initCmd struct {
	Relay     []string      `required:"" help:"Relay URL (nats://, tls://, ws://, wss://). Repeat for fallbacks." placeholder:"URL"`
	RootFP    string        `name:"root-fp" required:"" help:"Fingerprint of the directory's root key, from headquarters (bcn-fp:…)." placeholder:"FP"`
	Directory string        `help:"A signed directory obtained out of band, if the relay cannot be reached now." placeholder:"FILE"`
	Force     bool          `help:"Replace an existing identity on this device (the old one is lost)."`
	Timeout   time.Duration `default:"15s" help:"How long to try to reach the relay."`
	passphraseFlags
}

func (c *initCmd) Run(e *env) error {
	home, err := beaconHome(e)
	if err != nil {
		return err
	}
	fp, err := keys.ParseFingerprint(c.RootFP)
	if err != nil {
		return withHint(err, "headquarters gives the root fingerprint; compare it in person")
	}
	if err := checkRelayURLs(c.Relay); err != nil {
		return err
	}
	keyPath := filepath.Join(home, "key")
	if _, err := os.Stat(keyPath); err == nil && !c.Force {
		return withHint(fmt.Errorf("%s already holds an identity", home), "use --force to replace it, or set BEACON_HOME to another directory")
	}
	var dirBytes []byte
	if c.Directory != "" {
		if dirBytes, err = os.ReadFile(c.Directory); err != nil {
			return err
		}
	}
	pw, err := c.passphrase(e, keyPath, true)
	if err != nil {
		return err
	}
	kr, err := keys.NewKeyring(keys.RoleDefender)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	stateDir := filepath.Join(home, "state")
	if c.Force {
		os.RemoveAll(stateDir) // the old identity's state cannot be read with the new key
	}
	cl, err := client.Open(client.Config{URLs: c.Relay, Keyring: kr, Root: fp, StateDir: stateDir, Directory: dirBytes})
	if err != nil {
		os.RemoveAll(stateDir)
		return directoryHint(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	fetchErr := cl.WaitConnected(ctx)
	if fetchErr == nil {
		fetchErr = cl.RefreshDirectory(ctx)
	}
	d, err := cl.Directory()
	if err != nil {
		os.RemoveAll(stateDir)
		if fetchErr != nil {
			err = fetchErr
		}
		return directoryHint(fmt.Errorf("no verified directory: %w", err))
	}
	if err := keys.WriteKeyFile(keyPath, kr, pw, c.Force); err != nil {
		return err
	}
	if err := writeHomeConfig(home, &homeConfig{Relays: c.Relay, RootFingerprint: fp.String()}); err != nil {
		return err
	}
	pub := kr.Identity.Public()
	fmt.Fprintf(e.stdout, "initialised %s\nyour safety number: %s\ndirectory serial %d, valid until %s; countries covered: %s\n",
		home, pub.SafetyNumber(), d.Serial, d.Expires.Format(time.RFC3339), strings.Join(d.Countries(), " "))
	if fetchErr != nil {
		fmt.Fprintf(e.stdout, "note: the relay was not reachable (%v); messages will queue until it is\n", fetchErr)
	}
	return nil
}

// directoryHint adds the hint that fits why no directory could be trusted.
func directoryHint(err error) error {
	if errors.Is(err, keys.ErrUntrustedRoot) || errors.Is(err, keys.ErrBadSignature) {
		return withHint(err, "check the root fingerprint with headquarters, in person or over a channel you trust")
	}
	return withHint(err, "check the relay URL, or pass --directory FILE from headquarters")
}

// checkRelayURLs refuses a URL Beacon cannot connect with before trying.
func checkRelayURLs(urls []string) error {
	for _, u := range urls {
		pu, err := url.Parse(u)
		if err != nil || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme) || pu.Host == "" {
			return withHint(fmt.Errorf("--relay: %q is not a nats://, tls://, ws:// or wss:// URL", u), "the relay's operator gives its URL, e.g. nats://relay.example:4222 or wss://relay.example/")
		}
	}
	return nil
}

type alertCmd struct {
	Country     string `required:"" help:"Country (ISO 3166-1 alpha-2, e.g. ug)." placeholder:"CC"`
	Priority    string `required:"" aliases:"severity" enum:"urgent,high,routine" help:"urgent, high or routine."`
	Category    string `required:"" enum:"detention,raid,threat,attack,travel_ban,surveillance,trial,other" help:"${enum}."`
	Share       bool   `help:"Consent to share this alert with partner governments."`
	Publicise   bool   `help:"Consent to make this alert public."`
	Location    string `help:"Coarse location (a district, not an address)."`
	Summary     string `arg:"" help:"One line: what is happening."`
	DetailsFile string `name:"details-file" help:"File with the details (up to 8000 characters)." placeholder:"FILE"`
	clientFlags
}

func (c *alertCmd) Run(e *env) error {
	prio, err := routing.ParsePriority(c.Priority)
	if err != nil {
		return err
	}
	a := &message.Alert{Country: strings.ToLower(c.Country), Priority: prio,
		Category: message.Category(c.Category), Summary: c.Summary, Location: c.Location, Share: c.Share, Publicise: c.Publicise}
	if c.DetailsFile != "" {
		b, err := os.ReadFile(c.DetailsFile)
		if err != nil {
			return err
		}
		a.Details = strings.TrimRight(string(b), "\n")
	}
	if err := cleanText(e, &a.Summary, &a.Details, &a.Location); err != nil {
		return err
	}
	if err := a.Validate(); err != nil {
		return err
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	s, err := cl.SendAlert(context.Background(), a)
	if err != nil {
		return coverageHint(err)
	}
	report(e, "alert", a.Country, s)
	return nil
}

// cleanText removes the implicit bidi marks keyboards insert in
// right-to-left text (the message format refuses them) and says so.
func cleanText(e *env, fields ...*string) error {
	for _, f := range fields {
		if s, changed := message.StripBidiMarks(*f); changed {
			*f = s
			fmt.Fprintln(e.stderr, "note: removed invisible direction marks from your text")
		}
	}
	return nil
}

func coverageHint(err error) error {
	var nc *client.CountryNotCoveredError
	if errors.As(err, &nc) {
		return withHint(err, "check the country code; 'beacon missions CC' lists who receives")
	}
	return err
}

func report(e *env, what, cc string, s *client.Sent) {
	to := fmt.Sprintf("%d mission(s) of %s (%s)", len(s.Missions), cc, strings.Join(s.Missions, ", "))
	if cc == "" {
		to = fmt.Sprintf("the case's %d mission(s) (%s)", len(s.Missions), strings.Join(s.Missions, ", "))
	}
	if s.Queued {
		fmt.Fprintf(e.stdout, "queued: %s %s for %s\nthe relay is not reachable now; it will be sent when connected (beacon outbox shows it)\n", what, s.ID, to)
	} else {
		fmt.Fprintf(e.stdout, "sent: %s %s to %s\n", what, s.ID, to)
	}
	if len(s.Partners) > 0 {
		fmt.Fprintf(e.stdout, "shared with partner governments: %s\n", strings.Join(s.Partners, ", "))
	}
}

type updateCmd struct {
	ID   string `arg:"" help:"The alert's id (from beacon alert or beacon inbox)."`
	Text string `arg:"" help:"What changed."`
	clientFlags
}

func (c *updateCmd) Run(e *env) error {
	id, err := routing.ParseID(c.ID)
	if err != nil {
		return err
	}
	cleanText(e, &c.Text)
	if err := (&message.Update{Ref: routing.ID(id), Text: c.Text}).Validate(); err != nil {
		return err
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	s, err := cl.SendUpdate(context.Background(), id, c.Text)
	if err != nil {
		return err
	}
	report(e, "update", "", s)
	return nil
}

type cancelCmd struct {
	ID     string `arg:"" help:"The alert's id."`
	Text   string `arg:"" optional:"" help:"Optional note."`
	Reason string `default:"safe" enum:"safe,false_alarm,other" help:"safe, false_alarm or other."`
	clientFlags
}

func (c *cancelCmd) Run(e *env) error {
	id, err := routing.ParseID(c.ID)
	if err != nil {
		return err
	}
	cleanText(e, &c.Text)
	if err := (&message.Cancel{Ref: routing.ID(id), Reason: message.CancelReason(c.Reason), Text: c.Text}).Validate(); err != nil {
		return err
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	s, err := cl.Cancel(context.Background(), id, message.CancelReason(c.Reason), c.Text)
	if err != nil {
		return err
	}
	report(e, "cancellation", "", s)
	return nil
}

// parseTimes parses comma-separated RFC 3339 times.
func parseTimes(flag, s string) ([]time.Time, error) {
	var out []time.Time
	for _, p := range strings.Split(s, ",") {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(p))
		if err != nil {
			day := time.Now().AddDate(0, 0, 7).Format("2006-01-02")
			return nil, withHint(fmt.Errorf("%s: %q is not an RFC 3339 time", flag, p), "write times like %sT10:00:00Z or %sT13:00:00+03:00", day, day)
		}
		out = append(out, t)
	}
	return out, nil
}

type meetCmd struct {
	Country string `required:"" help:"Country of the missions to meet." placeholder:"CC"`
	Purpose string `required:"" help:"What the meeting is about."`
	When    string `required:"" help:"Proposed times, RFC 3339, comma-separated (up to 5)." placeholder:"T[,T...]"`
	Place   string `default:"embassy" enum:"embassy,office,neutral" help:"embassy, office or neutral."`
	Notes   string `help:"Safety notes for the mission."`
	clientFlags
}

func (c *meetCmd) Run(e *env) error {
	times, err := parseTimes("--when", c.When)
	if err != nil {
		return err
	}
	cleanText(e, &c.Purpose, &c.Notes)
	m := &message.MeetingRequest{Country: strings.ToLower(c.Country), Purpose: c.Purpose, Times: times,
		Place: message.Place(c.Place), SafetyNotes: c.Notes}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := notPast("--when", times...); err != nil {
		return err
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	s, err := cl.RequestMeeting(context.Background(), m)
	if err != nil {
		return coverageHint(err)
	}
	report(e, "meeting request", m.Country, s)
	return nil
}

// notPast refuses a proposed time that has already passed.
func notPast(flag string, ts ...time.Time) error {
	for _, t := range ts {
		if t.Before(time.Now()) {
			return fmt.Errorf("%s: %s is in the past", flag, t.Format(time.RFC3339))
		}
	}
	return nil
}

type observeCmd struct {
	Country   string   `required:"" help:"Country of the court." placeholder:"CC"`
	Court     string   `required:"" help:"The court."`
	Case      string   `required:"" help:"The case name or number."`
	Hearing   string   `required:"" help:"Hearing time, RFC 3339." placeholder:"T"`
	Defendant []string `help:"A defendant's name; repeat for more." sep:"none"`
	Charges   string   `help:"The charges."`
	clientFlags
}

func (c *observeCmd) Run(e *env) error {
	ts, err := parseTimes("--hearing", c.Hearing)
	if err != nil {
		return err
	}
	if len(ts) != 1 {
		return errors.New("--hearing: give exactly one time")
	}
	cleanText(e, &c.Court, &c.Case, &c.Charges)
	o := &message.ObservationRequest{Country: strings.ToLower(c.Country), Court: c.Court, Case: c.Case, Hearing: ts[0],
		Defendants: c.Defendant, Charges: c.Charges}
	if o.Defendants == nil {
		o.Defendants = []string{}
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if err := notPast("--hearing", ts[0]); err != nil {
		return err
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	s, err := cl.RequestObservation(context.Background(), o)
	if err != nil {
		return coverageHint(err)
	}
	report(e, "observation request", o.Country, s)
	return nil
}

type inboxCmd struct {
	Follow bool `short:"f" help:"Keep running and show messages as they arrive (Ctrl-C stops)."`
	clientFlags
}

func (c *inboxCmd) Run(e *env) error {
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cl.Connected() {
		if _, err := cl.Inbox(ctx, client.FetchOptions{}); err != nil {
			fmt.Fprintf(e.stderr, "note: could not fetch new messages: %v\n", err)
		}
	} else {
		fmt.Fprintln(e.stderr, "note: the relay is not reachable; showing what this device already has")
	}
	cases, err := cl.Cases()
	if err != nil {
		return err
	}
	if len(cases) == 0 {
		fmt.Fprintln(e.stdout, "no cases yet")
	}
	for _, k := range cases {
		printCase(e, k)
	}
	if !c.Follow {
		return nil
	}
	fmt.Fprintln(e.stdout, "following; Ctrl-C to stop")
	for ctx.Err() == nil {
		rs, err := cl.Inbox(ctx, client.FetchOptions{Wait: 30 * time.Second})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			cl.WaitConnected(ctx)
			continue
		}
		for _, r := range rs {
			fmt.Fprintf(e.stdout, "%s  case %s  %-12s %s\n", r.Header.Created.Local().Format("2006-01-02 15:04:05"), r.Case, r.From, client.Summarize(r.Message))
		}
	}
	return nil
}

func printCase(e *env, k *client.Case) {
	fmt.Fprintf(e.stdout, "case %s  %s  (%s, %s)\n", k.ID, k.Title, k.Country, k.Priority)
	for _, en := range k.Thread {
		state := ""
		if en.Queued {
			state = "  [queued]"
		}
		fmt.Fprintf(e.stdout, "  %s  %-12s %s%s\n", en.At.Local().Format("2006-01-02 15:04:05"), en.From, en.Text, state)
	}
}

type outboxCmd struct {
	Send bool `help:"Try to send what is queued now."`
	clientFlags
}

func (c *outboxCmd) Run(e *env) error {
	if !c.Send {
		c.Timeout = 0 // listing needs no relay
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	q, err := cl.Outbox()
	if err != nil {
		return err
	}
	if len(q) == 0 {
		fmt.Fprintln(e.stdout, "outbox empty: everything has reached the relay")
		return nil
	}
	fmt.Fprintf(e.stdout, "%d message(s) waiting for the relay:\n", len(q))
	for _, m := range q {
		shared := ""
		if m.Shared {
			shared = " (copy for partner governments)"
		}
		fmt.Fprintf(e.stdout, "  %s  %s  %s %s%s, queued %s\n", m.ID, m.Kind, m.Country, m.Priority, shared, m.Since.Local().Format("2006-01-02 15:04:05"))
	}
	return nil
}

type missionsCmd struct {
	Country string `arg:"" help:"Country code."`
	clientFlags
}

func (c *missionsCmd) Run(e *env) error {
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	d, err := cl.Directory()
	if err != nil {
		return err
	}
	cc := strings.ToLower(c.Country)
	if !country.Known(cc) {
		return fmt.Errorf("unknown country code %q (ISO 3166-1 alpha-2, e.g. ug)", c.Country)
	}
	ms := d.MissionsFor(cc)
	if len(ms) == 0 {
		return &client.CountryNotCoveredError{Country: cc, Covered: d.Countries()}
	}
	fmt.Fprintf(e.stdout, "%d mission(s) receive alerts for %s (directory serial %d):\n", len(ms), cc, d.Serial)
	for _, m := range ms {
		fmt.Fprintf(e.stdout, "  %-20s %s\n  %-20s safety number %s\n", m.ID, m.Name, "", m.Identity.SafetyNumber())
	}
	if ps := d.PartnersFor(cc); len(ps) > 0 {
		fmt.Fprintf(e.stdout, "partner governments (alerts shared with --share): ")
		for i, p := range ps {
			if i > 0 {
				fmt.Fprint(e.stdout, ", ")
			}
			fmt.Fprint(e.stdout, p.ID)
		}
		fmt.Fprintln(e.stdout)
	}
	return nil
}

type newsCmd struct {
	Country string `arg:"" optional:"" help:"Country code; all countries if omitted."`
	clientFlags
}

func (c *newsCmd) Run(e *env) error {
	if c.Country != "" && !country.Known(strings.ToLower(c.Country)) {
		return fmt.Errorf("unknown country code %q (ISO 3166-1 alpha-2, e.g. ug)", c.Country)
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	bs, err := cl.News(ctx, strings.ToLower(c.Country))
	if err != nil {
		return err
	}
	if len(bs) == 0 {
		fmt.Fprintln(e.stdout, "no broadcasts")
	}
	for _, b := range bs {
		fmt.Fprintf(e.stdout, "%s  %s  [%s] %s (verified: %s)\n  %s\n", b.Created.Local().Format("2006-01-02"), b.Country,
			b.Broadcast.Category, b.Broadcast.Title, b.Mission, strings.ReplaceAll(b.Broadcast.Text, "\n", "\n  "))
	}
	return nil
}
