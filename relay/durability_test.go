package relay_test

// Durability: an acknowledged alert is never lost — not to kill -9 of the
// relay process, not to a shutdown with publishes in flight, not to a full
// stream — and a data directory is used by one relay at a time.
//
// The crash tests run real relay processes: this test binary re-executes
// itself with BEACON_TEST_RELAY_CONFIG set, and TestMain then runs a relay
// from that config instead of the tests (see runChildRelay). Nothing waits
// on a timer: a child is ready when it prints its READY line, a publish is
// acknowledged when its reply arrives, and the stored state is read back
// through a mission's fetches or the server's Jsz.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// childEnv names the config file a re-executed test binary runs a relay
// from.
const childEnv = "BEACON_TEST_RELAY_CONFIG"

// TestMain runs a child relay when asked to, and otherwise the tests,
// failing the package if goroutines outlive them: every relay and
// connection a test starts must be stopped by its cleanup.
func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChildRelay(path))
	}
	goleak.VerifyTestMain(m)
}

// runChildRelay is the child side: it runs a relay from the config at path,
// prints "READY <client url>" once it serves (or "ERROR <reason>"), and
// runs until SIGTERM or until its stdin closes — so a child never outlives
// the test that started it — then shuts down and prints "STOPPED".
func runChildRelay(path string) int {
	fail := func(err error) int {
		fmt.Println("ERROR", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	cfg, err := relay.LoadConfig(path)
	if err != nil {
		return fail(err)
	}
	log := relay.NewLogger(relay.LogConfig{Level: "warn", Format: "text"}, os.Stderr)
	r, err := relay.New(cfg, relay.WithLogger(log))
	if err != nil {
		return fail(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = r.Start(ctx)
	cancel()
	if err != nil {
		return fail(err)
	}
	fmt.Println("READY", r.ClientURL())
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-sigs:
	case <-eof:
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.Shutdown(ctx)
	fmt.Println("STOPPED")
	return 0
}

// A child is a relay running in a process of its own.
type relayProcess struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	url     string
	stderr  bytes.Buffer // read only after wait
	drained chan struct{}
	waitErr error
	waited  bool
}

// startChild starts a relay process from the config file and waits for its
// READY line. A child that reports ERROR (or exits) instead is returned
// with the reason as the error; it has exited by then.
func startChild(t *testing.T, config string) (*relayProcess, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+config)
	c := &relayProcess{cmd: cmd, drained: make(chan struct{})}
	cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.kill()
		if t.Failed() && c.stderr.Len() > 0 {
			t.Logf("relay process %d stderr:\n%s", cmd.Process.Pid, c.stderr.Bytes())
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if url, ok := strings.CutPrefix(line, "READY "); ok {
			c.url = url
			go func() { io.Copy(io.Discard, stdout); close(c.drained) }()
			return c, nil
		}
		if reason, ok := strings.CutPrefix(line, "ERROR "); ok {
			io.Copy(io.Discard, stdout)
			close(c.drained)
			c.wait()
			return nil, errors.New(reason)
		}
	}
	close(c.drained)
	c.wait()
	return nil, fmt.Errorf("relay process exited before it was ready (%v): %s", c.waitErr, c.stderr.Bytes())
}

func (c *relayProcess) wait() error {
	if !c.waited {
		<-c.drained // Wait must not run before stdout is read to the end
		c.waitErr = c.cmd.Wait()
		c.waited = true
	}
	return c.waitErr
}

// kill9 kills the relay process with SIGKILL and reaps it.
func (c *relayProcess) kill9(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.wait()
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("relay process did not die of SIGKILL: %v", c.cmd.ProcessState)
	}
}

func (c *relayProcess) kill() {
	if !c.waited {
		c.cmd.Process.Kill()
		c.stdin.Close()
		c.wait()
	}
}

// writeChildConfig writes a relay config for a child: loopback, a random
// port, the data directory, the world's directory, generous rate limits.
func writeChildConfig(t *testing.T, dataDir string, w *relaytest.World, policy string) string {
	t.Helper()
	cfg := fmt.Sprintf(`server_name: durability
listen: 127.0.0.1:0
data_dir: %s
directory:
  file: %s
  root_fingerprint: %s
storage:
  sync: %s
  sync_interval: 10m
  max_bytes: 64MiB
limits:
  publish_rate: 100000
  publish_burst: 100000
admission:
  rate: 100000
  burst: 100000
  bytes_per_second: 1GiB
  bytes_burst: 1GiB
  per_address_connections: 0
log:
  level: warn
`, dataDir, w.DirFile, w.Root.Public().Fingerprint(), policy)
	path := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A sealedAlert is a sealed envelope and its message id.
type sealedAlert struct {
	id  string
	env []byte
}

// alertSealer returns a function sealing fresh urgent alerts from one
// defender to the first mission of w, for country cc.
func alertSealer(t testing.TB, w *relaytest.World, cc string, bodySize int) func() sealedAlert {
	t.Helper()
	def, err := keys.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	m := w.Dir.Missions[0]
	to := envelope.ToInbox(m.Identity, m.InboxKeys[0].Key)
	body := bytes.Repeat([]byte("!"), bodySize)
	return func() sealedAlert {
		h := envelope.NewHeader(cc, routing.Urgent)
		env, err := envelope.Seal(h, body, def, envelope.Deniable, to)
		if err != nil {
			panic(err) // a bug in the test or in Seal, not an outcome
		}
		return sealedAlert{id: h.ID.String(), env: env}
	}
}

// dialDefender connects a walk-in defender with a fresh NKey, like
// relaytest.Connect but usable off the test goroutine.
func dialDefender(url string, opts ...nats.Option) (*relaytest.Conn, error) {
	return relaytest.Dial(url, nil, opts...)
}

// publishUntilFailure publishes fresh alerts one after another, each
// waiting for its reply, and sends every acknowledged one on acked. It
// returns at the first publish that fails, with that alert: it may or may
// not have been stored.
func publishUntilFailure(c *relaytest.Conn, next func() sealedAlert, acked chan<- sealedAlert) (sealedAlert, error) {
	for {
		a := next()
		rep, err := c.Publish(proto.AlertTarget("ug", routing.Urgent), a.env)
		if err != nil {
			return a, err
		}
		if rep.Stream != proto.StreamAlerts || rep.Duplicate {
			return a, fmt.Errorf("fresh alert %s: reply %+v", a.id, rep)
		}
		acked <- a
	}
}

// readAlerts reads every alert for cc on the relay at url as mission
// missionID does — through the relay's fetch service — acknowledges them,
// and returns their ids in stream order. It checks that it read exactly
// what the relay counted as pending, and that nothing more follows.
func readAlerts(t testing.TB, url string, w *relaytest.World, missionID, cc string) []string {
	t.Helper()
	c := w.ConnectAs(t, url, missionID)
	defer c.Close()
	rep, err := c.Svc(proto.SvcPendingAlerts(cc), nil)
	if err != nil {
		t.Fatalf("mission %s: pending: %v", missionID, err)
	}
	got, err := c.FetchAll(proto.SvcFetchAlerts(cc), int(rep.Count))
	if err != nil {
		t.Fatalf("mission %s: fetched %d of %d alerts: %v", missionID, len(got), rep.Count, err)
	}
	if more, err := c.Fetch(proto.SvcFetchAlerts(cc), 1, 0); err != nil || len(more) != 0 {
		t.Fatalf("after the %d pending alerts: %d more, %v", rep.Count, len(more), err)
	}
	ids := make([]string, 0, len(got))
	for _, f := range got {
		info, err := envelope.Parse(f.Data)
		if err != nil {
			t.Fatalf("stored message %s is not an envelope: %v", f.Subject, err)
		}
		if want := proto.AlertSubject(info.Country, info.Priority); f.Subject != want {
			t.Errorf("alert %s stored under %s, want %s", info.ID, f.Subject, want)
		}
		ids = append(ids, info.ID.String())
	}
	return ids
}

// assertStoredOnce checks that every acknowledged id was read, that none
// was read twice, and that everything read was sent.
func assertStoredOnce(t *testing.T, read []string, acked []sealedAlert, sent map[string]bool) {
	t.Helper()
	count := map[string]int{}
	for _, id := range read {
		count[id]++
		if count[id] == 2 {
			t.Errorf("alert %s stored more than once", id)
		}
		if !sent[id] {
			t.Errorf("alert %s stored but never sent", id)
		}
	}
	lost := 0
	for _, a := range acked {
		if count[a.id] == 0 {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged alert %s lost", a.id)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged alerts lost", lost, len(acked))
	}
}

// TestKillNineLosesNoAcknowledgedAlert kills a real relay process with
// SIGKILL in the middle of a stream of publishes, twice (under sync:
// always, then sync: interval, which also claims to survive kill -9),
// restarts it on the same data directory each time, and checks that every
// alert whose publish was acknowledged is stored, exactly once — also
// after the sender retries what it was not sure of.
func TestKillNineLosesNoAcknowledgedAlert(t *testing.T) {
	const perRound = 200
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	dataDir := t.TempDir()
	next := alertSealer(t, w, "ug", 100)
	var acked []sealedAlert
	sent := map[string]bool{}
	var unsure []sealedAlert // published, then the relay died before replying

	for _, policy := range []string{"always", "interval"} {
		ch, err := startChild(t, writeChildConfig(t, dataDir, w, policy))
		if err != nil {
			t.Fatalf("sync %s: start: %v", policy, err)
		}
		c := relaytest.Connect(t, ch.url, nil, nats.NoReconnect())
		// The sender retries what it got no answer for; re-sending what
		// was acknowledged before the crash must find it stored.
		for _, a := range unsure {
			if rep, err := c.Publish(proto.AlertTarget("ug", routing.Urgent), a.env); err != nil {
				t.Fatalf("retrying %s after restart: %v", a.id, err)
			} else {
				t.Logf("retried unanswered alert after restart: duplicate=%v", rep.Duplicate)
			}
			acked = append(acked, a)
		}
		unsure = nil
		for _, a := range acked[max(0, len(acked)-3):] {
			rep, err := c.Publish(proto.AlertTarget("ug", routing.Urgent), a.env)
			if err != nil || !rep.Duplicate {
				t.Errorf("re-sending acknowledged alert %s after kill -9: %+v, %v; want a duplicate (it was stored)", a.id, rep, err)
			}
		}

		acks := make(chan sealedAlert, 1<<16)
		type result struct {
			last sealedAlert
			err  error
		}
		done := make(chan result, 1)
		go func() {
			last, err := publishUntilFailure(c, next, acks)
			done <- result{last, err}
		}()
		for n := 0; n < perRound; n++ {
			select {
			case a := <-acks:
				acked = append(acked, a)
			case r := <-done:
				t.Fatalf("sync %s: publishing failed after %d acks: %v", policy, n, r.err)
			}
		}
		ch.kill9(t) // while the publisher keeps going
		r := <-done
		c.Close()
		for len(acks) > 0 {
			acked = append(acked, <-acks)
		}
		unsure = append(unsure, r.last)
		t.Logf("sync %s: killed after %d acknowledged alerts; the publish in flight failed with: %v", policy, len(acked), r.err)
	}
	for _, a := range append(acked, unsure...) {
		sent[a.id] = true
	}

	ch, err := startChild(t, writeChildConfig(t, dataDir, w, "always"))
	if err != nil {
		t.Fatalf("restart after kill -9: %v", err)
	}
	read := readAlerts(t, ch.url, w, "nl-kampala", "ug")
	assertStoredOnce(t, read, acked, sent)
	if len(read) < len(acked) {
		t.Errorf("read %d alerts, %d were acknowledged", len(read), len(acked))
	}
}

// TestDataDirLock: a data directory serves one relay at a time. A second
// relay on it is refused with ErrDataDirLocked naming the directory (and
// the holder's pid); the lock goes away when its holder shuts down, fails
// to start, or is killed.
func TestDataDirLock(t *testing.T) {
	t.Run("in process", func(t *testing.T) {
		cfg := relaytest.Config(t)
		r1 := relaytest.Start(t, cfg)
		r2, err := relay.New(cfg)
		if !errors.Is(err, relay.ErrDataDirLocked) {
			if r2 != nil {
				r2.Shutdown(context.Background())
			}
			t.Fatalf("second relay on %s: %v; want ErrDataDirLocked", cfg.DataDir, err)
		}
		if !strings.Contains(err.Error(), cfg.DataDir) {
			t.Errorf("%q does not name the directory %s", err, cfg.DataDir)
		}
		if pid := fmt.Sprintf("(pid %d)", os.Getpid()); !strings.Contains(err.Error(), pid) {
			t.Errorf("%q does not name the holder %s", err, pid)
		}
		if err := r1.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		relaytest.Start(t, cfg)
	})

	t.Run("failed start releases it", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		cfg := relaytest.Config(t)
		cfg.Listen = ln.Addr().String() // taken: Start must fail
		r, err := relay.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err == nil {
			r.Shutdown(context.Background())
			t.Fatalf("Start on a taken port %s succeeded", cfg.Listen)
		}
		cfg.Listen = "127.0.0.1:0"
		relaytest.Start(t, cfg)
	})

	t.Run("another process", func(t *testing.T) {
		w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
		dataDir := t.TempDir()
		config := writeChildConfig(t, dataDir, w, "always")
		ch, err := startChild(t, config)
		if err != nil {
			t.Fatal(err)
		}
		// A second process on the same directory is refused.
		if _, err := startChild(t, config); err == nil || !strings.Contains(err.Error(), relay.ErrDataDirLocked.Error()) {
			t.Fatalf("second relay process: %v; want %q", err, relay.ErrDataDirLocked)
		} else if pid := "(pid " + strconv.Itoa(ch.cmd.Process.Pid) + ")"; !strings.Contains(err.Error(), dataDir) || !strings.Contains(err.Error(), pid) {
			t.Errorf("%q does not name %s and %s", err, dataDir, pid)
		}
		// And so is one in this process.
		cfg, err := relay.LoadConfig(config)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := relay.New(cfg); !errors.Is(err, relay.ErrDataDirLocked) {
			if r != nil {
				r.Shutdown(context.Background())
			}
			t.Fatalf("relay.New while a process holds %s: %v; want ErrDataDirLocked", dataDir, err)
		}
		// kill -9 leaves no stale lock.
		ch.kill9(t)
		r := relaytest.Start(t, cfg)
		// The lock file names the new holder.
		if b, err := os.ReadFile(filepath.Join(dataDir, "LOCK")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
			t.Errorf("LOCK holds %q, %v; want this pid %d", b, err, os.Getpid())
		}
		r.Shutdown(context.Background())
		// A clean shutdown releases it for another process.
		ch, err = startChild(t, config)
		if err != nil {
			t.Fatalf("relay process after the in-process relay stopped: %v", err)
		}
		ch.stdin.Close() // asks the child to shut down cleanly
		if err := ch.wait(); err != nil {
			t.Errorf("relay process did not stop cleanly: %v", err)
		}
	})
}

// streamDetails returns the relay's streams as its server reports them.
func streamDetails(t testing.TB, srv *server.Server) map[string]server.StreamDetail {
	t.Helper()
	info, err := srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Config: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]server.StreamDetail{}
	for _, ad := range info.AccountDetails {
		for _, sd := range ad.Streams {
			out[sd.Name] = sd
		}
	}
	return out
}

