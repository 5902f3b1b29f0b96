//go:build unix

package client_test

// Benchmarks of the end-to-end alert pipeline: defender seal → relay →
// mission open and verify → ack back to the defender, 1 KiB alerts, beside
// raw JetStream and the endpoint cryptography, all in one run so the
// numbers compare. Run without -race:
//
//	go test -run='^$' -bench=. -benchtime=1x -count=3 ./client
//
// Three groups, in this order:
//
//   - BenchmarkCrypto: what one alert and its ack cost at the endpoints.
//     Each operation is timed over at least benchCryptoMin whatever
//     -benchtime says, and ns/op is per operation. "bound" turns
//     seal + open into the crypto-bound limit, 1/(seal+open) alerts/s per
//     core.
//   - BenchmarkRawJetStream: a bare embedded nats-server with JetStream
//     (file store, Beacon's ALERTS stream settings) at each sync policy,
//     carrying messages of the size of a sealed alert: async publish with
//     a window while a pull consumer drains (msgs/s), and sequential
//     publish→consumed latency.
//   - BenchmarkPipeline: a real relay (relaytest, sync always unless the
//     name says otherwise) and real clients. A defender sends with
//     SendAlert (outbox and all); the nl-kampala mission of a world with
//     nl-kampala and se-kampala for "ug" reads with Alerts and
//     Acknowledges each (benchAckWorkers at a time, so acking does not
//     hold up reading); the defender reads the acks with Inbox.
//     rate=500 offers 500 alerts/s from a paced, open-loop sender and
//     reports send→decrypted-at-the-mission (dec-) and send→ack-decrypted-
//     at-the-defender (ack-) latencies; rate=500/no-acks is the same with
//     the mission only reading, which separates the alert path from the
//     ack path. peak runs benchPeakSenders SendAlert loops flat out and
//     reports each stage's rate; alerts/s counts alerts fully round-
//     tripped, and ratio-to-crypto-bound divides it by 1/(seal+open) of
//     one core as BenchmarkCrypto measured it in the same process
//     (ratio-to-2core-bound by twice that).
//
// The relay's per-key limits (publish, institution publish, service
// requests) are raised to 1e6/s (relaytest.Config sets 1000/s for
// publishes), so no limiter throttles a benchmark. Relay and clients
// share the process and the machine's cores; cpu-cores is the process's
// CPU time over the run's wall time. For the pipeline, ns/op is the time
// of one whole run.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

const (
	benchCountry = "ug"
	benchMission = "nl-kampala"
	// benchBodySize is the marshalled size of a benchmark alert.
	benchBodySize = 1024
	// benchCryptoMin is how long each cryptographic operation is timed.
	benchCryptoMin = 400 * time.Millisecond

	// benchRawAlways and benchRawInterval are the messages of one raw
	// pipelined run at each sync policy; benchRawLatencyN those of one
	// sequential latency run.
	benchRawAlways   = 5000
	benchRawInterval = 30000
	benchRawLatencyN = 2000
	// benchWindow is how many publishes the raw pipelined run keeps
	// outstanding; benchFetch the consumers' batch.
	benchWindow = 256
	benchFetch  = 256

	// benchRate is the offered rate of the fixed-rate pipeline run, and
	// benchRateAlerts its length.
	benchRate       = 500
	benchRateAlerts = 2500
	// benchPeakAlerts is the length of the peak run, sent by
	// benchPeakSenders concurrent SendAlert loops.
	benchPeakAlerts  = 2500
	benchPeakSenders = 8
	// benchAckWorkers Acknowledge what the mission's reader hands them,
	// so acking does not hold up reading.
	benchAckWorkers = 4
	// benchMaxInFlight bounds the fixed-rate run's concurrent SendAlerts.
	benchMaxInFlight = 64
	// benchWarmup alerts make a round trip before anything is timed.
	benchWarmup = 50
	// benchFetchWait is the readers' Wait.
	benchFetchWait = 200 * time.Millisecond
	// benchTimeout bounds one pipeline run.
	benchTimeout = 3 * time.Minute
)

// Crypto costs measured in this process, in ns, by BenchmarkCrypto's
// sub-benchmark name; the bound and the pipeline's ratio read them.
var (
	benchCryptoMu sync.Mutex
	benchCryptoNs = map[string]float64{}
)

