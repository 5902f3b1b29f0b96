// Package relayconn is the one connection to a Beacon relay that the
// client, the mission console, the bridge and the tests share. It speaks
// the relay's protocol (package [github.com/hrdbeacon/beacon/relay/proto])
// and nothing else: publishing through the ingest, fetching a batch until
// its end marker, settling what was kept, the counting and news services,
// and the chunked directory download. It knows nothing of envelopes or
// plaintext.
//
// # Connecting
//
// [Dial] returns at once and connects in the background, reconnecting
// forever with jittered backoff; [Conn.WaitConnected] waits for a
// connection. A connection never buffers publishes while disconnected: a
// publish then fails at once with [ErrNotConnected], so the caller's own
// durable outbox, not a buffer in memory, holds what waits.
//
// # Trusting nothing
//
// The relay is not trusted for integrity or availability. Every answer is
// bounded before it is read: a fetch takes at most what it asked for, in
// count and in bytes, and fails with [ErrHostile] past that; the directory
// is checked chunk by chunk against its announced size and
// [keys.MaxDirectorySize] while it downloads, and only one download runs
// at a time. The connection ignores the servers a relay announces (a
// relay cannot redirect a client to a server of its choosing) and refuses
// a relay that announces a maximum payload larger than [MaxPayload]: it
// closes the connection for good, and [Conn.WaitConnected] says why.
//
// One limit is not this package's to enforce: nats.go allocates a message
// of the size its protocol line declares before any of it is read, so a
// relay running modified server code could make the client allocate up to
// the size it declares once per message. An unmodified nats-server never
// delivers more than the maximum payload it announced, which is checked.
//
// # Reconnecting
//
// Attempts to reconnect back off from 250 ms to 30 s ([ReconnectDelay]),
// except while [Config.Urgent] reports that something waits to be sent:
// then they come at most a second apart, so a queued alert leaves within
// a second of the relay coming back.
package relayconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// Errors callers branch on.
var (
	// ErrNotConnected means the relay could not be reached in time, or the
	// connection is down now.
	ErrNotConnected = errors.New("relay not reachable")
	// ErrHostile means the relay answered outside the protocol: more than
	// was asked, a malformed answer, a directory larger than announced.
	// An honest relay never does; it is worth telling the user.
	ErrHostile = errors.New("the relay broke the protocol")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("relay connection closed")
)

// MaxPayload is the largest maximum payload a relay may announce. A relay
// needs about 130 KiB (the largest envelope and its headers); a relay that
// announces much more is not one this client was built for.
const MaxPayload = 8 << 20

// requestTimeout bounds a request that the caller gave no deadline.
const requestTimeout = 10 * time.Second

// Config configures a connection.
type Config struct {
	// URLs of the relay: nats://, tls://, ws:// or wss://. They are tried
	// in turn.
	URLs []string
	// NKey is the connection key. It is never an identity key: the relay
	// chooses the nonce it signs.
	NKey nkeys.KeyPair
	// Name is the connection name the relay sees ("beacon-client").
	Name string
	// Clock drives the waits and backoffs; nil is the real clock.
	Clock clockwork.Clock
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// OnConnect, if set, is called after every connect and reconnect, on
	// the connection's callback goroutine: it must not block.
	OnConnect func()
	// OnDisconnect, if set, is called when the connection is lost, on the
	// same goroutine, with the reason; it must not block.
	OnDisconnect func(error)
	// Urgent, if set, reports whether something waits to be sent; while
	// it does, reconnect attempts come at most UrgentReconnect apart.
	Urgent func() bool
	// TLS, if set, is the TLS configuration for tls:// URLs (a private CA,
	// a client certificate).
	TLS *tls.Config
	// Dialer, if set, makes every connection in place of TCP: the
	// bridge's WebSocket transport.
	Dialer nats.CustomDialer
	// ReconnectDelay, if set, replaces [ReconnectDelay]: the bridge
	// reconnects to a partner on its own retry schedule.
	ReconnectDelay func(attempt int) time.Duration
}

// UrgentReconnect bounds the delay between reconnect attempts while
// something waits to be sent. A refused TCP connection a second costs a
// client nothing, and a relay that restarts meets its waiting clients
// spread over that second by the jitter.
const UrgentReconnect = time.Second

