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
//
// Servers, bridge and clients share the machine's cores and disk; the
// ratio is what to read.

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/bridge"
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
)

func BenchmarkCatchUp(b *testing.B) {
	for _, sync := range []relay.SyncPolicy{relay.SyncAlways, relay.SyncInterval} {
		var size int
		b.Run("bridge-sync="+string(sync), func(b *testing.B) {
			for range b.N {
				size = benchBridge(b, sync)
			}
		})
		b.Run("raw-sync="+string(sync), func(b *testing.B) {
			for range b.N {
				benchRaw(b, sync, size)
			}
		})
	}
}

// benchBridge drains catchUpN shared alerts through a bridge and returns
// the size of one envelope.
func benchBridge(b *testing.B, sync relay.SyncPolicy) int {
	b.StopTimer()
	tune := func(c *relay.Config) {
		c.Storage.Sync = sync
		c.Storage.MaxBytes = 512 << 20
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

	envs := sealWithReplies(b, w, catchUpN)
	w.publishShares(b, envs, "ug", routing.Urgent)
	if n := streamMsgs(b, w.home.relay, proto.StreamShared); n != catchUpN {
		b.Fatalf("SHARED holds %d, want %d", n, catchUpN)
	}
	cfg := w.bridgeConfig(b, false)
	cfg.Batch = catchUpBatch
	var settled atomic.Int64
	done := make(chan struct{})
	opts := []bridge.Option{bridge.WithEvents(func(e bridge.Event) {
		if settled.Add(int64(e.Settled)) == catchUpN {
			close(done)
		}
	})}
	b.StartTimer()
	start := time.Now()
	w.startBridge(b, cfg, opts...)
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	if n := streamMsgs(b, pn.relay, proto.StreamBridged); n != catchUpN {
		b.Fatalf("the partner's relay holds %d, want %d", n, catchUpN)
	}
	if n := streamMsgs(b, w.home.relay, proto.StreamReceipts); n != catchUpN {
		b.Fatalf("RECEIPTS holds %d, want %d", n, catchUpN)
	}
	b.ReportMetric(float64(catchUpN)/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(elapsed.Seconds(), "s-total")
	return len(envs[0])
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

// benchRaw consumes catchUpN messages of size bytes from one bare
// server's stream and publishes them to another's.
func benchRaw(b *testing.B, sync relay.SyncPolicy, size int) {
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
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*catchUpBatch))
		if err != nil {
			b.Fatal(err)
		}
		return nc, js
	}
	_, src := conn(relaytest.StartRaw(b, sync).ClientURL())
	_, dst := conn(relaytest.StartRaw(b, sync).ClientURL())
	for _, c := range []struct {
		js   jetstream.JetStream
		name string
	}{{src, "SRC"}, {dst, "DST"}} {
		if _, err := c.js.CreateStream(ctx, streamCfg(c.name)); err != nil {
			b.Fatal(err)
		}
	}
	data := make([]byte, size)
	for i := range catchUpN {
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
	for moved := 0; moved < catchUpN; {
		// Ask for no more than is left: a fetch waits for what it asked.
		batch, err := cons.Fetch(min(catchUpBatch, catchUpN-moved), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		var msgs []jetstream.Msg
		var acks []jetstream.PubAckFuture
		for m := range batch.Messages() {
			f, err := dst.PublishAsync("dst.ug.urgent", m.Data(), jetstream.WithMsgID(m.Headers().Get(jetstream.MsgIDHeader)))
			if err != nil {
				b.Fatal(err)
			}
			msgs, acks = append(msgs, m), append(acks, f)
		}
		for i, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
			msgs[i].Ack()
		}
		moved += len(msgs)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(catchUpN)/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(elapsed.Seconds(), "s-total")
}
