// Package relaytest starts real relays for tests: an embedded nats-server
// with JetStream on loopback, random ports, a temporary data directory and,
// when asked, a signed directory with generated missions. Nothing is
// mocked.
package relaytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// Config returns a relay config for a test: loopback, random ports,
// data in a temporary directory, small stream limits, sync always.
func Config(t testing.TB) *relay.Config {
	t.Helper()
	c := relay.DefaultConfig(t.TempDir())
	c.ServerName = "test-relay"
	c.Listen = "127.0.0.1:0"
	c.WebSocket = &relay.WebSocketConfig{Listen: "127.0.0.1:0", NoTLS: true}
	c.Storage.MaxBytes = 64 << 20
	c.Limits.PublishRate = 1000
	c.Limits.PublishBurst = 1000
	Unadmitted(c)
	return c
}

// Unadmitted lifts the walk-ins' admission budget and per-address limits
// of cfg out of reach, so that tests and benchmarks that are not about
// admission publish without proofs of work from one loopback address.
func Unadmitted(c *relay.Config) {
	c.Admission.Rate, c.Admission.Burst = 1e9, 1e9
	c.Admission.BytesPerSecond, c.Admission.BytesBurst = 1<<50, 1<<50
	c.Admission.PerAddressConnections = 0
	c.Admission.PerAddressConnectRate, c.Admission.PerAddressConnectBurst = 1e9, 1e9
}