// A Conn is a connection to a relay. It is safe for concurrent use.
type Conn struct {
	nc    *nats.Conn
	mbox  routing.Mailbox
	clock clockwork.Clock
	log   *slog.Logger
	owned bool // Close closes nc

	mu        sync.Mutex
	connected chan struct{} // closed while connected; replaced on disconnect
	closed    chan struct{}
	closeOnce sync.Once

	dirOnce dirFlight
	// refused is set once the relay broke the protocol at connect time
	// (an implausible maximum payload): the connection is closed for good.
	refused  error
	refusedC chan struct{} // closed when refused is set
	wg       sync.WaitGroup
	adm      admissionState
}

// Dial starts connecting to the relay and returns at once.
func Dial(cfg Config) (*Conn, error) {
	if cfg.NKey == nil {
		return nil, errors.New("relayconn: no connection key")
	}
	if len(cfg.URLs) == 0 {
		return nil, errors.New("relayconn: no relay URL")
	}
	pub, err := cfg.NKey.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("relayconn: connection key: %w", err)
	}
	if cfg.Name == "" {
		cfg.Name = "beacon-client"
	}
	c := newConn(proto.MailboxFor(pub), cfg.Clock, cfg.Logger)
	c.owned = true
	onUp := func(nc *nats.Conn) {
		if mp := nc.MaxPayload(); mp > MaxPayload {
			c.log.Warn("relay announces an implausible maximum payload; disconnecting", "max_payload", mp)
			c.refuse(fmt.Errorf("%w: it announces a maximum payload of %d bytes, more than the %d any relay needs", ErrHostile, mp, MaxPayload))
			// Closing from the callback would wait for the callback.
			c.wg.Go(nc.Close)
			return
		}
		c.log.Info("connected", "url", nc.ConnectedUrlRedacted())
		c.setConnected(true)
		if cfg.OnConnect != nil {
			cfg.OnConnect()
		}
	}
	reconnect := cfg.ReconnectDelay
	if reconnect == nil {
		reconnect = ReconnectDelay
	}
	var extra []nats.Option
	if cfg.TLS != nil {
		extra = append(extra, nats.Secure(cfg.TLS))
	}
	if cfg.Dialer != nil {
		extra = append(extra, nats.SetCustomDialer(cfg.Dialer))
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), append(extra,
		nats.Nkey(pub, cfg.NKey.Sign),
		nats.CustomInboxPrefix(proto.ReplyPrefix(c.mbox)),
		nats.Name(cfg.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		// No buffering while disconnected: a publish then fails at once
		// and the message stays in the caller's outbox.
		nats.ReconnectBufSize(-1),
		// A relay refuses connections while it starts; keep trying.
		nats.IgnoreAuthErrorAbort(),
		// The relay's cluster may announce its other nodes; a client
		// connects only where it was told to.
		nats.IgnoreDiscoveredServers(),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			if cfg.Urgent != nil && cfg.Urgent() {
				return jitter(min(reconnect(attempts), UrgentReconnect), UrgentReconnect)
			}
			return reconnect(attempts)
		}),
		nats.ConnectHandler(onUp),
		nats.ReconnectHandler(onUp),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Info("disconnected", "err", err)
			c.setConnected(false)
			if cfg.OnDisconnect != nil {
				cfg.OnDisconnect(err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.log.Warn("relay error", "err", err)
		}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("relayconn: %w", err)
	}
	c.nc = nc
	return c, nil
}

// New wraps a connection that is already established with the relay's
// reply prefix for mbox (tests that also need the raw connection).
func New(nc *nats.Conn, mbox routing.Mailbox, clock clockwork.Clock) *Conn {
	c := newConn(mbox, clock, nil)
	c.nc = nc
	if nc.IsConnected() {
		c.setConnected(true)
	}
	return c
}

func newConn(mbox routing.Mailbox, clock clockwork.Clock, log *slog.Logger) *Conn {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Conn{mbox: mbox, clock: clock, log: log, connected: make(chan struct{}), closed: make(chan struct{}),
		refusedC: make(chan struct{})}
}

func (c *Conn) setConnected(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.connected:
		if !up {
			c.connected = make(chan struct{})
		}
	default:
		if up {
			close(c.connected)
		}
	}
}

// Mailbox is the connection's mailbox: where replies to it are stored.
func (c *Conn) Mailbox() routing.Mailbox { return c.mbox }

