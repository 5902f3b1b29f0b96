package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A Relay is one Beacon relay node: an embedded nats-server with
// JetStream, the authenticator that maps NKeys to roles, the ingest service
// that admits only well-formed envelopes, and the metrics endpoint.
//
// Lifecycle: New, then Start, then wait on Ready (or Start's error), then
// Shutdown. A Relay is not restartable; make a new one.
type Relay struct {
	cfg   *Config
	log   *slog.Logger
	clock clockwork.Clock

	lock    *dirLock
	opts    *server.Options
	srv     *server.Server
	auth    *authenticator
	nc      *nats.Conn // the relay's own in-process connection
	ncIn    *nats.Conn // the one the walk-ins' ingest subscriptions are on
	ncSys   *nats.Conn // in the system account: connection events
	js      jetstream.JetStream
	ingest  *ingest
	metrics *metrics
	http    *http.Server
	httpLn  net.Listener

	ready     chan struct{}
	stopOnce  sync.Once
	wg        sync.WaitGroup
	startOnce sync.Once
}

// Option adjusts a Relay for tests and embedding.
type Option func(*Relay)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(r *Relay) { r.log = l } }

// WithClock injects the clock every timing decision of the relay uses:
// freshness, rate limits, directory expiry, long-poll waits. Tests pass a
// clockwork.FakeClock.
func WithClock(c clockwork.Clock) Option { return func(r *Relay) { r.clock = c } }

// New prepares a relay from cfg, which it validates ([Config.Validate]).
// It locks the data directory and loads the directory file, but opens no
// port. [Check] makes the same checks without the lock.
func New(cfg *Config, opts ...Option) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("relay: config: %w", err)
	}
	r := &Relay{cfg: cfg, log: slog.New(slog.DiscardHandler), clock: clockwork.NewRealClock(), ready: make(chan struct{})}
	for _, o := range opts {
		o(r)
	}
	var err error
	if r.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if r.auth, err = newAuthenticator(cfg, r.clock); err != nil {
		r.lock.release()
		return nil, err
	}
	r.metrics = newMetrics()
	return r, nil
}

// Start starts the server, waits until JetStream is ready, creates or
// updates the streams and starts the ingest service. It returns once the
// relay serves, or with the reason it cannot.
func (r *Relay) Start(ctx context.Context) error {
	err := errors.New("relay: Start called twice")
	r.startOnce.Do(func() { err = r.start(ctx) })
	if err != nil {
		r.Shutdown(context.Background())
	}
	return err
}

func (r *Relay) start(ctx context.Context) error {
	opts, err := r.serverOptions()
	if err != nil {
		return err
	}
	if err := checkPorts(r.cfg); err != nil {
		return err
	}
	r.opts = opts
	if r.srv, err = server.NewServer(opts); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	r.srv.SetLoggerV2(&natsLogger{r.log.With("component", "nats")}, false, false, false)
	go r.srv.Start()
	if !r.srv.ReadyForConnections(10 * time.Second) {
		return errors.New("relay: server not ready for connections after 10s")
	}
	r.auth.srv.Store(r.srv)
	if r.nc, err = r.internalConn("beacon-relay-internal"); err != nil {
		return err
	}
	if r.ncIn, err = r.internalConn("beacon-relay-ingest"); err != nil {
		return err
	}
	if err := r.startConnEvents(); err != nil {
		return err
	}
	if r.js, err = jetstream.New(r.nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		return err
	}
	if err := r.waitJetStream(ctx); err != nil {
		return err
	}
	if err := r.ensureStreams(ctx); err != nil {
		return err
	}
	if r.ingest, err = startIngest(ctx, r); err != nil {
		return err
	}
	r.metrics.reg.MustRegister(newServerCollector(func() *server.Server { return r.srv }, r.heldBySubject))
	if err := r.startHTTP(); err != nil {
		return err
	}
	r.auth.serving.Store(true)
	close(r.ready)
	r.log.Info("relay ready", "client", r.ClientURL(), "websocket", r.WebSocketURL(), "monitor", r.MonitorAddr(),
		"sync", r.cfg.Storage.Sync, "replicas", r.cfg.Storage.Replicas, "directory_serial", r.auth.serial())
	return nil
}

