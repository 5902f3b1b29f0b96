package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
	// setup); it is verified like one fetched from the relay. Open fails
	// if it has expired ([keys.ErrExpired]) or is older than one this
	// device has seen ([keys.ErrRollback]).
	Directory []byte
	// OnEvent, if set, is told what the client's background work does and
	// finds as it happens ([Event]). It is called on the client's own
	// goroutines and must not block.
	OnEvent func(Event)
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

	dirMu   sync.RWMutex
	dir     *keys.Directory
	dirVer  *keys.DirVersion       // the newest directory version accepted, even if expired
	expired *DirectoryExpiredError // the cached directory had expired when it was loaded
	refused *RelayDirectoryError   // the relay's last directory, refused; nil once one is accepted

	// held are the messages held back for want of a directory naming
	// their signer (see holdBack); heldBack counts them for Status.
	heldMu             sync.Mutex
	held               map[routing.ID]bool
	heldBack           atomic.Int64
	lastUnknownRefresh time.Time
	// openWork bounds the decryption work of one batch (maxOpenWork;
	// tests lower it).
	openWork int
	// urgent is set while the outbox holds something to send: the
	// connection then retries at least every second.
	urgent atomic.Bool

	flushMu   sync.Mutex
	delivered atomic.Int64

	// cursorMu guards the mailbox cursor: the stream sequence of the last
	// mailbox message this client was handed, so that one it could not
	// keep is not offered again at once (see Receive).
	cursorMu sync.Mutex
	cursor   uint64

	kick chan struct{}
	junk chan []string // settle tokens of junk alerts, for junkLoop
	done chan struct{}
	// base is cancelled by Close: every background call ends with it.
	base      context.Context
	cancel    context.CancelFunc
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
		kick: make(chan struct{}, 1), junk: make(chan []string, junkQueue), done: make(chan struct{}), openWork: maxOpenWork,
		held: map[routing.ID]bool{}}
	c.base, c.cancel = context.WithCancel(context.Background())
	var err error
	if c.st, err = state.Open(cfg.StateDir, c.id.DeriveKey("client-state")); err != nil {
		return nil, err
	}
	fail := func(err error) (*Client, error) {
		c.cancel()
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
	if _, err := c.listOutbox(); err != nil { // sets urgent
		return fail(fmt.Errorf("client: %w", err))
	}
	c.conn, err = relayconn.Dial(relayconn.Config{URLs: cfg.URLs, NKey: cfg.Keyring.NKey, Name: "beacon-client",
		Clock: c.clock, Logger: c.log, Urgent: c.urgent.Load,
		OnConnect: func() {
			c.emit(Event{Kind: EventConnected})
			c.kickOutbox()
		},
		OnDisconnect: func(err error) { c.emit(Event{Kind: EventDisconnected, Err: err}) },
	})
	if err != nil {
		return fail(fmt.Errorf("client: %w", err))
	}
	c.wg.Add(2)
	go c.outboxLoop()
	go c.junkLoop()
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
		c.cancel()
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

// Directory returns the verified directory while it is current. Once it
// has expired (on the client's clock, also while the client runs) the
// error is a *DirectoryExpiredError with its serial and expiry, which
// matches ErrNoDirectory and keys.ErrExpired; without any directory it is
// ErrNoDirectory.
func (c *Client) Directory() (*keys.Directory, error) {
	c.dirMu.RLock()
	defer c.dirMu.RUnlock()
	switch {
	case c.dir != nil && c.clock.Now().Before(c.dir.Expires):
		return c.dir, nil
	case c.dir != nil:
		return nil, &DirectoryExpiredError{Serial: c.dir.Serial, Expired: c.dir.Expires}
	case c.expired != nil:
		return nil, c.expired
	}
	return nil, ErrNoDirectory
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
// were changed, and Open fails; so does a directory given in the config
// that has expired or is older than one seen, so that the caller can say
// so rather than run on something other than what it was given.
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
			e, verr := verifyExpired(b, c.cfg.Root, c.dirVer)
			if verr != nil {
				return fmt.Errorf("client: cached directory: %w", verr)
			}
			c.expired = e
		case err != nil:
			return fmt.Errorf("client: cached directory: %w", err)
		default:
			v := d.Version()
			c.dir, c.dirVer = d, &v
		}
	}
	if len(c.cfg.Directory) > 0 {
		if err := c.acceptDirectory(c.cfg.Directory); err != nil {
			return fmt.Errorf("client: the directory given: %w", err)
		}
	}
	return nil
}

