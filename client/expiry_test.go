package client_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/jonboulle/clockwork"
)

// An expired cached directory must not stop a defender's client from
// opening (it would block an emergency alert) nor be used; the relay's
// newer version replaces it, and an older version than the expired one is
// still refused.
func TestExpiredDirectoryIsReplacedNotFatal(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	fp := w.Root.Public().Fingerprint()
	state := t.TempDir()
	kr := newDefender(t)

	c, err := client.Open(client.Config{URLs: []string{w.relay.ClientURL()}, Keyring: kr, Root: fp, StateDir: state, Directory: w.Dir.Raw})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// A day later the cached directory (valid 24 h) has expired.
	laterClock := clockwork.NewFakeClockAt(time.Now().Add(25 * time.Hour))
	later := laterClock.Now
	c, err = client.Open(client.Config{URLs: []string{deadURL(t)}, Keyring: kr, Root: fp, StateDir: state, Clock: laterClock})
	if err != nil {
		t.Fatalf("Open with an expired cached directory: %v", err)
	}
	if _, err := c.Directory(); !errors.Is(err, client.ErrNoDirectory) {
		t.Fatalf("Directory() = %v, want ErrNoDirectory", err)
	}
	if _, err := c.SendAlert(ctx(t), ugAlert("still here")); !errors.Is(err, client.ErrNoDirectory) {
		t.Fatalf("SendAlert without a directory: %v, want ErrNoDirectory", err)
	}
	c.Close()

	// The relay serves version 2, valid for a week from "later".
	r := w.Dir.Roster
	r.Serial, r.Previous = 2, keys.HashString(w.Dir.Hash)
	r.Issued, r.Expires = later().Add(-time.Minute), later().Add(7*24*time.Hour)
	signed, err := keys.SignDirectory(&r, w.Root)
	if err != nil {
		t.Fatal(err)
	}
	c, err = client.Open(client.Config{URLs: []string{w.relay.ClientURL()}, Keyring: kr, Root: fp, StateDir: state, Clock: laterClock, Directory: signed})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if d, err := c.Directory(); err != nil || d.Serial != 2 {
		t.Fatalf("Directory() = %v, %v; want serial 2", d, err)
	}
	// Version 1 is refused as a rollback even though it is no longer held.
	if err := os.WriteFile(state+"/directory.yaml", w.Dir.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = client.Open(client.Config{URLs: []string{deadURL(t)}, Keyring: kr, Root: fp, StateDir: state})
	if !errors.Is(err, keys.ErrRollback) {
		t.Fatalf("Open with version 1 cached after version 2 was seen: %v, want keys.ErrRollback", err)
	}
}
