package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// TestMain fails the package if goroutines outlive the tests: every client
// and relay a test starts must be stopped by its cleanup.
func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

// usedPorts are the fixed ports handed out in this process, so parallel
// tests never get the same one.
var usedPorts sync.Map

// fixedPort returns a free loopback port for a relay that must come back
// on the same address. It is taken below the kernel's ephemeral range, so
// neither a listener on port 0 nor an outgoing connection can take it
// while the relay is down.
func fixedPort(t *testing.T) int {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	if lo <= 11000 {
		lo = 65000 // an unusual configuration: fall back to the top of the range
	}
	for range 1000 {
		p := 10000 + rand.IntN(lo-10000)
		if _, taken := usedPorts.LoadOrStore(p, true); taken {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		return p
	}
	t.Fatal("no free port")
	return 0
}

// newRestartableWorld is newWorld whose relay can be stopped and started
// again on the same data directory, with clients reaching it at the same
// addresses: each listener is behind a gate, a plain TCP forwarder on a
// fixed port that the test opens only once a relay is fully started and
// closes before stopping it.
//
// The gates make reconnection deterministic. A relay accepts connections
// as soon as its NATS server is up, before its ingest and services
// subscribe; a client that reconnects in that window gets "no responders",
// keeps its alert queued and retries only at the next 30 s tick (see the
// report: the relay should refuse clients until it is ready).
//
// Its parties are also given the relay's roster under the next serial, so
// that every run of a client's background loop (on each connect) ends its
// directory refresh with a logged rollback refusal: waitReady waits for
// that, and the relay is only stopped when no client has a request in
// flight. Otherwise a request in flight when the relay stops is never
// answered, nats.go does not fail it on disconnect, and the loop (and
// Close) block until its 30 s timeout
// (TestCloseDoesNotWaitForAnUnansweredRequest).
func newRestartableWorld(t *testing.T) *world {
	t.Helper()
	w := relaytest.NewWorld(t,
		relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "se-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "de-nairobi", Countries: []string{"ke"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	rw := &world{World: w, cfg: cfg, ahead: signNext(t, w), gate: newGate(t), wsGate: newGate(t)}
	rw.restart(t)
	return rw
}

// stop shuts the relay down (closing its gates first, if it has them).
func (w *world) stop(t *testing.T) {
	t.Helper()
	if w.gate != nil {
		w.gate.close()
		w.wsGate.close()
	}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.relay.Shutdown(c); err != nil {
		t.Fatal(err)
	}
}

// restart starts a new relay with the same config, data directory and
// directory file, and opens its gates once it serves.
func (w *world) restart(t *testing.T) {
	t.Helper()
	w.relay = relaytest.Start(t, w.cfg)
	if w.gate != nil {
		w.gate.open(t, strings.TrimPrefix(w.relay.ClientURL(), "nats://"))
		w.wsGate.open(t, strings.TrimPrefix(w.relay.WebSocketURL(), "ws://"))
	}
}

// url is the relay's client URL, through its gate if it has one.
func (w *world) url() string {
	if w.gate != nil {
		return "nats://" + w.gate.addr
	}
	return w.relay.ClientURL()
}

// wsURL is the relay's WebSocket URL, through its gate if it has one.
func (w *world) wsURL() string {
	if w.wsGate != nil {
		return "ws://" + w.wsGate.addr
	}
	return w.relay.WebSocketURL()
}

// A gate forwards TCP connections from a fixed loopback address to a
// target while it is open; closing it closes the listener and every
// forwarded connection, as a relay going down would.
type gate struct {
	addr string

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
	closed bool
}

func newGate(t *testing.T) *gate {
	g := &gate{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(fixedPort(t))), conns: map[net.Conn]bool{}}
	t.Cleanup(g.close)
	return g
}

func (g *gate) open(t *testing.T, target string) {
	t.Helper()
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		t.Fatalf("gate: %v", err)
	}
	g.mu.Lock()
	g.ln, g.closed = ln, false
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			if !g.track(c, up) {
				return
			}
			g.wg.Add(2)
			go g.pipe(c, up)
			go g.pipe(up, c)
		}
	}()
}

// track registers a forwarded pair, or closes it if the gate is closed.
func (g *gate) track(cs ...net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		g.conns[c] = true
	}
	return true
}

func (g *gate) pipe(dst, src net.Conn) {
	defer g.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		c.Close()
	}
	clear(g.conns)
	g.mu.Unlock()
	g.wg.Wait()
}

// A party is a client with the state it was opened with, so a test can
// close it and open it again as after a process restart.
type party struct {
	*client.Client
	cfg    client.Config
	events *logWatch
}

