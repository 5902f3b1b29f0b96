package relay_test

// Run without -race, everything in one run so the numbers compare:
//
//	go test -run='^$' -bench=. -benchtime=2s ./relay
//
// Each benchmark runs three paths into the ALERTS stream side by side, at
// each fsync policy (sync=always, sync=interval):
//
//   - raw-2224B: a client publishing 2,224-byte messages straight into
//     JetStream on an embedded nats-server of its own, configured as
//     Beacon's ALERTS stream (file store, dedup window, MaxAge, DiscardNew),
//     with a Nats-Msg-Id header on every publish as ingest sets;
//   - raw-3298B: the same at the size of the smallest envelope;
//   - beacon-3298B: a walk-in defender publishing envelopes to its ingest
//     subject on a relay from relaytest, and a mission reading them
//     through the relay's fetch and ack services, as the client does.
//
// The raw reader Fetches batches of benchFetch from a durable pull
// consumer and acks each message (fire and forget). The mission asks the
// relay for batches of benchFetch (svc.fetch.alerts.<cc>) and acks each
// batch with one svc.ack request, waiting for the answer.
//
// Every client talks TCP over loopback; servers and clients share the
// machine's cores. Compare the paths within one run: machines are noisy.
//
// The envelopes are sealed once; each publish writes a fresh message id
// into the routing header of a reused buffer (ingest parses the header and
// never checks the header MAC, so re-sealing would only measure the
// client's cryptography). The id carries the send time, which the reader
// takes back out of the data for the end-to-end latency; the raw paths
// write the same id at the same offset, and send it as Nats-Msg-Id.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

const (
	// benchWindow is how many publishes the pipelined benchmarks keep
	// outstanding.
	benchWindow = 256
	// benchFetch is the consumer's Fetch batch.
	benchFetch = 256
	// benchRate is the publish rate of the end-to-end latency benchmark.
	benchRate = 1000
	// benchMaxBytes is each stream's limit: large enough that DiscardNew
	// never refuses during a run.
	benchMaxBytes = 4 << 30
	// benchIssueSize is the message size the issue quotes (a sealed 1 KiB
	// alert in an earlier format).
	benchIssueSize = 2224
	// benchIDOffset is where the message id starts in an envelope: after
	// the magic, version, flags, priority and country (SPEC.md).
	benchIDOffset = 8

	benchMission = "nl-kampala"
	benchCountry = "ug"
)

var benchSubject = proto.AlertSubject(benchCountry, routing.Urgent)

// A benchPath is one way of getting messages into the ALERTS stream and
// out again.
type benchPath struct {
	// send publishes the message with id without waiting; its outcome
	// goes to onAck, called on a delivery goroutine.
	send func(id routing.ID) error
	// request publishes the message with id and waits for the ack.
	request func(id routing.ID) error
	onAck   func(error)
	// read reads one batch and acknowledges it, calling f for each message
	// once acknowledged, with the time it was received; f returns false
	// when no more messages are wanted.
	read func(f func(data []byte, received time.Time) bool) error
}

// ack is the callback the paths' async acks call.
func (p *benchPath) ack(err error) { p.onAck(err) }

var errBenchDuplicate = errors.New("stored as a duplicate")

type benchPathSpec struct {
	name  string
	start func(b *testing.B, sync relay.SyncPolicy) *benchPath
}

var benchPaths = []benchPathSpec{
	{"raw-2224B", func(b *testing.B, s relay.SyncPolicy) *benchPath {
		return benchStartRaw(b, s, benchPayload(benchIssueSize))
	}},
	{"raw-3298B", func(b *testing.B, s relay.SyncPolicy) *benchPath {
		return benchStartRaw(b, s, benchPayload(len(benchSeal(b, benchWorld(b)))))
	}},
	{"beacon-3298B", benchStartBeacon},
}

func benchEachPath(b *testing.B, f func(b *testing.B, p *benchPath)) {
	for _, s := range []relay.SyncPolicy{relay.SyncAlways, relay.SyncInterval} {
		for _, ps := range benchPaths {
			b.Run(fmt.Sprintf("sync=%s/%s", s, ps.name), func(b *testing.B) { f(b, ps.start(b, s)) })
		}
	}
}

