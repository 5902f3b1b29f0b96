package bridge_test

// Catch-up after an outage, run once and without -race, everything in one
// run so the numbers compare:
//
//	go test -run='^$' -bench=CatchUp -benchtime=1x ./bridge
//
// At each fsync policy (sync=always, sync=interval):
//
//   - bridge: 10,000 alerts shared while the bridge was down wait in the
//     home relay's SHARED; a bridge starts and drains them to one
//     partner's relay. Per alert it reads it through the home relay's
//     fetch service, stores it on the partner's relay (ingest, BRIDGED),
//     signs a receipt and stores it twice on the home relay (the sender's
//     mailbox and RECEIPTS), and settles it. Timed from Start to the last
//     settle: every alert stored at the partner and receipted.
//   - raw: the same number of messages of the same size in a stream of a
//     bare nats-server with JetStream, consumed from a durable pull
//     consumer (Fetch of the bridge's batch), published to a stream of a
//     second bare server with a Nats-Msg-Id (waiting for every PubAck),
//     and acked: consume-and-publish between two servers configured as
//     the relays' streams, in the same run.
//   - raw-with-receipts: raw, and for each message two more of a
//     receipt's size stored on the first server before it is acked: what
//     JetStream alone needs for the stores a bridge must make (the
//     envelope at the partner, the receipt in the sender's mailbox and in
//     RECEIPTS), without any of the relay's checks.
//
// Servers, bridge and clients share the machine's cores and disk; the
// ratios are what to read. On loopback the bridge is bound by the work
// each alert costs (three stores, each through a relay's ingest, the
// fetch service and a signature), not by round trips; deliveries and
// receipts travel in frames (proto.FrameTarget), so a relay's server
// carries one message per frame, not per publish.
//
// BEACON_BENCH_CPUPROFILE=file writes a CPU profile of the drain alone.
//
// Over a wide-area link round trips count: BenchmarkDrainOverWAN drains
// 5,000 alerts at the bridge's default batch (256) with 10 ms added each
// way on every link (a 20 ms round trip to each relay), beside raw
// consume-and-publish over the same links:
//
//	go test -run='^$' -bench=DrainOverWAN -benchtime=1x ./bridge

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/bridge"
	"github.com/hrdbeacon/beacon/bridge/receipt"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

const (
	catchUpN     = 10_000
	catchUpBatch = 1024
	wanN         = 5_000
	wanBatch     = 256 // the bridge's default
	wanDelay     = 10 * time.Millisecond
)

// A drain is one benchmark's setting.
type drain struct {
	sync  relay.SyncPolicy
	n     int           // alerts waiting
	batch int           // the bridge's batch, and raw's fetch
	delay time.Duration // added each way on every link the bridge (or raw's client) uses
}

func BenchmarkCatchUp(b *testing.B) {
	for _, policy := range []relay.SyncPolicy{relay.SyncAlways, relay.SyncInterval} {
		benchDrain(b, "-sync="+string(policy), drain{sync: policy, n: catchUpN, batch: catchUpBatch})
	}
}

func BenchmarkDrainOverWAN(b *testing.B) {
	benchDrain(b, "-rtt=20ms", drain{sync: relay.SyncInterval, n: wanN, batch: wanBatch, delay: wanDelay})
}

func benchDrain(b *testing.B, name string, d drain) {
	var size int
	b.Run("bridge"+name, func(b *testing.B) {
		for range b.N {
			size = benchBridge(b, d)
		}
	})
	b.Run("raw"+name, func(b *testing.B) {
		for range b.N {
			benchRaw(b, d, size, 0)
		}
	})
	// Raw with the bridge's stores: as well as each message, two messages
	// of a receipt's size stored on the first server, as the bridge
	// stores each receipt in the sender's mailbox and in RECEIPTS. What
	// JetStream alone needs for the work the bridge does, with no checks.
	rc, err := receipt.Sign(routing.NewID(), "ug", "de-mfa", time.Now(), keyring(b, keys.RoleBridge).Identity)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("raw-with-receipts"+name, func(b *testing.B) {
		for range b.N {
			benchRaw(b, d, size, len(rc))
		}
	})
}

