package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/keys"
)

// A defender's state lives in $BEACON_HOME (default ~/.beacon):
//
//	key          the encrypted keyring (0600)
//	config.yaml  relay URLs and the pinned root fingerprint
//	state/       the verified directory and the encrypted outbox,
//	             seen-set and case threads
//
// The key is the identity; config.yaml can always be written again by
// "beacon init" without touching it (see initCmd).
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

var (
	errNotInitialised = errors.New("this device has no Beacon identity yet")
	errNoConfig       = errors.New("config.yaml is missing")
)

// hasKey reports whether home holds an identity.
func hasKey(home string) (bool, error) {
	_, err := os.Stat(filepath.Join(home, "key"))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// readHomeConfig reads config.yaml: errNoConfig if there is none, every
// problem with it at once if it is broken.
func readHomeConfig(home string) (*homeConfig, keys.Fingerprint, error) {
	path := filepath.Join(home, "config.yaml")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, keys.Fingerprint{}, fmt.Errorf("%w from %s", errNoConfig, home)
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

// loadHomeConfig is readHomeConfig for the commands that use the device,
// with the way out of each failure.
func loadHomeConfig(home string) (*homeConfig, keys.Fingerprint, error) {
	hc, fp, err := readHomeConfig(home)
	if err == nil {
		return hc, fp, nil
	}
	key, kerr := hasKey(home)
	switch {
	case kerr != nil:
		return nil, keys.Fingerprint{}, kerr
	case !key && errors.Is(err, errNoConfig):
		return nil, keys.Fingerprint{}, withHint(errNotInitialised, "run: beacon init --relay URL --root-fp FP")
	case key:
		return nil, keys.Fingerprint{}, withHint(err, "your identity is still there: beacon init --relay URL --root-fp FP writes config.yaml again and keeps it")
	}
	return nil, keys.Fingerprint{}, err
}

// clientFlags are shared by the commands that talk to the relay.
type clientFlags struct {
	Timeout time.Duration `default:"10s" help:"How long to try to reach the relay. A message it cannot take at once is queued on the device first."`
	passphraseFlags
}

// openClient opens the defender's client from $BEACON_HOME: the config,
// the key (this asks for the passphrase) and the state. It does not wait
// for the relay: the client connects in the background while the command
// runs the checks it can make on the device, and only then calls connect
// or send.
func (f *clientFlags) openClient(e *env) (*client.Client, error) { return f.openClientWith(e, nil) }

// openClientWith is openClient with a last change to the client's
// config (an event handler, say).
func (f *clientFlags) openClientWith(e *env, tweak func(*client.Config)) (*client.Client, error) {
	home, err := beaconHome(e)
	if err != nil {
		return nil, err
	}
	hc, fp, err := loadHomeConfig(home)
	if err != nil {
		return nil, err
	}
	// Checked before the passphrase is asked for, which would be in vain.
	if key, err := hasKey(home); err != nil || !key {
		if err == nil {
			err = withHint(fmt.Errorf("%w: %s has a config.yaml but no key file", errNotInitialised, home), "run: beacon init --relay URL --root-fp FP")
		}
		return nil, err
	}
	kr, err := f.loadKeyring(e, filepath.Join(home, "key"))
	if err != nil {
		return nil, err
	}
	cfg := client.Config{URLs: hc.Relays, Keyring: kr, Root: fp, StateDir: stateDirFor(home, kr)}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := client.Open(cfg)
	if err != nil {
		return nil, stateHint(err, "root_fingerprint in config.yaml")
	}
	if kr.Decoy {
		f.duressRelease(c)
	}
	return c, nil
}

// stateHint explains a client that will not open on the device's state:
// the directory stored there does not verify against the root
// fingerprint, which came from root (a flag or config.yaml).
func stateHint(err error, root string) error {
	if errors.Is(err, keys.ErrUntrustedRoot) || errors.Is(err, keys.ErrBadSignature) || errors.Is(err, keys.ErrInvalidDirectory) {
		return withHint(err, "the directory stored on this device does not verify against %s; check the fingerprint with headquarters, in person or over a channel you trust", root)
	}
	return err
}

// connect gives the client Timeout to reach the relay, saying so after a
// second, then refreshes the directory and sends what the outbox holds. A
// relay that cannot be reached is not an error: connect reports whether it
// was reached.
func (f *clientFlags) connect(e *env, c *client.Client) bool {
	if f.Timeout <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.Timeout)
	defer cancel()
	stop := e.progress("connecting to the relay", f.Timeout).Stop
	err := reach(ctx, e, c)
	stop()
	if err != nil && !c.Connected() {
		relayRefused(e, err)
		return false
	}
	flush(ctx, e, c, f.Timeout, nil)
	return true
}

// reach waits for the relay and fetches its directory. A directory that
// cannot be fetched or is refused leaves the client connected; a refused
// one is said on stderr, once per command: it is a security event.
func reach(ctx context.Context, e *env, c *client.Client) error {
	if err := c.WaitConnected(ctx); err != nil {
		return err
	}
	err := c.RefreshDirectory(ctx)
	var re *client.RelayDirectoryError
	if errors.As(err, &re) && !e.warned {
		e.warned = true
		printWarning(e.stderr, directoryWarning(c, re))
	}
	return err
}

// relayRefused says, when the client refused the relay for good at
// connect time (it broke the protocol), that this and not the network is
// why nothing was sent.
func relayRefused(e *env, err error) {
	if errors.Is(err, relayconn.ErrHostile) {
		printWarning(e.stderr, withHint(fmt.Errorf("refusing the relay: %w", err),
			"an honest relay never does this; messages stay queued on this device. Tell headquarters, and use another relay"))
	}
}

// printWarning prints a warning and its hint the way errors are printed.
func printWarning(w io.Writer, err error) {
	fmt.Fprintf(w, "warning: %v\n", err)
	var h *hintError
	if errors.As(err, &h) && h.hint != "" {
		fmt.Fprintf(w, "hint: %s\n", h.hint)
	}
}

// directoryWarning explains a directory the relay served that this
// device refused: what it means, and what the device uses instead.
func directoryWarning(c *client.Client, re *client.RelayDirectoryError) error {
	var what string
	switch {
	case errors.Is(re, keys.ErrRollback):
		what = "the relay served an older directory than this device has already seen (%v): a relay that does this may be hiding missions added, or keys revoked, since"
	case errors.Is(re, keys.ErrExpired):
		what = "the relay serves a directory that has expired (%v): it has not been given a current one, or is serving an old one on purpose"
	case errors.Is(re, keys.ErrUntrustedRoot):
		what = "the relay served a directory not signed by the root this device pins (%v)"
	case errors.Is(re, relayconn.ErrHostile):
		what = "the relay broke the protocol while sending the directory (%v)"
	default:
		what = "the relay served a directory that was changed after headquarters signed it (%v)"
	}
	keep := "this device has no current directory either: messages wait on it, unsealed and encrypted, until a current one arrives"
	if d, err := c.Directory(); err == nil {
		keep = fmt.Sprintf("this device keeps using the directory it holds (serial %d, valid until %s)", d.Serial, d.Expires.UTC().Format(time.RFC3339))
	}
	return withHint(fmt.Errorf("security: "+what+"; %s", re.Err, keep),
		"tell headquarters; if it goes on, use another relay (beacon init --relay URL --root-fp FP keeps your identity)")
}

// flush sends what the outbox holds and says how many earlier messages
// went; own, if set, counts the outbox entries of the command's own
// message among them.
func flush(ctx context.Context, e *env, c *client.Client, limit time.Duration, own func() int) {
	stop := e.progress("sending from the outbox", limit).Stop
	// The client's background flush starts as soon as it connects; this
	// one waits for it and sends what is left, and Delivered counts both.
	c.Flush(ctx)
	stop()
	n := c.Delivered()
	if own != nil {
		n -= own()
	}
	if n > 0 {
		fmt.Fprintf(e.stdout, "sent %d queued message(s) from the outbox\n", n)
	}
}

// writeHomeConfig writes config.yaml.
func writeHomeConfig(home string, hc *homeConfig) error {
	b, err := yaml.Marshal(hc)
	if err != nil {
		return err
	}
	return keys.WriteFileAtomic(filepath.Join(home, "config.yaml"), b, 0o600, true)
}
