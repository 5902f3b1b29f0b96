package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// Config configures a Client.
type Config struct {
	// URLs of the relay: nats://, tls://, ws:// or wss:// (the last two for
	// networks that only let HTTPS through). The client tries them in turn.
	URLs []string
	// Keyring holds the identity and the NKey to connect with.
	Keyring *keys.Keyring
	// Root is the pinned fingerprint of the directory's root key.
	Root keys.Fingerprint
	// StateDir holds the encrypted outbox, seen-set and cases, and the
	// directory. It is created with mode 0700.
	StateDir string
	// Logger receives connection events; nil discards them. It never
	// receives plaintext or keys.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Directory, if set, is a signed directory obtained out of band (at
	// setup); it is verified like one fetched from the relay.
	Directory []byte
}

// Errors callers branch on.
var (
	// ErrNoDirectory means no verified directory is available yet: the
	// client has never reached the relay and was given none.
	ErrNoDirectory = errors.New("no verified directory yet")
	// ErrNotConnected means the relay could not be reached in time.
	ErrNotConnected = errors.New("relay not reachable")
	// ErrNoReplyMailbox means a received message gives no mailbox to
	// answer to.
	ErrNoReplyMailbox = errors.New("the sender gave no reply mailbox")
)

// A CountryNotCoveredError says no mission covers the country, and which
// countries are covered.
type CountryNotCoveredError struct {
	Country string
	Covered []string
}

func (e *CountryNotCoveredError) Error() string {
	return fmt.Sprintf("no mission covers %q; covered countries: %v", e.Country, e.Covered)
}

// A Client is one party's connection to Beacon: a defender, or a mission,
// partner or bridge when its keyring's role says so. It is safe for
// concurrent use.
type Client struct {
	cfg   Config
	id    *keys.Identity
	role  keys.Role
	mbox  routing.Mailbox
	store *store
	log   *slog.Logger
	now   func() time.Time

	nc        *nats.Conn
	connected chan struct{} // closed on first connect; replaced on disconnect
	connMu    sync.Mutex

	dirMu sync.RWMutex
	dir   *keys.Directory
	seen  *keys.Seen // the newest directory version accepted, even if expired

	flushMu   sync.Mutex
	delivered atomic.Int64

	casesMu sync.Mutex
	cases   *cases
	kick    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
}

// Open loads the client's state and starts connecting to the relay in the
// background, retrying forever with backoff. It returns at once: a client
// whose relay is down still seals and queues.
func Open(cfg Config) (*Client, error) {
	if cfg.Keyring == nil {
		return nil, errors.New("client: no keyring")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, id: cfg.Keyring.Identity, role: cfg.Keyring.Role, log: cfg.Logger, now: cfg.Now,
		mbox: proto.MailboxFor(cfg.Keyring.NKeyPublic()), connected: make(chan struct{}),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	var err error
	if c.store, err = openStore(cfg.StateDir, c.id, c.now); err != nil {
		return nil, err
	}
	if err := c.loadDirectory(); err != nil {
		c.store.close()
		return nil, err
	}
	if err := c.loadCases(); err != nil {
		c.store.close()
		return nil, err
	}
	if err := c.connect(); err != nil {
		c.store.close()
		return nil, err
	}
	c.wg.Add(1)
	go c.outboxLoop()
	return c, nil
}

// Mailbox is where replies to this client arrive.
func (c *Client) Mailbox() routing.Mailbox { return c.mbox }

// Identity is the client's public identity.
func (c *Client) Identity() *keys.PublicIdentity { return c.id.Public() }

// Close stops the background work and the connection. Queued messages stay
// in the outbox for next time.
func (c *Client) Close() {
	select {
	case <-c.done:
		return
	default:
	}
	close(c.done)
	c.wg.Wait()
	c.nc.Close()
	c.store.close()
}

// backoff is the reconnect delay: exponential from 250 ms to 30 s, with
// jitter so a relay restart is not met by every client at once.
func backoff(attempts int) time.Duration {
	d := 250 * time.Millisecond << min(attempts, 7)
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

func (c *Client) connect() error {
	kp := c.cfg.Keyring.NKey
	pub := c.cfg.Keyring.NKeyPublic()
	onUp := func(nc *nats.Conn) {
		c.log.Info("connected", "url", nc.ConnectedUrlRedacted())
		c.connMu.Lock()
		select {
		case <-c.connected:
		default:
			close(c.connected)
		}
		c.connMu.Unlock()
		c.kickOutbox()
	}
	nc, err := nats.Connect(joinURLs(c.cfg.URLs),
		nats.Nkey(pub, kp.Sign),
		nats.CustomInboxPrefix(proto.InboxPrefix(c.mbox.String())),
		nats.Name("beacon-client"),
		nats.RetryOnFailedConnect(true),
		// No buffering while disconnected: a publish then fails at once and
		// the message stays in the outbox, which survives a restart.
		nats.ReconnectBufSize(-1),
		nats.MaxReconnects(-1),
		// A relay refuses connections while it starts; keep trying.
		nats.IgnoreAuthErrorAbort(),
		nats.CustomReconnectDelay(backoff),
		nats.ConnectHandler(onUp),
		nats.ReconnectHandler(onUp),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Info("disconnected", "err", err)
			c.connMu.Lock()
			select {
			case <-c.connected:
				c.connected = make(chan struct{})
			default:
			}
			c.connMu.Unlock()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.log.Warn("relay error", "err", err)
		}),
	)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.nc = nc
	return nil
}

