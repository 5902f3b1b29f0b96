package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

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
	Force     bool          `help:"Replace the identity on this device with a new one. The old identity, its cases and its outbox are destroyed."`
	Timeout   time.Duration `default:"15s" help:"How long to try to reach the relay."`
	passphraseFlags
	duressFlags
}

// Run sets up the device. Everything that can be checked on the device is
// checked first (the fingerprint, the URLs, a --directory file, what the
// home already holds), then the passphrase is asked for, and only then
// does init wait for the relay.
//
// On a device that already holds an identity, init without --force keeps
// it: when config.yaml is missing or broken, or a --directory is given, it
// checks that the passphrase opens the key, verifies the directory and
// writes config.yaml again, leaving the key and the state alone. --force
// replaces the identity, and says what that destroys.
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
	var dir []byte
	if c.Directory != "" {
		if dir, err = os.ReadFile(c.Directory); err != nil {
			return err
		}
		if err := checkDirectoryFile(c.Directory, dir, fp); err != nil {
			return err
		}
	}
	key, err := hasKey(home)
	if err != nil {
		return err
	}
	if !key || c.Force {
		return c.newIdentity(e, home, fp, dir, key)
	}
	_, _, cfgErr := readHomeConfig(home)
	if cfgErr == nil && dir == nil {
		return withHint(fmt.Errorf("%s already holds an identity and its config.yaml", home),
			"nothing to change. --force replaces the identity (the old one is lost for good); --directory FILE brings in a directory from headquarters and keeps it; or set BEACON_HOME to another directory")
	}
	if c.Duress {
		return withHint(fmt.Errorf("%s already holds an identity", home), "to add a duress passphrase to it, run: beacon duress")
	}
	return c.keepIdentity(e, home, fp, dir, cfgErr)
}

// newIdentity creates an identity, replacing the one there with replace.
// Its state is built beside the old one and takes its place only once the
// new key is written, so an init that fails changes nothing.
func (c *initCmd) newIdentity(e *env, home string, fp keys.Fingerprint, dir []byte, replace bool) error {
	keyPath := filepath.Join(home, "key")
	if replace {
		fmt.Fprintf(e.stderr, "replacing the identity in %s: once the new one is set up, the old key, its cases and its outbox (messages not yet sent) are destroyed, and missions will know this device only as a new sender\n", home)
		if err := confirm(e, "Type yes to destroy the old identity: "); err != nil {
			return err
		}
	}
	pw, err := c.passphrase(e, keyPath, true)
	if err != nil {
		return err
	}
	dpw, err := c.duressPassphrase(e, pw)
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
	fresh, state := filepath.Join(home, "state.new"), filepath.Join(home, "state")
	if err := os.RemoveAll(fresh); err != nil { // left by an init that was interrupted
		return err
	}
	cl, err := client.Open(client.Config{URLs: c.Relay, Keyring: kr, Root: fp, StateDir: fresh, Directory: dir})
	if err != nil {
		os.RemoveAll(fresh)
		return err
	}
	d, fetchErr, err := c.directory(e, cl)
	cl.Close()
	if err != nil {
		os.RemoveAll(fresh)
		return err
	}
	if err := writeKey(keyPath, kr, pw, dpw, replace); err != nil {
		os.RemoveAll(fresh)
		return err
	}
	if err := os.RemoveAll(state); err != nil {
		return err
	}
	if err := os.Rename(fresh, state); err != nil {
		return err
	}
	if err := writeHomeConfig(home, &homeConfig{Relays: c.Relay, RootFingerprint: fp.String()}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "initialised %s\n", home)
	printSetup(e, kr, d, fetchErr)
	return nil
}