// benchKeys is a world with the two missions for "ug" and a defender, and
// the recipients SendAlert would seal to.
type benchKeys struct {
	world *relaytest.World
	def   *keys.Keyring
	to    []envelope.Recipient // in SendAlert's order: the directory's
	ids   []string
}

func newBenchWorld(b *testing.B) *relaytest.World {
	return relaytest.NewWorld(b,
		relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{benchCountry}},
		relaytest.MissionSpec{ID: "se-kampala", Countries: []string{benchCountry}})
}

func newBenchKeys(b *testing.B) *benchKeys {
	b.Helper()
	k := &benchKeys{world: newBenchWorld(b)}
	var err error
	if k.def, err = keys.NewKeyring(keys.RoleDefender); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for _, m := range k.world.Dir.MissionsFor(benchCountry) {
		k.to = append(k.to, envelope.ToInbox(m.Identity, keys.CurrentInbox(m.InboxKeys, now)))
		k.ids = append(k.ids, m.ID)
	}
	if len(k.to) != 2 {
		b.Fatalf("%d missions cover %s, want 2", len(k.to), benchCountry)
	}
	return k
}

// benchDetails pads an alert's details so that the alert marshals to
// benchBodySize bytes; the summary has a fixed width.
var benchDetails = sync.OnceValue(func() string {
	a := benchAlert(0, "")
	body, err := message.Marshal(a)
	if err != nil {
		panic(err)
	}
	words := "Plain-clothes officers entered the office at dawn and took two colleagues. "
	return strings.Repeat(words, benchBodySize/len(words)+1)[:benchBodySize-len(body)]
})

// benchAlert is alert number seq; the summary carries seq so that the
// mission can tell when it was sent.
func benchAlert(seq int, details string) *message.Alert {
	return &message.Alert{Country: benchCountry, Priority: routing.Urgent, Category: message.CategoryRaid,
		Summary: fmt.Sprintf("bench alert %08d", seq), Details: details}
}

func benchAlertSeq(r *client.Received) (int, error) {
	a, ok := r.Message.(*message.Alert)
	if !ok {
		return 0, fmt.Errorf("mission received a %s, want an alert", r.Message.Kind())
	}
	return strconv.Atoi(strings.TrimPrefix(a.Summary, "bench alert "))
}

const benchAckPrefix = "bench ack "

func benchAckSeq(r *client.Received) (int, error) {
	a, ok := r.Message.(*message.Ack)
	if !ok {
		return 0, fmt.Errorf("defender received a %s, want an ack", r.Message.Kind())
	}
	return strconv.Atoi(strings.TrimPrefix(a.NextStep, benchAckPrefix))
}

// sealAlert does what SendAlert's crypto does: marshal, then seal
// deniably under a fresh header with the defender's reply mailbox.
func (k *benchKeys) sealAlert(to ...envelope.Recipient) ([]byte, error) {
	body, err := message.Marshal(benchAlert(1, benchDetails()))
	if err != nil {
		return nil, err
	}
	h := envelope.Header{ID: routing.NewID(), Created: time.Now(), Country: benchCountry, Priority: routing.Urgent,
		ReplyTo: proto.MailboxFor(k.def.NKeyPublic())}
	return envelope.Seal(h, body, k.def.Identity, envelope.Deniable, to...)
}

// sealAck does what Acknowledge's answer does: marshal the ack, parse the
// defender's identity from its text form (as the outbox entry stores it)
// and seal, signed, to it.
func sealAck(mission *keys.Keyring, defender string, ref routing.ID) ([]byte, error) {
	body, err := message.Marshal(&message.Ack{Ref: routing.ID(ref), By: "Human rights officer",
		NextStep: benchAckPrefix + "00000001"})
	if err != nil {
		return nil, err
	}
	id, err := keys.ParsePublicIdentity(defender)
	if err != nil {
		return nil, err
	}
	h := envelope.Header{ID: routing.NewID(), Created: time.Now(), Country: benchCountry, Priority: routing.Urgent,
		ReplyTo: proto.MailboxFor(mission.NKeyPublic())}
	return envelope.Seal(h, body, mission.Identity, envelope.Signed, envelope.To(id))
}

// openAs does what a client's open does with the cryptography: open with
// the identity and inbox keys, then unmarshal.
func openAs(kr *keys.Keyring, env []byte) (*envelope.Opened, message.Message, error) {
	o, err := envelope.Open(env, kr.Identity, kr.InboxKeys()...)
	if err != nil {
		return nil, nil, err
	}
	m, err := message.Unmarshal(o.Body)
	return o, m, err
}