// BenchmarkPipelined is publish+consume throughput: the publisher keeps
// benchWindow publishes outstanding while the consumer drains. msgs/s
// counts from the first publish to the last message consumed.
func BenchmarkPipelined(b *testing.B) {
	benchEachPath(b, func(b *testing.B, p *benchPath) {
		sem := make(chan struct{}, benchWindow)
		var failed atomic.Pointer[error]
		p.onAck = func(err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
			<-sem
		}
		d := benchStartDrain(b, p, nil)
		var n int64
		ids := newBenchIDs()
		start, cpu0 := time.Now(), benchCPU()
		for b.Loop() {
			sem <- struct{}{}
			if err := p.send(ids.next()); err != nil {
				b.Fatal(err)
			}
			n++
		}
		for range benchWindow {
			sem <- struct{}{}
		}
		if err := failed.Load(); err != nil {
			b.Fatal(*err)
		}
		d.wait(b, n)
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
		benchReportCPU(b, cpu0, n)
	})
}

// BenchmarkRoundTrip is sequential publish→ack latency: one message at a
// time, each waiting for its acknowledgement (for Beacon, ingest's reply,
// which it sends after JetStream's ack). The consumer drains afterwards,
// untimed, to check the count.
func BenchmarkRoundTrip(b *testing.B) {
	benchEachPath(b, func(b *testing.B, p *benchPath) {
		var lat []time.Duration
		ids := newBenchIDs()
		cpu0 := benchCPU()
		for b.Loop() {
			t0 := time.Now()
			if err := p.request(ids.next()); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		benchReportCPU(b, cpu0, int64(len(lat)))
		benchReportLatency(b, lat)
		benchStartDrain(b, p, nil).wait(b, int64(len(lat)))
	})
}

// BenchmarkEndToEnd is publish→consumed latency at benchRate msgs/s, the
// consumer fetching concurrently.
func BenchmarkEndToEnd(b *testing.B) {
	benchEachPath(b, func(b *testing.B, p *benchPath) {
		sem := make(chan struct{}, benchWindow)
		var failed atomic.Pointer[error]
		p.onAck = func(err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
			<-sem
		}
		var lat []time.Duration // written by the drain goroutine only
		d := benchStartDrain(b, p, func(data []byte, received time.Time) {
			lat = append(lat, received.Sub(benchSentAt(data)))
		})
		ids := newBenchIDs()
		const interval = time.Second / benchRate
		var n int64
		next := time.Now()
		for b.Loop() {
			if wait := time.Until(next); wait > 0 {
				time.Sleep(wait)
			}
			next = next.Add(interval)
			sem <- struct{}{}
			if err := p.send(ids.next()); err != nil {
				b.Fatal(err)
			}
			n++
		}
		for range benchWindow {
			sem <- struct{}{}
		}
		if err := failed.Load(); err != nil {
			b.Fatal(*err)
		}
		d.wait(b, n)
		benchReportLatency(b, lat)
	})
}

// benchStartRaw starts a bare embedded nats-server with JetStream and a stream
// configured as Beacon's ALERTS, and connects to it over TCP.
func benchStartRaw(b *testing.B, sync relay.SyncPolicy, payload []byte) *benchPath {
	b.Helper()
	srv := relaytest.StartRaw(b, sync)
	st := relaytest.Config(b).Storage // the relay's defaults, for the same stream limits

	p := &benchPath{onAck: func(error) {}}
	nc := benchConnect(b, srv.ClientURL())
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, pa *jetstream.PubAck) {
			if pa.Duplicate {
				p.ack(errBenchDuplicate)
				return
			}
			p.ack(nil)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { p.ack(err) }))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       proto.StreamAlerts,
		Subjects:   []string{proto.SubjectAlerts},
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardNew,
		MaxAge:     st.Retention,
		MaxBytes:   benchMaxBytes,
		MaxMsgSize: int32(st.MaxMessageSize),
		Duplicates: st.DedupWindow,
		Storage:    jetstream.FileStorage,
		Replicas:   1,
		DenyDelete: true,
		DenyPurge:  true,
	}); err != nil {
		b.Fatal(err)
	}
	// nats.go copies Data into its write buffer before a publish returns,
	// so one buffer serves every publish.
	msg := func(id routing.ID) *nats.Msg {
		copy(payload[benchIDOffset:], id[:])
		return &nats.Msg{Subject: benchSubject, Data: payload,
			Header: nats.Header{jetstream.MsgIDHeader: []string{id.String()}}}
	}
	p.send = func(id routing.ID) error {
		_, err := js.PublishMsgAsync(msg(id))
		return err
	}
	p.request = func(id routing.ID) error {
		pa, err := js.PublishMsg(ctx, msg(id))
		if err == nil && pa.Duplicate {
			err = errBenchDuplicate
		}
		return err
	}
	// A second connection reads, as a mission does on the relay.
	cjs, err := jetstream.New(benchConnect(b, srv.ClientURL()))
	if err != nil {
		b.Fatal(err)
	}
	cons, err := cjs.CreateOrUpdateConsumer(ctx, proto.StreamAlerts, jetstream.ConsumerConfig{
		Durable:       "bench",
		FilterSubject: proto.AlertFilter(benchCountry),
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		b.Fatal(err)
	}
	p.read = func(f func([]byte, time.Time) bool) error {
		batch, err := cons.Fetch(benchFetch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			at := time.Now()
			if err := m.Ack(); err != nil {
				return err
			}
			if !f(m.Data(), at) {
				return nil
			}
		}
		return batch.Error()
	}
	return p
}