var allStreams = []string{proto.StreamAlerts, proto.StreamMailbox, proto.StreamShared,
	proto.StreamBroadcasts, proto.StreamAcks, proto.StreamHolds,
	proto.StreamBridged, proto.StreamReturn, proto.StreamReceipts, proto.StreamJunk}

// assertStreamConfigs checks each stream's limits against cfg.
func assertStreamConfigs(t *testing.T, streams map[string]server.StreamDetail, cfg *relay.Config) {
	t.Helper()
	s := cfg.Storage
	for _, name := range allStreams {
		sd, ok := streams[name]
		if !ok || sd.Config == nil {
			t.Errorf("stream %s missing", name)
			continue
		}
		c := sd.Config
		if name == proto.StreamHolds {
			assertHoldsConfig(t, c, cfg)
			continue
		}
		if c.MaxAge != s.Retention || c.Duplicates != s.DedupWindow || c.MaxBytes != int64(s.MaxBytes) ||
			c.MaxMsgSize != int32(s.MaxMessageSize)+relay.StoredHeaderBytes || c.Replicas != s.Replicas {
			t.Errorf("%s: MaxAge %v Duplicates %v MaxBytes %d MaxMsgSize %d Replicas %d; want %v %v %d %d %d", name,
				c.MaxAge, c.Duplicates, c.MaxBytes, c.MaxMsgSize, c.Replicas,
				s.Retention, s.DedupWindow, int64(s.MaxBytes), int32(s.MaxMessageSize), s.Replicas)
		}
		if c.Discard != server.DiscardNew || c.Retention != server.LimitsPolicy || c.Storage != server.FileStorage {
			t.Errorf("%s: discard %v, retention %v, storage %v; want DiscardNew, limits, file", name, c.Discard, c.Retention, c.Storage)
		}
		// The mailbox alone lets the relay delete: a settled reply goes.
		// The relay deletes settled mailbox messages and ALERTS junk;
		// operators purge what clients publish to.
		deletable := name == proto.StreamMailbox || name == proto.StreamAlerts
		purgeable := slices.Contains(proto.PurgeStreams, name)
		if c.DenyDelete == deletable || c.DenyPurge == purgeable {
			t.Errorf("%s: DenyDelete %v DenyPurge %v; want %v %v", name, c.DenyDelete, c.DenyPurge, !deletable, !purgeable)
		}
	}
}

