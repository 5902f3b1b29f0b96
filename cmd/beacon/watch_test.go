package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/relay"
)

// lines is a writer a test can wait on: await returns once what was
// written matches.
type lines struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func newLines() *lines { return &lines{wake: make(chan struct{})} }

func (l *lines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.wake)
	l.wake = make(chan struct{})
	return l.buf.Write(b)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// await waits until a line matches re and returns its first group, or
// the whole match.
func (l *lines) await(t *testing.T, ctx context.Context, re string) string {
	t.Helper()
	rx := regexp.MustCompile("(?m)" + re)
	for {
		l.mu.Lock()
		m, wake := rx.FindStringSubmatch(l.buf.String()), l.wake
		l.mu.Unlock()
		if m != nil {
			return m[len(m)-1]
		}
		select {
		case <-wake:
		case <-ctx.Done():
			t.Fatalf("waiting for %q in:\n%s", re, l.String())
		}
	}
}

// restartable runs a real relay that can stop and come back on the same
// address with the same data, as a relay restarted by its operator does.
type restartable struct {
	w      *relaytest.World
	data   string
	listen string
	r      *relay.Relay
}

func (rr *restartable) start(t *testing.T) string {
	t.Helper()
	cfg := relay.DefaultConfig(rr.data)
	cfg.ServerName = "watch-test"
	cfg.Listen = rr.listen
	cfg.Storage.MaxBytes = 64 << 20
	rr.w.Configure(cfg)
	r, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rr.r = r
	u, err := url.Parse(r.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	rr.listen = u.Host
	return r.ClientURL()
}

func (rr *restartable) stop(t *testing.T) {
	t.Helper()
	if rr.r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rr.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rr.r = nil
}

// beacon runs a beacon command in this process, as the binary would.
func beacon(t *testing.T, vars map[string]string, ctx context.Context, stdout, stderr *lines, args ...string) int {
	t.Helper()
	return run(args, &env{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr,
		getenv: func(k string) string { return vars[k] }, ctx: ctx})
}

// TestWatchSendsWhenTheRelayComesBack: an alert queued while the relay
// is down leaves by itself once it is back, with beacon watch running,
// and the mission's ack and reply show in the watch as they arrive. The
// test waits on events (the mission receiving the alert, the watch's
// lines), not on time: leaving within a second is the design — the watch
// retries the connection at least every second while something is queued,
// and flushes on connecting.
func TestWatchSendsWhenTheRelayComesBack(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "se-kampala", Countries: []string{"ug"}})
	rr := &restartable{w: w, data: t.TempDir(), listen: "127.0.0.1:0"}
	t.Cleanup(func() { rr.stop(t) })
	relayURL := rr.start(t)
	vars := map[string]string{"BEACON_HOME": t.TempDir() + "/beacon", "BEACON_PASSPHRASE": "correct-horse-battery"}

	out, errs := newLines(), newLines()
	if code := beacon(t, vars, ctx, out, errs, "init", "--relay", relayURL, "--root-fp", w.Root.Public().Fingerprint().String()); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errs)
	}
	rr.stop(t)
	out, errs = newLines(), newLines()
	if code := beacon(t, vars, ctx, out, errs, "alert", "--country", "ug", "--priority", "urgent", "--category", "detention",
		"--timeout", "200ms", "Arrested at the checkpoint"); code != 0 {
		t.Fatalf("alert: exit %d\n%s%s", code, out, errs)
	}
	id := out.await(t, ctx, `^queued: alert ([0-9a-f]{32}) for 2 mission`)

	watchCtx, stopWatch := context.WithCancel(ctx)
	wout, werr := newLines(), newLines()
	exited := make(chan int, 1)
	go func() { exited <- beacon(t, vars, watchCtx, wout, werr, "watch") }()
	defer func() {
		stopWatch()
		<-exited
	}()
	wout.await(t, ctx, `^1 message\(s\) waiting in the outbox$`)
	wout.await(t, ctx, `^the relay is not reachable now; queued messages leave as soon as it is$`)

	back := time.Now()
	rr.start(t)
	nl, err := client.Open(client.Config{URLs: []string{relayURL}, Keyring: w.Keyrings["nl-kampala"],
		Root: w.Root.Public().Fingerprint(), StateDir: t.TempDir(), Directory: w.Dir.Raw})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	var got *client.Received
	for got == nil {
		if _, err := nl.ReceiveAlerts(ctx, client.FetchOptions{Wait: 10 * time.Second}, func(_ context.Context, r *client.Received) error {
			got = r
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("the mission had the alert %v after the relay came back", time.Since(back).Round(time.Millisecond))
	if got.ID.String() != id {
		t.Fatalf("the mission received %s, want the queued alert %s", got.ID, id)
	}
	wout.await(t, ctx, `  sent: alert `+id+` from the outbox; the relay has stored it, nobody has read it yet$`)

	if _, err := nl.Acknowledge(ctx, got, "Mission nl-kampala", "a diplomat is on the way"); err != nil {
		t.Fatal(err)
	}
	if _, err := nl.Reply(ctx, got, "Stay where you are if it is safe."); err != nil {
		t.Fatal(err)
	}
	wout.await(t, ctx, fmt.Sprintf(`  case %s  nl-kampala +acknowledged by Mission nl-kampala; next: a diplomat is on the way \(a person at nl-kampala has read it\)$`, id))
	wout.await(t, ctx, fmt.Sprintf(`  case %s  nl-kampala +Stay where you are if it is safe\.$`, id))

	stopWatch()
	if code := <-exited; code != 0 {
		t.Fatalf("watch: exit %d\n%s%s", code, wout, werr)
	}
	exited <- 0 // for the deferred wait
	t.Logf("watch:\n%s", wout)
	if s := werr.String(); s != "" {
		t.Fatalf("watch wrote to stderr:\n%s", s)
	}
	// Each message shown once.
	for _, s := range []string{"acknowledged by", "Stay where you are", "sent: alert"} {
		if n := strings.Count(wout.String(), s); n != 1 {
			t.Fatalf("%q shown %d times:\n%s", s, n, wout)
		}
	}
}