// benchTime runs f for at least b.N calls and benchCryptoMin and records
// the mean, in ns, under name.
func benchTime(b *testing.B, name string, f func() error) float64 {
	b.Helper()
	if err := f(); err != nil { // and warm caches
		b.Fatal(err)
	}
	n := 0
	start := time.Now()
	for n < b.N || time.Since(start) < benchCryptoMin {
		if err := f(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	ns := float64(time.Since(start).Nanoseconds()) / float64(n)
	benchCryptoMu.Lock()
	benchCryptoNs[name] = ns
	benchCryptoMu.Unlock()
	return ns
}

// The operations BenchmarkCrypto times, by name.
const (
	cryptoSeal2     = "seal/alert-deniable-2"
	cryptoSeal1     = "seal/alert-deniable-1"
	cryptoOpenNL    = "open/alert-deniable-2-stanza0"
	cryptoOpenSE    = "open/alert-deniable-2-stanza1"
	cryptoOpen1     = "open/alert-deniable-1"
	cryptoAckSeal   = "ack/seal-signed-1"
	cryptoAckOpen   = "ack/open-signed-1"
	cryptoAckToken  = "ack/token-sign"
	cryptoTokVerify = "ack/token-verify"
	cryptoParseID   = "ack/parse-identity"
)

// A benchOp is one cryptographic operation and, for a seal, the size of
// what it makes.
type benchOp struct {
	name string
	f    func() error
	size int
}

// benchCryptoOps returns the operations of one alert and its ack, each
// with its message.Marshal or Unmarshal, in the order they happen.
func benchCryptoOps(b *testing.B) []benchOp {
	k := newBenchKeys(b)
	nl, se := k.world.Keyrings[k.ids[0]], k.world.Keyrings[k.ids[1]]
	env2, err := k.sealAlert(k.to...)
	if err != nil {
		b.Fatal(err)
	}
	env1, err := k.sealAlert(k.to[0])
	if err != nil {
		b.Fatal(err)
	}
	defText := k.def.Identity.Public().String()
	ackEnv, err := sealAck(nl, defText, routing.NewID())
	if err != nil {
		b.Fatal(err)
	}
	tok := envelope.SignAck(routing.NewID(), nl.Identity, time.Now())
	open := func(kr *keys.Keyring, env []byte, stanza int) func() error {
		return func() error {
			o, m, err := openAs(kr, env)
			if err == nil && (o.Stanza != stanza || m.Kind() == "") {
				err = fmt.Errorf("opened stanza %d, want %d", o.Stanza, stanza)
			}
			return err
		}
	}
	return []benchOp{
		{cryptoSeal2, func() error { _, err := k.sealAlert(k.to...); return err }, len(env2)},
		{cryptoSeal1, func() error { _, err := k.sealAlert(k.to[0]); return err }, len(env1)},
		// The directory lists nl-kampala first, so SendAlert gives it
		// stanza 0; Open tries the identity's KEM key before the inbox
		// key, so nl decapsulates twice and se, with stanza 1, four times.
		{cryptoOpenNL, open(nl, env2, 0), 0},
		{cryptoOpenSE, open(se, env2, 1), 0},
		{cryptoOpen1, open(nl, env1, 0), 0},
		// As Acknowledge does it: parse the defender's identity from the
		// outbox entry's text form, seal signed.
		{cryptoAckSeal, func() error { _, err := sealAck(nl, defText, routing.NewID()); return err }, len(ackEnv)},
		{cryptoAckOpen, open(k.def, ackEnv, 0), 0},
		{cryptoAckToken, func() error { envelope.SignAck(routing.NewID(), nl.Identity, time.Now()); return nil }, 0},
		// What the relay's ingest does with the token.
		{cryptoTokVerify, func() error {
			t, err := envelope.ParseAck(tok)
			if err == nil {
				err = t.Verify(nl.Identity.Public())
			}
			return err
		}, 0},
		{cryptoParseID, func() error { _, err := keys.ParsePublicIdentity(defText); return err }, 0},
	}
}

// BenchmarkCrypto times the endpoint cryptography of one alert and its
// ack; ns/op is per operation.
func BenchmarkCrypto(b *testing.B) {
	for _, op := range benchCryptoOps(b) {
		b.Run(op.name, func(b *testing.B) {
			b.ReportMetric(benchTime(b, op.name, op.f), "ns/op")
			if op.size > 0 {
				b.ReportMetric(float64(op.size), "envelope-B")
			}
		})
	}
	b.Run("bound", func(b *testing.B) {
		c := benchCryptoCosts(b)
		b.ReportMetric(c.seal+c.open, "ns/op")
		b.ReportMetric(c.seal/1e3, "seal-µs")
		b.ReportMetric(c.open/1e3, "open-µs")
		b.ReportMetric(c.bound(), "alerts/s/core")
		b.ReportMetric(2*c.bound(), "alerts/s/2cores")
		b.ReportMetric(c.roundTrip/1e3, "roundtrip-µs")
		b.ReportMetric(1e9/c.roundTrip, "roundtrips/s/core")
	})
}

// benchCosts are the crypto costs the limit is made of, in ns.
type benchCosts struct {
	// seal is one alert sealed to the two missions of "ug", open is one
	// mission's open+verify of it (nl-kampala, stanza 0): together the
	// issue's "seal-plus-open cost".
	seal, open float64
	// roundTrip adds the ack: the mission's signed seal to the defender,
	// the defender's open, and the ack token the mission signs (not the
	// relay's verification of the token, ack/token-verify).
	roundTrip float64
}

// bound is the crypto-bound limit, alerts/s per core.
func (c benchCosts) bound() float64 { return 1e9 / (c.seal + c.open) }

// benchCryptoCosts returns the costs BenchmarkCrypto measured in this
// process, measuring what is missing now (when run alone).
func benchCryptoCosts(b *testing.B) benchCosts {
	benchCryptoMu.Lock()
	_, ok := benchCryptoNs[cryptoAckToken]
	benchCryptoMu.Unlock()
	if !ok {
		for _, op := range benchCryptoOps(b) {
			benchTime(b, op.name, op.f)
		}
	}
	benchCryptoMu.Lock()
	defer benchCryptoMu.Unlock()
	ns := benchCryptoNs
	return benchCosts{seal: ns[cryptoSeal2], open: ns[cryptoOpenNL],
		roundTrip: ns[cryptoSeal2] + ns[cryptoOpenNL] + ns[cryptoAckSeal] + ns[cryptoAckOpen] + ns[cryptoAckToken]}
}

// benchEnvelopeSize is the size of a 1 KiB alert sealed to two missions.
var benchEnvelopeSize = sync.OnceValues(func() (int, error) {
	id, err := keys.GenerateIdentity()
	if err != nil {
		return 0, err
	}
	var to []envelope.Recipient
	for range 2 {
		kr, err := keys.NewKeyring(keys.RoleMission)
		if err != nil {
			return 0, err
		}
		to = append(to, envelope.ToInbox(kr.Identity.Public(), kr.Inboxes[0].Key.Public()))
	}
	body, err := message.Marshal(benchAlert(1, benchDetails()))
	if err != nil {
		return 0, err
	}
	h := envelope.NewHeader(benchCountry, routing.Urgent)
	h.ReplyTo = proto.MailboxFor("bench")
	env, err := envelope.Seal(h, body, id, envelope.Deniable, to...)
	return len(env), err
})

// benchRaw is a bare embedded nats-server with a stream configured as
// Beacon's ALERTS and a durable pull consumer configured as a mission's.
type benchRaw struct {
	js      jetstream.JetStream
	cons    jetstream.Consumer
	payload []byte
	onAck   atomic.Pointer[func(error)]
	n       int
}

func startBenchRaw(b *testing.B, sync relay.SyncPolicy, size int) *benchRaw {
	b.Helper()
	srv := relaytest.StartRaw(b, sync)
	st := relaytest.Config(b).Storage // the relay's stream limits
	r := &benchRaw{payload: make([]byte, size)}
	var err error
	noop := func(error) {}
	r.onAck.Store(&noop)
	ack := func(err error) { (*r.onAck.Load())(err) }
	r.js, err = jetstream.New(benchConnect(b, srv.ClientURL()),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, pa *jetstream.PubAck) {
			if pa.Duplicate {
				ack(errors.New("stored as a duplicate"))
				return
			}
			ack(nil)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { ack(err) }))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := r.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: proto.StreamAlerts, Subjects: []string{proto.SubjectAlerts}, Retention: jetstream.LimitsPolicy,
		Discard: jetstream.DiscardNew, MaxAge: st.Retention, MaxBytes: 4 << 30, MaxMsgSize: int32(st.MaxMessageSize),
		Duplicates: st.DedupWindow, Storage: jetstream.FileStorage, Replicas: 1, DenyDelete: true, DenyPurge: true,
	}); err != nil {
		b.Fatal(err)
	}
	// A second connection reads, as a mission does; the consumer is
	// configured as the client configures a mission's.
	cjs, err := jetstream.New(benchConnect(b, srv.ClientURL()))
	if err != nil {
		b.Fatal(err)
	}
	r.cons, err = cjs.CreateOrUpdateConsumer(ctx, proto.StreamAlerts, jetstream.ConsumerConfig{
		Durable: "bench", FilterSubject: proto.AlertFilter(benchCountry), AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: 30 * time.Second, MaxAckPending: 4096,
	})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// msg is the next message, with a dedup id as the relay's ingest sets.