// assertHoldsConfig checks HOLDS: message schedules need roll-ups (so the
// purge permission) and discard old, so the stream has no size limit of
// its own and the relay enforces max_bytes on new holds itself.
func assertHoldsConfig(t *testing.T, c *server.StreamConfig, cfg *relay.Config) {
	t.Helper()
	s := cfg.Storage
	if !c.AllowMsgSchedules || !c.AllowRollup || c.DenyPurge || c.DenyDelete || !c.AllowDirect || c.MaxBytes != -1 ||
		c.Discard != server.DiscardOld || c.MaxAge != s.Retention || c.Replicas != s.Replicas || c.Storage != server.FileStorage {
		t.Errorf("HOLDS: %+v", c)
	}
}

// TestRestartIsIdempotent: starting again with the same config keeps every
// stream, its messages and its configuration; starting with new limits
// updates the streams in place and keeps the messages.
func TestRestartIsIdempotent(t *testing.T) {
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	r := relaytest.Start(t, cfg)
	c := relaytest.Connect(t, r.ClientURL(), nil)
	next := alertSealer(t, w, "ug", 100)
	var acked []sealedAlert
	for range 20 {
		a := next()
		if _, err := c.Publish(proto.AlertTarget("ug", routing.Urgent), a.env); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, a)
	}
	before := streamDetails(t, r.Server())
	assertStreamConfigs(t, before, cfg)
	r.Shutdown(context.Background())

	r = relaytest.Start(t, cfg)
	after := streamDetails(t, r.Server())
	assertStreamConfigs(t, after, cfg)
	for _, name := range allStreams {
		b, a := before[name], after[name]
		if !a.Created.Equal(b.Created) {
			t.Errorf("%s was recreated on restart (created %v, then %v)", name, b.Created, a.Created)
		}
		if a.State.Msgs != b.State.Msgs || a.State.FirstSeq != b.State.FirstSeq || a.State.LastSeq != b.State.LastSeq {
			t.Errorf("%s: state %+v before restart, %+v after", name, b.State, a.State)
		}
	}
	if got := after[proto.StreamAlerts].State.Msgs; got != uint64(len(acked)) {
		t.Errorf("ALERTS holds %d messages, want %d", got, len(acked))
	}
	r.Shutdown(context.Background())

	cfg.Storage.Retention = 48 * time.Hour
	cfg.Storage.DedupWindow = time.Hour
	r = relaytest.Start(t, cfg)
	updated := streamDetails(t, r.Server())
	assertStreamConfigs(t, updated, cfg)
	if got := updated[proto.StreamAlerts].State.Msgs; got != uint64(len(acked)) {
		t.Errorf("after a config change ALERTS holds %d messages, want %d", got, len(acked))
	}
	sent := map[string]bool{}
	for _, a := range acked {
		sent[a.id] = true
	}
	assertStoredOnce(t, readAlerts(t, r.ClientURL(), w, "nl-kampala", "ug"), acked, sent)
}

