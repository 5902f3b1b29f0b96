package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/client/console"
	"github.com/hrdbeacon/beacon/keys"
)

type consoleCmd struct {
	Config string `short:"c" default:"configs/console.yaml" help:"Console config (see configs/console.yaml)." placeholder:"FILE" predictor:"file"`
	Check  bool   `help:"Check the config and every file it names (key, root, directory, state) as a start would, and exit."`
	passphraseFlags
}

const consoleHint = "configs/console.yaml documents every field; beacon console --check -c FILE checks the files it names"

// Run starts the console: it unlocks the mission's key, opens the
// encrypted case store, receives the mission's alerts through the relay
// and serves the page on loopback at the address it prints, which holds
// the session token.
func (c *consoleCmd) Run(e *env) error {
	if c.Check {
		if err := console.CheckFile(c.Config); err != nil {
			return withHint(err, "%s", consoleHint)
		}
		fmt.Fprintf(e.stdout, "config ok: %s\n", c.Config)
		return nil
	}
	o, err := openOffice(e, c.Config, &c.passphraseFlags)
	if err != nil {
		return err
	}
	defer o.Close()
	con, err := console.New(o)
	if err != nil {
		return err
	}
	if err := con.Start(); err != nil {
		return withHint(err, "another console may be running on %s; set listen in %s", o.Config.Listen, c.Config)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	fmt.Fprintf(e.stdout, "console ready for %s: open %s\n", o.Config.Mission, con.URL())
	fmt.Fprintln(e.stdout, "the address holds the session token: whoever has it has the console; keep it on this workstation")
	<-sigs
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return con.Shutdown(ctx)
}

// openOffice loads a console config and the mission's key and opens the
// office: the case store and the client.
func openOffice(e *env, path string, pf *passphraseFlags) (*console.Office, error) {
	cfg, err := console.LoadConfig(path)
	if err != nil {
		return nil, withHint(err, "%s", consoleHint)
	}
	if err := console.Check(cfg, time.Now()); err != nil {
		return nil, withHint(err, "%s", consoleHint)
	}
	kr, err := pf.loadKeyring(e, cfg.Key)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	o, err := console.Open(cfg, kr, log, nil)
	switch {
	case errors.Is(err, console.ErrWrongMission):
		return nil, withHint(err, "mission in %s must be the id headquarters gave this key in the directory", path)
	case errors.Is(err, keys.ErrUntrustedRoot), errors.Is(err, keys.ErrBadSignature):
		return nil, withHint(err, "check root_fingerprint in %s with headquarters", path)
	case err != nil:
		return nil, err
	}
	return o, nil
}

// reachRelay waits up to timeout for the relay and refreshes the
// directory; a relay that cannot be reached is reported, not an error:
// what is sent waits in the outbox.
func reachRelay(e *env, o *console.Office, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stop := e.progress("connecting to the relay", timeout).Stop
	err := o.Client.WaitConnected(ctx)
	if err == nil {
		o.Client.RefreshDirectory(ctx)
	}
	stop()
	if err != nil {
		fmt.Fprintln(e.stderr, "note: the relay is not reachable; showing what the store holds, and what you send waits in the outbox")
		return false
	}
	if err := o.CheckMission(); err != nil && !errors.Is(err, client.ErrNoDirectory) {
		fmt.Fprintf(e.stderr, "warning: %v\n", err)
	}
	return true
}
