package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/keys"
)

// Errors callers branch on.
var (
	// ErrNotABridge means the key file's identity (or its NKey) is not a
	// bridge of the home directory.
	ErrNotABridge = errors.New("this key is not a bridge in the home directory")
	// ErrUnknownPartner means a configured partner is not a partner of the
	// home directory.
	ErrUnknownPartner = errors.New("not a partner in the home directory")
)

// A Bridge carries what the home network shares to the partner
// governments' relays. Lifecycle: [New], [Bridge.Start] (returns once it
// has a verified directory and forwards), [Bridge.Shutdown].
type Bridge struct {
	cfg   *Config
	kr    *keys.Keyring
	root  keys.Fingerprint
	log   *slog.Logger
	clock clockwork.Clock

	home     *relayconn.Conn
	partners []*partner
	metrics  *metrics
	http     *http.Server
	httpLn   net.Listener

	dirMu  sync.RWMutex
	dir    *keys.Directory
	dirVer *keys.DirVersion
	self   string // the bridge's id in the home directory

	transports map[string]Transport // injected by WithTransport
	events     func(Event)

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	started  bool
}

// Option adjusts a Bridge for tests and embedding.
type Option func(*Bridge)

// WithClock injects the clock every wait of the bridge uses: the backoff
// between retries, the directory refresh. Tests pass a fake clock.
func WithClock(c clockwork.Clock) Option { return func(b *Bridge) { b.clock = c } }

// WithLogger sets the logger (default: discard). It never receives
// envelopes, message ids or mailboxes.
func WithLogger(l *slog.Logger) Option { return func(b *Bridge) { b.log = l } }

// WithTransport makes the bridge reach partner id through t instead of
// dialling the partner's URLs. The bridge closes t on Shutdown.
func WithTransport(id string, t Transport) Option {
	return func(b *Bridge) { b.transports[id] = t }
}

// An Event reports one round of a partner's forwarder or carrier: what
// it stored, settled, dropped and will retry. Tests wait on events
// rather than on time.
type Event struct {
	Partner    string
	Stored     int // envelopes the partner's relay stored (Duplicates included)
	Duplicates int // of which it held already
	Settled    int // envelopes settled with the home relay: done
	Dropped    int // settled without forwarding (out of scope, refused for good)
	Retry      int // held for another try
	Returned   int // partners' answers carried back to the home relay
}

// WithEvents calls f after every round of every partner, on the
// partner's goroutine; f must not block.
func WithEvents(f func(Event)) Option { return func(b *Bridge) { b.events = f } }

func (b *Bridge) emit(e Event) {
	if b.events != nil {
		b.events(e)
	}
}

// New prepares a bridge from cfg (validated) with the bridge's keyring
// (role bridge). It reads the NKey and CA files the config names but
// connects to nothing.
func New(cfg *Config, kr *keys.Keyring, opts ...Option) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bridge: config: %w", err)
	}
	if kr == nil || kr.Role != keys.RoleBridge {
		return nil, fmt.Errorf("bridge: the key file is not a bridge's (beacon keys gen --role bridge)")
	}
	root, _ := keys.ParseFingerprint(cfg.Home.RootFingerprint)
	b := &Bridge{cfg: cfg, kr: kr, root: root, log: slog.New(slog.DiscardHandler), clock: clockwork.NewRealClock(),
		transports: map[string]Transport{}}
	for _, o := range opts {
		o(b)
	}
	b.metrics = newMetrics(b)
	for _, pc := range cfg.Partners {
		p := &partner{b: b, cfg: pc, prios: pc.priorities()}
		p.m = b.metrics.forPartner(pc.ID)
		b.partners = append(b.partners, p)
	}
	return b, nil
}

// Start connects to the home relay, obtains the home directory (the
// configured file, then the relay's, verified against the pinned root),
// checks that the bridge and every configured partner are in it, and
// starts one forwarder per partner. It waits for the home relay until ctx
// ends. A partner's relay need not be up: its forwarder waits for it.
func (b *Bridge) Start(ctx context.Context) error {
	if b.started {
		return errors.New("bridge: Start called twice")
	}
	b.started = true
	err := b.start(ctx)
	if err != nil {
		b.Shutdown(context.Background())
	}
	return err
}

