package relay_test

// Benchmarks of issue 8, run without -race, once each:
//
//	go test -run='^$' -bench='Flood|Memory' -benchtime=1x -timeout=30m ./relay
//
// BenchmarkFloodAlertLatency: a sustained flood (solving flooders with
// fresh keys, spammers without proofs) at the shipped admission defaults
// while a defender sends b.N urgent alerts one after another; each
// latency is send to decrypted at the mission. It reports p50/p99, the
// highest difficulty the relay reached, the defender's Argon2id tries per
// alert and their cost in one core's time, and the flooder's tries and
// core time per stored envelope.
//
// BenchmarkMemory: the server process's heap and RSS with 100,000
// mailboxes (one reply each, each read once) and with 10,000 idle
// connections (held by a child process, so only the server is measured),
// for the relay and for a raw nats-server with JetStream in the same run.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

func BenchmarkFloodAlertLatency(b *testing.B) {
	w := relaytest.NewWorld(b, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	cfg := relaytest.Config(b)
	w.Configure(cfg)
	cfg.Admission = relay.DefaultConfig(b.TempDir()).Admission // the shipped defaults
	cfg.Admission.PerAddressConnections = 0                    // every flooder is on 127.0.0.1
	cfg.Admission.PerAddressConnectRate, cfg.Admission.PerAddressConnectBurst = 1e9, 1e9
	r := relaytest.Start(b, cfg)
	target := proto.AlertTarget("ug", routing.Urgent)
	try := argon2TryTime(cfg.Admission) // one core's time, before the flood loads the machine
	f := startFlood(b, r.ClientURL(), 8, 2, target, junkTemplate(b, "ug", routing.Urgent))
	select {
	case <-f.proofs:
	case <-time.After(floodFor):
		b.Fatal("the flood never made the relay ask for a proof")
	}
	mission := w.ConnectAs(b, r.ClientURL(), "nl-kampala")
	defender := relaytest.Connect(b, r.ClientURL(), nil)
	stored0, tries0 := f.stored.Load(), f.tries.Load()
	var lat []time.Duration
	maxBits := 0.0
	var defTries uint64
	var pending []func() uint64
	b.ResetTimer()
	for range b.N {
		h := header("ug", routing.Urgent, time.Now())
		alert := sealAlert(b, w, h, "detained")
		before := defender.Relay.ProofTries()
		start := time.Now()
		sent := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), floodFor)
			defer cancel()
			_, err := defender.Relay.Publish(ctx, target, alert)
			sent <- err
		}()
		body, junk := missionReader(b, mission, w.Keyrings["nl-kampala"], "ug", h.ID)
		lat = append(lat, time.Since(start))
		if err := <-sent; err != nil || string(body) != "detained" {
			b.Fatalf("alert: %v %q", err, body)
		}
		pending = append(pending, junk) // reports go on in the background
		defTries += defender.Relay.ProofTries() - before
		maxBits = max(maxBits, gather(b, r)["beacon_relay_admission_bits"])
	}
	b.StopTimer()
	for _, wait := range pending {
		wait()
	}
	f.end() // the flooders' last tries are counted as their connections close
	stored, tries := f.stored.Load()-stored0, f.tries.Load()-tries0
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Milliseconds()), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
	b.ReportMetric(maxBits, "max-bits")
	b.ReportMetric(float64(defTries)/float64(b.N), "defender-tries/alert")
	b.ReportMetric(float64(defTries)/float64(b.N)*try.Seconds(), "defender-core-s/alert")
	b.ReportMetric(float64(uint64(1)<<uint(maxBits))*try.Seconds(), "core-s-at-max-bits")
	if stored > 0 {
		b.ReportMetric(float64(tries)/float64(stored), "flooder-tries/stored")
		b.ReportMetric(float64(tries)/float64(stored)*try.Seconds(), "flooder-core-s/stored")
	}
	b.ReportMetric(float64(try.Microseconds()), "argon2-try-µs")
}