// keepIdentity writes config.yaml again for the identity already in home,
// once the passphrase has opened it; cfgErr is why config.yaml could not
// be used (nil when it was fine and a directory is brought in).
func (c *initCmd) keepIdentity(e *env, home string, fp keys.Fingerprint, dir []byte, cfgErr error) error {
	kr, err := c.loadKeyring(e, filepath.Join(home, "key"))
	if err != nil {
		return err
	}
	cl, err := client.Open(client.Config{URLs: c.Relay, Keyring: kr, Root: fp, StateDir: stateDirFor(home, kr), Directory: dir})
	if errors.Is(err, keys.ErrRollback) {
		return withHint(fmt.Errorf("the directory file %s is older than the one this device already holds: %w", c.Directory, err),
			"nothing was changed; this device keeps its newer directory. Ask headquarters for the current one")
	}
	if err != nil {
		return stateHint(err, "--root-fp")
	}
	d, fetchErr, err := c.directory(e, cl)
	cl.Close()
	if err != nil {
		return err
	}
	if err := writeHomeConfig(home, &homeConfig{Relays: c.Relay, RootFingerprint: fp.String()}); err != nil {
		return err
	}
	why := "brought in the directory from " + c.Directory + " and"
	switch {
	case errors.Is(cfgErr, errNoConfig):
		why = "config.yaml was missing:"
	case cfgErr != nil:
		why = "config.yaml could not be read:"
	}
	fmt.Fprintf(e.stdout, "%s wrote %s again; your identity and everything this device holds are kept\n", why, filepath.Join(home, "config.yaml"))
	printSetup(e, kr, d, fetchErr)
	return nil
}

// directory spends Timeout reaching the relay for its directory and
// returns the verified directory the client then holds: the relay's, the
// --directory file's or the one the device kept. fetchErr says why the
// relay's was not had.
func (c *initCmd) directory(e *env, cl *client.Client) (d *keys.Directory, fetchErr, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	stop := e.progress("connecting to the relay", c.Timeout).Stop
	e.warned = true // what is wrong with the relay's directory is said below
	fetchErr = reach(ctx, e, cl)
	stop()
	if d, err = cl.Directory(); err != nil {
		if fetchErr == nil {
			fetchErr = err
		}
		return nil, nil, relayDirectoryError(fetchErr, c.Timeout)
	}
	return d, fetchErr, nil
}

func printSetup(e *env, kr *keys.Keyring, d *keys.Directory, fetchErr error) {
	fmt.Fprintf(e.stdout, "your safety number: %s\ndirectory serial %d, valid until %s; countries covered: %s\n",
		kr.Identity.Public().SafetyNumber(), d.Serial, d.Expires.Format(time.RFC3339), strings.Join(d.Countries(), " "))
	switch {
	case fetchErr == nil:
	case errors.Is(fetchErr, client.ErrNotConnected):
		fmt.Fprintln(e.stdout, "note: the relay is not reachable now; messages will queue on this device until it is")
	default:
		fmt.Fprintf(e.stdout, "note: the relay's directory was not accepted (%v); using serial %d\n", refusedReason(fetchErr), d.Serial)
	}
}

// checkDirectoryFile verifies a --directory file before anything else
// happens, so that what is wrong with it is what init reports.
func checkDirectoryFile(path string, data []byte, fp keys.Fingerprint) error {
	_, err := keys.VerifyDirectory(data, fp, time.Now(), nil)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, keys.ErrExpired):
		// Only a file that verified gets this far, so its roster parses.
		r, perr := keys.ParseRoster(stripSignature(data))
		if perr != nil {
			return err
		}
		return withHint(fmt.Errorf("the directory file %s has expired (serial %d, expired at %s)", path, r.Serial, r.Expires.UTC().Format(time.RFC3339)),
			"ask headquarters for a current one, or leave out --directory while the relay is reachable")
	case errors.Is(err, keys.ErrUntrustedRoot):
		return withHint(fmt.Errorf("the directory file %s: %w", path, err), "check the root fingerprint with headquarters, in person or over a channel you trust")
	}
	return withHint(fmt.Errorf("the directory file %s does not verify against the root fingerprint: %w", path, err),
		"it was changed after headquarters signed it, or damaged on the way; ask headquarters for a fresh copy")
}

