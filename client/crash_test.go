package client_test

// The two-phase receive, tested with real processes: this test binary
// re-executes itself with BEACON_TEST_CLIENT_CHILD set, and TestMain then
// runs a client (see runChild) instead of the tests. A child that is to
// crash prints RECEIVED when its handler has the message and then waits
// to be killed with SIGKILL; nothing waits on a timer.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/routing"
)

const childEnv = "BEACON_TEST_CLIENT_CHILD"

// childConfig is what a child client is told, through the environment.
type childConfig struct {
	mode     string // "hang" or "keep"
	role     string // "defender" or "mission"
	url      string
	keyFile  string
	dirFile  string
	rootFP   string
	state    string
	store    string // the mission's own store: a file of kept ids
	waitSecs string
}

func (c childConfig) env() []string {
	return append(os.Environ(), childEnv+"="+c.mode, "CHILD_ROLE="+c.role, "CHILD_URL="+c.url, "CHILD_KEY="+c.keyFile,
		"CHILD_DIR="+c.dirFile, "CHILD_ROOT="+c.rootFP, "CHILD_STATE="+c.state, "CHILD_STORE="+c.store, "CHILD_WAIT="+c.waitSecs)
}

// childPassphrase protects the child's key file; it is a test key.
const childPassphrase = "child passphrase"

// runChild runs the child side if this process is a child, and reports
// whether it was.
func runChild() bool {
	mode := os.Getenv(childEnv)
	if mode == "" {
		return false
	}
	if err := child(mode); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func child(mode string) error {
	kr, err := keys.LoadKeyFile(os.Getenv("CHILD_KEY"), []byte(childPassphrase))
	if err != nil {
		return err
	}
	fp, err := keys.ParseFingerprint(os.Getenv("CHILD_ROOT"))
	if err != nil {
		return err
	}
	dir, err := os.ReadFile(os.Getenv("CHILD_DIR"))
	if err != nil {
		return err
	}
	c, err := client.Open(client.Config{URLs: []string{os.Getenv("CHILD_URL")}, Keyring: kr, Root: fp,
		StateDir: os.Getenv("CHILD_STATE"), Directory: dir, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wait := 0 * time.Second
	if os.Getenv("CHILD_WAIT") != "" {
		d, err := time.ParseDuration(os.Getenv("CHILD_WAIT") + "s")
		if err != nil {
			return err
		}
		wait = d
	}
	store := os.Getenv("CHILD_STORE")
	handler := func(_ context.Context, r *client.Received) error {
		if mode == "hang" {
			fmt.Println("RECEIVED", r.ID)
			select {} // killed here, before anything is kept
		}
		if os.Getenv("CHILD_ROLE") == "defender" {
			return nil // the client's own cases keep it (Inbox)
		}
		return keepID(store, r.ID)
	}
	var b client.Batch
	switch {
	case mode == "hang" && os.Getenv("CHILD_ROLE") == "defender":
		_, err = c.ReceiveMailbox(ctx, client.FetchOptions{Wait: wait}, handler)
		return err
	case os.Getenv("CHILD_ROLE") == "defender":
		rs, err := c.ReadMailbox(ctx, client.FetchOptions{Wait: wait})
		if err != nil {
			return err
		}
		for _, r := range rs {
			handler(ctx, r)
			fmt.Println("KEPT", r.ID)
		}
		b.Handled = len(rs)
	default:
		b, err = c.ReceiveAlerts(ctx, client.FetchOptions{Wait: wait}, func(ctx context.Context, r *client.Received) error {
			if err := handler(ctx, r); err != nil {
				return err
			}
			fmt.Println("KEPT", r.ID)
			return nil
		})
		if err != nil {
			return err
		}
	}
	fmt.Printf("DONE %d\n", b.Handled)
	return nil
}

// keepID appends id to the mission's store file, durably, once.
func keepID(path string, id routing.ID) error {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if bytes.Contains(b, []byte(id.String())) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(id.String() + "\n"); err != nil {
		return err
	}
	return f.Sync()
}

// startChild starts a child client and returns its stdout lines.
func startChild(t *testing.T, cfg childConfig) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = cfg.env()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}

// nextLine returns the child's next line of output.
func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the child ended without a word")
		}
		if strings.HasPrefix(l, "ERROR") {
			t.Fatalf("child: %s", l)
		}
		return l
	case <-ctx(t).Done():
		t.Fatal("the child said nothing")
	}
	return ""
}