// argon2TryTime is one Argon2id try at the admission's parameters on one
// core, measured before the flood.
func argon2TryTime(a relay.AdmissionConfig) time.Duration {
	p := proto.ChallengeParams{MemoryKiB: uint32(a.MemoryKiB), Passes: uint32(a.Passes), Expires: time.Now()}
	raw := make([]byte, proto.ChallengeSize)
	var mb routing.Mailbox
	var d [32]byte
	const n = 2000
	start := time.Now()
	for i := range n {
		proto.ProofWork(p, raw, mb, &d, uint64(i))
	}
	return time.Since(start) / n
}

func BenchmarkMemory(b *testing.B) {
	b.Run("mailboxes=100000/beacon", func(b *testing.B) { benchMailboxMemory(b, true) })
	b.Run("mailboxes=100000/raw", func(b *testing.B) { benchMailboxMemory(b, false) })
	b.Run("idle-connections=10000/beacon", func(b *testing.B) { benchIdleConns(b, true) })
	b.Run("idle-connections=10000/raw", func(b *testing.B) { benchIdleConns(b, false) })
}

type memSample struct{ heap, rss uint64 }

func sampleMem() memSample {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := memSample{heap: m.HeapInuse + m.StackInuse}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			s.rss = pages * uint64(os.Getpagesize())
		}
	}
	return s
}

func reportMem(b *testing.B, before, after memSample, per int, unit string) {
	b.ReportMetric(float64(after.heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(after.rss)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(int64(after.heap)-int64(before.heap))/float64(per), "heap-B/"+unit)
	b.ReportMetric(float64(int64(after.rss)-int64(before.rss))/float64(per), "rss-B/"+unit)
}

func benchMailboxMemory(b *testing.B, beacon bool) {
	const n = 100_000
	mbs := make([]routing.Mailbox, n)
	for i := range mbs {
		rand.Read(mbs[i][:])
	}
	var nc *nats.Conn
	var publish func(mb routing.Mailbox, data []byte) error
	var read func(mb routing.Mailbox, reply string) error
	var readReplies string
	if beacon {
		w := relaytest.NewWorld(b, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
		cfg := relaytest.Config(b)
		w.Configure(cfg)
		cfg.Storage.Sync = relay.SyncInterval
		cfg.Storage.MaxBytes = 4 << 30
		cfg.Limits.InstitutionPublishRate, cfg.Limits.InstitutionPublishBurst = 1e9, 1e9
		cfg.Limits.ServiceRate, cfg.Limits.ServiceBurst = 1e9, 1e9
		r := relaytest.Start(b, cfg)
		nc = relay.InternalConn(r)
		mission := proto.MailboxFor(w.Keyrings["nl-kampala"].NKeyPublic())
		publish = func(mb routing.Mailbox, data []byte) error {
			return nc.PublishRequest(proto.Ingest(mission, proto.MailboxTarget(mb)), proto.ReplyPrefix(mission)+".ack", data)
		}
		readReplies = "bcn.reply.*.m"
		read = func(mb routing.Mailbox, reply string) error {
			return nc.PublishRequest(proto.Ingest(mb, proto.SvcFetchMbox), proto.ReplyPrefix(mb)+".m", []byte(`{"max":4}`))
		}
	} else {
		srv := relaytest.StartRaw(b, relay.SyncInterval)
		var err error
		if nc, err = nats.Connect("", nats.InProcessServer(srv)); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "MAILBOX", Subjects: []string{"bcn.mbox.>"},
			AllowDirect: true, MaxBytes: 4 << 30, Discard: jetstream.DiscardNew, Duplicates: time.Hour}); err != nil {
			b.Fatal(err)
		}
		publish = func(mb routing.Mailbox, data []byte) error {
			m := &nats.Msg{Subject: proto.MailboxSubject(mb), Reply: "bcn.reply.raw.ack", Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{mb.String()}}}
			return nc.PublishMsg(m)
		}
		readReplies = "bcn.reply.raw.m"
		read = func(mb routing.Mailbox, reply string) error {
			body, _ := json.Marshal(map[string]any{"seq": 1, "next_by_subj": proto.MailboxSubject(mb), "batch": 4})
			return nc.PublishRequest("$JS.API.DIRECT.GET.MAILBOX", "bcn.reply.raw.m", body)
		}
	}
	wm := relaytest.NewWorld(b, relaytest.MissionSpec{ID: "m", Countries: []string{"ug"}})
	env := sealToDefender(b, wm, "m", newIdentity(b), "reply")
	before := sampleMem()
	const window = 512
	slots := make(chan struct{}, window)
	var acks, ends, refused atomic.Int64
	asub, _ := nc.Subscribe("bcn.reply.*.ack", func(*nats.Msg) { acks.Add(1); <-slots })
	rsub, _ := nc.Subscribe(readReplies, func(m *nats.Msg) {
		switch {
		case m.Header.Get(proto.HeaderEnd) != "" || m.Header.Get("Status") != "":
			// The end of a batch: Beacon's end marker, JetStream's 204 / 404.
			ends.Add(1)
			<-slots
		case m.Header.Get(proto.HeaderSubject) == "" && m.Header.Get(jetstream.SubjectHeader) == "":
			// Beacon's refusal: no batch follows.
			refused.Add(1)
			<-slots
		}
	})
	asub.SetPendingLimits(-1, -1)
	rsub.SetPendingLimits(-1, -1)
	b.ResetTimer()
	for _, mb := range mbs {
		slots <- struct{}{}
		data := slices.Clone(env)
		copy(data[8:8+routing.IDSize], mb[:]) // a distinct id per message
		if err := publish(mb, data); err != nil {
			b.Fatal(err)
		}
	}
	for _, mb := range mbs {
		slots <- struct{}{}
		if err := read(mb, ""); err != nil {
			b.Fatal(err)
		}
	}
	for range window {
		slots <- struct{}{}
	}
	b.StopTimer()
	if acks.Load() != n || ends.Load() != n {
		b.Fatalf("%d stored, %d read, %d reads refused; want %d", acks.Load(), ends.Load(), refused.Load(), n)
	}
	reportMem(b, before, sampleMem(), n, "mailbox")
	if f := os.Getenv("BEACON_HEAPPROFILE"); f != "" && beacon {
		out, _ := os.Create(f)
		pprof.WriteHeapProfile(out)
		out.Close()
	}
}