func (r *benchRaw) msg() *nats.Msg {
	r.n++
	return &nats.Msg{Subject: proto.AlertSubject(benchCountry, routing.Urgent), Data: r.payload,
		Header: nats.Header{jetstream.MsgIDHeader: []string{strconv.Itoa(r.n)}}}
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

// BenchmarkRawJetStream is JetStream alone, with messages the size of a
// 1 KiB alert sealed to two missions.
func BenchmarkRawJetStream(b *testing.B) {
	size, err := benchEnvelopeSize()
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []relay.SyncPolicy{relay.SyncAlways, relay.SyncInterval} {
		n := benchRawAlways
		if s == relay.SyncInterval {
			n = benchRawInterval
		}
		b.Run(fmt.Sprintf("sync=%s/%dB/pipelined", s, size), func(b *testing.B) {
			r := startBenchRaw(b, s, size)
			var total int
			var elapsed time.Duration
			cpu := benchCPU()
			for range b.N {
				elapsed += benchRawPipelined(b, r, n)
				total += n
			}
			b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(cpu.cores(elapsed), "cpu-cores")
		})
		b.Run(fmt.Sprintf("sync=%s/%dB/latency", s, size), func(b *testing.B) {
			r := startBenchRaw(b, s, size)
			var lat []time.Duration
			for range b.N {
				lat = append(lat, benchRawLatency(b, r, benchRawLatencyN)...)
			}
			benchReportLatency(b, "", lat, false)
		})
	}
}

// benchRawPipelined publishes n messages asynchronously, benchWindow at a
// time, while the consumer fetches and acks; it returns the time from the
// first publish to the last message consumed.
func benchRawPipelined(b *testing.B, r *benchRaw, n int) time.Duration {
	sem := make(chan struct{}, benchWindow)
	var failed atomic.Pointer[error]
	onAck := func(err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
		<-sem
	}
	r.onAck.Store(&onAck)
	done := make(chan error, 1)
	go func() {
		got := 0
		for got < n {
			batch, err := r.cons.Fetch(benchFetch, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				done <- err
				return
			}
			k := 0
			for m := range batch.Messages() {
				m.Ack()
				k++
				if got+k == n {
					done <- nil
					return
				}
			}
			if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
				done <- err
				return
			}
			if k == 0 {
				done <- fmt.Errorf("consumer: %d of %d after 5 s of nothing", got, n)
				return
			}
			got += k
		}
		done <- nil
	}()
	start := time.Now()
	for range n {
		sem <- struct{}{}
		if _, err := r.js.PublishMsgAsync(r.msg()); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	for range benchWindow {
		sem <- struct{}{}
	}
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return elapsed
}

// benchRawLatency publishes n messages one at a time and measures each
// from the publish to the consumer's callback.
func benchRawLatency(b *testing.B, r *benchRaw, n int) []time.Duration {
	noop := func(error) {}
	r.onAck.Store(&noop)
	recv := make(chan time.Time, 1)
	cc, err := r.cons.Consume(func(m jetstream.Msg) {
		t := time.Now()
		m.Ack()
		recv <- t
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		fut, err := r.js.PublishMsgAsync(r.msg())
		if err != nil {
			b.Fatal(err)
		}
		select {
		case t := <-recv:
			lat = append(lat, t.Sub(t0))
		case <-time.After(10 * time.Second):
			b.Fatal("message not consumed in 10 s")
		}
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			b.Fatal(err)
		}
	}
	return lat
}

// benchPipe is a relay with the defender and the nl-kampala mission
// connected through the client library.
type benchPipe struct {
	def, nl *client.Client
}

func startBenchPipe(b *testing.B, sync relay.SyncPolicy) *benchPipe {
	b.Helper()
	w := newBenchWorld(b)
	cfg := relaytest.Config(b)
	w.Configure(cfg)
	cfg.Storage.Sync = sync
	cfg.Storage.MaxBytes = 1 << 30
	// relaytest sets 1000/s: raise every per-key limit so that only the
	// pipeline limits.
	l := &cfg.Limits
	l.PublishRate, l.PublishBurst = 1e6, 1e6
	l.InstitutionPublishRate, l.InstitutionPublishBurst = 1e6, 1e6
	l.ServiceRate, l.ServiceBurst = 1e6, 1e6
	r := relaytest.Start(b, cfg)
	open := func(kr *keys.Keyring) *client.Client {
		c, err := client.Open(client.Config{URLs: []string{r.ClientURL()}, Keyring: kr,
			Root: w.Root.Public().Fingerprint(), StateDir: b.TempDir(), Directory: w.Dir.Raw})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.WaitConnected(ctx); err != nil {
			b.Fatal(err)
		}
		return c
	}
	defKR, err := keys.NewKeyring(keys.RoleDefender)
	if err != nil {
		b.Fatal(err)
	}
	p := &benchPipe{def: open(defKR), nl: open(w.Keyrings[benchMission])}
	// Warm up: consumers created, DH secrets cached, code paths paged in.
	p.run(b, benchPeak, benchWarmup, true)
	return p
}

// A benchMode is how the defender sends.
type benchMode int

const (
	// benchPaced starts one SendAlert every 1/benchRate s, each on its
	// own goroutine (at most benchMaxInFlight at once): the offered
	// load does not wait for the pipeline.
	benchPaced benchMode = iota
	// benchPeak runs benchPeakSenders SendAlert loops flat out.
	benchPeak
)

// benchRun is the record of one pipeline run: Unix ns by alert number.
type benchRun struct {
	n                         int
	start                     time.Time
	sentAt, missionAt, ackAt  []atomic.Int64
	sendDone, ackDone         []atomic.Int64 // SendAlert, Acknowledge returned
	ackCall                   []atomic.Int64 // how long Acknowledge took, ns
	maxLag                    atomic.Int64   // how late the paced sender started a send, ns
	gotAlerts, gotAcks, acked atomic.Int64
	cpu                       benchCPUStart
}

// run sends n alerts, has the mission read and acknowledge them and the
// defender read the acks, and returns when every ack is in. Without
// acks, the mission only reads, and run returns when it has read them all.
func (p *benchPipe) run(b *testing.B, mode benchMode, n int, acks bool) *benchRun {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	var failed atomic.Pointer[error]
	fail := func(err error) {
		failed.CompareAndSwap(nil, &err)
		cancel()
	}
	r := &benchRun{n: n, sentAt: make([]atomic.Int64, n), missionAt: make([]atomic.Int64, n),
		ackAt: make([]atomic.Int64, n), sendDone: make([]atomic.Int64, n), ackDone: make([]atomic.Int64, n),
		ackCall: make([]atomic.Int64, n)}
	details := benchDetails()
	var wg sync.WaitGroup

	// The mission reads and hands each alert to the ack workers.
	type job struct {
		r   *client.Received
		seq int
	}
	jobs := make(chan job, n)
	wg.Go(func() {
		defer close(jobs)
		for r.gotAlerts.Load() < int64(n) && ctx.Err() == nil {
			rs, err := receiveAlerts(p.nl, ctx, client.FetchOptions{Max: benchFetch, Wait: benchFetchWait})
			now := time.Now().UnixNano()
			if err != nil {
				fail(fmt.Errorf("Alerts: %w", err))
				return
			}
			for _, rc := range rs {
				seq, err := benchAlertSeq(rc)
				if err == nil && (seq < 0 || seq >= n || r.missionAt[seq].Swap(now) != 0) {
					err = fmt.Errorf("alert %d unexpected or delivered twice", seq)
				}
				if err == nil && rc.Auth != envelope.Deniable {
					err = fmt.Errorf("alert %d is %s, want deniable", seq, rc.Auth)
				}
				if err != nil {
					fail(err)
					return
				}
				r.gotAlerts.Add(1)
				if acks {
					jobs <- job{rc, seq}
				}
			}
		}
	})
	workers := benchAckWorkers
	if !acks {
		workers = 0
	}
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				t0 := time.Now()
				s, err := p.nl.Acknowledge(ctx, j.r, "Human rights officer", fmt.Sprintf("%s%08d", benchAckPrefix, j.seq))
				r.ackCall[j.seq].Store(int64(time.Since(t0)))
				if err == nil && s.Queued {
					err = errors.New("ack queued, not delivered")
				}
				if err != nil {
					fail(fmt.Errorf("Acknowledge: %w", err))
					return
				}
				r.ackDone[j.seq].Store(time.Now().UnixNano())
				r.acked.Add(1)
			}
		})
	}
	// The defender reads the acks.
	wg.Go(func() {
		for acks && r.gotAcks.Load() < int64(n) && ctx.Err() == nil {
			rs, err := p.def.ReadMailbox(ctx, client.FetchOptions{Max: benchFetch, Wait: benchFetchWait})
			now := time.Now().UnixNano()
			if err != nil {
				fail(fmt.Errorf("Inbox: %w", err))
				return
			}
			for _, rc := range rs {
				seq, err := benchAckSeq(rc)
				if err == nil && (seq < 0 || seq >= n || r.ackAt[seq].Swap(now) != 0) {
					err = fmt.Errorf("ack %d unexpected or delivered twice", seq)
				}
				if err == nil && (rc.Auth != envelope.Signed || rc.From != benchMission) {
					err = fmt.Errorf("ack %d is %s from %q", seq, rc.Auth, rc.From)
				}
				if err != nil {
					fail(err)
					return
				}
				r.gotAcks.Add(1)
			}
		}
	})

	send := func(seq int) {
		a := benchAlert(seq, details)
		t0 := time.Now()
		r.sentAt[seq].Store(t0.UnixNano())
		s, err := p.def.SendAlert(ctx, a)
		r.sendDone[seq].Store(time.Now().UnixNano())
		if err == nil && (s.Queued || len(s.Missions) != 2) {
			err = fmt.Errorf("sent = %+v, want delivered to 2 missions", s)
		}
		if err != nil {
			fail(fmt.Errorf("SendAlert: %w", err))
		}
	}
	r.cpu = benchCPU()
	r.start = time.Now()
	switch mode {
	case benchPaced:
		sem := make(chan struct{}, benchMaxInFlight)
		interval := time.Second / benchRate
		for seq := 0; seq < n && ctx.Err() == nil; seq++ {
			due := r.start.Add(time.Duration(seq) * interval)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			sem <- struct{}{}
			if lag := time.Since(due); lag > time.Duration(r.maxLag.Load()) {
				r.maxLag.Store(int64(lag))
			}
			wg.Go(func() {
				defer func() { <-sem }()
				send(seq)
			})
		}
	case benchPeak:
		var next atomic.Int64
		for range benchPeakSenders {
			wg.Go(func() {
				for ctx.Err() == nil {
					seq := int(next.Add(1) - 1)
					if seq >= n {
						return
					}
					send(seq)
				}
			})
		}
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	if err := ctx.Err(); err != nil {
		b.Fatalf("run: %v: %d alerts read, %d acked, %d acks read of %d", err, r.gotAlerts.Load(), r.acked.Load(), r.gotAcks.Load(), n)
	}
	return r
}