// crashThenKeep kills a child whose handler has the message id, then runs
// a child that keeps what it receives, and returns the ids it kept; then a
// third child, which must keep nothing.
func crashThenKeep(t *testing.T, cfg childConfig, id routing.ID) {
	t.Helper()
	cfg.mode = "hang"
	cmd, lines := startChild(t, cfg)
	if got := nextLine(t, lines); got != "RECEIVED "+id.String() {
		t.Fatalf("crashing child: %q, want RECEIVED %s", got, id)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	cfg.mode = "keep"
	cmd, lines = startChild(t, cfg)
	if got := nextLine(t, lines); got != "KEPT "+id.String() {
		t.Fatalf("after the crash: %q, want KEPT %s: the message was lost", got, id)
	}
	if got := nextLine(t, lines); got != "DONE 1" {
		t.Fatalf("after the crash: %q, want DONE 1 (kept once)", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	cfg.waitSecs = "0"
	cmd, lines = startChild(t, cfg)
	if got := nextLine(t, lines); got != "DONE 0" {
		t.Fatalf("a third run: %q, want DONE 0 (nothing twice)", got)
	}
	cmd.Wait()
}

// writeChildKey writes kr to a key file the children open.
func writeChildKey(t *testing.T, kr *keys.Keyring) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if err := keys.WriteKeyFile(path, kr, []byte(childPassphrase), false); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKilledDefenderGetsItsReplyOnce: a defender killed with SIGKILL after
// its handler had a reply and before it kept it gets the reply again on
// restart, exactly once, and it is in its cases once.
func TestKilledDefenderGetsItsReplyOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	kr := newDefender(t)
	state := t.TempDir()
	def := w.openParty(t, kr, state)
	def.waitConnected(t)
	sent, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport"))
	if err != nil {
		t.Fatal(err)
	}
	def.Close()
	nl := w.open(t, w.Keyrings["nl-kampala"])
	rs := readAlerts(t, nl, 1)
	rep, err := nl.Reply(ctx(t), rs[0], "A diplomat is on the way.")
	if err != nil || rep.Queued {
		t.Fatalf("reply: %+v, %v", rep, err)
	}

	dirFile := filepath.Join(t.TempDir(), "directory.yaml")
	os.WriteFile(dirFile, w.Dir.Raw, 0o600)
	crashThenKeep(t, childConfig{role: "defender", url: w.relay.ClientURL(), keyFile: writeChildKey(t, kr), dirFile: dirFile,
		rootFP: w.Root.Public().Fingerprint().String(), state: state, waitSecs: "10"}, rep.ID)

	again := reopen(t, def.cfg)
	cs, err := again.Cases()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range cs {
		for _, e := range k.Thread {
			if e.ID == rep.ID {
				n++
				if k.ID != sent.ID {
					t.Errorf("the reply is in case %s, want %s", k.ID, sent.ID)
				}
			}
		}
	}
	if n != 1 {
		t.Fatalf("the reply is in the cases %d times, want once", n)
	}
}

// TestKilledMissionGetsItsAlertOnce: the same for a mission whose handler
// keeps alerts in a store of its own: after the crash the relay offers the
// alert again (after its redelivery wait) and the store holds it once.
func TestKilledMissionGetsItsAlertOnce(t *testing.T) {
	t.Parallel()
	w := newWorldWith(t, func(c *relay.Config) { c.Storage.RedeliverAfter = time.Second })
	def := w.open(t, newDefender(t))
	sent, err := def.SendAlert(ctx(t), ugAlert("Our office is being raided"))
	if err != nil || sent.Queued {
		t.Fatalf("send: %+v, %v", sent, err)
	}
	dirFile := filepath.Join(t.TempDir(), "directory.yaml")
	os.WriteFile(dirFile, w.Dir.Raw, 0o600)
	store := filepath.Join(t.TempDir(), "kept")
	crashThenKeep(t, childConfig{role: "mission", url: w.relay.ClientURL(), keyFile: writeChildKey(t, w.Keyrings["nl-kampala"]),
		dirFile: dirFile, rootFP: w.Root.Public().Fingerprint().String(), state: t.TempDir(), store: store, waitSecs: "10"}, sent.ID)
	b, err := os.ReadFile(store)
	if err != nil || string(b) != sent.ID.String()+"\n" {
		t.Fatalf("the mission's store holds %q (%v), want the alert once", b, err)
	}
}

// TestFailingHandlerLeavesItPending: a handler that cannot keep a message
// leaves it pending at the relay and unseen; it is received again (a
// mission's alert after the redelivery wait, a defender's reply after a
// rewind) and kept then.
func TestFailingHandlerLeavesItPending(t *testing.T) {
	t.Parallel()
	w := newWorldWith(t, func(c *relay.Config) { c.Storage.RedeliverAfter = time.Second })
	def := w.open(t, newDefender(t))
	nl := w.open(t, w.Keyrings["nl-kampala"])
	sent, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport"))
	if err != nil {
		t.Fatal(err)
	}
	diskFull := errors.New("no space left on device")
	b, err := nl.ReceiveAlerts(ctx(t), client.FetchOptions{Wait: 5 * time.Second}, func(context.Context, *client.Received) error { return diskFull })
	if err != nil || b.Failed != 1 || b.Handled != 0 || !errors.Is(b.Err, diskFull) {
		t.Fatalf("failing handler: %+v, %v", b, err)
	}
	if n := pending(t, nl, "ug"); n != 1 {
		t.Fatalf("pending after a failed handler: %d, want 1", n)
	}
	got, err := receiveAlerts(nl, ctx(t), client.FetchOptions{Wait: 10 * time.Second})
	if err != nil || len(got) != 1 || got[0].ID != sent.ID {
		t.Fatalf("offered again: %d (%v), want the alert", len(got), err)
	}

	rep, err := nl.Reply(ctx(t), got[0], "We have it.")
	if err != nil {
		t.Fatal(err)
	}
	b, err = def.ReceiveMailbox(ctx(t), client.FetchOptions{Wait: 5 * time.Second}, func(context.Context, *client.Received) error { return diskFull })
	if err != nil || b.Failed != 1 {
		t.Fatalf("failing handler (mailbox): %+v, %v", b, err)
	}
	// Not offered again at once (the reader's cursor is past it), but not
	// settled either: after a rewind it comes back.
	if rs, err := def.ReadMailbox(ctx(t), client.FetchOptions{}); err != nil || len(rs) != 0 {
		t.Fatalf("right after the failure: %d (%v)", len(rs), err)
	}
	def.RewindMailbox()
	if rs, err := def.ReadMailbox(ctx(t), client.FetchOptions{}); err != nil || len(rs) != 1 || rs[0].ID != rep.ID {
		t.Fatalf("after a rewind: %d (%v), want the reply", len(rs), err)
	}
}
