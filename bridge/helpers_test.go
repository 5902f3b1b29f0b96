package bridge_test

import (
	"context"
	"errors"
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

	"github.com/hrdbeacon/beacon/bridge"
	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// TestMain runs a child bridge when asked to (see crash_test.go), and
// otherwise the tests, failing the package if goroutines outlive them.
func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChildBridge(path))
	}
	goleak.VerifyTestMain(m)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A network is one government's relay and signed directory.
type network struct {
	root   *keys.Identity
	dir    *keys.Directory
	file   string
	cfg    *relay.Config
	relay  *relay.Relay
	roster *keys.Roster
}

// keyring is a generated keyring of a role.
func keyring(t testing.TB, role keys.Role) *keys.Keyring {
	t.Helper()
	kr, err := keys.NewKeyring(role)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// A world is the sending network ("home": two missions covering ug, one
// covering ke, partners covering ug, the bridge) and each partner
// government's own network (its own root; the partner itself, one
// mission of its own, and the bridge under the id "from-home").
type world struct {
	home     *network
	partners map[string]*network
	keys     map[string]*keys.Keyring // missions, partners, "bridge"
	ids      []string                 // partner ids, in order
}

// homeBridgeID and partnerBridgeID are the bridge's ids in the home
// directory and in the partners' own: they differ, as they may.
const (
	homeBridgeID    = "bridge"
	partnerBridgeID = "from-home"
)

func mission(id string, kr *keys.Keyring, ccs ...string) keys.Mission {
	return keys.Mission{ID: id, Name: "Mission " + id, Countries: ccs, Identity: kr.Identity.Public(), NKey: kr.NKeyPublic(),
		InboxKeys: []keys.SignedInboxKey{kr.Inboxes[0].Signed},
		Response:  keys.ResponseTargets{Urgent: 15 * time.Minute, High: 4 * time.Hour, Routine: 72 * time.Hour}}
}

func partnerEntry(id string, kr *keys.Keyring, ccs ...string) keys.Partner {
	return keys.Partner{ID: id, Name: "Government " + id, Countries: ccs, Identity: kr.Identity.Public(), NKey: kr.NKeyPublic(),
		InboxKeys: []keys.SignedInboxKey{kr.Inboxes[0].Signed}}
}

func bridgeEntry(id string, kr *keys.Keyring) keys.Bridge {
	return keys.Bridge{ID: id, Name: "Bridge " + id, Identity: kr.Identity.Public(), NKey: kr.NKeyPublic()}
}

// sign signs r under a fresh root into a file and returns the network
// (without a relay).
func sign(t testing.TB, r *keys.Roster) *network {
	t.Helper()
	root := keyring(t, keys.RoleRoot).Identity
	now := time.Now()
	r.Serial, r.Issued, r.Expires = 1, now.Add(-time.Minute), now.Add(24*time.Hour)
	signed, err := keys.SignDirectory(r, root)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "directory.yaml")
	if err := os.WriteFile(file, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := keys.VerifyDirectory(signed, root.Public().Fingerprint(), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &network{root: root, dir: d, file: file, roster: r}
}

// start starts the network's relay with cfg (relaytest.Config if nil).
func (n *network) start(t testing.TB, cfg *relay.Config) {
	t.Helper()
	if cfg == nil {
		cfg = relaytest.Config(t)
	}
	cfg.Directory = &relay.DirectoryConfig{File: n.file, RootFingerprint: n.root.Public().Fingerprint().String()}
	n.cfg = cfg
	n.relay = relaytest.Start(t, cfg)
}

// stop shuts the relay down.
func (n *network) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.relay.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func (n *network) url() string { return n.relay.ClientURL() }

// newWorld builds and starts the home network and one network per
// partner id (each covering ug).
func newWorld(t testing.TB, partners ...string) *world {
	t.Helper()
	return newWorldWith(t, nil, partners...)
}

// newWorldWith is newWorld with the home relay's config adjusted by tune.
func newWorldWith(t testing.TB, tune func(*relay.Config), partners ...string) *world {
	t.Helper()
	w := &world{partners: map[string]*network{}, keys: map[string]*keys.Keyring{}, ids: partners}
	for _, id := range []string{"nl-kampala", "se-kampala", "de-nairobi"} {
		w.keys[id] = keyring(t, keys.RoleMission)
	}
	w.keys["bridge"] = keyring(t, keys.RoleBridge)
	home := &keys.Roster{Missions: []keys.Mission{mission("nl-kampala", w.keys["nl-kampala"], "ug"),
		mission("se-kampala", w.keys["se-kampala"], "ug"), mission("de-nairobi", w.keys["de-nairobi"], "ke")},
		Bridges: []keys.Bridge{bridgeEntry(homeBridgeID, w.keys["bridge"])}}
	for _, id := range partners {
		w.keys[id] = keyring(t, keys.RolePartner)
		home.Partners = append(home.Partners, partnerEntry(id, w.keys[id], "ug"))
	}
	w.home = sign(t, home)
	hc := relaytest.Config(t)
	if tune != nil {
		tune(hc)
	}
	w.home.start(t, hc)
	for _, id := range partners {
		own := keyring(t, keys.RoleMission)
		w.keys[id+"-own"] = own
		n := sign(t, &keys.Roster{Missions: []keys.Mission{mission(id+"-kampala", own, "ug")},
			Partners: []keys.Partner{partnerEntry(id, w.keys[id], "ug")},
			Bridges:  []keys.Bridge{bridgeEntry(partnerBridgeID, w.keys["bridge"])}})
		n.start(t, nil)
		w.partners[id] = n
	}
	return w
}

// bridgeConfig is a config for the world's bridge: every partner over
// NATS (or WebSocket), fast retries.
func (w *world) bridgeConfig(t testing.TB, websocket bool) *bridge.Config {
	t.Helper()
	cfg := &bridge.Config{Home: bridge.HomeConfig{URLs: []string{w.home.url()}, KeyFile: "unused",
		RootFingerprint: w.home.root.Public().Fingerprint().String()},
		Batch: 256, Wait: 5 * time.Second, Timeout: 10 * time.Second,
		Retry:            bridge.RetryConfig{Min: 20 * time.Millisecond, Max: 500 * time.Millisecond},
		DirectoryRefresh: time.Hour, Log: bridge.LogConfig{Level: "info", Format: "text"}}
	for _, id := range w.ids {
		u := w.partners[id].url()
		if websocket {
			u = w.partners[id].relay.WebSocketURL()
		}
		cfg.Partners = append(cfg.Partners, bridge.PartnerConfig{ID: id, URLs: []string{u}, BridgeID: partnerBridgeID,
			Priorities: []string{"urgent", "high", "routine"}})
	}
	return cfg
}

// startBridge starts a bridge with cfg and stops it when the test ends.
func (w *world) startBridge(t testing.TB, cfg *bridge.Config, opts ...bridge.Option) *bridge.Bridge {
	t.Helper()
	opts = append([]bridge.Option{bridge.WithLogger(testLogger(t))}, opts...)
	b, err := bridge.New(cfg, w.keys["bridge"], opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	return b
}

// testLogger logs at warn and above through t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// openClient opens a client of kr on net's relay with its directory.
func openClient(t testing.TB, n *network, kr *keys.Keyring) *client.Client {
	t.Helper()
	c, err := client.Open(client.Config{URLs: []string{n.url()}, Keyring: kr, Root: n.root.Public().Fingerprint(),
		StateDir: t.TempDir(), Directory: n.dir.Raw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return c
}

func ugAlert(summary string, share bool) *message.Alert {
	return &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryDetention, Summary: summary,
		Details: "details", Share: share}
}

// sealShares seals n envelopes for country cc and priority p to the home
// directory's partners covering cc, as a defender's share would be, with
// no reply mailbox.
func (w *world) sealShares(t testing.TB, n int, cc string, p routing.Priority) [][]byte {
	t.Helper()
	def := keyring(t, keys.RoleDefender).Identity
	var to []envelope.Recipient
	for _, pt := range w.home.dir.PartnersFor(cc) {
		to = append(to, envelope.ToInbox(pt.Identity, keys.CurrentInbox(pt.InboxKeys, time.Now())))
	}
	if len(to) == 0 { // no partner covers cc: sealed to its missions, as nobody would
		for _, m := range w.home.dir.MissionsFor(cc) {
			to = append(to, envelope.ToInbox(m.Identity, keys.CurrentInbox(m.InboxKeys, time.Now())))
		}
	}
	body, err := message.Marshal(&message.Alert{Country: cc, Priority: p, Category: message.CategoryRaid, Summary: "burst", Details: "", Share: true})
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	var wg sync.WaitGroup
	var next sync.Mutex
	i := 0
	for range 2 {
		wg.Go(func() {
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				h := envelope.Header{ID: routing.NewID(), Created: time.Now(), Country: cc, Priority: p}
				env, err := envelope.Seal(h, body, def, envelope.Deniable, to...)
				if err != nil {
					panic(err)
				}
				out[k] = env
			}
		})
	}
	wg.Wait()
	return out
}

// publishShares publishes envelopes into the home relay's SHARED as a
// walk-in defender, in batches.
func (w *world) publishShares(t testing.TB, envs [][]byte, cc string, p routing.Priority) {
	t.Helper()
	c := relaytest.Connect(t, w.home.url(), nil)
	for start := 0; start < len(envs); start += 256 {
		end := min(len(envs), start+256)
		batch := make([]relayconn.Outgoing, 0, end-start)
		for _, e := range envs[start:end] {
			batch = append(batch, relayconn.Outgoing{Target: proto.ShareTarget(cc, p), Data: e})
		}
		_, errs := c.Relay.PublishBatch(testCtx(t), batch)
		for _, err := range errs {
			if err != nil {
				t.Fatalf("publishing a share: %v", err)
			}
		}
	}
}

// partnerConn connects to partner id's relay as the partner (its
// console's key) for raw reads of what bridges delivered.
func (w *world) partnerConn(t testing.TB, id string) *relaytest.Conn {
	t.Helper()
	return relaytest.Connect(t, w.partners[id].url(), w.keys[id].NKey)
}

// readBridged reads n envelopes from partner id's relay (raw, settled),
// waiting on the relay's long-polls, and returns their ids.
func (w *world) readBridged(t testing.TB, c *relaytest.Conn, n int) []routing.ID {
	t.Helper()
	got, err := c.FetchAll(proto.FetchTarget(proto.BridgedSource("ug")), n)
	if err != nil {
		t.Fatalf("reading what the bridge delivered: %v (%d of %d)", err, len(got), n)
	}
	ids := make([]routing.ID, len(got))
	for i, m := range got {
		info, err := envelope.Parse(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = info.ID
	}
	return ids
}

// streamMsgs is how many messages stream holds on r.
func streamMsgs(t testing.TB, r *relay.Relay, stream string) uint64 {
	t.Helper()
	info, err := r.Server().Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range info.AccountDetails {
		for _, st := range a.Streams {
			if st.Name == stream {
				return st.State.Msgs
			}
		}
	}
	t.Fatalf("no stream %s", stream)
	return 0
}

// assertOnce fails unless ids holds each of want exactly once.
func assertOnce(t testing.TB, ids []routing.ID, want [][]byte) {
	t.Helper()
	seen := map[routing.ID]int{}
	for _, id := range ids {
		seen[id]++
	}
	for _, e := range want {
		info, _ := envelope.Parse(e)
		if n := seen[info.ID]; n != 1 {
			t.Errorf("envelope %s delivered %d times, want once", info.ID, n)
		}
		delete(seen, info.ID)
	}
	if len(seen) > 0 {
		t.Errorf("%d envelopes delivered that were not sent", len(seen))
	}
}

// usedPorts are the fixed ports handed out in this process.
var usedPorts sync.Map

// fixedPort returns a free loopback port below the ephemeral range, for a
// relay that must come back on the same address.
func fixedPort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		p := 10000 + rand.IntN(20000)
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

// bridgeConn connects to the home relay with the bridge's key, for what
// the bridge's position says (pending).
func (w *world) bridgeConn(t testing.TB) *relaytest.Conn {
	t.Helper()
	return relaytest.Connect(t, w.home.url(), w.keys["bridge"].NKey)
}

func asProtoError(err error) *proto.Error {
	var perr *proto.Error
	if errors.As(err, &perr) {
		return perr
	}
	return nil
}