// signatureLine starts the line keys.SignDirectory ends a directory with.
const signatureLine = "\n# beacon-directory-signature: "

// verifyExpired verifies an expired directory as of a moment before it
// expired, so that what Directory says of it (its serial and expiry) is
// what the root signed.
func verifyExpired(b []byte, root keys.Fingerprint, prev *keys.DirVersion) (*DirectoryExpiredError, error) {
	i := bytes.LastIndex(b, []byte(signatureLine))
	if i < 0 {
		return nil, keys.ErrBadSignature
	}
	r, err := keys.ParseRoster(b[:i+1])
	if err != nil {
		return nil, err
	}
	d, err := keys.VerifyDirectory(b, root, r.Expires.Add(-time.Second), prev)
	if err != nil {
		return nil, err
	}
	return &DirectoryExpiredError{Serial: d.Serial, Expired: d.Expires}, nil
}

// acceptDirectory verifies b against the pinned root and the newest
// version already accepted (an older serial is refused) and stores it.
func (c *Client) acceptDirectory(b []byte) error {
	v, changed, err := c.storeDirectory(b)
	if err != nil || !changed {
		return err
	}
	// Mailbox messages held back for want of their signer are offered
	// again: this version may name it.
	c.RewindMailbox()
	c.emit(Event{Kind: EventDirectory, Directory: &v})
	return nil
}

// storeDirectory verifies b and, if it is a newer version, stores it.
func (c *Client) storeDirectory(b []byte) (v keys.DirVersion, changed bool, err error) {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	d, err := keys.VerifyDirectory(b, c.cfg.Root, c.clock.Now(), c.dirVer)
	if err != nil {
		return v, false, err
	}
	if c.dir != nil && d.Hash == c.dir.Hash {
		c.refused = nil
		return d.Version(), false, nil
	}
	v = d.Version()
	if err := c.st.Do(func() error {
		if err := c.st.WriteFile(dirFile, b, dirFileMode); err != nil {
			return err
		}
		return c.st.WriteFile(dirVerFile, []byte(v.String()+"\n"), dirFileMode)
	}); err != nil {
		return v, false, err
	}
	c.dir, c.dirVer, c.expired, c.refused = d, &v, nil, nil
	return v, true, nil
}

// RefreshDirectory fetches the directory from the relay and accepts it if
// it verifies and is not older than the one held. A directory the relay
// served that is refused comes back as a *RelayDirectoryError (a security
// event, also kept in [Status] and sent as [EventDirectoryRefused]); a
// relay that could not be asked is a plain error.
func (c *Client) RefreshDirectory(ctx context.Context) error {
	b, err := c.conn.Directory(ctx)
	if err != nil && !errors.Is(err, relayconn.ErrHostile) {
		return err
	}
	if err == nil {
		err = c.acceptDirectory(b)
	}
	if !refusedDirectory(err) {
		return err
	}
	c.dirMu.Lock()
	re := &RelayDirectoryError{Err: err, At: c.clock.Now()}
	if c.dirVer != nil {
		v := *c.dirVer
		re.Held = &v
	}
	c.refused = re
	c.dirMu.Unlock()
	c.log.Warn("the relay served a directory this client refuses", "err", err)
	c.emit(Event{Kind: EventDirectoryRefused, Err: re})
	return re
}

// refusedDirectory reports whether err says the directory itself was
// wrong, rather than that it could not be had or stored.
func refusedDirectory(err error) bool {
	for _, e := range []error{keys.ErrUntrustedRoot, keys.ErrBadSignature, keys.ErrInvalidDirectory,
		keys.ErrExpired, keys.ErrRollback, relayconn.ErrHostile} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
