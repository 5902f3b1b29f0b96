package console

// The console killed with SIGKILL while alerts arrive: this test binary
// re-executes itself with BEACON_TEST_CONSOLE_CHILD set, and TestMain
// then runs a console (runChild) that prints how many cases its store
// holds each time it changes. Nothing waits on a timer: the parent waits
// for the child's lines.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/routing"
)

const (
	childEnv        = "BEACON_TEST_CONSOLE_CHILD" // the config file, as JSON
	childKeyEnv     = "BEACON_TEST_CONSOLE_KEY"
	childPassphrase = "console child passphrase" // a test key's
)

// runChild runs a console if this process is a crash test's child.
func runChild() bool {
	path := os.Getenv(childEnv)
	if path == "" {
		return false
	}
	if err := child(path); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func child(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	kr, err := keys.LoadKeyFile(os.Getenv(childKeyEnv), []byte(childPassphrase))
	if err != nil {
		return err
	}
	o, err := Open(&cfg, kr, nil, nil)
	if err != nil {
		return err
	}
	defer o.Close()
	c, err := New(o)
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	fmt.Println("READY")
	for last := -1; ; {
		ch := o.Store.Changed()
		if n := o.Store.Len(); n != last {
			last = n
			fmt.Println("KEPT", n)
		}
		<-ch // killed while waiting here, or while a message is being kept
	}
}

type consoleChild struct {
	cmd   *exec.Cmd
	lines chan string
}

func startConsoleChild(t *testing.T, cfgFile, keyFile string) *consoleChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgFile, childKeyEnv+"="+keyFile)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &consoleChild{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return c
}

// until reads the child's lines until one says it keeps at least n cases.
func (c *consoleChild) until(t *testing.T, ctx context.Context, n int) int {
	t.Helper()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatal("the console child ended")
			}
			if strings.HasPrefix(l, "ERROR") {
				t.Fatalf("child: %s", l)
			}
			var k int
			if _, err := fmt.Sscanf(l, "KEPT %d", &k); err == nil && k >= n {
				return k
			}
		case <-ctx.Done():
			t.Fatalf("the console child never kept %d cases", n)
		}
	}
}

// TestConsoleKilledLosesNothing: a console killed with SIGKILL while
// alerts arrive, restarted, has every alert exactly once.
func TestConsoleKilledLosesNothing(t *testing.T) {
	tb := newTestbed(t, func(c *relay.Config) { c.Storage.RedeliverAfter = time.Second })
	cfg := tb.config("nl-kampala")
	cfgB, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(t.TempDir(), "console.json")
	os.WriteFile(cfgFile, cfgB, 0o600)
	keyFile := filepath.Join(t.TempDir(), "mission.key")
	if err := keys.WriteKeyFile(keyFile, tb.w.Keyrings["nl-kampala"], []byte(childPassphrase), false); err != nil {
		t.Fatal(err)
	}
	def := tb.defender()
	const n = 60
	sent := map[routing.ID]bool{}
	send := func(k int) {
		for range k {
			s, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryThreat,
				Summary: fmt.Sprintf("alert %d", len(sent))})
			if err != nil {
				t.Error(err)
				return
			}
			sent[s.ID] = true
		}
	}

	first := startConsoleChild(t, cfgFile, keyFile)
	send(20)
	got := first.until(t, tb.ctx, 5)
	// Killed mid-stream: more alerts are on their way while it dies.
	done := make(chan struct{})
	go func() { defer close(done); send(n - 20) }()
	first.cmd.Process.Signal(syscall.SIGKILL)
	first.cmd.Wait()
	<-done
	t.Logf("killed with %d of %d cases kept", got, n)

	second := startConsoleChild(t, cfgFile, keyFile)
	second.until(t, tb.ctx, n)
	second.cmd.Process.Signal(syscall.SIGKILL)
	second.cmd.Wait()

	st, err := OpenStore(filepath.Join(cfg.StateDir, "cases"), tb.w.Keyrings["nl-kampala"].Identity.DeriveKey("console-cases"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cases := st.Cases()
	if len(cases) != n {
		t.Fatalf("%d cases after the crash, want %d", len(cases), n)
	}
	for _, k := range cases {
		if !sent[k.ID] || len(k.Thread) != 1 {
			t.Fatalf("case %s: sent %v, %d entries (want one)", k.ID, sent[k.ID], len(k.Thread))
		}
	}
}
