package relay

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

// roleOperator is an operator's key from the relay config: inspect and
// purge, nothing else. It is never in the directory.
const roleOperator keys.Role = "operator"

// disconnectEvents are the system account's events the relay hears:
// one per closed client connection.
const disconnectEvents = "$SYS.ACCOUNT.*.DISCONNECT"

// internalConns is how many in-process connections the relay holds: its
// main one, the walk-ins' ingest and the system account's events.
const internalConns = 3

// internalConn opens one of the relay's own in-process connections.
func (r *Relay) internalConn(name string) (*nats.Conn, error) {
	kp := r.auth.internal
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect("", nats.InProcessServer(r.srv), nats.Nkey(pub, kp.Sign),
		nats.Name(name), nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			r.log.Warn("internal connection", "name", name, "err", err)
		}))
	if err != nil {
		return nil, fmt.Errorf("relay: internal connection: %w", err)
	}
	return nc, nil
}

// startConnEvents connects to the system account and follows the
// disconnections, so the per-address counts of walk-in connections go
// down when a connection closes.
func (r *Relay) startConnEvents() error {
	pub, _ := r.auth.sys.PublicKey()
	nc, err := nats.Connect("", nats.InProcessServer(r.srv), nats.Nkey(pub, r.auth.sys.Sign),
		nats.Name("beacon-relay-events"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("relay: system connection: %w", err)
	}
	r.ncSys = nc
	_, err = nc.Subscribe(disconnectEvents, func(m *nats.Msg) {
		var ev struct {
			Client struct {
				ID uint64 `json:"id"`
			} `json:"client"`
		}
		if json.Unmarshal(m.Data, &ev) == nil {
			r.auth.conns.closed(ev.Client.ID)
		}
	})
	if err != nil {
		return fmt.Errorf("relay: connection events: %w", err)
	}
	return nc.Flush()
}

// admitWalkIn decides whether a walk-in's connection may open: the
// connection slots reserved for institutions stay free, and one address
// holds at most its share.
func (a *authenticator) admitWalkIn(c server.ClientAuthentication) bool {
	if srv := a.srv.Load(); srv != nil {
		l := a.cfg.Limits
		// The count includes this connection and those not yet
		// authenticated.
		if srv.NumClients() > l.MaxConnections-l.ReservedConnections {
			return false
		}
	}
	return a.conns.admit(c.GetID(), addressKey(c.RemoteAddress()))
}

// institutionMailboxes are the mailboxes of every key the directory (or
// the config, for operators) names.
func (a *authenticator) institutionMailboxes() map[routing.Mailbox]bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make(map[routing.Mailbox]bool, len(a.byMbox))
	for mb := range a.byMbox {
		out[mb] = true
	}
	return out
}

// addressKey is what per-address limits count by: an IPv4 address, or an
// IPv6 /64 (one subscriber's prefix). In-process connections have none.
func addressKey(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || ta.IP == nil {
		return ""
	}
	if v4 := ta.IP.To4(); v4 != nil {
		return v4.String()
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String()
}

// connTracker counts walk-in connections per address and limits how
// fast one address opens them. It holds an address only while one of
// its connections is open (and a rate bucket until it refills): nothing
// that links an address to a key outlives the connection.
type connTracker struct {
	max  int
	rate *limiter[string]

	mu     sync.Mutex
	byID   map[uint64]string
	byAddr map[string]int
}

func newConnTracker(c AdmissionConfig, clock clockwork.Clock) *connTracker {
	return &connTracker{max: c.PerAddressConnections, rate: newLimiter[string](c.PerAddressConnectRate, c.PerAddressConnectBurst, clock),
		byID: map[uint64]string{}, byAddr: map[string]int{}}
}

func (t *connTracker) admit(id uint64, addr string) bool {
	if addr == "" {
		return true
	}
	if !t.rate.Allow(addr) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byID[id]; ok {
		return true // the same connection authenticating again
	}
	if t.max > 0 && t.byAddr[addr] >= t.max {
		return false
	}
	t.byID[id] = addr
	t.byAddr[addr]++
	return true
}

func (t *connTracker) closed(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	addr, ok := t.byID[id]
	if !ok {
		return
	}
	delete(t.byID, id)
	if t.byAddr[addr]--; t.byAddr[addr] <= 0 {
		delete(t.byAddr, addr)
	}
}

// open is how many walk-in connections an address holds (for tests).
func (t *connTracker) open(addr string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byAddr[addr]
}