// benchBridge drains d.n shared alerts through a bridge and returns the
// size of one envelope.
func benchBridge(b *testing.B, d drain) int {
	b.StopTimer()
	tune := func(c *relay.Config) {
		c.Storage.Sync = d.sync
		c.Storage.MaxBytes = 512 << 20
		c.Storage.ChannelMessages = d.n                        // the whole burst is one channel (ug, urgent)
		c.Limits.PublishRate, c.Limits.PublishBurst = 1e6, 1e6 // the burst's publisher is one walk-in key
	}
	w := newWorldWith(b, tune, "de-mfa")
	// The partner's relay at the same policy.
	pn := w.partners["de-mfa"]
	pn.stop(b)
	pc := relaytest.Config(b)
	tune(pc)
	pc.DataDir = pn.cfg.DataDir
	pn.start(b, pc)

	envs := sealWithReplies(b, w, d.n)
	w.publishShares(b, envs, "ug", routing.Urgent)
	if n := streamMsgs(b, w.home.relay, proto.StreamShared); n != uint64(d.n) {
		b.Fatalf("SHARED holds %d, want %d", n, d.n)
	}
	cfg := w.bridgeConfig(b, false)
	cfg.Batch = d.batch
	cfg.Home.URLs = []string{slowLink(b, w.home.url(), d.delay)}
	cfg.Partners[0].URLs = []string{slowLink(b, pn.url(), d.delay)}
	var settled atomic.Int64
	done := make(chan struct{})
	opts := []bridge.Option{bridge.WithEvents(func(e bridge.Event) {
		if settled.Add(int64(e.Settled)) == int64(d.n) {
			close(done)
		}
	})}
	stopProfile := profileDrain(b)
	b.StartTimer()
	start := time.Now()
	w.startBridge(b, cfg, opts...)
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	stopProfile()
	if n := streamMsgs(b, pn.relay, proto.StreamBridged); n != uint64(d.n) {
		b.Fatalf("the partner's relay holds %d, want %d", n, d.n)
	}
	if n := streamMsgs(b, w.home.relay, proto.StreamReceipts); n != uint64(d.n) {
		b.Fatalf("RECEIPTS holds %d, want %d", n, d.n)
	}
	b.ReportMetric(float64(d.n)/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(elapsed.Seconds(), "s-total")
	return len(envs[0])
}

// profileDrain starts a CPU profile of the drain alone, without the
// setup, when BEACON_BENCH_CPUPROFILE names a file; the returned function
// stops it.
func profileDrain(b *testing.B) func() {
	name := os.Getenv("BEACON_BENCH_CPUPROFILE")
	if name == "" {
		return func() {}
	}
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// sealWithReplies seals n shares to the partners covering ug, each with
// a reply mailbox, as a defender's client seals them.
func sealWithReplies(b *testing.B, w *world, n int) [][]byte {
	def := keyring(b, keys.RoleDefender).Identity
	pt := w.home.dir.PartnersFor("ug")[0]
	to := envelope.ToInbox(pt.Identity, keys.CurrentInbox(pt.InboxKeys, time.Now()))
	body, _ := message.Marshal(ugAlert("catch-up", true))
	out := make([][]byte, n)
	work := make(chan int)
	fin := make(chan struct{})
	for range 2 {
		go func() {
			for i := range work {
				h := envelope.Header{ID: routing.NewID(), Created: time.Now(), Country: "ug", Priority: routing.Urgent,
					ReplyTo: proto.MailboxFor(fmt.Sprintf("defender-%d", i))}
				env, err := envelope.Seal(h, body, def, envelope.Deniable, to)
				if err != nil {
					panic(err)
				}
				out[i] = env
			}
			fin <- struct{}{}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	<-fin
	<-fin
	return out
}

// benchRaw consumes d.n messages of size bytes from one bare server's
// stream and publishes them to another's. With receiptSize, it also
// stores two messages of that size on the first server for each message
// moved, before acking it.
func benchRaw(b *testing.B, d drain, size, receiptSize int) {
	b.StopTimer()
	ctx := context.Background()
	st := relaytest.Config(b).Storage
	streamCfg := func(name string) jetstream.StreamConfig {
		return jetstream.StreamConfig{Name: name, Subjects: []string{strings.ToLower(name) + ".>"}, Retention: jetstream.LimitsPolicy,
			Discard: jetstream.DiscardNew, MaxAge: st.Retention, MaxBytes: 512 << 20, Duplicates: st.DedupWindow,
			Storage: jetstream.FileStorage}
	}
	conn := func(srvURL string) (*nats.Conn, jetstream.JetStream) {
		nc, err := nats.Connect(srvURL)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8*d.batch))
		if err != nil {
			b.Fatal(err)
		}
		return nc, js
	}
	_, src := conn(slowLink(b, relaytest.StartRaw(b, d.sync).ClientURL(), d.delay))
	_, dst := conn(slowLink(b, relaytest.StartRaw(b, d.sync).ClientURL(), d.delay))
	for _, c := range []struct {
		js   jetstream.JetStream
		name string
	}{{src, "SRC"}, {dst, "DST"}, {src, "RECEIPTS"}, {src, "MAILBOX"}} {
		if _, err := c.js.CreateStream(ctx, streamCfg(c.name)); err != nil {
			b.Fatal(err)
		}
	}
	data, rc := make([]byte, size), make([]byte, receiptSize)
	for i := range d.n {
		if _, err := src.PublishAsync("src.ug.urgent", data, jetstream.WithMsgID(fmt.Sprintf("m%d", i))); err != nil {
			b.Fatal(err)
		}
		if i%512 == 511 {
			<-src.PublishAsyncComplete()
		}
	}
	<-src.PublishAsyncComplete()
	cons, err := src.CreateOrUpdateConsumer(ctx, "SRC", jetstream.ConsumerConfig{Durable: "bridge", AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: 4096})
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	start := time.Now()
	for moved := 0; moved < d.n; {
		// Ask for no more than is left: a fetch waits for what it asked.
		batch, err := cons.Fetch(min(d.batch, d.n-moved), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		var msgs []jetstream.Msg
		var acks [][]jetstream.PubAckFuture // per message, its stores
		for m := range batch.Messages() {
			id := m.Headers().Get(jetstream.MsgIDHeader)
			f, err := dst.PublishAsync("dst.ug.urgent", m.Data(), jetstream.WithMsgID(id))
			if err != nil {
				b.Fatal(err)
			}
			stores := []jetstream.PubAckFuture{f}
			if receiptSize > 0 {
				for _, subj := range []string{"receipts." + id, "mailbox." + id} {
					f, err := src.PublishAsync(subj, rc, jetstream.WithMsgID(subj))
					if err != nil {
						b.Fatal(err)
					}
					stores = append(stores, f)
				}
			}
			msgs, acks = append(msgs, m), append(acks, stores)
		}
		for i, stores := range acks {
			for _, f := range stores {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			msgs[i].Ack()
		}
		moved += len(msgs)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(d.n)/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(elapsed.Seconds(), "s-total")
}

// slowLink returns the URL of a TCP relay to the server at url that holds
// every chunk delay before passing it on, each way: a wide-area link's
// latency, without its loss or bandwidth limit. With no delay it is url.
// It stops when b ends.
func slowLink(b *testing.B, url string, delay time.Duration) string {
	if delay == 0 {
		return url
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	target := strings.TrimPrefix(url, "nats://")
	var mu sync.Mutex
	var conns []net.Conn
	closed := false
	var wg sync.WaitGroup
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	// pass copies src to dst, each chunk delay after it was read.
	pass := func(dst, src net.Conn) {
		type chunk struct {
			due  time.Time
			data []byte
		}
		q := make(chan chunk, 1<<12)
		wg.Go(func() {
			defer dst.Close()
			failed := false
			for c := range q {
				if failed {
					continue // drain, so the reader never blocks
				}
				time.Sleep(time.Until(c.due)) // the link's latency, not a wait for an event
				_, err := dst.Write(c.data)
				failed = err != nil
			}
		})
		defer close(q)
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(delay), append([]byte(nil), buf[:n]...)}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			if closed {
				c.Close()
				s.Close()
			}
			mu.Unlock()
			wg.Go(func() { pass(s, c) })
			wg.Go(func() { pass(c, s) })
		}
	})
	return "nats://" + ln.Addr().String()
}