func benchConnect(b *testing.B, url string) *nats.Conn {
	nc, err := nats.Connect(url, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		b.Errorf("async error: %v", err)
	}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}

// benchStartBeacon starts a relay with a directory of one mission, connects a
// walk-in defender and the mission, and creates the mission's consumer.
func benchStartBeacon(b *testing.B, sync relay.SyncPolicy) *benchPath {
	b.Helper()
	w := benchWorld(b)
	cfg := relaytest.Config(b)
	w.Configure(cfg)
	cfg.Storage.Sync = sync
	cfg.Storage.MaxBytes = benchMaxBytes
	l := &cfg.Limits
	l.PublishRate, l.PublishBurst = 1e9, 1e9
	l.InstitutionPublishRate, l.InstitutionPublishBurst = 1e9, 1e9
	l.ServiceRate, l.ServiceBurst = 1e9, 1e9
	r := relaytest.Start(b, cfg)

	env := benchSeal(b, w)
	def := relaytest.Connect(b, r.ClientURL(), nil)
	b.Cleanup(func() {
		select {
		case err := <-def.Errs:
			b.Errorf("defender connection: %v", err)
		default:
		}
	})
	subject := proto.Ingest(def.Mailbox, proto.AlertTarget(benchCountry, routing.Urgent))
	p := &benchPath{onAck: func(error) {}}
	// One reply subject for the pipelined publishes: the handler only
	// counts and checks replies (nats.go's async JetStream publisher
	// likewise routes every ack through one wildcard subscription).
	replyTo := proto.ReplyPrefix(def.Mailbox) + ".bench"
	if _, err := def.Subscribe(replyTo, func(m *nats.Msg) { p.ack(benchReplyErr(m.Data)) }); err != nil {
		b.Fatal(err)
	}
	// nats.go copies Data into its write buffer before PublishMsg and
	// Request return, so one buffer serves every publish.
	buf := slices.Clone(env)
	p.send = func(id routing.ID) error {
		copy(buf[benchIDOffset:], id[:])
		return def.PublishMsg(&nats.Msg{Subject: subject, Reply: replyTo, Data: buf})
	}
	p.request = func(id routing.ID) error {
		copy(buf[benchIDOffset:], id[:])
		m, err := def.Request(subject, buf, 10*time.Second)
		if err != nil {
			return err
		}
		return benchReplyErr(m.Data)
	}

	mis := relaytest.Connect(b, r.ClientURL(), w.Keyrings[benchMission].NKey)
	p.read = benchMissionReader(b, mis)
	return p
}

// benchMissionReader reads as client.Alerts does: a fetch request, the
// messages and an end marker on one inbox subject, then one ack request
// with every token of the batch.
func benchMissionReader(b *testing.B, mis *relaytest.Conn) func(func([]byte, time.Time) bool) error {
	fetchSubj := proto.Ingest(mis.Mailbox, proto.SvcFetchAlerts(benchCountry))
	ackSubj := proto.Ingest(mis.Mailbox, proto.SvcSettleTarget)
	inbox := proto.ReplyPrefix(mis.Mailbox) + ".fetch"
	sub, err := mis.SubscribeSync(inbox)
	if err != nil {
		b.Fatal(err)
	}
	sub.SetPendingLimits(2*proto.MaxFetch, 256<<20)
	body, _ := json.Marshal(proto.FetchRequest{Max: benchFetch, WaitMS: 1000})
	type got struct {
		data []byte
		at   time.Time
	}
	var batch []got
	var tokens []string
	return func(f func([]byte, time.Time) bool) error {
		batch, tokens = batch[:0], tokens[:0]
		if err := mis.PublishRequest(fetchSubj, inbox, body); err != nil {
			return err
		}
		for {
			m, err := sub.NextMsg(15 * time.Second)
			if err != nil {
				return fmt.Errorf("fetch: %w", err)
			}
			if m.Header.Get(proto.HeaderEnd) != "" {
				break
			}
			tok := m.Header.Get(proto.HeaderSettle)
			if tok == "" {
				return fmt.Errorf("fetch refused: %s", m.Data)
			}
			batch = append(batch, got{m.Data, time.Now()})
			tokens = append(tokens, tok)
		}
		if len(batch) == 0 {
			return nil
		}
		m, err := mis.Request(ackSubj, []byte(strings.Join(tokens, "\n")), 10*time.Second)
		if err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		var rep proto.SvcReply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		if rep.Error != nil || rep.Count != uint64(len(tokens)) {
			return fmt.Errorf("ack: %d of %d acknowledged (%v)", rep.Count, len(tokens), rep.Error)
		}
		for _, g := range batch {
			f(g.data, g.at)
		}
		return nil
	}
}