// NATS returns the underlying connection, for tests.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// Connected reports whether the connection is up now.
func (c *Conn) Connected() bool { return c.nc != nil && c.nc.IsConnected() }

// WaitConnected waits until the connection is up, or ctx ends
// ([ErrNotConnected]). A relay refused at connect time makes it fail at
// once with [ErrHostile] and the reason.
func (c *Conn) WaitConnected(ctx context.Context) error {
	c.mu.Lock()
	ch, refused := c.connected, c.refused
	c.mu.Unlock()
	if refused != nil {
		return refused
	}
	select {
	case <-ch:
		return nil
	case <-c.closed:
		return ErrClosed
	case <-c.refusedCh():
		return c.Refused()
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
	}
}

// Refused returns why the connection refused the relay for good (an
// [ErrHostile]), or nil.
func (c *Conn) Refused() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

func (c *Conn) refuse(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refused == nil {
		c.refused = err
		close(c.refusedC)
	}
}

func (c *Conn) refusedCh() <-chan struct{} { return c.refusedC }

// Close closes the connection (if Dial made it). Calls in flight return
// ErrClosed or a connection error.
func (c *Conn) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		if c.owned && c.nc != nil {
			c.nc.Close()
		}
		c.wg.Wait()
	})
}

// usable says why the connection cannot be used now, or nil.
func (c *Conn) usable() error {
	switch {
	case c.isClosed():
		return ErrClosed
	case c.Refused() != nil:
		return c.Refused()
	case !c.Connected():
		return ErrNotConnected
	}
	return nil
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// withTimeout gives ctx the default request deadline if it has none.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// request sends one request under the connection's ingest prefix and
// returns the one answer.
func (c *Conn) request(ctx context.Context, target string, body []byte) (*nats.Msg, error) {
	return c.requestMsg(ctx, target, body, nil)
}

// requestMsg is request with headers.
func (c *Conn) requestMsg(ctx context.Context, target string, body []byte, hdr nats.Header) (*nats.Msg, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := c.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: proto.Ingest(c.mbox, target), Data: body, Header: hdr})
	if err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) ||
			errors.Is(err, nats.ErrDisconnected) {
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, err)
		}
		return nil, err
	}
	return m, nil
}

// Publish sends data to an ingest target and waits for the relay's reply:
// where it was stored, or a refusal as *proto.Error. When the relay asks
// for a proof of work it solves the challenge and sends again (see
// "Admission" in admission.go).
func (c *Conn) Publish(ctx context.Context, target string, data []byte) (*proto.Reply, error) {
	return c.publishAdmitted(ctx, target, data)
}

// Send publishes data to an ingest target without waiting for the reply.
func (c *Conn) Send(target string, data []byte) error {
	if err := c.usable(); err != nil {
		return err
	}
	return c.nc.PublishRequest(proto.Ingest(c.mbox, target), c.nc.NewRespInbox(), data)
}

// Call sends a service request that is answered by one proto.SvcReply.
func (c *Conn) Call(ctx context.Context, target string, body []byte) (*proto.SvcReply, error) {
	m, err := c.request(ctx, target, body)
	if err != nil {
		return nil, err
	}
	r, err := proto.ParseSvcReply(m.Data)
	if errors.Is(err, proto.ErrBadReply) {
		return nil, fmt.Errorf("%w: %w", ErrHostile, err)
	}
	return r, err
}

// Settle tells the relay the fetched messages with these tokens were kept.
// The relay answers once its streams applied it, so a count read
// afterwards no longer includes them (where JetStream confirms nothing —
// a consumer gone or without a leader — it answers after a short wait).
// A lost settle only means the relay offers them again, which the
// reader's seen-set drops.
func (c *Conn) Settle(ctx context.Context, tokens []string) error {
	for len(tokens) > 0 {
		n := min(len(tokens), proto.MaxSettle)
		if _, err := c.Call(ctx, proto.SvcSettleTarget, []byte(strings.Join(tokens[:n], "\n"))); err != nil {
			return err
		}
		tokens = tokens[n:]
	}
	return nil
}

// Pending returns how many messages wait in src.
func (c *Conn) Pending(ctx context.Context, src proto.Source) (uint64, error) {
	r, err := c.Call(ctx, proto.PendingTarget(src), nil)
	if err != nil {
		return 0, err
	}
	return r.Count, nil
}
