package relay_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// clusterConfigs loads the shipped configs/cluster/node{1,2,3}.yaml and
// moves them onto free loopback ports and temporary data directories,
// keeping the topology: each route still points at the node it named.
func clusterConfigs(t *testing.T, w *relaytest.World) []*relay.Config {
	t.Helper()
	var cfgs []*relay.Config
	moved := map[string]string{} // shipped cluster address → free one
	for i := 1; i <= 3; i++ {
		cfg, err := relay.LoadConfig(fmt.Sprintf("../configs/cluster/node%d.yaml", i))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		moved[cfg.Cluster.Listen] = ln.Addr().String()
		ln.Close()
		cfg.Cluster.Listen = moved[cfg.Cluster.Listen]
		cfg.Listen = "127.0.0.1:0"
		cfg.Monitor = "127.0.0.1:0"
		cfg.DataDir = t.TempDir()
		// The failover test publishes without pause while a node stops,
		// however long that takes, all into one channel: more than the
		// shipped per-channel quota may go there, and a refusal for the
		// quota is not what it tests.
		cfg.Storage.ChannelMessages = 1 << 20
		w.Configure(cfg)
		cfgs = append(cfgs, cfg)
	}
	for _, cfg := range cfgs {
		for j, r := range cfg.Cluster.Routes {
			u, err := url.Parse(r)
			if err != nil || moved[u.Host] == "" {
				t.Fatalf("route %q names no node of the cluster", r)
			}
			u.Host = moved[u.Host]
			cfg.Cluster.Routes[j] = u.String()
		}
	}
	return cfgs
}

// startNodes starts relays for cfgs concurrently — in a cluster, Start
// returns only once JetStream has a meta leader, which needs a quorum of
// nodes up — and shuts them down when the test ends.
func startNodes(t *testing.T, cfgs ...*relay.Config) []*relay.Relay {
	t.Helper()
	nodes := make([]*relay.Relay, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, cfg := range cfgs {
		r, err := relay.New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", cfg.ServerName, err)
		}
		nodes[i] = r
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r.Shutdown(ctx)
		})
		wg.Go(func() { errs[i] = r.Start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("starting the cluster: %v", err)
	}
	return nodes
}

// A clusterSender publishes alerts through one node, one after another,
// until it has as many acknowledged as its limit allows; it retries each
// alert until the relay acknowledges it: during a failover a publish may
// time out or be refused as unavailable, and the message id makes the
// retry safe. It rotates its walk-in key every few alerts to stay under
// the shipped per-key rate limit, as a defender may.
type clusterSender struct {
	url  string
	next func() sealedAlert
	stop chan struct{}
	done chan struct{}
	wake chan struct{} // the limit was raised
	more chan struct{} // an alert was acknowledged

	mu      sync.Mutex
	limit   int
	acked   []sealedAlert
	sent    []sealedAlert
	retries int
	maxSeq  uint64
	err     error
}

// keyRotation is how many publishes a sender makes with one key: below
// the shipped publish_burst (100).
const keyRotation = 40

func startSender(url string, next func() sealedAlert, limit int) *clusterSender {
	s := &clusterSender{url: url, next: next, limit: limit, stop: make(chan struct{}), done: make(chan struct{}),
		wake: make(chan struct{}, 1), more: make(chan struct{}, 1)}
	go s.run()
	return s
}

func signal1(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (s *clusterSender) run() {
	defer close(s.done)
	var c *relaytest.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	uses := 0
	for {
		s.mu.Lock()
		full := len(s.acked) >= s.limit
		s.mu.Unlock()
		if full {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		a := s.next()
		s.mu.Lock()
		s.sent = append(s.sent, a)
		s.mu.Unlock()
		var failSince time.Time
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			if c == nil || uses == keyRotation {
				if c != nil {
					c.Close()
				}
				var err error
				if c, err = dialDefender(s.url, nats.MaxReconnects(-1)); err != nil {
					s.fail(err)
					return
				}
				uses = 0
			}
			uses++
			rep, err := c.Publish(proto.AlertTarget("ug", routing.Urgent), a.env)
			if err == nil {
				s.mu.Lock()
				s.acked = append(s.acked, a)
				s.maxSeq = max(s.maxSeq, rep.Seq)
				s.mu.Unlock()
				signal1(s.more)
				break
			}
			var refusal *proto.Error
			if errors.As(err, &refusal) && refusal.Code != proto.CodeUnavailable {
				s.fail(fmt.Errorf("alert %s refused: %w", a.id, err))
				return
			}
			// Unavailable or no answer: the cluster is failing over.
			if failSince.IsZero() {
				failSince = time.Now()
			} else if time.Since(failSince) > time.Minute {
				s.fail(fmt.Errorf("no acknowledgement for a minute: %w", err))
				return
			}
			s.mu.Lock()
			s.retries++
			s.mu.Unlock()
		}
	}
}

func (s *clusterSender) fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// allow lets the sender go on until n more alerts than it has now are
// acknowledged, and returns that total.
func (s *clusterSender) allow(n int) int {
	s.mu.Lock()
	s.limit = len(s.acked) + min(n, math.MaxInt-len(s.acked))
	limit := s.limit
	s.mu.Unlock()
	signal1(s.wake)
	return limit
}

// waitAcked waits until the sender has n acknowledged alerts.
func (s *clusterSender) waitAcked(t *testing.T, n int) {
	t.Helper()
	for {
		s.mu.Lock()
		got, err := len(s.acked), s.err
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-s.more:
		case <-s.done:
			s.mu.Lock()
			got, err = len(s.acked), s.err // as the sender left them
			s.mu.Unlock()
			if got >= n {
				return
			}
			t.Fatalf("sender via %s stopped after %d of %d acks: %v", s.url, got, n, err)
		}
	}
}