func benchReplyErr(data []byte) error {
	rep, err := proto.ParseReply(data)
	if err == nil && rep.Duplicate {
		err = errBenchDuplicate
	}
	return err
}

func benchWorld(b *testing.B) *relaytest.World {
	return relaytest.NewWorld(b, relaytest.MissionSpec{ID: benchMission, Countries: []string{benchCountry}})
}

// benchSeal seals a 1 KiB alert to the world's mission: the smallest
// envelope, one recipient.
func benchSeal(b *testing.B, w *relaytest.World) []byte {
	b.Helper()
	from, err := keys.GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	m := w.Dir.Missions[0]
	env, err := envelope.Seal(envelope.NewHeader(benchCountry, routing.Urgent), make([]byte, 1024), from,
		envelope.Deniable, envelope.ToInbox(m.Identity, m.InboxKeys[0].Key))
	if err != nil {
		b.Fatal(err)
	}
	// Check the id offset against the parser once.
	id := routing.NewID()
	buf := slices.Clone(env)
	copy(buf[benchIDOffset:], id[:])
	if info, err := envelope.Parse(buf); err != nil || info.ID != id {
		b.Fatalf("message id not at offset %d: %v", benchIDOffset, err)
	}
	return env
}

func benchPayload(n int) []byte {
	p := make([]byte, n)
	rand.Read(p)
	return p
}

// benchIDs makes unique message ids that carry their send time: 8 bytes
// of Unix nanoseconds, then a counter.
type benchIDs struct{ n uint64 }

func newBenchIDs() *benchIDs { return &benchIDs{} }

func (g *benchIDs) next() routing.ID {
	var id routing.ID
	g.n++
	binary.BigEndian.PutUint64(id[:8], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(id[8:], g.n)
	return id
}

// benchSentAt reads the send time from the message id in the data.
func benchSentAt(data []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(data[benchIDOffset:])))
}

// A benchDrain reads a path's batches until told how many to expect.
type benchDrain struct {
	got, want atomic.Int64
	done      chan struct{}
	once      sync.Once
	stop      chan struct{}
	exited    chan struct{}
	err       error
}

// benchStartDrain starts reading from p; onMsg, if not nil, sees every
// message on the reading goroutine.
func benchStartDrain(b *testing.B, p *benchPath, onMsg func(data []byte, received time.Time)) *benchDrain {
	d := &benchDrain{done: make(chan struct{}), stop: make(chan struct{}), exited: make(chan struct{})}
	d.want.Store(math.MaxInt64)
	f := func(data []byte, received time.Time) bool {
		if onMsg != nil {
			onMsg(data, received)
		}
		return d.got.Add(1) < d.want.Load()
	}
	go func() {
		defer close(d.exited)
		for d.got.Load() < d.want.Load() {
			select {
			case <-d.stop:
				return
			default:
			}
			if err := p.read(f); err != nil {
				d.finish(err)
				return
			}
		}
		d.finish(nil)
	}()
	b.Cleanup(func() { close(d.stop); <-d.exited })
	return d
}

func (d *benchDrain) finish(err error) {
	d.once.Do(func() { d.err = err; close(d.done) })
}

// wait waits until n messages were consumed, and fails the benchmark on
// an error or a count other than n.
func (d *benchDrain) wait(b *testing.B, n int64) {
	b.Helper()
	d.want.Store(n)
	if d.got.Load() >= n {
		d.finish(nil)
	}
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		b.Fatalf("consumer: %d of %d messages after a minute", d.got.Load(), n)
	}
	if d.err != nil {
		b.Fatalf("consumer: %v", d.err)
	}
	if got := d.got.Load(); got != n {
		b.Fatalf("consumer received %d messages, %d were published", got, n)
	}
}

func benchReportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// benchCPU is the CPU time (user and system) of the whole process: the
// servers, the relay and the clients. Per message it is the cost of a
// path, and unlike wall time it hardly moves when other processes load
// the machine.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchReportCPU(b *testing.B, since time.Duration, n int64) {
	if n > 0 {
		b.ReportMetric(float64((benchCPU()-since).Nanoseconds())/1e3/float64(n), "cpu-µs/msg")
	}
}