// since returns, for every alert, what at − sentAt is.
func (r *benchRun) since(at []atomic.Int64) []time.Duration {
	out := make([]time.Duration, r.n)
	for i := range out {
		out[i] = time.Duration(at[i].Load() - r.sentAt[i].Load())
	}
	return out
}

// last is when the last of at happened, from the start of the run.
func (r *benchRun) last(at []atomic.Int64) time.Duration {
	var m int64
	for i := range at {
		m = max(m, at[i].Load())
	}
	return time.Duration(m - r.start.UnixNano())
}

// BenchmarkPipeline is the end-to-end alert pipeline through the real relay
// and the real client library.
func BenchmarkPipeline(b *testing.B) {
	for _, s := range []relay.SyncPolicy{relay.SyncAlways, relay.SyncInterval} {
		for _, acks := range []bool{true, false} {
			name := fmt.Sprintf("sync=%s/rate=%d", s, benchRate)
			if !acks {
				name += "/no-acks" // the mission only reads
			}
			b.Run(name, func(b *testing.B) { benchPaced500(b, s, acks) })
		}
		b.Run(fmt.Sprintf("sync=%s/peak", s), func(b *testing.B) {
			c := benchCryptoCosts(b)
			p := startBenchPipe(b, s)
			var dec, send, ackCall []time.Duration
			var wall, sendWall, decWall, ackWall time.Duration
			cpu := benchCPU()
			for range b.N {
				r := p.run(b, benchPeak, benchPeakAlerts, true)
				dec = append(dec, r.since(r.missionAt)...)
				send = append(send, r.since(r.sendDone)...)
				for i := range r.ackCall {
					ackCall = append(ackCall, time.Duration(r.ackCall[i].Load()))
				}
				wall += r.last(r.ackAt)
				sendWall += r.last(r.sendDone)
				decWall += r.last(r.missionAt)
				ackWall += r.last(r.ackDone)
			}
			// Each stage's rate: the run's alerts over the time its
			// last one got through that stage.
			n := float64(b.N * benchPeakAlerts)
			rate := n / wall.Seconds()
			b.ReportMetric(rate, "alerts/s")
			b.ReportMetric(n/sendWall.Seconds(), "sent/s")
			b.ReportMetric(n/decWall.Seconds(), "decrypted/s")
			b.ReportMetric(n/ackWall.Seconds(), "acked/s")
			b.ReportMetric(c.bound(), "bound/s/core")
			b.ReportMetric(rate/c.bound(), "ratio-to-crypto-bound")
			b.ReportMetric(rate/(2*c.bound()), "ratio-to-2core-bound")
			b.ReportMetric(rate*c.roundTrip/1e9, "crypto-cores")
			benchReportLatency(b, "dec-", dec, false)
			// How long one SendAlert and one Acknowledge call took.
			benchReportLatency(b, "send-", send, false)
			benchReportLatency(b, "ackcall-", ackCall, false)
			b.ReportMetric(cpu.cores(wall), "cpu-cores")
		})
	}
}