// Start starts a relay with cfg and stops it when the test ends.
func Start(t testing.TB, cfg *relay.Config, opts ...relay.Option) *relay.Relay {
	t.Helper()
	r, err := relay.New(cfg, opts...)
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatalf("relay.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	return r
}

// A World is a signed directory with its keyrings: missions, partners and
// the root, written to a temporary file a relay config can point at.
type World struct {
	Root     *keys.Identity
	Dir      *keys.Directory
	DirFile  string
	Keyrings map[string]*keys.Keyring // by directory id
}

// MissionSpec describes one mission of a World.
type MissionSpec struct {
	ID        string
	Countries []string
	// Urgent is the mission's response target for urgent alerts; zero
	// is 15 minutes. Escalation, Escalate and Quorum are the directory's
	// fields of the same names.
	Urgent     time.Duration
	Escalation string
	Escalate   []routing.Priority
	Quorum     []int
}

// NewWorld generates keyrings for the missions (and one partner, one
// bridge, and the headquarters "hq" overseeing every mission) and signs a
// directory listing them.
func NewWorld(t testing.TB, missions ...MissionSpec) *World {
	t.Helper()
	root, err := keys.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	w := &World{Root: root, Keyrings: map[string]*keys.Keyring{}}
	now := time.Now()
	r := &keys.Roster{Serial: 1, Issued: now.Add(-time.Minute), Expires: now.Add(24 * time.Hour)}
	for _, m := range missions {
		kr, err := keys.NewKeyring(keys.RoleMission)
		if err != nil {
			t.Fatal(err)
		}
		w.Keyrings[m.ID] = kr
		urgent := m.Urgent
		if urgent == 0 {
			urgent = 15 * time.Minute
		}
		r.Missions = append(r.Missions, keys.Mission{ID: m.ID, Name: "Mission " + m.ID, Countries: m.Countries,
			Identity: kr.Identity.Public(), NKey: kr.NKeyPublic(), InboxKeys: []keys.SignedInboxKey{kr.Inboxes[0].Signed},
			Response:   keys.ResponseTargets{Urgent: urgent, High: 4 * time.Hour, Routine: 72 * time.Hour},
			Escalation: m.Escalation, Escalate: m.Escalate, Quorum: m.Quorum})
	}
	pk, _ := keys.NewKeyring(keys.RolePartner)
	w.Keyrings["partner"] = pk
	r.Partners = append(r.Partners, keys.Partner{ID: "partner", Name: "Partner", Countries: []string{"ug"},
		Identity: pk.Identity.Public(), NKey: pk.NKeyPublic(), InboxKeys: []keys.SignedInboxKey{pk.Inboxes[0].Signed}})
	bk, _ := keys.NewKeyring(keys.RoleBridge)
	w.Keyrings["bridge"] = bk
	r.Bridges = append(r.Bridges, keys.Bridge{ID: "bridge", Name: "Bridge", Identity: bk.Identity.Public(), NKey: bk.NKeyPublic()})
	if len(missions) > 0 {
		hk, _ := keys.NewKeyring(keys.RoleHeadquarters)
		w.Keyrings["hq"] = hk
		hq := keys.Headquarters{ID: "hq", Name: "Headquarters", Identity: hk.Identity.Public(), NKey: hk.NKeyPublic(),
			InboxKeys: []keys.SignedInboxKey{hk.Inboxes[0].Signed}}
		for _, m := range missions {
			hq.Missions = append(hq.Missions, m.ID)
		}
		r.Headquarters = append(r.Headquarters, hq)
	}
	signed, err := keys.SignDirectory(r, root)
	if err != nil {
		t.Fatal(err)
	}
	w.DirFile = filepath.Join(t.TempDir(), "directory.yaml")
	if err := os.WriteFile(w.DirFile, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	if w.Dir, err = keys.VerifyDirectory(signed, root.Public().Fingerprint(), now, nil); err != nil {
		t.Fatal(err)
	}
	return w
}

// Configure points cfg at the world's directory.
func (w *World) Configure(cfg *relay.Config) {
	cfg.Directory = &relay.DirectoryConfig{File: w.DirFile, RootFingerprint: w.Root.Public().Fingerprint().String()}
}

// Conn is a client connection with its NKey and mailbox: the raw NATS
// connection (for tests of what the relay permits) and the project's one
// relay connection over it (for everything a real client does).
type Conn struct {
	*nats.Conn
	Relay   *relayconn.Conn
	NKey    nkeys.KeyPair
	Mailbox routing.Mailbox
	// Errs receives the connection's asynchronous errors, such as
	// permission violations.
	Errs chan error
}

// Connect connects to url with kp (a fresh walk-in key if nil), using the
// reply prefix the relay grants that key.
func Connect(t testing.TB, url string, kp nkeys.KeyPair, opts ...nats.Option) *Conn {
	t.Helper()
	c, err := Dial(url, kp, opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Dial is Connect without a test: usable off the test goroutine; the
// caller closes the connection.
func Dial(url string, kp nkeys.KeyPair, opts ...nats.Option) (*Conn, error) {
	if kp == nil {
		var err error
		if kp, err = nkeys.CreateUser(); err != nil {
			return nil, err
		}
	}
	pub, _ := kp.PublicKey()
	mbox := proto.MailboxFor(pub)
	errs := make(chan error, 64)
	all := append([]nats.Option{
		nats.Nkey(pub, kp.Sign),
		nats.CustomInboxPrefix(proto.ReplyPrefix(mbox)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: nc, Relay: relayconn.New(nc, mbox, nil), NKey: kp, Mailbox: mbox, Errs: errs}, nil
}

func testCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// Publish sends data to the ingest target and returns the relay's reply.
func (c *Conn) Publish(target string, data []byte) (*proto.Reply, error) {
	ctx, cancel := testCtx()
	defer cancel()
	return c.Relay.Publish(ctx, target, data)
}

// Fetched is one message from a relay fetch service.
type Fetched = relayconn.Fetched

// Fetch asks the relay's fetch service (target proto.SvcFetchMbox or
// proto.SvcFetchAlerts(cc)) for up to max messages, waiting up to wait for
// the first, and returns them once the batch's end marker arrives.
func (c *Conn) Fetch(target string, max int, wait time.Duration) ([]Fetched, error) {
	return c.FetchAfter(target, max, wait, 0)
}

// FetchAfter is Fetch from a mailbox cursor: only messages stored after
// sequence after.
func (c *Conn) FetchAfter(target string, max int, wait time.Duration, after uint64) ([]Fetched, error) {
	svc, err := proto.ParseService(target)
	if err != nil || svc.Name != proto.SvcFetch {
		return nil, fmt.Errorf("relaytest: %q is not a fetch target", target)
	}
	ctx, cancel := testCtx()
	defer cancel()
	return c.Relay.Fetch(ctx, svc.Source, relayconn.FetchOptions{Max: max, Wait: wait, After: after})
}

// FetchAll fetches from target until it has n messages (waiting up to 10s
// for each batch) and settles them.
func (c *Conn) FetchAll(target string, n int) ([]Fetched, error) {
	var out []Fetched
	for len(out) < n {
		got, err := c.Fetch(target, min(proto.MaxFetch, n-len(out)), 10*time.Second)
		if err != nil {
			return out, err
		}
		if len(got) == 0 {
			return out, fmt.Errorf("fetched %d of %d", len(out), n)
		}
		if err := c.Settle(got); err != nil {
			return out, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// Settle settles fetched messages.
func (c *Conn) Settle(msgs []Fetched) error {
	toks := make([]string, len(msgs))
	for i, m := range msgs {
		toks[i] = m.Settle
	}
	ctx, cancel := testCtx()
	defer cancel()
	return c.Relay.Settle(ctx, toks)
}

// Svc sends a service request and decodes its proto.SvcReply; a refusal is
// returned as *proto.Error.
func (c *Conn) Svc(target string, body []byte) (*proto.SvcReply, error) {
	ctx, cancel := testCtx()
	defer cancel()
	return c.Relay.Call(ctx, target, body)
}

// ConnectAs connects with the NKey of the world's keyring id (a mission,
// "partner" or "bridge").
func (w *World) ConnectAs(t testing.TB, url, id string) *Conn {
	t.Helper()
	kr, ok := w.Keyrings[id]
	if !ok {
		t.Fatalf("no keyring %q in the world", id)
	}
	return Connect(t, url, kr.NKey)
}

// StartRaw starts a bare embedded nats-server with JetStream, no auth and
// no Beacon code, with the storage settings a relay uses under sync: the
// baseline benchmarks compare Beacon with. It stops when the test ends.
func StartRaw(t testing.TB, sync relay.SyncPolicy) *server.Server {
	t.Helper()
	st := Config(t).Storage
	opts := &server.Options{
		Host:                   "127.0.0.1",
		Port:                   server.RANDOM_PORT,
		NoSigs:                 true,
		JetStream:              true,
		StoreDir:               t.TempDir(),
		MaxPayload:             int32(st.MaxMessageSize) + 4<<10, // as the relay sets it
		SyncAlways:             sync == relay.SyncAlways,
		SyncInterval:           st.SyncInterval,
		DisableJetStreamBanner: true,
	}
	if sync == relay.SyncAlways {
		opts.SyncInterval = 0 // as the relay sets it
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("raw server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}