// relayDirectoryError says why init has no directory it can trust, when
// the relay was all it had.
func relayDirectoryError(err error, timeout time.Duration) error {
	err = refusedReason(err)
	const relayHint = "check the relay URL, or pass --directory FILE from headquarters"
	switch {
	case errors.Is(err, client.ErrNotConnected):
		return withHint(fmt.Errorf("no verified directory: the relay is not reachable (tried for %s)", timeout), relayHint)
	case errors.Is(err, keys.ErrUntrustedRoot):
		return withHint(fmt.Errorf("no verified directory: %w", err), "check the root fingerprint with headquarters, in person or over a channel you trust")
	case errors.Is(err, keys.ErrExpired):
		return withHint(fmt.Errorf("no verified directory: the relay serves one that has %w", err), "the relay's operator must install a current one; meanwhile pass --directory FILE from headquarters")
	case errors.Is(err, keys.ErrRollback):
		return withHint(fmt.Errorf("no verified directory: the relay serves an older one than this device has seen: %w", err), "a relay that serves an old directory may be hostile; try another relay, or pass --directory FILE from headquarters")
	case errors.Is(err, keys.ErrBadSignature), errors.Is(err, keys.ErrInvalidDirectory):
		return withHint(fmt.Errorf("no verified directory: the relay's does not verify against the root fingerprint: %w", err), "the relay or the network changed it; try another relay, or pass --directory FILE from headquarters")
	}
	return withHint(fmt.Errorf("no verified directory: %w", err), relayHint)
}

// refusedReason is why the relay's directory was refused, without the
// words saying that it was.
func refusedReason(err error) error {
	var re *client.RelayDirectoryError
	if errors.As(err, &re) {
		return re.Err
	}
	return err
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
	Exercise    bool   `help:"A drill: it reaches the missions (and escalates) marked as an exercise, is never shared with partners, and never counts as a real case."`
	Location    string `help:"Coarse location (a district, not an address)."`
	Summary     string `arg:"" help:"One line: what is happening (up to 280 characters; more goes in --details-file)."`
	DetailsFile string `name:"details-file" help:"File with the details (UTF-8, several lines, up to 8000 characters)." placeholder:"FILE"`
	clientFlags
}

