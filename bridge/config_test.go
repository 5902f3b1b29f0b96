package bridge_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/bridge"
	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/keys"
)

// TestShippedConfig: configs/bridge.yaml loads and validates as shipped,
// with its paths made absolute and what its comments promise.
func TestShippedConfig(t *testing.T) {
	c, err := bridge.LoadConfig("../configs/bridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.Home.KeyFile) || strings.HasPrefix(c.Home.KeyFile, "~") {
		t.Errorf("home.key_file %q: ~/ not expanded", c.Home.KeyFile)
	}
	if len(c.Partners) != 1 || !slices.Equal(c.Partners[0].Priorities, []string{"urgent", "high", "routine"}) {
		t.Errorf("partners: %+v", c.Partners)
	}
	if c.Metrics != "127.0.0.1:9466" || c.Batch != 256 || c.Wait != 30*time.Second || c.Timeout != 10*time.Second ||
		c.Retry.Min != 250*time.Millisecond || c.Retry.Max != 30*time.Second || c.DirectoryRefresh != 5*time.Minute {
		t.Errorf("config: %+v", c)
	}
}

// TestConfigDefaults: an omitted field takes its default.
func TestConfigDefaults(t *testing.T) {
	c, err := bridge.ParseConfig("b.yaml", []byte(`home:
  urls: [nats://127.0.0.1:4222]
  key_file: bridge.key
  root_fingerprint: bcn-fp:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
partners:
  - id: de-mfa
    urls: [tls://relay.example:4222]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Batch != 256 || c.Wait != 30*time.Second || !slices.Equal(c.Partners[0].Priorities, []string{"urgent", "high", "routine"}) ||
		c.Log.Level != "info" || c.Metrics != "" {
		t.Errorf("defaults: %+v", c)
	}
	abs, _ := filepath.Abs("bridge.key")
	if c.Home.KeyFile != abs {
		t.Errorf("key_file %q, want %q (relative to the config)", c.Home.KeyFile, abs)
	}
}

// TestConfigRefusals: every problem is reported at once, each with its
// line and field.
func TestConfigRefusals(t *testing.T) {
	_, err := bridge.ParseConfig("bad.yaml", []byte(`home:
  urls: [http://relay.example]
  root_fingerprint: bcn-fp:XYZ
partners:
  - id: De
    urls: [ws://a.example/, nats://b.example:4222]
    bridge_id: -x
    countries: [ug, zz, ug]
    priorities: [soon]
  - id: De
    urls: []
metrics: 0.0.0.0:9466
batch: 5000
wait: 2m
retry: {min: 1s, max: 1ms}
directory_refresh: 1s
log: {level: loud, format: xml}
surprise: 1
`))
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v, want config.Errors", err)
	}
	want := []string{
		"bad.yaml:18: surprise",
		"bad.yaml:2: home.urls[0]:",
		"bad.yaml:1: home.key_file: required",
		"bad.yaml:3: home.root_fingerprint:",
		"bad.yaml:5: partners[0].id: \"De\" is not a directory id",
		"bad.yaml:6: partners[0].urls: mixes ws(s)://",
		"bad.yaml:7: partners[0].bridge_id:",
		"bad.yaml:8: partners[0].countries[1]: \"zz\"",
		"bad.yaml:8: partners[0].countries[2]: \"ug\" listed twice",
		"bad.yaml:9: partners[0].priorities[0]: \"soon\"",
		"bad.yaml:11: partners[1].urls: at least one",
		"bad.yaml:12: metrics: 0.0.0.0:9466 is not loopback",
		"bad.yaml:13: batch: 5000",
		"bad.yaml:14: wait: 2m0s",
		"bad.yaml:15: retry: min must be positive",
		"bad.yaml:16: directory_refresh: 1s",
		"bad.yaml:17: log.level:",
		"bad.yaml:17: log.format:",
	}
	text := err.Error()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("missing %q in:\n%s", w, text)
		}
	}
	if !strings.Contains(text, `partners[1].id: "De"`) {
		t.Errorf("a repeated partner id is not named:\n%s", text)
	}
}

// TestNewRefusesAnotherRole: the bridge runs only with a bridge's keys.
func TestNewRefusesAnotherRole(t *testing.T) {
	w := newWorld(t)
	if _, err := bridge.New(w.fakeConfigNoPartner(t), keyring(t, keys.RoleMission)); err == nil {
		t.Error("a mission's keyring was accepted")
	}
}

func (w *world) fakeConfigNoPartner(t testing.TB) *bridge.Config {
	cfg := w.bridgeConfig(t, false)
	cfg.Partners = []bridge.PartnerConfig{{ID: "nobody", URLs: []string{"nats://127.0.0.1:1"}, Priorities: []string{"urgent"}}}
	return cfg
}

// TestStartRefusesWhatTheDirectoryDoesNotList: a bridge whose key is
// not a bridge of the home directory, or a partner that is not a partner
// of it, does not start.
func TestStartRefusesWhatTheDirectoryDoesNotList(t *testing.T) {
	w := newWorld(t, "de-mfa")
	b, err := bridge.New(w.fakeConfigNoPartner(t), w.keys["bridge"])
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(testCtx(t)); !errors.Is(err, bridge.ErrUnknownPartner) {
		t.Errorf("Start with a partner not in the directory: %v, want ErrUnknownPartner", err)
	}
	b, err = bridge.New(w.bridgeConfig(t, false), keyring(t, keys.RoleBridge))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(testCtx(t)); !errors.Is(err, bridge.ErrNotABridge) {
		t.Errorf("Start with a key the directory does not list: %v, want ErrNotABridge", err)
	}
}

// TestLoadNKey: a partner-issued NKey seed is read from a file only its
// owner can read, and must be a user seed.
func TestLoadNKey(t *testing.T) {
	dir := t.TempDir()
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	got, err := bridge.LoadNKey(write("ok.nk", append(seed, '\n'), 0o600))
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := got.PublicKey(); a != mustPub(kp) {
		t.Errorf("loaded %s, want %s", a, mustPub(kp))
	}
	if _, err := bridge.LoadNKey(write("open.nk", seed, 0o644)); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("a world-readable seed: %v", err)
	}
	acct, _ := nkeys.CreateAccount()
	aseed, _ := acct.Seed()
	if _, err := bridge.LoadNKey(write("acct.nk", aseed, 0o600)); err == nil {
		t.Error("an account seed was taken for a user's")
	}
	if _, err := bridge.LoadNKey(write("big.nk", make([]byte, 8192), 0o600)); err == nil {
		t.Error("an 8 KiB file was taken for a seed")
	}
}

func mustPub(kp nkeys.KeyPair) string {
	p, _ := kp.PublicKey()
	return p
}