// Ready is closed when the relay serves.
func (r *Relay) Ready() <-chan struct{} { return r.ready }

// waitJetStream waits until the JetStream API answers: in a cluster the
// meta leader takes seconds to be elected after the ports are up.
func (r *Relay) waitJetStream(ctx context.Context) error {
	backoff := 20 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := r.js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("relay: JetStream not ready: %w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(backoff*2, time.Second)
	}
}

func (r *Relay) serverOptions() (*server.Options, error) {
	c := r.cfg
	host, port := splitAddr(c.Listen)
	o := &server.Options{
		ServerName:                 c.ServerName,
		Host:                       host,
		Port:                       port,
		NoSigs:                     true, // the relay handles signals itself
		MaxConn:                    c.Limits.MaxConnections,
		MaxSubs:                    c.Limits.MaxSubscriptions,
		MaxPending:                 int64(c.Limits.MaxPending),
		MaxPayload:                 int32(c.Storage.MaxMessageSize) + StoredHeaderBytes, // the ingest enforces the exact limit with a clear error
		JetStream:                  true,
		StoreDir:                   c.DataDir, // nats-server adds "jetstream/"
		SyncAlways:                 c.Storage.Sync == SyncAlways,
		SyncInterval:               c.Storage.SyncInterval,
		AlwaysEnableNonce:          true,
		CustomClientAuthentication: r.auth,
		DisableJetStreamBanner:     true,
	}
	if c.Storage.Sync == SyncAlways {
		o.SyncInterval = 0
	}
	if c.TLS != nil {
		tc, err := loadTLS("tls", c.TLS, r.clock.Now())
		if err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
		o.TLSConfig, o.TLS, o.TLSVerify = tc, true, false
	}
	if w := c.WebSocket; w != nil {
		o.Websocket.Host, o.Websocket.Port = splitAddr(w.Listen)
		o.Websocket.NoTLS = w.NoTLS
		if w.TLS != nil {
			tc, err := loadTLS("websocket.tls", w.TLS, r.clock.Now())
			if err != nil {
				return nil, fmt.Errorf("relay: %w", err)
			}
			o.Websocket.TLSConfig = tc
		}
	}
	if cl := c.Cluster; cl != nil {
		o.Cluster.Name = cl.Name
		o.Cluster.Host, o.Cluster.Port = splitAddr(cl.Listen)
		if cl.TLS != nil {
			tc, err := loadMutualTLS("cluster.tls", cl.TLS, r.clock.Now())
			if err != nil {
				return nil, fmt.Errorf("relay: %w", err)
			}
			// Every route, dialled or accepted, presents a certificate
			// signed by the cluster's CA and verifies the other side's.
			o.Cluster.TLSConfig = tc
		}
		for _, s := range cl.Routes {
			u, err := url.Parse(s)
			if err != nil {
				return nil, err
			}
			o.Routes = append(o.Routes, u)
		}
	}
	return o, nil
}

// checkPorts fails fast, with the address, when a fixed port is taken:
// nats-server only reports it by timing out.
func checkPorts(c *Config) error {
	addrs := []string{c.Listen}
	if c.WebSocket != nil {
		addrs = append(addrs, c.WebSocket.Listen)
	}
	if c.Cluster != nil {
		addrs = append(addrs, c.Cluster.Listen)
	}
	for _, a := range addrs {
		if _, port := splitAddr(a); port <= 0 {
			continue
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		ln.Close()
	}
	return nil
}

// ClientURL is the nats:// URL clients connect to.
func (r *Relay) ClientURL() string {
	if r.srv == nil {
		return ""
	}
	return r.srv.ClientURL()
}

// WebSocketURL is the ws:// (or wss://) URL of the WebSocket listener, or
// "" if there is none.
func (r *Relay) WebSocketURL() string {
	if r.srv == nil || r.cfg.WebSocket == nil {
		return ""
	}
	// The server writes the chosen port back into its options under its
	// lock before it reports ready.
	ws := r.opts.Websocket
	scheme := "wss"
	if ws.NoTLS {
		scheme = "ws"
	}
	return fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(ws.Host, strconv.Itoa(ws.Port)))
}

// ClusterAddr is the address of the cluster listener, or nil.
func (r *Relay) ClusterAddr() net.Addr {
	if r.srv == nil {
		return nil
	}
	return r.srv.ClusterAddr()
}