func (c *alertCmd) Run(e *env) error {
	prio, err := routing.ParsePriority(c.Priority)
	if err != nil {
		return err
	}
	a := &message.Alert{Country: strings.ToLower(c.Country), Priority: prio,
		Category: message.Category(c.Category), Summary: c.Summary, Location: c.Location, Share: c.Share, Publicise: c.Publicise,
		Exercise: c.Exercise}
	if c.DetailsFile != "" {
		if a.Details, err = readDetails(c.DetailsFile); err != nil {
			return err
		}
	}
	cleanText(e, &a.Summary, &a.Details, &a.Location)
	if err := a.Validate(); err != nil {
		return summaryHint(err)
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := covered(cl, a.Country); err != nil {
		return err
	}
	s, err := c.send(e, cl, "alert", func(ctx context.Context) (*client.Sent, error) { return cl.SendAlert(ctx, a) })
	if err != nil {
		return err
	}
	report(e, "alert", a.Country, s)
	if a.Share && !a.Exercise {
		reportShare(e, a.Country, s)
	}
	return nil
}

// checkUTF8 refuses an argument that is not UTF-8 before the parser sees
// it: kong turns such bytes into U+FFFD, text that says something other
// than what was typed, and the command would send it. The error names the
// flag or the position, never the text.
func checkUTF8(args []string) error {
	for i, a := range args {
		if utf8.ValidString(a) {
			continue
		}
		what := fmt.Sprintf("argument %d", i+1)
		if name, _, ok := strings.Cut(a, "="); ok && strings.HasPrefix(name, "--") && utf8.ValidString(name) {
			what = name
		} else if i > 0 && strings.HasPrefix(args[i-1], "--") && !strings.Contains(args[i-1], "=") {
			what = args[i-1]
		}
		return withHint(fmt.Errorf("%s: not valid UTF-8 text", what), "set your terminal to UTF-8; text in another encoding would reach the missions garbled")
	}
	return nil
}

// readDetails reads a --details-file: UTF-8 text, trailing newlines dropped.
func readDetails(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", withHint(fmt.Errorf("--details-file %s is not UTF-8 text", path), "save it as UTF-8 (plain text) in your editor; other encodings would reach the missions garbled")
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// summaryHint points a summary that is too long, or on several lines, to
// the field made for it.
func summaryHint(err error) error {
	var fe *message.FieldError
	if errors.As(err, &fe) && fe.Kind == message.KindAlert && fe.Field == "summary" &&
		(errors.Is(err, message.ErrTooLong) || errors.Is(err, message.ErrLineBreak)) {
		return withHint(err, "the summary is one short line; put long or multi-line text in a file and pass --details-file FILE")
	}
	return err
}

// cleanText removes the implicit bidi marks keyboards insert in
// right-to-left text (the message format refuses them) and says so.
func cleanText(e *env, fields ...*string) {
	for _, f := range fields {
		if s, changed := message.StripBidiMarks(*f); changed {
			*f = s
			fmt.Fprintln(e.stderr, "note: removed invisible direction marks from your text")
		}
	}
}

// covered refuses, before any wait, a country that no mission covers in the
// directory this device holds. Without a directory (never fetched, or
// expired) only the relay can say, and send waits for it.
func covered(cl *client.Client, cc string) error {
	d, err := cl.Directory()
	if err == nil && len(d.MissionsFor(cc)) == 0 {
		return coverageHint(&client.CountryNotCoveredError{Country: cc, Covered: d.Countries()})
	}
	return nil
}

// hasCase refuses, before any wait, an id that is no case on this device.
func hasCase(cl *client.Client, id routing.ID) error {
	cases, err := cl.Cases()
	if err != nil {
		return err
	}
	for _, k := range cases {
		if k.ID == id {
			return nil
		}
	}
	return fmt.Errorf("no case %s on this device (beacon inbox lists them)", id)
}

func coverageHint(err error) error {
	var nc *client.CountryNotCoveredError
	if errors.As(err, &nc) {
		return withHint(err, "check the country code; 'beacon missions CC' lists who receives")
	}
	return err
}

// send hands one message to the client so that no wait can lose it. A
// relay that answers at once gets it directly, sealed to the directory
// just fetched. Otherwise it is stored in the encrypted outbox straight
// away — sealed, or, on a device whose directory has expired, waiting to
// be sealed to the next current one — and the rest of Timeout goes to
// delivering it from there: a dropped network, Ctrl-C or a flat battery
// during the wait no longer loses it.
func (f *clientFlags) send(e *env, cl *client.Client, what string, do func(context.Context) (*client.Sent, error)) (*client.Sent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), max(f.Timeout, 0))
	defer cancel()
	report := e.progress("connecting to the relay", f.Timeout)
	defer report.Stop()
	stop := report.Stop
	if answersSoon(ctx, cl) {
		reached := reach(ctx, e, cl) == nil || cl.Connected()
		stop()
		if reached {
			flush(ctx, e, cl, f.Timeout, nil)
		}
		sending := e.progress("sending to the relay", f.Timeout)
		defer sending.Stop()
		s, err := do(ctx)
		return s, sendError(err)
	}
	s, err := do(ctx)
	if err != nil || !s.Queued {
		return s, sendError(err)
	}
	if s.AwaitingDirectory {
		report.Note("the " + what + " is already stored on this device, encrypted: stopping now loses nothing")
	} else {
		report.Note("the " + what + " is already sealed and stored on this device: stopping now loses nothing")
	}
	own, _ := inOutbox(cl, s.ID)
	reached := reach(ctx, e, cl) == nil || cl.Connected()
	stop()
	if !reached {
		relayRefused(e, cl.WaitConnected(ctx))
		return s, nil
	}
	var refusal *client.Refusal
	flush(ctx, e, cl, f.Timeout, func() int {
		left, r := inOutbox(cl, s.ID)
		if left == 0 {
			s.Queued = false
		}
		refusal = r
		return own - left
	})
	if refusal != nil {
		if refusal.Local {
			return nil, withHint(fmt.Errorf("the %s %s cannot be sent: %s", what, s.ID, refusal.Reason), "it stays in beacon outbox, unsent, until you discard it")
		}
		return nil, withHint(fmt.Errorf("the relay refused the %s %s for good: %s (%s)", what, s.ID, refusal.Reason, refusal.Code), "it stays in beacon outbox, unsent, until you discard it")
	}
	if s.AwaitingDirectory && !s.Queued {
		// Sealed once the relay gave a directory, and sent: the case
		// says to whom.
		s.AwaitingDirectory = false
		if k := caseOf(cl, s.ID); k != nil {
			s.Missions = k.Missions
		}
	}
	return s, nil
}

