package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/client"
	figures "github.com/hrdbeacon/beacon/client/report"
	"github.com/hrdbeacon/beacon/keys"
)

// reportCmd is `beacon report`: headquarters' figures for all its posts,
// or a mission's for itself, from what the relay already sees (ids,
// times, countries, priorities, which post acknowledged) and no content.
type reportCmd struct {
	Since  string `default:"30d" help:"How far back: 30d, 12h, 90m." placeholder:"AGE"`
	Format string `default:"text" enum:"text,csv,json,html" help:"${enum}."`
	Out    string `short:"o" help:"Write to this file instead of standard output." placeholder:"FILE"`
	// A mission uses its console config; headquarters names its key, the
	// relay and the root.
	Config    string        `short:"c" help:"A mission's console config: report on this mission." placeholder:"FILE" predictor:"file"`
	Key       string        `help:"Headquarters' key file." placeholder:"FILE"`
	Relay     []string      `help:"Relay URL (with --key)." placeholder:"URL"`
	RootFP    string        `name:"root-fp" help:"The directory's root fingerprint (with --key)." placeholder:"FP"`
	Directory string        `help:"A signed directory, if the relay's cannot be had (with --key)." placeholder:"FILE"`
	Timeout   time.Duration `default:"60s" help:"How long to wait for the relay."`
	passphraseFlags
}

// parseAge parses 30d, 12h, 90m (and any Go duration).
func parseAge(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("--since: %q is not a number of days", s)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--since: %q is not an age like 30d, 12h or 90m", s)
	}
	return d, nil
}

func (c *reportCmd) Run(e *env) error {
	age, err := parseAge(c.Since)
	if err != nil {
		return err
	}
	var cl *client.Client
	switch {
	case c.Config != "" && c.Key != "":
		return withHint(fmt.Errorf("give -c (a mission) or --key (headquarters), not both"), "a mission reports on itself with its console config")
	case c.Config != "":
		o, err := openOffice(e, c.Config, &c.passphraseFlags)
		if err != nil {
			return err
		}
		defer o.Close()
		cl = o.Client
	case c.Key != "":
		if len(c.Relay) == 0 || c.RootFP == "" {
			return withHint(fmt.Errorf("--key needs --relay and --root-fp"), "beacon report --key hq.key --relay nats://relay.example:4222 --root-fp bcn-fp:…")
		}
		var done func()
		if cl, done, err = c.openHQ(e); err != nil {
			return err
		}
		defer done()
	default:
		return withHint(fmt.Errorf("whose report? give -c FILE (a mission) or --key FILE (headquarters)"), "beacon report --help")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	stop := e.progress("asking the relay for the figures", c.Timeout).Stop
	if err := reach(ctx, e, cl); err != nil && !cl.Connected() {
		stop()
		return withHint(fmt.Errorf("the relay is not reachable: %w", err), "the report is read from the relay; try again when it is reachable")
	}
	now := time.Now()
	d, err := cl.Report(ctx, now.Add(-age), now)
	stop()
	if err != nil {
		return err
	}
	dir, err := cl.Directory()
	if err != nil {
		return err
	}
	rows, spreads := figures.Compute(d, dir, now)
	var w io.Writer = e.stdout
	if c.Out != "" {
		f, err := os.Create(c.Out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if err := figures.New(d, rows, spreads, now).Write(w, c.Format); err != nil {
		return err
	}
	if c.Out != "" {
		fmt.Fprintf(e.stdout, "wrote the %s report to %s\n", c.Format, c.Out)
	}
	return nil
}

// openHQ opens headquarters' client in a state directory of its own,
// removed when it closes: a report needs no history on the machine.
func (c *reportCmd) openHQ(e *env) (*client.Client, func(), error) {
	fp, err := keys.ParseFingerprint(c.RootFP)
	if err != nil {
		return nil, nil, err
	}
	if err := checkRelayURLs(c.Relay); err != nil {
		return nil, nil, err
	}
	var dir []byte
	if c.Directory != "" {
		if dir, err = os.ReadFile(c.Directory); err != nil {
			return nil, nil, err
		}
	}
	kr, err := c.loadKeyring(e, c.Key)
	if err != nil {
		return nil, nil, err
	}
	if kr.Role != keys.RoleHeadquarters && kr.Role != keys.RoleMission {
		return nil, nil, fmt.Errorf("%s is a %s key: reports are for headquarters and missions", c.Key, kr.Role)
	}
	state, err := os.MkdirTemp("", "beacon-report-")
	if err != nil {
		return nil, nil, err
	}
	cl, err := client.Open(client.Config{URLs: c.Relay, Keyring: kr, Root: fp, StateDir: state, Directory: dir})
	if err != nil {
		os.RemoveAll(state)
		return nil, nil, err
	}
	return cl, func() { cl.Close(); os.RemoveAll(state) }, nil
}
