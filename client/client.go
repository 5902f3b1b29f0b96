package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/jonboulle/clockwork"

	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/internal/state"
	"github.com/hrdbeacon/beacon/keys"
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
	// Clock is the clock every timing decision uses (directory expiry,
	// freshness, the outbox's retries); nil is the real clock.
	Clock clockwork.Clock
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
	ErrNotConnected = relayconn.ErrNotConnected
	// ErrNoReplyMailbox means a received message gives no mailbox to
	// answer to.
	ErrNoReplyMailbox = errors.New("the sender gave no reply mailbox")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("client closed")
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
	log   *slog.Logger
	clock clockwork.Clock

	conn   *relayconn.Conn
	st     *state.Dir
	seen   *state.Seen
	outbox *state.Outbox
	cases  *caseLog

	dirMu  sync.RWMutex
	dir    *keys.Directory
	dirVer *keys.DirVersion // the newest directory version accepted, even if expired

	flushMu   sync.Mutex
	delivered atomic.Int64

	// cursorMu guards the mailbox cursor: the stream sequence of the last
	// mailbox message this client was handed, so that one it could not
	// keep is not offered again at once (see Receive).
	cursorMu sync.Mutex
	cursor   uint64

	kick      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Open loads the client's state and starts connecting to the relay in the
// background, retrying forever with backoff. It returns at once: a client
// whose relay is down still seals and queues.
func Open(cfg Config) (*Client, error) {
	if cfg.Keyring == nil {
		return nil, errors.New("client: no keyring")
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, id: cfg.Keyring.Identity, role: cfg.Keyring.Role, log: cfg.Logger, clock: cfg.Clock,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	var err error
	if c.st, err = state.Open(cfg.StateDir, c.id.DeriveKey("client-state")); err != nil {
		return nil, err
	}
	fail := func(err error) (*Client, error) {
		c.st.Close()
		return nil, err
	}
	if c.seen, err = c.st.Seen("seen", seenRetention, c.clock); err != nil {
		return fail(err)
	}
	c.outbox = c.st.Outbox()
	if c.cases, err = openCaseLog(c.st); err != nil {
		return fail(err)
	}
	if err := c.st.Do(func() error {
		if err := c.seen.Sync(); err != nil {
			return err
		}
		return c.cases.sync()
	}); err != nil {
		return fail(fmt.Errorf("client: %w", err))
	}
	if err := c.loadDirectory(); err != nil {
		return fail(err)
	}
	c.conn, err = relayconn.Dial(relayconn.Config{URLs: cfg.URLs, NKey: cfg.Keyring.NKey, Name: "beacon-client",
		Clock: c.clock, Logger: c.log, OnConnect: c.kickOutbox})
	if err != nil {
		return fail(fmt.Errorf("client: %w", err))
	}
	c.wg.Add(1)
	go c.outboxLoop()
	return c, nil
}

// Mailbox is where replies to this client arrive.
func (c *Client) Mailbox() routing.Mailbox { return c.conn.Mailbox() }

// Identity is the client's public identity.
func (c *Client) Identity() *keys.PublicIdentity { return c.id.Public() }

// Close stops the background work and the connection and waits for them.
// Queued messages stay in the outbox for next time.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.wg.Wait()
		c.conn.Close()
		c.st.Close()
	})
}

func (c *Client) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// WaitConnected waits until the client is connected to the relay, or ctx
// ends ([ErrNotConnected]).
func (c *Client) WaitConnected(ctx context.Context) error { return c.conn.WaitConnected(ctx) }

// Connected reports whether the client is connected now.
func (c *Client) Connected() bool { return c.conn.Connected() }

// Directory returns the verified directory, or ErrNoDirectory.
func (c *Client) Directory() (*keys.Directory, error) {
	c.dirMu.RLock()
	defer c.dirMu.RUnlock()
	if c.dir == nil {
		return nil, ErrNoDirectory
	}
	return c.dir, nil
}

const (
	dirFile     = "directory.yaml"
	dirVerFile  = "directory.version"
	dirFileMode = false // both are public: stored unsealed
)

// loadDirectory verifies the directory cached in the state directory and
// the one given in the config, keeping the newer. An expired directory is
// not used, but its version is remembered, so a relay cannot roll the
// client back to an older one; the next refresh from the relay replaces
// it. A cached directory that does not verify means the device's files
// were changed, and Open fails.
func (c *Client) loadDirectory() error {
	b, err := c.st.ReadFile(dirVerFile, dirFileMode)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		v, err := keys.ParseDirVersion(string(b))
		if err != nil {
			return fmt.Errorf("client: %s is damaged: %w", dirVerFile, err)
		}
		c.dirVer = &v
	}
	if b, err := c.st.ReadFile(dirFile, dirFileMode); err == nil {
		d, err := keys.VerifyDirectory(b, c.cfg.Root, c.clock.Now(), c.dirVer)
		switch {
		case errors.Is(err, keys.ErrExpired):
			c.log.Warn("the cached directory has expired; waiting for the relay's", "err", err)
		case err != nil:
			return fmt.Errorf("client: cached directory: %w", err)
		default:
			v := d.Version()
			c.dir, c.dirVer = d, &v
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

// acceptDirectory verifies b against the pinned root and the newest
// version already accepted (an older serial is refused) and stores it.
func (c *Client) acceptDirectory(b []byte) error {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	d, err := keys.VerifyDirectory(b, c.cfg.Root, c.clock.Now(), c.dirVer)
	if err != nil {
		return err
	}
	if c.dir != nil && d.Hash == c.dir.Hash {
		return nil
	}
	v := d.Version()
	if err := c.st.Do(func() error {
		if err := c.st.WriteFile(dirFile, b, dirFileMode); err != nil {
			return err
		}
		return c.st.WriteFile(dirVerFile, []byte(v.String()+"\n"), dirFileMode)
	}); err != nil {
		return err
	}
	c.dir, c.dirVer = d, &v
	return nil
}

// RefreshDirectory fetches the directory from the relay and accepts it if
// it verifies and is not older than the one held.
func (c *Client) RefreshDirectory(ctx context.Context) error {
	b, err := c.conn.Directory(ctx)
	if err != nil {
		return err
	}
	return c.acceptDirectory(b)
}
