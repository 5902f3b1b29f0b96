package bridge_test

// The crash test runs the bridge as a real process: this test binary
// re-executes itself with BEACON_TEST_BRIDGE_CONFIG set, and TestMain then
// runs a bridge from that config (see runChildBridge), printing one line
// per round of each forwarder. Nothing waits on a timer: the parent reads
// the child's lines and the relays' long-polls.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/bridge"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

const (
	childEnv       = "BEACON_TEST_BRIDGE_CONFIG"
	childPassEnv   = "BEACON_TEST_BRIDGE_PASSPHRASE"
	testPassphrase = "correct horse battery staple"
)

// runChildBridge runs a bridge from the config at path until SIGTERM or
// until its stdin closes, printing "READY", then "ROUND <partner>
// <stored> <settled>" after every round of a forwarder.
func runChildBridge(path string) int {
	fail := func(err error) int {
		fmt.Println("ERROR", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	cfg, err := bridge.LoadConfig(path)
	if err != nil {
		return fail(err)
	}
	kr, err := keys.LoadKeyFile(cfg.Home.KeyFile, []byte(os.Getenv(childPassEnv)))
	if err != nil {
		return fail(err)
	}
	lines := make(chan string, 1<<16)
	b, err := bridge.New(cfg, kr, bridge.WithEvents(func(e bridge.Event) {
		if e.Stored+e.Settled > 0 {
			lines <- fmt.Sprintf("ROUND %s %d %d", e.Partner, e.Stored, e.Settled)
		}
	}))
	if err != nil {
		return fail(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = b.Start(ctx)
	cancel()
	if err != nil {
		return fail(err)
	}
	fmt.Println("READY")
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(eof) }()
	for {
		select {
		case l := <-lines:
			fmt.Println(l)
			continue
		case <-sigs:
		case <-eof:
		}
		break
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.Shutdown(ctx)
	return 0
}

// A bridgeProcess is a bridge running in a process of its own.
type bridgeProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	rounds chan string
	done   chan struct{}
}

// startChild starts a bridge process and waits for its READY line.
func startChild(t *testing.T, config string) *bridgeProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+config, childPassEnv+"="+testPassphrase)
	cmd.Stderr = os.Stderr
	p := &bridgeProcess{cmd: cmd, rounds: make(chan string, 1<<16), done: make(chan struct{})}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if line == "READY" {
			break
		}
		if strings.HasPrefix(line, "ERROR") {
			t.Fatalf("bridge process: %s", line)
		}
	}
	go func() {
		defer close(p.done)
		for sc.Scan() {
			p.rounds <- sc.Text()
		}
		cmd.Wait()
	}()
	return p
}

// kill kills the process with SIGKILL and waits for it.
func (p *bridgeProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.stdin.Close()
	<-p.done
}

// writeChildConfig writes the bridge's key file and a config for a
// bridge process.
func (w *world) writeChildConfig(t *testing.T, cfg *bridge.Config) string {
	t.Helper()
	dir := t.TempDir()
	cfg.Home.KeyFile = filepath.Join(dir, "bridge.key")
	if err := keys.WriteKeyFile(cfg.Home.KeyFile, w.keys["bridge"], []byte(testPassphrase), false); err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSIGKILLMidBurst: a bridge process killed with SIGKILL while it
// forwards a burst, and started again, leaves the partner's relay with
// every envelope exactly once, and one receipt for each.
func TestSIGKILLMidBurst(t *testing.T) {
	const n = 600
	// What the killed bridge had read and not settled is offered again
	// after the relay's redelivery wait: make it short.
	w := newWorldWith(t, func(c *relay.Config) { c.Storage.RedeliverAfter = time.Second }, "de-mfa")
	cfg := w.bridgeConfig(t, false)
	cfg.Batch = 32 // many rounds, so the kill lands mid-burst
	path := w.writeChildConfig(t, cfg)
	envs := w.sealShares(t, n, "ug", routing.Urgent)
	w.publishShares(t, envs, "ug", routing.Urgent)

	first := startChild(t, path)
	stored := 0
	for stored < n/3 {
		var partner string
		var s, settled int
		fmt.Sscanf(<-first.rounds, "ROUND %s %d %d", &partner, &s, &settled)
		stored += s
	}
	first.kill()
	if stored >= n {
		t.Fatalf("the bridge finished the burst before it was killed; make it larger")
	}

	second := startChild(t, path)
	bc := w.bridgeConn(t)
	// A settle is answered once JetStream applied it, so the count read
	// after the last round is 0; a bridge that stops making rounds
	// before then fails the test rather than hanging it.
	quiet := time.NewTimer(time.Minute)
	defer quiet.Stop()
	for {
		pending, err := bc.Relay.Pending(testCtx(t), proto.SharedSource("de-mfa"))
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		select {
		case <-second.rounds:
			quiet.Reset(time.Minute)
		case <-second.done:
			t.Fatal("the second bridge process ended")
		case <-quiet.C:
			t.Fatalf("SHARED: %d pending, and no round for a minute", pending)
		}
	}
	if got := streamMsgs(t, w.partners["de-mfa"].relay, proto.StreamBridged); got != n {
		t.Errorf("the partner's relay holds %d envelopes, want %d", got, n)
	}
	if got := streamMsgs(t, w.home.relay, proto.StreamReceipts); got != n {
		t.Errorf("the home relay holds %d receipts, want %d", got, n)
	}
	assertOnce(t, w.readBridged(t, w.partnerConn(t, "de-mfa"), n), envs)
}
