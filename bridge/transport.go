package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// A Transport carries envelopes to one partner's relay and brings back
// what the partner answers. It is the bridge's one seam to a partner:
// [NewNATS] and [NewWebSocket] speak to a real relay, package bridgetest
// fakes one.
//
// Every method is safe for concurrent use and must return promptly once
// ctx ends; after Close, every method fails.
type Transport interface {
	// Deliver stores each envelope on the partner's relay under the
	// bridge's id and returns, in order, one Result per envelope: stored
	// (now or before), refused for good, or not stored this time.
	Deliver(ctx context.Context, batch []Delivery) []Result
	// Returns reads up to max of what the partner sends back through the
	// bridge, waiting up to wait for the first.
	Returns(ctx context.Context, max int, wait time.Duration) ([]Return, error)
	// Settle tells the partner's relay the returns with these tokens were
	// carried to the home relay.
	Settle(ctx context.Context, tokens []string) error
	// WaitConnected waits until the partner's relay is reachable.
	WaitConnected(ctx context.Context) error
	// Connected reports whether it is now.
	Connected() bool
	Close()
}

// A Delivery is one envelope for a partner.
type Delivery struct {
	ID       routing.ID
	Country  string
	Priority routing.Priority
	Envelope []byte
	// Hops is how many bridges the envelope will have crossed once stored:
	// 1 for what the bridge read from SHARED.
	Hops int
}

// A Result says what became of one Delivery. Err is nil once the
// partner's relay holds the envelope (Duplicate: it held it already). A
// *proto.Error whose code is not retryable is a refusal for good;
// anything else is worth retrying.
type Result struct {
	Duplicate bool
	Err       error
}

// A Return is one answer a partner sends back: a sealed envelope for a
// mailbox on the home relay, or a signed ack token.
type Return struct {
	Subject proto.Subject // KindReturnMailbox or KindReturnAck
	Data    []byte
	Settle  string
}

// relayTransport is a Transport over the project's one relay connection,
// dialled over TCP (nats://, tls://) or through a WebSocket.
type relayTransport struct {
	conn   *relayconn.Conn
	bridge string // the bridge's id in the partner's directory
}

var _ Transport = (*relayTransport)(nil)

// TransportConfig is what a transport needs to reach a partner's relay.
type TransportConfig struct {
	URLs []string
	// NKey is the key the partner's directory lists for the bridge.
	NKey nkeys.KeyPair
	// BridgeID is the bridge's id in the partner's directory.
	BridgeID string
	// TLS configures tls:// and wss:// (a private CA); nil for the system's.
	TLS    *tls.Config
	Clock  clockwork.Clock
	Logger *slog.Logger
	// Retry is the reconnect schedule: exponential from Min to Max, with
	// jitter. Zero is relayconn's (250 ms to 30 s).
	Retry RetryConfig
}

// reconnectDelay is the delay before reconnect attempt n on r's schedule.
func (r RetryConfig) reconnectDelay() func(int) time.Duration {
	if r.Min <= 0 {
		return nil
	}
	return func(n int) time.Duration {
		d := r.Min << min(n, 20)
		if d <= 0 || d > r.Max {
			d = r.Max
		}
		return d/2 + rand.N(d/2+1)
	}
}

// NewNATS returns a transport that speaks NATS to the partner's relay
// (nats:// or tls:// URLs). It connects in the background, forever.
func NewNATS(cfg TransportConfig) (Transport, error) {
	c, err := relayconn.Dial(relayconn.Config{URLs: cfg.URLs, NKey: cfg.NKey, Name: "beacon-bridge", Clock: cfg.Clock,
		Logger: cfg.Logger, TLS: cfg.TLS, ReconnectDelay: cfg.Retry.reconnectDelay()})
	if err != nil {
		return nil, err
	}
	return &relayTransport{conn: c, bridge: cfg.BridgeID}, nil
}

