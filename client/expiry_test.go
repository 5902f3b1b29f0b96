package client_test

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
)

// An expired cached directory must not stop a defender's client from
// opening (it would block an emergency alert) nor be used to seal: an
// alert waits, unsealed, until a current directory arrives and then
// leaves sealed to it. The relay's newer version replaces it, and an
// older version than the expired one is still refused.
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
	_, err = c.Directory()
	var exp *client.DirectoryExpiredError
	if !errors.Is(err, client.ErrNoDirectory) || !errors.Is(err, keys.ErrExpired) || !errors.As(err, &exp) ||
		exp.Serial != 1 || !exp.Expired.Equal(w.Dir.Expires) {
		t.Fatalf("Directory() = %v, want serial 1 expired at %s, matching ErrNoDirectory and keys.ErrExpired", err, w.Dir.Expires)
	}
	sent, err := c.SendAlert(ctx(t), ugAlert("still here"))
	if err != nil || !sent.Queued || !sent.AwaitingDirectory || len(sent.Missions) != 0 {
		t.Fatalf("SendAlert without a current directory = %+v, %v; want queued, awaiting a directory", sent, err)
	}
	if q, err := c.Outbox(); err != nil || len(q) != 1 || q[0].ID != sent.ID || !q[0].AwaitingDirectory {
		t.Fatalf("outbox = %+v (err %v), want the alert awaiting a directory", q, err)
	}
	// It is not sealed to the expired directory's missions, even with a
	// relay to send it to.
	if n, err := c.Flush(ctx(t)); n != 0 || !errors.Is(err, client.ErrNoDirectory) {
		t.Fatalf("Flush without a current directory = %d, %v; want 0, ErrNoDirectory", n, err)
	}
	c.Close()

	// Version 2 arrives, valid for a week from "later". The device runs
	// on the real clock again: the relay refuses envelopes dated a day
	// ahead of its own.
	r := w.Dir.Roster
	r.Serial, r.Previous = 2, keys.HashString(w.Dir.Hash)
	r.Issued, r.Expires = time.Now().Add(-time.Minute), later().Add(7*24*time.Hour)
	signed, err := keys.SignDirectory(&r, w.Root)
	if err != nil {
		t.Fatal(err)
	}
	c, err = client.Open(client.Config{URLs: []string{w.relay.ClientURL()}, Keyring: kr, Root: fp, StateDir: state, Directory: signed})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if d, err := c.Directory(); err != nil || d.Serial != 2 {
		t.Fatalf("Directory() = %v, %v; want serial 2", d, err)
	}
	// With a current directory the alert is sealed to its missions and
	// leaves; the case says to whom.
	if err := c.WaitConnected(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Flush(ctx(t)); err != nil || c.Delivered() != 1 {
		t.Fatalf("Flush with serial 2 = %d, %v; delivered %d, want the alert", n, err, c.Delivered())
	}
	nl := w.open(t, w.Keyrings["nl-kampala"])
	if got := readAlerts(t, nl, 1); got[0].ID != sent.ID {
		t.Fatalf("nl-kampala read %s, want the queued alert %s", got[0].ID, sent.ID)
	}
	if cs, err := c.Cases(); err != nil || len(cs) != 1 || cs[0].Thread[0].Queued ||
		!slices.Equal(cs[0].Missions, []string{"nl-kampala", "se-kampala"}) {
		t.Fatalf("cases = %+v (err %v), want the alert sent to both Ugandan missions", cs, err)
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
