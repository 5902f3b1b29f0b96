package client_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
)

// tamper changes one byte of a mission's name in a signed directory.
func tamper(t *testing.T, signed []byte) []byte {
	t.Helper()
	old := []byte("name: Mission nl-kampala\n")
	if bytes.Count(signed, old) != 1 {
		t.Fatalf("directory does not name nl-kampala once:\n%s", signed)
	}
	return bytes.Replace(signed, old, []byte("name: Mission nl-kampalb\n"), 1)
}

// signNext signs the version after w's directory with w's root, with the
// extra missions added.
func signNext(t *testing.T, w *relaytest.World, extra ...keys.Mission) []byte {
	t.Helper()
	r := w.Dir.Roster
	r.Serial = w.Dir.Serial + 1
	r.Previous = keys.HashString(w.Dir.Hash)
	r.Missions = append(slices.Clone(r.Missions), extra...)
	signed, err := keys.SignDirectory(&r, w.Root)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// nextVersion signs the version after w's directory, with one more
// mission for Uganda.
func nextVersion(t *testing.T, w *relaytest.World) []byte {
	t.Helper()
	kr, err := keys.NewKeyring(keys.RoleMission)
	if err != nil {
		t.Fatal(err)
	}
	m := w.Dir.Missions[0]
	m.ID, m.Name, m.Countries = "fr-kampala", "Mission fr-kampala", []string{"ug"}
	m.Identity, m.NKey, m.InboxKeys = kr.Identity.Public(), kr.NKeyPublic(), []keys.SignedInboxKey{kr.Inboxes[0].Signed}
	return signNext(t, w, m)
}

// deadURL is a relay URL nothing listens on.
func deadURL(t *testing.T) string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(fixedPort(t)))
}

func TestTamperedDirectoryIsRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	bad := tamper(t, w.Dir.Raw)
	fp := w.Root.Public().Fingerprint()

	// Given out of band.
	c, err := client.Open(client.Config{URLs: []string{deadURL(t)}, Keyring: newDefender(t), Root: fp,
		StateDir: t.TempDir(), Directory: bad})
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("Open with a tampered directory: %v, want keys.ErrBadSignature", err)
	}

	// Cached in the state directory (edited on a seized device).
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, "directory.yaml"), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = client.Open(client.Config{URLs: []string{deadURL(t)}, Keyring: newDefender(t), Root: fp, StateDir: state})
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("Open with a tampered cached directory: %v, want keys.ErrBadSignature", err)
	}

	// A relay refuses to start on it...
	badFile := filepath.Join(t.TempDir(), "directory.yaml")
	if err := os.WriteFile(badFile, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := relaytest.Config(t)
	cfg.Directory = &relay.DirectoryConfig{File: badFile, RootFingerprint: fp.String()}
	r, err := relay.New(cfg)
	if err == nil {
		r.Shutdown(context.Background())
	}
	if !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("relay.New with a tampered directory: %v, want keys.ErrBadSignature", err)
	}

	// ...and a running relay refuses to reload it, and keeps serving the
	// version it verified.
	if err := os.WriteFile(w.DirFile, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.relay.ReloadDirectory(); !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("ReloadDirectory of a tampered file: %v, want keys.ErrBadSignature", err)
	}
	def := w.open(t, newDefender(t))
	if err := def.RefreshDirectory(ctx(t)); err != nil {
		t.Fatalf("RefreshDirectory after a refused reload: %v", err)
	}
	if d, err := def.Directory(); err != nil || d.Hash != w.Dir.Hash {
		t.Fatalf("directory after refresh: %v", err)
	}
}