// caseOf returns the case with id, or nil.
func caseOf(cl *client.Client, id routing.ID) *client.Case {
	cases, err := cl.Cases()
	if err != nil {
		return nil
	}
	for _, k := range cases {
		if k.ID == id {
			return k
		}
	}
	return nil
}

// sendGrace is how long send waits for the relay before it queues: about
// what a relay that is up takes to answer on a slow network, and less than
// a wait that earns a progress line.
const sendGrace = progressAfter / 2

func answersSoon(ctx context.Context, cl *client.Client) bool {
	ctx, cancel := context.WithTimeout(ctx, sendGrace)
	defer cancel()
	return cl.WaitConnected(ctx) == nil
}

// inOutbox counts the outbox entries of message id (an alert shared with
// partners has two), and returns the relay's refusal if it refused one.
func inOutbox(cl *client.Client, id routing.ID) (n int, refused *client.Refusal) {
	q, err := cl.Outbox()
	if err != nil {
		return 0, nil
	}
	for _, m := range q {
		if m.ID == id {
			n++
			if m.Refused != nil {
				refused = m.Refused
			}
		}
	}
	return n, refused
}

// sendError explains the failures of a send that the device can do
// something about.
func sendError(err error) error {
	if errors.Is(err, client.ErrNoDirectory) {
		return withHint(errors.New("nothing was sent: this device holds no current directory of missions to seal it to, and the relay could not be reached to fetch one"),
			"try again when the relay is reachable, or ask headquarters for a current directory and run: beacon init --relay URL --root-fp FP --directory FILE (your identity is kept)")
	}
	return coverageHint(err)
}

func report(e *env, what, cc string, s *client.Sent) {
	to := fmt.Sprintf("%d mission(s) of %s (%s)", len(s.Missions), cc, strings.Join(s.Missions, ", "))
	if cc == "" {
		to = fmt.Sprintf("the case's %d mission(s) (%s)", len(s.Missions), strings.Join(s.Missions, ", "))
	}
	switch {
	case !s.Queued:
		fmt.Fprintf(e.stdout, "sent: %s %s to %s\n", what, s.ID, to)
		fmt.Fprintf(e.stdout, "the relay has stored it; nobody has read it yet. When a mission acknowledges it, beacon inbox (or beacon watch) shows who.\n")
	case s.AwaitingDirectory:
		if cc == "" {
			fmt.Fprintf(e.stdout, "queued: %s %s for the case's missions\n", what, s.ID)
		} else {
			fmt.Fprintf(e.stdout, "queued: %s %s for the missions of %s\n", what, s.ID, cc)
		}
		why := "this device holds no current directory of missions"
		var exp *client.DirectoryExpiredError
		if errors.As(s.DirectoryErr, &exp) {
			why = fmt.Sprintf("the directory of missions on this device expired at %s (serial %d)", exp.Expired.UTC().Format(time.RFC3339), exp.Serial)
		}
		fmt.Fprintf(e.stdout, "%s and the relay gave no current one. The %s is stored encrypted on this device but not sealed yet: it is sealed to the missions of the first current directory the relay gives, and leaves then by itself, the next time any beacon command (or beacon watch) reaches the relay. beacon outbox shows it.\n", why, what)
	default:
		fmt.Fprintf(e.stdout, "queued: %s %s for %s\n", what, s.ID, to)
		fmt.Fprintf(e.stdout, "the relay is not reachable now. The %s is sealed and stored encrypted on this device; it leaves automatically the next time any beacon command (or beacon watch) reaches the relay. beacon outbox shows it.\n", what)
	}
}