// TestShutdownWithPublishesInFlight: several senders publish while the
// relay shuts down; every publish that got a success reply is stored, once,
// when the relay comes back.
func TestShutdownWithPublishesInFlight(t *testing.T) {
	const senders, before = 4, 100
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	r := relaytest.Start(t, cfg)

	acks := make(chan sealedAlert, 1<<16)
	var mu sync.Mutex
	sent := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for range senders {
		c := relaytest.Connect(t, r.ClientURL(), nil, nats.NoReconnect())
		seal := alertSealer(t, w, "ug", 100)
		next := func() sealedAlert {
			a := seal()
			mu.Lock()
			sent[a.id] = true
			mu.Unlock()
			return a
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := publishUntilFailure(c, next, acks)
			errs <- err
		}()
	}
	var acked []sealedAlert
	for len(acked) < before {
		select {
		case a := <-acks:
			acked = append(acked, a)
		case err := <-errs:
			t.Fatalf("a sender failed before shutdown, after %d acks: %v", len(acked), err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Shutdown ran into its deadline: in-flight publishes were not drained")
	}
	wg.Wait()
	for len(acks) > 0 {
		acked = append(acked, <-acks)
	}
	for range senders {
		if err := <-errs; err == nil {
			t.Error("a sender stopped without an error")
		}
	}
	t.Logf("%d alerts acknowledged before and during shutdown", len(acked))

	r = relaytest.Start(t, cfg)
	assertStoredOnce(t, readAlerts(t, r.ClientURL(), w, "nl-kampala", "ug"), acked, sent)
}

// TestFullStreamRefusesAndKeepsStored: a stream at its size limit refuses
// new alerts with CodeUnavailable and says why; it drops nothing it stored
// (DiscardNew), and the relay goes on serving the other streams.
func TestFullStreamRefusesAndKeepsStored(t *testing.T) {
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	cfg := relaytest.Config(t)
	cfg.Storage.MaxBytes = 1 << 20 // the smallest allowed
	cfg.Storage.WalkInShare = 1    // JetStream's own limit refuses, not the walk-ins' share
	w.Configure(cfg)
	r := relaytest.Start(t, cfg)
	c := relaytest.Connect(t, r.ClientURL(), nil)
	next := alertSealer(t, w, "ug", 40000) // 64 KiB envelopes: 1 MiB holds about 15

	var acked []sealedAlert
	sent := map[string]bool{}
	var refusal *proto.Error
	for i := 0; refusal == nil; i++ {
		if i > 100 {
			t.Fatalf("a 1MiB stream took %d alerts of 64KiB without refusing one", len(acked))
		}
		a := next()
		sent[a.id] = true
		rep, err := c.Publish(proto.AlertTarget("ug", routing.Urgent), a.env)
		switch {
		case errors.As(err, &refusal):
		case err != nil:
			t.Fatalf("publish %d: %v", i, err)
		default:
			if rep.Seq != uint64(len(acked)+1) {
				t.Errorf("alert %d stored at seq %d", len(acked)+1, rep.Seq)
			}
			acked = append(acked, a)
		}
	}
	if refusal.Code != proto.CodeFull || !strings.Contains(refusal.Description, "maximum bytes") {
		t.Errorf("full stream: %v; want %s naming the cause (maximum bytes)", refusal, proto.CodeFull)
	}
	t.Logf("stored %d alerts, then: %v", len(acked), refusal)

	// Nothing stored was dropped to make room.
	st := streamDetails(t, r.Server())[proto.StreamAlerts].State
	if st.Msgs != uint64(len(acked)) || st.FirstSeq != 1 || st.LastSeq != uint64(len(acked)) {
		t.Errorf("ALERTS state %+v; want messages 1–%d", st, len(acked))
	}
	// Still full: another alert is refused the same way.
	a := next()
	sent[a.id] = true
	if _, err := c.Publish(proto.AlertTarget("ug", routing.Urgent), a.env); !errors.As(err, &refusal) || refusal.Code != proto.CodeFull {
		t.Errorf("second alert to the full stream: %v; want %s", err, proto.CodeFull)
	}

	// The other streams still take messages: a defender's shared alert and
	// a mission's signed ack.
	share := next()
	if rep, err := c.Publish(proto.ShareTarget("ug", routing.Urgent), share.env); err != nil || rep.Stream != proto.StreamShared {
		t.Errorf("share while ALERTS is full: %+v, %v", rep, err)
	}
	kr := w.Keyrings["nl-kampala"]
	mc := relaytest.Connect(t, r.ClientURL(), kr.NKey)
	id, _ := routing.ParseID(acked[0].id)
	if rep, err := mc.Publish(proto.AckTarget(id), envelope.SignAck(id, kr.Identity, time.Now())); err != nil || rep.Stream != proto.StreamAcks {
		t.Errorf("ack while ALERTS is full: %+v, %v", rep, err)
	}

	assertStoredOnce(t, readAlerts(t, r.ClientURL(), w, "nl-kampala", "ug"), acked, sent)
}