func (b *Bridge) start(ctx context.Context) error {
	homeTLS, err := loadCA(b.cfg.Home.CA)
	if err != nil {
		return fmt.Errorf("bridge: home.ca: %w", err)
	}
	if b.home, err = relayconn.Dial(relayconn.Config{URLs: b.cfg.Home.URLs, NKey: b.kr.NKey, Name: "beacon-bridge",
		Clock: b.clock, Logger: b.log.With("relay", "home"), TLS: homeTLS}); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if b.cfg.Home.Directory != "" {
		data, err := os.ReadFile(b.cfg.Home.Directory)
		if err != nil {
			return fmt.Errorf("bridge: home.directory: %w", err)
		}
		if err := b.acceptDirectory(data); err != nil {
			return fmt.Errorf("bridge: home.directory: %w", err)
		}
	}
	if err := b.home.WaitConnected(ctx); err != nil {
		return fmt.Errorf("bridge: the home relay: %w", err)
	}
	if err := b.refreshDirectory(ctx); err != nil && b.directory() == nil {
		return fmt.Errorf("bridge: the home directory: %w", err)
	}
	if err := b.checkDirectory(); err != nil {
		return err
	}
	for _, p := range b.partners {
		if t := b.transports[p.cfg.ID]; t != nil {
			p.t = t
			continue
		}
		if p.t, err = b.dial(p.cfg); err != nil {
			return fmt.Errorf("bridge: partner %s: %w", p.cfg.ID, err)
		}
	}
	if err := b.startMetrics(); err != nil {
		return err
	}
	run, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	for _, p := range b.partners {
		b.wg.Add(2)
		go func() { defer b.wg.Done(); p.forward(run) }()
		go func() { defer b.wg.Done(); p.carryBack(run) }()
	}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.refreshLoop(run) }()
	b.log.Info("bridge running", "bridge", b.self, "partners", len(b.partners), "metrics", b.MetricsAddr())
	return nil
}

// Shutdown stops the forwarders (what they hold unsettled is read again
// at the next start), closes every connection and the metrics endpoint.
// It is safe to call more than once.
func (b *Bridge) Shutdown(ctx context.Context) error {
	var err error
	b.stopOnce.Do(func() {
		if b.cancel != nil {
			b.cancel()
		}
		if b.http != nil {
			err = b.http.Shutdown(ctx)
		}
		b.wg.Wait()
		for _, p := range b.partners {
			if p.t != nil {
				p.t.Close()
			}
		}
		for id, t := range b.transports {
			if !slices.ContainsFunc(b.partners, func(p *partner) bool { return p.cfg.ID == id && p.t != nil }) {
				t.Close()
			}
		}
		if b.home != nil {
			b.home.Close()
		}
	})
	return err
}

// ID is the bridge's id in the home directory (once started).
func (b *Bridge) ID() string {
	b.dirMu.RLock()
	defer b.dirMu.RUnlock()
	return b.self
}

// directory returns the verified home directory, or nil.
func (b *Bridge) directory() *keys.Directory {
	b.dirMu.RLock()
	defer b.dirMu.RUnlock()
	return b.dir
}

// acceptDirectory verifies a signed home directory against the pinned
// root and the newest version accepted before, and keeps it.
func (b *Bridge) acceptDirectory(data []byte) error {
	b.dirMu.Lock()
	defer b.dirMu.Unlock()
	d, err := keys.VerifyDirectory(data, b.root, b.clock.Now(), b.dirVer)
	if err != nil {
		return err
	}
	self, err := selfIn(d, b.kr)
	if err != nil {
		return err
	}
	v := d.Version()
	b.dir, b.dirVer, b.self = d, &v, self
	return nil
}

// selfIn finds the bridge's entry in d: its identity, with its NKey.
func selfIn(d *keys.Directory, kr *keys.Keyring) (string, error) {
	for _, e := range d.Bridges {
		if e.Identity.Equal(kr.Identity.Public()) {
			if e.NKey != kr.NKeyPublic() {
				return "", fmt.Errorf("%w: the directory lists another NKey for bridge %q", ErrNotABridge, e.ID)
			}
			return e.ID, nil
		}
	}
	return "", fmt.Errorf("%w (fingerprint %s)", ErrNotABridge, kr.Identity.Public().Fingerprint())
}