// NewWebSocket returns a transport that speaks NATS inside a WebSocket
// (ws:// or wss:// URLs), for a partner relay reachable only over HTTPS.
// The WebSocket is github.com/coder/websocket over net/http's client:
// it goes through the HTTPS proxy of the environment (HTTPS_PROXY), and
// TLS is net/http's with cfg.TLS. The relay's WebSocket listener speaks
// the full NATS protocol with the same NKey authorisation.
func NewWebSocket(cfg TransportConfig) (Transport, error) {
	d := &wsDialer{byAddr: map[string]string{}, client: &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: cfg.TLS, ForceAttemptHTTP2: false}}}
	var urls []string
	for _, u := range cfg.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "ws" && pu.Scheme != "wss") {
			return nil, fmt.Errorf("bridge: %q is not a ws:// or wss:// URL", u)
		}
		port := pu.Port()
		if port == "" {
			port = "80"
			if pu.Scheme == "wss" {
				port = "443"
			}
		}
		addr := net.JoinHostPort(pu.Hostname(), port)
		d.byAddr[addr] = u
		// nats.go sees a plain NATS server at addr and dials it through
		// d, which opens the WebSocket: the NATS protocol flows inside.
		urls = append(urls, "nats://"+addr)
	}
	c, err := relayconn.Dial(relayconn.Config{URLs: urls, NKey: cfg.NKey, Name: "beacon-bridge", Clock: cfg.Clock,
		Logger: cfg.Logger, Dialer: d, ReconnectDelay: cfg.Retry.reconnectDelay()})
	if err != nil {
		return nil, err
	}
	return &relayTransport{conn: c, bridge: cfg.BridgeID}, nil
}

// wsDialer opens the WebSocket for one of the partner's URLs.
type wsDialer struct {
	byAddr map[string]string
	client *http.Client
}

// dialTimeout bounds one WebSocket handshake.
const dialTimeout = 10 * time.Second

func (d *wsDialer) Dial(_, addr string) (net.Conn, error) {
	u, ok := d.byAddr[addr]
	if !ok {
		return nil, fmt.Errorf("bridge: no WebSocket URL for %s", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: d.client})
	if err != nil {
		return nil, err
	}
	// The connection lives until nats.go closes it; its context is not
	// the dial's.
	return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), nil
}

var _ nats.CustomDialer = (*wsDialer)(nil)

func (t *relayTransport) Deliver(ctx context.Context, batch []Delivery) []Result {
	out := make([]Result, len(batch))
	for start := 0; start < len(batch); start += relayconn.MaxBatch {
		part := batch[start:min(len(batch), start+relayconn.MaxBatch)]
		msgs := make([]relayconn.Outgoing, len(part))
		for i, d := range part {
			msgs[i] = relayconn.Outgoing{Target: proto.Bridged(t.bridge, d.Country, d.Priority, d.ID, d.Envelope).Target(), Data: d.Envelope,
				Header: nats.Header{proto.HeaderHops: []string{strconv.Itoa(d.Hops)}}}
		}
		replies, errs := t.conn.PublishFrames(ctx, msgs)
		for i := range part {
			switch {
			case errs[i] == nil:
				out[start+i].Duplicate = replies[i].Duplicate
			case alreadyStored(errs[i]):
				out[start+i].Duplicate = true
			default:
				out[start+i].Err = errs[i]
			}
		}
	}
	return out
}

func (t *relayTransport) Returns(ctx context.Context, max int, wait time.Duration) ([]Return, error) {
	msgs, err := t.conn.Fetch(ctx, proto.ReturnSource, relayconn.FetchOptions{Max: max, Wait: wait})
	if err != nil {
		return nil, err
	}
	out := make([]Return, 0, len(msgs))
	for _, m := range msgs {
		s, err := proto.ParseSubject(m.Subject)
		if err != nil || (s.Kind != proto.KindReturnMailbox && s.Kind != proto.KindReturnAck) || s.Bridge != t.bridge {
			// The relay serves this bridge's returns only; anything else
			// is settled and dropped by the caller.
			s = proto.Subject{}
		}
		out = append(out, Return{Subject: s, Data: m.Data, Settle: m.Settle})
	}
	return out, nil
}

func (t *relayTransport) Settle(ctx context.Context, tokens []string) error {
	return t.conn.Settle(ctx, tokens)
}

func (t *relayTransport) WaitConnected(ctx context.Context) error { return t.conn.WaitConnected(ctx) }

func (t *relayTransport) Connected() bool { return t.conn.Connected() }

func (t *relayTransport) Close() { t.conn.Close() }

// alreadyStored reports whether a relay's refusal says the message is
// stored already (see proto.Error.AlreadyStored).
func alreadyStored(err error) bool {
	var perr *proto.Error
	return errors.As(err, &perr) && perr.AlreadyStored()
}
