package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hrdbeacon/beacon/bridge"
	"github.com/hrdbeacon/beacon/keys"
)

type bridgeCmd struct {
	Config string `short:"c" required:"" help:"Bridge config (YAML, see configs/bridge.yaml)." placeholder:"FILE" predictor:"file"`
	Check  bool   `help:"Check the config, the key file and every file it names as a start would, and exit. Connects nowhere: safe beside the running bridge."`
	passphraseFlags
}

func (c *bridgeCmd) Run(e *env) error {
	load := func(path string) (*keys.Keyring, error) { return c.loadKeyring(e, path) }
	if c.Check {
		if err := bridge.CheckFile(c.Config, load); err != nil {
			return withHint(err, "configs/bridge.yaml documents every field")
		}
		fmt.Fprintf(e.stdout, "config ok: %s\n", c.Config)
		return nil
	}
	cfg, err := bridge.LoadConfig(c.Config)
	if err != nil {
		return withHint(err, "configs/bridge.yaml documents every field; beacon bridge --check -c %s checks the files it names too", c.Config)
	}
	kr, err := load(cfg.Home.KeyFile)
	if err != nil {
		return err
	}
	log := bridge.NewLogger(cfg.Log, e.stderr)
	b, err := bridge.New(cfg, kr, bridge.WithLogger(log))
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// Start waits for the home relay; a signal meanwhile gives up.
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan error, 1)
	go func() { started <- b.Start(ctx) }()
	select {
	case err = <-started:
	case sig := <-sigs:
		log.Info("stopping", "signal", sig.String())
		cancel()
		err = <-started
	}
	cancel()
	if err != nil {
		return withHint(err, "the home relay must be reachable at home.urls, and its directory must list this bridge and every partner")
	}
	fmt.Fprintf(e.stdout, "bridge %s running: %d partner(s)", b.ID(), len(cfg.Partners))
	if a := b.MetricsAddr(); a != "" {
		fmt.Fprintf(e.stdout, ", metrics http://%s/metrics", a)
	}
	fmt.Fprintln(e.stdout)
	sig := <-sigs
	log.Info("stopping", "signal", sig.String())
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	return b.Shutdown(sctx)
}
