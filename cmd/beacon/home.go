package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/keys"
)

// A defender's state lives in $BEACON_HOME (default ~/.beacon):
//
//	key          the encrypted keyring (0600)
//	config.yaml  relay URLs and the pinned root fingerprint
//	state/       the verified directory and the encrypted outbox,
//	             seen-set and case threads
type homeConfig struct {
	Relays          []string `yaml:"relays"`
	RootFingerprint string   `yaml:"root_fingerprint"`
}

func beaconHome(e *env) (string, error) {
	if h := e.getenv("BEACON_HOME"); h != "" {
		return h, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory; set BEACON_HOME: %w", err)
	}
	return filepath.Join(home, ".beacon"), nil
}

var errNotInitialised = errors.New("this device has no Beacon identity yet")

func loadHomeConfig(home string) (*homeConfig, keys.Fingerprint, error) {
	path := filepath.Join(home, "config.yaml")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, keys.Fingerprint{}, withHint(errNotInitialised, "run: beacon init --relay URL --root-fp FP")
	}
	if err != nil {
		return nil, keys.Fingerprint{}, err
	}
	var hc homeConfig
	if _, err := config.Parse(path, data, &hc, nil); err != nil {
		return nil, keys.Fingerprint{}, err
	}
	fp, _ := keys.ParseFingerprint(hc.RootFingerprint)
	return &hc, fp, nil
}

// Validate implements config.Validator.
func (hc *homeConfig) Validate() error {
	var errs config.Errors
	if len(hc.Relays) == 0 {
		errs.Add("relays", "at least one relay URL")
	}
	if _, err := keys.ParseFingerprint(hc.RootFingerprint); err != nil {
		errs.Add("root_fingerprint", "%v", err)
	}
	return errs.Err()
}

// clientFlags are shared by the commands that talk to the relay.
type clientFlags struct {
	Timeout time.Duration `default:"10s" help:"How long to try to reach the relay before queueing."`
	passphraseFlags
}

// openClient opens the defender's client from $BEACON_HOME and gives it
// Timeout to connect. A relay that cannot be reached is not an error: the
// client still seals and queues.
func (f *clientFlags) openClient(e *env) (*client.Client, error) {
	home, err := beaconHome(e)
	if err != nil {
		return nil, err
	}
	hc, fp, err := loadHomeConfig(home)
	if err != nil {
		return nil, err
	}
	kr, err := f.loadKeyring(e, filepath.Join(home, "key"))
	if err != nil {
		return nil, err
	}
	c, err := client.Open(client.Config{URLs: hc.Relays, Keyring: kr, Root: fp, StateDir: filepath.Join(home, "state")})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.Timeout)
	defer cancel()
	if c.WaitConnected(ctx) == nil {
		c.RefreshDirectory(ctx)
		// The client's background flush starts as soon as it connects;
		// this one waits for it and sends what is left, and Delivered
		// counts both.
		c.Flush(ctx)
		if n := c.Delivered(); n > 0 {
			fmt.Fprintf(e.stdout, "sent %d queued message(s) from the outbox\n", n)
		}
	}
	return c, nil
}

// writeHomeConfig writes config.yaml.
func writeHomeConfig(home string, hc *homeConfig) error {
	b, err := yaml.Marshal(hc)
	if err != nil {
		return err
	}
	return keys.WriteFileAtomic(filepath.Join(home, "config.yaml"), b, 0o600, true)
}