// benchIdleConns holds 10,000 connections from a child process and
// measures this (the server's) process.
func benchIdleConns(b *testing.B, beacon bool) {
	const n = 10_000
	var url string
	if beacon {
		cfg := relaytest.Config(b)
		cfg.Limits.MaxConnections = 2 * n
		r := relaytest.Start(b, cfg)
		url = r.ClientURL()
	} else {
		url = relaytest.StartRaw(b, relay.SyncInterval).ClientURL()
	}
	before := sampleMem()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientsHelper$")
	cmd.Env = append(os.Environ(), "BEACON_IDLE_URL="+url, "BEACON_IDLE_N="+strconv.Itoa(n), "BEACON_IDLE_NKEY="+strconv.FormatBool(beacon))
	out, _ := cmd.StdoutPipe()
	in, _ := cmd.StdinPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "ready") {
	}
	if !strings.HasPrefix(sc.Text(), "ready") {
		b.Fatal("the client process did not connect")
	}
	reportMem(b, before, sampleMem(), n, "conn")
}

// TestIdleClientsHelper is the child process of benchIdleConns: it opens
// the connections, says "ready" and holds them until its stdin closes.
func TestIdleClientsHelper(t *testing.T) {
	url := os.Getenv("BEACON_IDLE_URL")
	if url == "" {
		t.Skip("the child process of BenchmarkMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("BEACON_IDLE_N"))
	withKey := os.Getenv("BEACON_IDLE_NKEY") == "true"
	var conns []*nats.Conn
	for i := range n {
		var nc *nats.Conn
		var err error
		if withKey {
			var c *relaytest.Conn
			if c, err = relaytest.Dial(url, nil); err == nil {
				nc = c.Conn
				// As relayconn does: one subscription on the reply prefix.
				_, err = nc.Subscribe(proto.ReplyPrefix(c.Mailbox)+".>", func(*nats.Msg) {})
			}
		} else {
			if nc, err = nats.Connect(url); err == nil {
				_, err = nc.Subscribe(nats.NewInbox()+".>", func(*nats.Msg) {})
			}
		}
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		nc.Flush()
		conns = append(conns, nc)
	}
	fmt.Println("ready", len(conns))
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		c.Close()
	}
}