// openParty opens a client for kr on the world's relay (nats:// unless
// urls are given), with a fresh state directory unless stateDir is set,
// and the world's directory given out of band. It does not wait for the
// connection.
func (w *world) openParty(t *testing.T, kr *keys.Keyring, stateDir string, urls ...string) *party {
	t.Helper()
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	if len(urls) == 0 {
		urls = []string{w.url()}
	}
	cfg := client.Config{URLs: urls, Keyring: kr, Root: w.Root.Public().Fingerprint(), StateDir: stateDir,
		Directory: w.Dir.Raw}
	if w.ahead != nil {
		cfg.Directory = w.ahead
	}
	return reopen(t, cfg)
}

// reopen opens a client with cfg and closes it when the test ends.
func reopen(t *testing.T, cfg client.Config) *party {
	t.Helper()
	ev := newLogWatch()
	cfg.Logger = slog.New(ev)
	c, err := client.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &party{Client: c, cfg: cfg, events: ev}
}

func (p *party) waitConnected(t *testing.T) {
	t.Helper()
	if err := p.WaitConnected(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits until the client is connected and its background loop
// has finished the run that connecting started (parties of a restartable
// world only: see newRestartableWorld).
func (p *party) waitReady(t *testing.T) {
	t.Helper()
	p.waitConnected(t)
	if err := p.events.await(ctx(t), "directory refresh"); err != nil {
		t.Fatal(err)
	}
}

// waitDisconnected waits until the client has noticed that the relay is
// gone (its "disconnected" connection event).
func (p *party) waitDisconnected(t *testing.T) {
	t.Helper()
	if err := p.events.await(ctx(t), "disconnected"); err != nil {
		t.Fatal(err)
	}
}

// logWatch is a slog handler that records the messages a client logs, so a
// test can wait for a connection event instead of sleeping.
type logWatch struct {
	mu    sync.Mutex
	count map[string]int // messages logged
	taken map[string]int // occurrences consumed by await
	wake  chan struct{}  // closed and replaced on every message
}

func newLogWatch() *logWatch {
	return &logWatch{count: map[string]int{}, taken: map[string]int{}, wake: make(chan struct{})}
}

func (l *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (l *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logWatch) WithGroup(string) slog.Handler            { return l }

func (l *logWatch) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.count[r.Message]++
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// await waits for one more occurrence of msg than earlier awaits consumed.
func (l *logWatch) await(c context.Context, msg string) error {
	for {
		l.mu.Lock()
		if l.count[msg] > l.taken[msg] {
			l.taken[msg]++
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-c.Done():
			return fmt.Errorf("waiting for %q: %w", msg, c.Err())
		}
	}
}

// The relay gives clients no JetStream API, so tests observe its storage
// from the server side: Jsz for counts, and the files of a stopped relay.

// jsz returns the relay's JetStream report with streams and consumers.
func (w *world) jsz(t *testing.T) *server.AccountDetail {
	t.Helper()
	info, err := w.relay.Server().Jsz(&server.JSzOptions{Accounts: true, Streams: true, Consumer: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.AccountDetails) != 1 {
		t.Fatalf("JetStream has %d accounts, want the one", len(info.AccountDetails))
	}
	return info.AccountDetails[0]
}

// stored returns how many messages the relay's stream holds.
func (w *world) stored(t *testing.T, stream string) uint64 {
	t.Helper()
	for _, sd := range w.jsz(t).Streams {
		if sd.Name == stream {
			return sd.State.Msgs
		}
	}
	t.Fatalf("no stream %s", stream)
	return 0
}

// consumer returns the relay's durable consumer name on stream.
func (w *world) consumer(t *testing.T, stream, name string) *server.ConsumerInfo {
	t.Helper()
	for _, sd := range w.jsz(t).Streams {
		for _, ci := range sd.Consumer {
			if sd.Name == stream && ci.Name == name {
				return ci
			}
		}
	}
	t.Fatalf("no consumer %s on %s", name, stream)
	return nil
}

// streamDir is where the relay keeps a stream's files.
func (w *world) streamDir(stream string) string {
	return filepath.Join(w.cfg.DataDir, "jetstream", "$G", "streams", stream)
}

// forgetConsumer makes the relay forget what a reader has acknowledged,
// as a relay restored from an old backup, or a hostile one, would: it is
// stopped, the durable consumer's state is deleted and it is started again
// (on new ports, unless the world's are fixed). The next read creates the
// consumer afresh and the relay delivers every stored message again. Every
// client must be closed first.
func (w *world) forgetConsumer(t *testing.T, stream, name string) {
	t.Helper()
	w.consumer(t, stream, name) // it exists: the test is not vacuous
	w.stop(t)
	dir := filepath.Join(w.streamDir(stream), "obs", name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("consumer state: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	w.restart(t)
}

// A storedMsg is a message as the relay's file store holds it.
type storedMsg struct {
	subject string
	data    []byte
}

// storedMessages reads a stream's messages from the files of the stopped
// relay, in nats-server's message block format (v2.15, no compression or
// encryption, which the relay does not configure):
//
//	len(4, high bit: has headers) seq(8) ts(8) subj_len(2) subj [hdr_len(4) hdr] msg hash(8)
func (w *world) storedMessages(t *testing.T, stream string) []storedMsg {
	t.Helper()
	blocks, err := filepath.Glob(filepath.Join(w.streamDir(stream), "msgs", "*.blk"))
	if err != nil || len(blocks) == 0 {
		t.Fatalf("no message blocks for %s (err %v)", stream, err)
	}
	le := binary.LittleEndian
	var out []storedMsg
	for _, path := range blocks {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) > 0 {
			if len(b) < 22+8 {
				t.Fatalf("%s: torn record", path)
			}
			l := le.Uint32(b)
			hasHdr, rl := l&(1<<31) != 0, int(l&^(1<<31))
			if rl < 22+8 || rl > len(b) {
				t.Fatalf("%s: bad record length %d", path, rl)
			}
			rec := b[:rl]
			b = b[rl:]
			if le.Uint64(rec[4:])&(1<<63) != 0 {
				continue // deleted
			}
			sl := int(le.Uint16(rec[20:]))
			body := rec[22 : rl-8]
			subj, body := string(body[:sl]), body[sl:]
			if hasHdr {
				hl := int(le.Uint32(body))
				body = body[4+hl:]
			}
			out = append(out, storedMsg{subject: subj, data: body})
		}
	}
	return out
}

// readAlerts fetches a mission's alerts until it has n, and fails on more.
func readAlerts(t *testing.T, m *client.Client, n int) []*client.Received {
	t.Helper()
	c := ctx(t)
	var got []*client.Received
	for len(got) < n {
		rs, err := receiveAlerts(m, c, client.FetchOptions{Wait: 2 * time.Second})
		if err != nil {
			t.Fatalf("Alerts: %v (after %d of %d)", err, len(got), n)
		}
		got = append(got, rs...)
		if c.Err() != nil {
			t.Fatalf("got %d alerts, want %d", len(got), n)
		}
	}
	if len(got) != n {
		t.Fatalf("got %d alerts, want %d", len(got), n)
	}
	return got
}

// readInbox fetches a defender's inbox until it has n messages.
func readInbox(t *testing.T, d *client.Client, n int) []*client.Received {
	t.Helper()
	c := ctx(t)
	var got []*client.Received
	for len(got) < n {
		rs, err := d.ReadMailbox(c, client.FetchOptions{Wait: 2 * time.Second})
		if err != nil {
			t.Fatalf("Inbox: %v (after %d of %d)", err, len(got), n)
		}
		got = append(got, rs...)
		if c.Err() != nil {
			t.Fatalf("got %d inbox messages, want %d", len(got), n)
		}
	}
	if len(got) != n {
		t.Fatalf("got %d inbox messages, want %d", len(got), n)
	}
	return got
}

// pending is how many alerts wait for mission m in country cc.
func pending(t *testing.T, m *client.Client, cc string) uint64 {
	t.Helper()
	n, err := m.Pending(ctx(t), cc)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newDefender(t *testing.T) *keys.Keyring {
	t.Helper()
	kr, err := keys.NewKeyring(keys.RoleDefender)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func ugAlert(summary string) *message.Alert {
	return &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryDetention,
		Summary: summary, Details: "Taken from the office by men in plain clothes."}
}

func outboxLen(t *testing.T, c *client.Client) int {
	t.Helper()
	q, err := c.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	return len(q)
}

// containsAny reports which of needles occur in hay.
func containsAny(hay []byte, needles ...[]byte) []string {
	var found []string
	for _, n := range needles {
		if len(n) > 0 && bytes.Contains(hay, n) {
			found = append(found, fmt.Sprintf("%q", n))
		}
	}
	return found
}

type alertReceiver interface {
	ReceiveAlerts(context.Context, client.FetchOptions, client.Handler) (client.Batch, error)
}

// receiveAlerts receives one batch of a mission's alerts into memory. A
// real mission keeps them durably (the console's store); a test keeps
// them in a slice.
func receiveAlerts(c alertReceiver, ctx context.Context, o client.FetchOptions) ([]*client.Received, error) {
	var out []*client.Received
	b, err := c.ReceiveAlerts(ctx, o, func(_ context.Context, r *client.Received) error {
		out = append(out, r)
		return nil
	})
	if err == nil {
		err = b.Err
	}
	return out, err
}

// sealReply seals a signed reply from mission kr to the defender to, about
// case ref, as the mission's client would.
func sealReply(t *testing.T, kr *keys.Keyring, to *keys.PublicIdentity, ref routing.ID, text string) []byte {
	t.Helper()
	body, err := message.Marshal(&message.Reply{Ref: ref, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	env, err := envelope.Seal(envelope.NewHeader("ug", routing.Urgent), body, kr.Identity, envelope.Signed, envelope.To(to))
	if err != nil {
		t.Fatal(err)
	}
	return env
}