// benchPaced500 offers benchRate alerts/s and reports the latencies.
func benchPaced500(b *testing.B, s relay.SyncPolicy, acks bool) {
	p := startBenchPipe(b, s)
	var dec, ack, send []time.Duration
	var sendSpan, wall time.Duration
	var lag int64
	cpu := benchCPU()
	for range b.N {
		r := p.run(b, benchPaced, benchRateAlerts, acks)
		dec = append(dec, r.since(r.missionAt)...)
		send = append(send, r.since(r.sendDone)...)
		sendSpan += time.Duration(r.sentAt[r.n-1].Load() - r.sentAt[0].Load())
		lag = max(lag, r.maxLag.Load())
		if acks {
			ack = append(ack, r.since(r.ackAt)...)
			wall += r.last(r.ackAt)
		} else {
			wall += r.last(r.missionAt)
		}
	}
	b.ReportMetric(float64(b.N*(benchRateAlerts-1))/sendSpan.Seconds(), "offered/s")
	b.ReportMetric(float64(lag)/1e6, "max-lag-ms")
	benchReportLatency(b, "dec-", dec, true)
	if acks {
		benchReportLatency(b, "ack-", ack, false)
	}
	benchReportLatency(b, "send-", send, false)
	b.ReportMetric(cpu.cores(wall), "cpu-cores")
}

// benchReportLatency reports p50 and p99 (and with withMax the maximum)
// in ms.
func benchReportLatency(b *testing.B, prefix string, lat []time.Duration, withMax bool) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		i := min(len(lat)-1, int(math.Ceil(p*float64(len(lat))))-1)
		return float64(lat[max(i, 0)].Nanoseconds()) / 1e6
	}
	b.ReportMetric(q(0.50), prefix+"p50-ms")
	b.ReportMetric(q(0.99), prefix+"p99-ms")
	if withMax {
		b.ReportMetric(q(1), prefix+"max-ms")
	}
}

// benchCPUStart is the process's CPU time at some instant.
type benchCPUStart time.Duration

func benchCPU() benchCPUStart {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return benchCPUStart(time.Duration(ru.Utime.Nano() + ru.Stime.Nano()))
}

// cores is the CPU time used since s, over wall.
func (s benchCPUStart) cores(wall time.Duration) float64 {
	return float64(time.Duration(benchCPU())-time.Duration(s)) / float64(wall)
}