// checkDirectory checks that every configured partner is a partner of
// the home directory.
func (b *Bridge) checkDirectory() error {
	if err := checkPartners(b.directory(), b.cfg); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	return nil
}

func checkPartners(d *keys.Directory, cfg *Config) error {
	var errs config.Errors
	for i, pc := range cfg.Partners {
		j := slices.IndexFunc(d.Partners, func(p keys.Partner) bool { return p.ID == pc.ID })
		if j < 0 {
			errs.AddErr(fmt.Sprintf("partners[%d].id", i), fmt.Errorf("%q: %w", pc.ID, ErrUnknownPartner))
			continue
		}
		for k, cc := range pc.Countries {
			if !slices.Contains(d.Partners[j].Countries, cc) {
				errs.Add(fmt.Sprintf("partners[%d].countries[%d]", i, k), "the home directory does not give %s %s", pc.ID, cc)
			}
		}
	}
	return errs.Err()
}

// refreshDirectory fetches the home relay's directory and accepts it if
// it verifies and is not older than the one held.
func (b *Bridge) refreshDirectory(ctx context.Context) error {
	data, err := b.home.Directory(ctx)
	if err != nil {
		return err
	}
	err = b.acceptDirectory(data)
	if errors.Is(err, keys.ErrRollback) && b.directory() != nil {
		return nil // the relay serves an older one than we hold; keep ours
	}
	return err
}

func (b *Bridge) refreshLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.clock.After(b.cfg.DirectoryRefresh):
		}
		rctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		if err := b.refreshDirectory(rctx); err != nil && ctx.Err() == nil {
			b.log.Warn("refreshing the home directory", "err", err)
		}
		cancel()
	}
}

// dial makes the transport to a partner's relay.
func (b *Bridge) dial(pc PartnerConfig) (Transport, error) {
	nk := b.kr.NKey
	if pc.NKeyFile != "" {
		var err error
		if nk, err = LoadNKey(pc.NKeyFile); err != nil {
			return nil, err
		}
	}
	tc, err := loadCA(pc.CA)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	bridgeID := pc.BridgeID
	if bridgeID == "" {
		bridgeID = b.ID()
	}
	tcfg := TransportConfig{URLs: pc.URLs, NKey: nk, BridgeID: bridgeID, TLS: tc, Clock: b.clock,
		Logger: b.log.With("relay", "partner", "partner", pc.ID), Retry: b.cfg.Retry}
	if pc.websocket() {
		return NewWebSocket(tcfg)
	}
	return NewNATS(tcfg)
}

// maxNKeyFile bounds what LoadNKey reads: a seed is 58 characters.
const maxNKeyFile = 4096

// LoadNKey reads an NKey seed (a user seed, "SU…") from a file that only
// its owner may read.
func LoadNKey(path string) (nkeys.KeyPair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxNKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(buf) > maxNKeyFile {
		return nil, fmt.Errorf("%s is not an NKey seed file: larger than %d bytes", path, maxNKeyFile)
	}
	kp, err := nkeys.ParseDecoratedNKey(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("%s: not a user NKey seed (SU…)", path)
	}
	return kp, nil
}

// loadCA returns a TLS config trusting the CA in the PEM file at path, or
// nil (the system's roots) for an empty path.
func loadCA(path string) (*tls.Config, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// partnerOf returns the home directory's entry for partner id, or nil.
func (b *Bridge) partnerOf(id string) *keys.Partner {
	d := b.directory()
	if d == nil {
		return nil
	}
	if i := slices.IndexFunc(d.Partners, func(p keys.Partner) bool { return p.ID == id }); i >= 0 {
		return &d.Partners[i]
	}
	return nil
}

// wait waits d on the bridge's clock, or until ctx ends.
func (b *Bridge) wait(ctx context.Context, d time.Duration) {
	t := b.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.Chan():
	}
}