// MonitorAddr is the address serving /metrics, or "".
func (r *Relay) MonitorAddr() string {
	if r.httpLn == nil {
		return ""
	}
	return r.httpLn.Addr().String()
}

// Server returns the embedded nats-server, for tests and in-process
// clients (nats.InProcessServer).
func (r *Relay) Server() *server.Server { return r.srv }

// Shutdown stops the ingest (letting in-flight publishes finish), closes
// the relay's connection, drains and stops the server and releases the
// data directory. It always does all of that, and returns what failed
// (the monitor or the ingest not done by ctx's deadline, the lock not
// released), joined. It is safe to call more than once; later calls
// return nil.
func (r *Relay) Shutdown(ctx context.Context) error {
	var errs []error
	r.stopOnce.Do(func() {
		if r.http != nil {
			if err := r.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("relay: monitor: %w", err))
			}
		}
		if r.ingest != nil {
			if err := r.ingest.stop(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		for _, nc := range []*nats.Conn{r.nc, r.ncIn, r.ncSys} {
			if nc != nil {
				nc.Close()
			}
		}
		if r.srv != nil {
			r.srv.Shutdown()
			r.srv.WaitForShutdown()
		}
		r.wg.Wait()
		if err := r.lock.release(); err != nil {
			errs = append(errs, err)
		}
		r.log.Info("relay stopped", "err", errors.Join(errs...))
	})
	return errors.Join(errs...)
}

// ReloadDirectory re-reads the directory file (SIGHUP). A version older
// than the one loaded is refused. Connections whose role changed are
// disconnected so they reconnect with their new rights.
func (r *Relay) ReloadDirectory() error {
	changed, err := r.auth.reload()
	if err != nil {
		r.log.Error("directory reload refused", "err", err)
		return err
	}
	r.log.Info("directory reloaded", "serial", r.auth.serial(), "changed_keys", len(changed))
	if r.ingest != nil {
		if err := r.ingest.inst.sync(r.auth.institutionMailboxes()); err != nil {
			r.log.Error("institutions' ingest", "err", err)
		}
	}
	if len(changed) == 0 || r.srv == nil {
		return nil
	}
	connz, err := r.srv.Connz(&server.ConnzOptions{Username: true, Limit: r.cfg.Limits.MaxConnections})
	if err != nil {
		return err
	}
	for _, ci := range connz.Conns {
		if changed[ci.AuthorizedUser] {
			r.srv.DisconnectClientByID(ci.Cid)
		}
	}
	return nil
}

// natsLogger sends nats-server's log lines to slog, redacted. The server
// names clients in its lines (address, NKey, subjects that hold a mailbox);
// linking a defender's address to its key is exactly what the relay must
// not record, so those are replaced before the line is written.
type natsLogger struct{ l *slog.Logger }

var (
	redactAddr    = regexp.MustCompile(`(\[[0-9a-fA-F:.]+\]|\d{1,3}(\.\d{1,3}){3}):\d+`)
	redactNKey    = regexp.MustCompile(`\b[UNAO][A-Z2-7]{55}\b`)
	redactMailbox = regexp.MustCompile(`\b[0-9a-f]{32}\b`)
)

func redact(s string) string {
	s = redactAddr.ReplaceAllString(s, "<addr>")
	s = redactNKey.ReplaceAllString(s, "<nkey>")
	return redactMailbox.ReplaceAllString(s, "<id>")
}

func (n *natsLogger) Noticef(f string, v ...any) { n.l.Info(redact(fmt.Sprintf(f, v...))) }
func (n *natsLogger) Warnf(f string, v ...any)   { n.l.Warn(redact(fmt.Sprintf(f, v...))) }
func (n *natsLogger) Fatalf(f string, v ...any)  { n.l.Error(redact(fmt.Sprintf(f, v...))) }
func (n *natsLogger) Errorf(f string, v ...any)  { n.l.Error(redact(fmt.Sprintf(f, v...))) }
func (n *natsLogger) Debugf(f string, v ...any)  { n.l.Debug(redact(fmt.Sprintf(f, v...))) }
func (n *natsLogger) Tracef(f string, v ...any)  {}

// NewLogger builds the slog logger a config asks for, writing to w.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	o := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