// finish stops the sender and returns what it sent and what was
// acknowledged.
func (s *clusterSender) finish(t *testing.T) (acked, sent []sealedAlert, maxSeq uint64) {
	t.Helper()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Errorf("sender via %s: %v", s.url, s.err)
	}
	if s.retries > 0 {
		t.Logf("sender via %s retried %d times", s.url, s.retries)
	}
	return s.acked, s.sent, s.maxSeq
}

// waitUntil waits for cond, checking it whenever JetStream state may have
// moved on (every 20ms), for at most a minute.
func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after a minute", what, state)
		}
		<-tick.C
	}
}

// TestClusterKeepsAlertsWithANodeDown runs the shipped 3-node cluster
// configs (R3 streams) and publishes through one node; then the node that
// leads ALERTS stops, so the stream fails over while publishing goes on
// through the other two. Every acknowledged alert is read back, none
// twice. The stopped node restarts on its data directory and catches up,
// and every node shuts down cleanly: no publish is left waiting forever
// for a JetStream ack lost in the failover.
func TestClusterKeepsAlertsWithANodeDown(t *testing.T) {
	const n = 100
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	cfgs := clusterConfigs(t, w)
	nodes := startNodes(t, cfgs...)
	for _, r := range nodes {
		assertStreamConfigs(t, streamDetails(t, r.Server()), cfgs[0])
	}

	// Which node leads ALERTS is up to the election; stopping that one
	// makes the failover happen every time.
	var leader string
	waitUntil(t, "ALERTS leader", func() (bool, string) {
		if c := streamDetails(t, nodes[0].Server())[proto.StreamAlerts].Cluster; c != nil {
			leader = c.Leader
		}
		return leader != "", "no leader"
	})
	down := slices.IndexFunc(cfgs, func(c *relay.Config) bool { return c.ServerName == leader })
	if down < 0 {
		t.Fatalf("ALERTS leader %q is none of the nodes", leader)
	}
	a, b := nodes[(down+1)%3], nodes[(down+2)%3]
	s1 := startSender(a.ClientURL(), alertSealer(t, w, "ug", 100), n)
	s1.waitAcked(t, n)
	// Both keep publishing while the leader stops, then n more each.
	s1.allow(math.MaxInt)
	s2 := startSender(b.ClientURL(), alertSealer(t, w, "ug", 100), math.MaxInt)
	s1.waitAcked(t, n+10) // both are publishing
	s2.waitAcked(t, 10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := nodes[down].Shutdown(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("stopping %s: %v %v", leader, err, ctx.Err())
	}
	s1.waitAcked(t, s1.allow(n))
	s2.waitAcked(t, s2.allow(n))
	acked1, sent1, seq1 := s1.finish(t)
	acked2, sent2, seq2 := s2.finish(t)
	acked := append(acked1, acked2...)
	sent := map[string]bool{}
	for _, a := range append(sent1, sent2...) {
		sent[a.id] = true
	}
	t.Logf("stopped %s (the ALERTS leader); %d alerts acknowledged", leader, len(acked))

	read := readAlerts(t, b.ClientURL(), w, "nl-kampala", "ug")
	assertStoredOnce(t, read, acked, sent)

	// The stopped node comes back on its data directory and catches up
	// with what was stored while it was down, as its own server reports.
	lastSeq := max(seq1, seq2)
	back := startNodes(t, cfgs[down])[0]
	waitUntil(t, leader+" catching up", func() (bool, string) {
		st := streamDetails(t, back.Server())[proto.StreamAlerts].State
		return st.Msgs == uint64(len(read)) && st.LastSeq >= lastSeq,
			fmt.Sprintf("at %d messages up to seq %d, not %d up to %d", st.Msgs, st.LastSeq, len(read), lastSeq)
	})

	// Shutdown drains the ingest and waits for the JetStream acks of what
	// it accepted. An ack lost with the old leader must not hold it
	// forever: the ingest's ack timeout answers the sender and lets go.
	var wg sync.WaitGroup
	for _, r := range []*relay.Relay{a, b, back} {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r.Shutdown(ctx)
			if ctx.Err() != nil {
				t.Errorf("%s: Shutdown ran into its deadline: an ingest publish is still waiting for its JetStream ack", r.Server().Name())
			}
		})
	}
	wg.Wait()
}