func TestDirectoryFromAnotherRootIsRefused(t *testing.T) {
	t.Parallel()
	specs := []relaytest.MissionSpec{{ID: "nl-kampala", Countries: []string{"ug"}}, {ID: "se-kampala", Countries: []string{"ug"}}}
	trusted := relaytest.NewWorld(t, specs...)
	other := relaytest.NewWorld(t, specs...) // same ids, other keys, other root
	cfg := relaytest.Config(t)
	other.Configure(cfg)
	r := relaytest.Start(t, cfg)

	p := reopen(t, client.Config{URLs: []string{r.ClientURL()}, Keyring: newDefender(t),
		Root: trusted.Root.Public().Fingerprint(), StateDir: t.TempDir(), Directory: trusted.Dir.Raw})
	p.waitConnected(t)
	if err := p.RefreshDirectory(ctx(t)); !errors.Is(err, keys.ErrUntrustedRoot) {
		t.Fatalf("RefreshDirectory from a relay serving another root's directory: %v, want keys.ErrUntrustedRoot", err)
	}
	if d, err := p.Directory(); err != nil || d.Hash != trusted.Dir.Hash {
		t.Fatalf("directory after a refused refresh is not the trusted one (err %v)", err)
	}
	// Alerts are still sealed to the trusted missions' keys.
	sent, err := p.SendAlert(ctx(t), ugAlert("Office raided"))
	if err != nil {
		t.Fatal(err)
	}
	nl := reopen(t, client.Config{URLs: []string{r.ClientURL()}, Keyring: other.Keyrings["nl-kampala"],
		Root: other.Root.Public().Fingerprint(), StateDir: t.TempDir()})
	nl.waitConnected(t)
	if err := nl.RefreshDirectory(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, nl.Client, "ug"); n != 1 {
		t.Fatalf("the alert %s is not on the relay: %d pending", sent.ID, n)
	}
	if rs, err := receiveAlerts(nl, ctx(t), client.FetchOptions{Wait: 5 * time.Second}); err != nil || len(rs) != 0 {
		t.Fatalf("a mission of the untrusted directory read %d alerts (err %v), want none", len(rs), err)
	}

	// Nothing of the refused version was kept.
	p.Close()
	cfg2 := p.cfg
	cfg2.Directory, cfg2.URLs = nil, []string{deadURL(t)}
	p2 := reopen(t, cfg2)
	if d, err := p2.Directory(); err != nil || d.Hash != trusted.Dir.Hash {
		t.Fatalf("directory after a restart is not the trusted one (err %v)", err)
	}
}

func TestOlderDirectoryIsRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t) // the relay serves serial 1
	v2 := nextVersion(t, w.World)
	p := reopen(t, client.Config{URLs: []string{w.relay.ClientURL()}, Keyring: newDefender(t),
		Root: w.Root.Public().Fingerprint(), StateDir: t.TempDir(), Directory: v2})
	p.waitConnected(t)
	if d, err := p.Directory(); err != nil || d.Serial != 2 {
		t.Fatalf("directory given = %v", err)
	}
	if err := p.RefreshDirectory(ctx(t)); !errors.Is(err, keys.ErrRollback) {
		t.Fatalf("RefreshDirectory with serial 1 served, 2 held: %v, want keys.ErrRollback", err)
	}
	if d, err := p.Directory(); err != nil || d.Serial != 2 {
		t.Fatalf("directory after the refused rollback is not serial 2 (err %v)", err)
	}
}

func TestNewerDirectoryIsAcceptedAndPersisted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.openParty(t, newDefender(t), "")
	p.waitConnected(t)
	v2 := nextVersion(t, w.World)
	if err := os.WriteFile(w.DirFile, v2, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.relay.ReloadDirectory(); err != nil {
		t.Fatal(err)
	}
	if err := p.RefreshDirectory(ctx(t)); err != nil {
		t.Fatalf("RefreshDirectory of serial 2: %v", err)
	}
	if d, err := p.Directory(); err != nil || d.Serial != 2 {
		t.Fatalf("directory after refresh is not serial 2 (err %v)", err)
	}
	// The new version is in effect: alerts go to the new mission too.
	sent, err := p.SendAlert(ctx(t), ugAlert("Office raided"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sent.Missions, []string{"nl-kampala", "se-kampala", "fr-kampala"}) {
		t.Fatalf("sealed to %v, want the three missions of serial 2", sent.Missions)
	}

	// A new process, with no directory given and no relay, has serial 2.
	p.Close()
	cfg := p.cfg
	cfg.Directory, cfg.URLs = nil, []string{deadURL(t)}
	p2 := reopen(t, cfg)
	if d, err := p2.Directory(); err != nil || d.Serial != 2 || !bytes.Equal(d.Raw, v2) {
		t.Fatalf("directory after a restart: %v", err)
	}
}