// reportShare says what became of the consent to share. A partner
// government has the alert only once the bridge's signed receipt says its
// relay stored it; until then the defender must not be told otherwise.
func reportShare(e *env, cc string, s *client.Sent) {
	if len(s.Partners) == 0 {
		fmt.Fprintf(e.stdout, "you consented to sharing with partner governments, but none covers %s: only the missions have this alert\n", cc)
		return
	}
	fmt.Fprintf(e.stdout, "you consented to sharing with partner governments: a copy is sealed to %s and is waiting to be delivered to them; none has it yet (beacon inbox shows each one's receipt once its relay has it)\n", strings.Join(s.Partners, ", "))
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
	if err := (&message.Update{Ref: id, Text: c.Text}).Validate(); err != nil {
		return err
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := hasCase(cl, id); err != nil {
		return err
	}
	s, err := c.send(e, cl, "update", func(ctx context.Context) (*client.Sent, error) { return cl.SendUpdate(ctx, id, c.Text) })
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
	reason := message.CancelReason(c.Reason)
	if err := (&message.Cancel{Ref: id, Reason: reason, Text: c.Text}).Validate(); err != nil {
		return err
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := hasCase(cl, id); err != nil {
		return err
	}
	s, err := c.send(e, cl, "cancellation", func(ctx context.Context) (*client.Sent, error) { return cl.Cancel(ctx, id, reason, c.Text) })
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
	if err := covered(cl, m.Country); err != nil {
		return err
	}
	s, err := c.send(e, cl, "meeting request", func(ctx context.Context) (*client.Sent, error) { return cl.RequestMeeting(ctx, m) })
	if err != nil {
		return err
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
	for i := range c.Defendant {
		cleanText(e, &c.Defendant[i])
	}
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
	if err := covered(cl, o.Country); err != nil {
		return err
	}
	s, err := c.send(e, cl, "observation request", func(ctx context.Context) (*client.Sent, error) { return cl.RequestObservation(ctx, o) })
	if err != nil {
		return err
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
	ctx, stop := signal.NotifyContext(e.context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.connect(e, cl) {
		fetch, cancel := context.WithTimeout(ctx, c.Timeout)
		done := e.progress("fetching new messages", c.Timeout).Stop
		_, err := cl.ReadMailbox(fetch, client.FetchOptions{})
		done()
		cancel()
		if err != nil {
			fmt.Fprintf(e.stderr, "note: could not fetch new messages: %v\n", err)
		}
	} else {
		fmt.Fprintln(e.stderr, "note: the relay is not reachable; showing what this device already has")
	}
	noteHeldBack(e, cl)
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
	out := &lineWriter{w: e.stdout}
	return cl.FollowMailbox(ctx, func(r *client.Received) { printReceived(out, r) }, followProblem(e))
}

// followProblem reports a failed fetch of a follow once, not at every
// retry, until a fetch succeeds again.
func followProblem(e *env) func(error) {
	var last string
	return func(err error) {
		if s := err.Error(); s != last {
			last = s
			fmt.Fprintf(e.stderr, "note: could not fetch new messages: %v; trying again, less and less often\n", err)
		}
	}
}

// noteHeldBack says when messages wait, unread, for a directory naming
// their signer.
func noteHeldBack(e *env, cl *client.Client) {
	st, err := cl.Status()
	if err == nil && st.HeldBack > 0 {
		fmt.Fprintf(e.stderr, "note: %d message(s) signed by someone this device's directory does not name are held, unread and kept at the relay, until a newer directory arrives\n", st.HeldBack)
	}
}

// printReceived shows one message as it arrives.
func printReceived(w io.Writer, r *client.Received) {
	line := fmt.Sprintf("%s  case %s  %-12s %s", r.Header.Created.Local().Format("2006-01-02 15:04:05"), r.Case, r.From, client.Summarize(r.Message))
	if _, ok := r.Message.(*message.Ack); ok {
		line += " (a person at " + r.From + " has read it)"
	}
	fmt.Fprintln(w, line)
}

// A lineWriter writes whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func printCase(e *env, k *client.Case) {
	fmt.Fprintf(e.stdout, "case %s  %s  (%s, %s)\n", k.ID, k.Title, k.Country, k.Priority)
	for _, en := range k.Thread {
		state := ""
		switch {
		case en.Refused != "":
			state = "  [refused: " + en.Refused + "]"
		case en.Queued:
			state = "  [queued]"
		}
		fmt.Fprintf(e.stdout, "  %s  %-12s %s%s\n", en.At.Local().Format("2006-01-02 15:04:05"), en.From, en.Text, state)
	}
	if st := caseStatus(k); st != "" {
		fmt.Fprintf(e.stdout, "  status: %s\n", st)
	}
	printMeetingsAndLiaisons(e, k)
	printRollUp(e, k)
}

// printRollUp says, for an alert shared with partner governments, which
// have it and which acknowledged it: a partner is "waiting to be
// delivered" until the bridge's receipt says its relay stored it. (The
// status line says where the missions stand.)
func printRollUp(e *env, k *client.Case) {
	if k.Kind != message.KindAlert || len(k.Partners) == 0 {
		return
	}
	for _, p := range client.RollUpOf(k, nil).Parties {
		if p.Role == keys.RolePartner {
			fmt.Fprintf(e.stdout, "  partner government %-12s %s\n", p.ID, p.Status())
		}
	}
}

// caseStatus says where a case this device opened stands: on the device,
// refused, stored at the relay and read by nobody yet, or acknowledged by
// people at missions. Only an acknowledgement says someone read it.
func caseStatus(k *client.Case) string {
	if len(k.Thread) == 0 || k.Thread[0].From != "you" {
		return ""
	}
	first := k.Thread[0]
	acked := k.Acknowledged()
	if len(k.Missions) > 0 { // partners' acks are shown with the partners
		acked = slices.DeleteFunc(acked, func(id string) bool { return !slices.Contains(k.Missions, id) })
	}
	switch {
	case first.Refused != "":
		return "refused; it was not sent"
	case first.Queued:
		return "queued on this device; it leaves by itself when the relay is reachable"
	case len(acked) == 0:
		return "stored at the relay; no mission has acknowledged it yet"
	case len(k.Missions) > 0:
		return fmt.Sprintf("acknowledged by %s (%d of %d missions)", strings.Join(acked, ", "), len(acked), len(k.Missions))
	}
	return "acknowledged by " + strings.Join(acked, ", ")
}

type outboxCmd struct {
	Send    bool   `help:"Try to send what is queued now."`
	Discard string `help:"Delete a message the relay refused for good, once you have read why." placeholder:"ID"`
	clientFlags
}

func (c *outboxCmd) Run(e *env) error {
	var discard routing.ID
	if c.Discard != "" {
		id, err := routing.ParseID(c.Discard)
		if err != nil {
			return fmt.Errorf("--discard: %w", err)
		}
		discard = id
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	if !discard.IsZero() {
		return discardRefused(e, cl, discard)
	}
	if c.Send { // listing needs no relay
		c.connect(e, cl)
	}
	q, err := cl.Outbox()
	if err != nil {
		return err
	}
	var waiting, refused []client.Queued
	for _, m := range q {
		if m.Refused != nil {
			refused = append(refused, m)
		} else {
			waiting = append(waiting, m)
		}
	}
	switch {
	case len(waiting) == 0 && len(refused) == 0:
		fmt.Fprintln(e.stdout, "outbox empty: everything has reached the relay")
	case len(waiting) == 0:
		fmt.Fprintln(e.stdout, "nothing waiting for the relay")
	default:
		fmt.Fprintf(e.stdout, "%d message(s) waiting for the relay:\n", len(waiting))
	}
	for _, m := range waiting {
		unsealed := ""
		if m.AwaitingDirectory {
			unsealed = ", not sealed yet: waiting for a current directory"
		}
		fmt.Fprintf(e.stdout, "  %s  %s  %s %s%s, queued %s%s\n", m.ID, m.Kind, m.Country, m.Priority, sharedCopy(m), m.Since.Local().Format("2006-01-02 15:04:05"), unsealed)
	}
	if len(refused) > 0 {
		fmt.Fprintf(e.stdout, "%d message(s) refused for good; they will not be sent:\n", len(refused))
	}
	for _, m := range refused {
		by := "the relay refused it"
		if m.Refused.Local {
			by = "this device cannot seal it"
		}
		fmt.Fprintf(e.stdout, "  %s  %s  %s %s%s: %s: %s (%s)\n", m.ID, m.Kind, m.Country, m.Priority, sharedCopy(m), by, m.Refused.Reason, m.Refused.Code)
	}
	if len(refused) > 0 {
		fmt.Fprintln(e.stdout, "beacon outbox --discard ID deletes one; send what it said again with a new command")
	}
	return nil
}

func sharedCopy(m client.Queued) string {
	if m.Shared {
		return " (copy for partner governments)"
	}
	return ""
}

// discardRefused deletes a refused message, and only a refused one: a
// message still waiting is never dropped by mistake.
func discardRefused(e *env, cl *client.Client, id routing.ID) error {
	q, err := cl.Outbox()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(q, func(m client.Queued) bool { return m.ID == id && m.Refused != nil }) {
		return withHint(fmt.Errorf("no refused message %s in the outbox", id), "beacon outbox lists them; a message still waiting cannot be discarded")
	}
	if err := cl.DiscardRefused(id); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "discarded %s\n", id)
	return nil
}

type missionsCmd struct {
	Country string `arg:"" help:"Country code."`
	clientFlags
}

func (c *missionsCmd) Run(e *env) error {
	cc := strings.ToLower(c.Country)
	if !country.Known(cc) {
		return fmt.Errorf("unknown country code %q (ISO 3166-1 alpha-2, e.g. ug)", c.Country)
	}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	c.connect(e, cl)
	d, err := cl.Directory()
	var exp *client.DirectoryExpiredError
	if errors.As(err, &exp) {
		return withHint(err, "the relay gave no current one; alerts you send now wait on this device until it does. Ask headquarters for a current directory: beacon init --relay URL --root-fp FP --directory FILE keeps your identity")
	}
	if err != nil {
		return err
	}
	ms := d.MissionsFor(cc)
	if len(ms) == 0 {
		return &client.CountryNotCoveredError{Country: cc, Covered: d.Countries()}
	}
	fmt.Fprintf(e.stdout, "%d mission(s) receive alerts for %s (directory serial %d):\n", len(ms), cc, d.Serial)
	for _, m := range ms {
		fmt.Fprintf(e.stdout, "  %-20s %s\n  %-20s safety number %s\n", m.ID, m.Name, "", m.Identity.SafetyNumber())
		printCommitments(e, m)
	}
	if ps := d.PartnersFor(cc); len(ps) > 0 {
		fmt.Fprintf(e.stdout, "partner governments (offered alerts sent with --share once they can receive): ")
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
	c.connect(e, cl)
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	stop := e.progress("fetching broadcasts", c.Timeout).Stop
	n, err := cl.ReadNews(ctx, strings.ToLower(c.Country))
	stop()
	if err != nil {
		return err
	}
	if len(n.Bulletins) == 0 {
		fmt.Fprintln(e.stdout, "no broadcasts")
	}
	for _, b := range n.Bulletins {
		until := ""
		if !b.Broadcast.ValidUntil.IsZero() {
			until = ", until " + b.Broadcast.ValidUntil.Local().Format("2006-01-02")
		}
		fmt.Fprintf(e.stdout, "%s  %s  [%s] %s (verified: %s%s)\n  %s\n", b.Created.Local().Format("2006-01-02"), b.Country,
			b.Broadcast.Category, b.Broadcast.Title, b.Mission, until, strings.ReplaceAll(b.Broadcast.Text, "\n", "\n  "))
		printAnswerHint(e, b)
	}
	for _, l := range []struct {
		n    int
		what string
	}{
		{n.Expired, "expired broadcast(s) not shown"},
		{n.Duplicates, "copies of broadcasts shown once"},
		{n.Capped, fmt.Sprintf("older broadcast(s) not shown: at most %d of each mission", client.MaxBulletinsPerMission)},
		{n.Unverified, "broadcast(s) that no mission covering their country signed, not shown"},
	} {
		if l.n > 0 {
			fmt.Fprintf(e.stderr, "note: %d %s\n", l.n, l.what)
		}
	}
	return nil
}
