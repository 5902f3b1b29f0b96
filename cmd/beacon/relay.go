package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hrdbeacon/beacon/relay"
)

type relayCmd struct {
	Config string `short:"c" help:"Relay config (YAML, see configs/relay.yaml). Without it: a local trial on loopback, data under your state directory, no directory of missions." placeholder:"FILE" predictor:"file"`
	Check  bool   `help:"Check the config and every file it names (directory, TLS) as a start would, and exit. Safe beside the running relay: it binds no port and takes no lock."`
}

// shutdownGrace bounds how long a stopping relay waits for in-flight
// publishes to be stored and answered.
const shutdownGrace = 30 * time.Second

func (c *relayCmd) Run(e *env) error {
	if c.Check && c.Config != "" {
		if err := relay.CheckFile(c.Config); err != nil {
			return withHint(err, "configs/relay.yaml documents every field")
		}
		fmt.Fprintf(e.stdout, "config ok: %s\n", c.Config)
		return nil
	}
	var cfg *relay.Config
	if c.Config != "" {
		var err error
		if cfg, err = relay.LoadConfig(c.Config); err != nil {
			return withHint(err, "configs/relay.yaml documents every field; beacon relay --check -c %s checks the files it names too", c.Config)
		}
	} else {
		dir, err := relay.DefaultDataDir()
		if err != nil {
			return err
		}
		cfg = relay.DefaultConfig(dir)
	}
	if c.Check {
		if err := relay.Check(cfg); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "config ok: (built-in local trial)")
		return nil
	}
	log := relay.NewLogger(cfg.Log, e.stderr)
	r, err := relay.New(cfg, relay.WithLogger(log))
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	err = r.Start(ctx)
	cancel()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "relay ready: %s", r.ClientURL())
	if u := r.WebSocketURL(); u != "" {
		fmt.Fprintf(e.stdout, " %s", u)
	}
	fmt.Fprintln(e.stdout)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			r.ReloadDirectory() // logged either way; a bad file keeps the old directory
			continue
		}
		log.Info("stopping", "signal", sig.String())
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		err := r.Shutdown(ctx)
		cancel()
		return err
	}
	return nil
}