func joinURLs(urls []string) string {
	s := ""
	for i, u := range urls {
		if i > 0 {
			s += ","
		}
		s += u
	}
	return s
}

// WaitConnected waits until the client is connected to the relay, or ctx
// ends ([ErrNotConnected]).
func (c *Client) WaitConnected(ctx context.Context) error {
	c.connMu.Lock()
	ch := c.connected
	c.connMu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
	}
}

// Connected reports whether the client is connected now.
func (c *Client) Connected() bool { return c.nc.IsConnected() }

// Directory returns the verified directory, or ErrNoDirectory.
func (c *Client) Directory() (*keys.Directory, error) {
	c.dirMu.RLock()
	defer c.dirMu.RUnlock()
	if c.dir == nil {
		return nil, ErrNoDirectory
	}
	return c.dir, nil
}

func (c *Client) dirPath() string { return filepath.Join(c.cfg.StateDir, "directory.yaml") }

// loadDirectory verifies the directory cached in the state directory and
// the one given in the config, keeping the newer. An expired directory is
// not used, but its serial is remembered, so a relay cannot roll the client
// back to an older version; the next refresh from the relay replaces it. A
// cached directory that does not verify means the device's files were
// changed, and Open fails.
func (c *Client) loadDirectory() error {
	seen, err := c.readSeen()
	if err != nil {
		return err
	}
	c.seen = seen
	if b, err := os.ReadFile(c.dirPath()); err == nil {
		d, err := keys.VerifyDirectory(b, c.cfg.Root, c.now(), c.seen)
		switch {
		case errors.Is(err, keys.ErrExpired):
			c.log.Warn("the cached directory has expired; waiting for the relay's", "err", err)
		case err != nil:
			return fmt.Errorf("client: cached directory: %w", err)
		default:
			c.dir = d
			c.seen = &keys.Seen{Serial: d.Serial, Hash: d.Hash}
		}
	}
	if len(c.cfg.Directory) > 0 {
		err := c.acceptDirectory(c.cfg.Directory)
		switch {
		case errors.Is(err, keys.ErrRollback), errors.Is(err, keys.ErrExpired):
			c.log.Warn("ignoring the directory given at setup", "err", err)
		case err != nil:
			return fmt.Errorf("client: directory: %w", err)
		}
	}
	return nil
}

func (c *Client) seenPath() string { return filepath.Join(c.cfg.StateDir, "directory.seen") }

// readSeen reads the newest directory version accepted: "<serial> sha256:<hex>".
func (c *Client) readSeen() (*keys.Seen, error) {
	b, err := os.ReadFile(c.seenPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var serial uint64
	var hash string
	if _, err := fmt.Sscanf(string(b), "%d sha256:%s", &serial, &hash); err != nil {
		return nil, fmt.Errorf("client: %s is damaged", c.seenPath())
	}
	h, err := hex.DecodeString(hash)
	if err != nil || len(h) != 32 {
		return nil, fmt.Errorf("client: %s is damaged", c.seenPath())
	}
	return &keys.Seen{Serial: serial, Hash: [32]byte(h)}, nil
}

// acceptDirectory verifies b against the pinned root and the newest
// version already accepted (an older serial is refused) and stores it.
func (c *Client) acceptDirectory(b []byte) error {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	d, err := keys.VerifyDirectory(b, c.cfg.Root, c.now(), c.seen)
	if err != nil {
		return err
	}
	if c.dir != nil && d.Hash == c.dir.Hash {
		return nil
	}
	if err := keys.WriteFileAtomic(c.dirPath(), b, 0o600, true); err != nil {
		return err
	}
	seen := fmt.Sprintf("%d %s\n", d.Serial, keys.HashString(d.Hash))
	if err := keys.WriteFileAtomic(c.seenPath(), []byte(seen), 0o600, true); err != nil {
		return err
	}
	c.dir, c.seen = d, &keys.Seen{Serial: d.Serial, Hash: d.Hash}
	return nil
}

// RefreshDirectory fetches the directory from the relay and accepts it if
// it verifies and is not older than the one held.
func (c *Client) RefreshDirectory(ctx context.Context) error {
	var buf []byte
	for i, chunks := 0, 1; i < chunks; i++ {
		m, err := c.nc.RequestWithContext(ctx, proto.Ingest(c.mbox.String(), proto.SvcDirectory), []byte(strconv.Itoa(i)))
		if err != nil {
			return fmt.Errorf("fetching the directory: %w", err)
		}
		if m.Header.Get(proto.HeaderDirChunks) == "" {
			return fmt.Errorf("fetching the directory: %w", svcError(m.Data))
		}
		n, err := strconv.Atoi(m.Header.Get(proto.HeaderDirChunks))
		if err != nil || n < 1 || n > keys.MaxDirectorySize/proto.DirectoryChunkSize+1 {
			return errors.New("fetching the directory: bad chunk count")
		}
		if i == 0 {
			chunks = n
		} else if n != chunks {
			return errors.New("fetching the directory: it changed while being fetched; try again")
		}
		buf = append(buf, m.Data...)
	}
	return c.acceptDirectory(buf)
}
