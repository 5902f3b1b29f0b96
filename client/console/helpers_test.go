package console

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/routing"
)

func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	goleak.VerifyTestMain(m,
		// chromedp's browser process reaper and cdproto's pool outlive a
		// test by design; the browser itself is killed by its cleanup.
		goleak.IgnoreAnyFunction("github.com/chromedp/chromedp.(*Browser).run"),
	)
}

// testbed is a relay, its world (nl-kampala and se-kampala for ug,
// de-nairobi for ke, a partner for ug, headquarters "hq"), and helpers.
type testbed struct {
	t     testing.TB
	w     *relaytest.World
	r     *relay.Relay
	cfg   *relay.Config
	url   string
	dirB  []byte
	ctx   context.Context
	state string
}

func newTestbed(t testing.TB, adjust ...func(*relay.Config)) *testbed {
	t.Helper()
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "se-kampala", Countries: []string{"ug"}}, relaytest.MissionSpec{ID: "de-nairobi", Countries: []string{"ke"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	for _, f := range adjust {
		f(cfg)
	}
	r := relaytest.Start(t, cfg)
	b, err := os.ReadFile(w.DirFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &testbed{t: t, w: w, r: r, cfg: cfg, url: r.ClientURL(), dirB: b, ctx: ctx, state: t.TempDir()}
}

// config is a console config for mission id, its state under the
// testbed's temporary directory.
func (tb *testbed) config(id string) *Config {
	return &Config{Mission: id, Key: "unused", StateDir: filepath.Join(tb.state, id), Relays: []string{tb.url},
		RootFingerprint: tb.w.Root.Public().Fingerprint().String(), Directory: tb.w.DirFile, Listen: "127.0.0.1:0",
		Poll: 50 * time.Millisecond,
		Officers: []Officer{
			{ID: "avries", Name: "Anna de Vries", Liaison: "Human rights officer, Embassy of the Netherlands"},
			{ID: "jbakker", Name: "Jan Bakker", Liaison: "Second Secretary, Embassy of the Netherlands"},
		}}
}

// office opens mission id's office and waits for the relay.
func (tb *testbed) office(id string) *Office {
	tb.t.Helper()
	o, err := Open(tb.config(id), tb.w.Keyrings[id], nil, nil)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(o.Close)
	if err := o.Client.WaitConnected(tb.ctx); err != nil {
		tb.t.Fatal(err)
	}
	return o
}

// console starts a console for mission id.
func (tb *testbed) console(id string) (*Console, *Office) {
	tb.t.Helper()
	o := tb.office(id)
	c, err := New(o)
	if err != nil {
		tb.t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Shutdown(ctx)
	})
	return c, o
}

// defender opens a defender's client with the directory.
func (tb *testbed) defender() *client.Client {
	tb.t.Helper()
	kr, err := keys.NewKeyring(keys.RoleDefender)
	if err != nil {
		tb.t.Fatal(err)
	}
	return tb.client(kr)
}

func (tb *testbed) client(kr *keys.Keyring) *client.Client {
	tb.t.Helper()
	cl, err := client.Open(client.Config{URLs: []string{tb.url}, Keyring: kr, Root: tb.w.Root.Public().Fingerprint(),
		StateDir: tb.t.TempDir(), Directory: tb.dirB})
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(cl.Close)
	if err := cl.WaitConnected(tb.ctx); err != nil {
		tb.t.Fatal(err)
	}
	return cl
}

// mailbox reads cl's mailbox until it holds n messages.
func (tb *testbed) mailbox(cl *client.Client, n int) []*client.Received {
	tb.t.Helper()
	var out []*client.Received
	for len(out) < n {
		rs, err := cl.ReadMailbox(tb.ctx, client.FetchOptions{Wait: 10 * time.Second})
		if err != nil {
			tb.t.Fatal(err)
		}
		if len(rs) == 0 {
			tb.t.Fatalf("mailbox: %d of %d messages", len(out), n)
		}
		out = append(out, rs...)
	}
	return out
}

// receiveAll receives the office's alerts until the store has n cases.
func (tb *testbed) receiveAll(o *Office, n int) {
	tb.t.Helper()
	for o.Store.Len() < n {
		b, err := o.Receive(tb.ctx, 10*time.Second)
		if err != nil || b.Err != nil {
			tb.t.Fatal(err, b.Err)
		}
		if b.Handled == 0 && b.Dropped == 0 {
			tb.t.Fatalf("store has %d of %d cases", o.Store.Len(), n)
		}
	}
}

// waitFor waits until cond holds on o's store, which a running console
// fills; it wakes on every change, never on a timer.
func (tb *testbed) waitFor(o *Office, what string, cond func() bool) {
	tb.t.Helper()
	for {
		ch := o.Store.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-tb.ctx.Done():
			tb.t.Fatalf("waiting for %s: %v", what, tb.ctx.Err())
		}
	}
}

// waitCase waits for the case id in a console's store.
func (tb *testbed) waitCase(o *Office, id routing.ID) *Case {
	tb.t.Helper()
	var k *Case
	tb.waitFor(o, "case "+id.String(), func() bool {
		var err error
		k, err = o.Store.Case(id)
		return err == nil
	})
	return k
}
