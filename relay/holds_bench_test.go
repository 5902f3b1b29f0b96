package relay_test

// Benchmarks of held envelopes, run once each (they are load scenarios,
// not loops over b.N):
//
//	go test ./relay/ -run '^$' -bench 'Holds' -benchtime 1x -timeout 30m
//
// BenchmarkHoldsCheckInPlans arms 100,000 check-in plans on one relay,
// 10,000 of them falling due within the same minute, and reports the
// process's memory with all armed and at its peak, and the lateness of
// the releases as a mission receives them. The memory is the whole test
// process's (relay, the mission reading, the test's own bookkeeping),
// measured once the arming is over. BenchmarkHoldsEscalation
// sends 1,000 urgent alerts in a minute, each with its escalation, half
// of them acknowledged, and reports the lateness of the other half's
// escalations as the escalation target receives them.

import (
	"bufio"
	"context"
	"crypto/rand"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// procKiB reads a field of /proc/self/status in KiB (VmRSS, VmHWM).
func procKiB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return n
		}
	}
	return 0
}

func benchConfig(b *testing.B, w *relaytest.World) *relay.Config {
	b.Helper()
	cfg := relaytest.Config(b)
	cfg.Storage.MaxBytes = 2 << 30
	cfg.Limits.PublishRate, cfg.Limits.PublishBurst = 1e6, 1e6
	cfg.Limits.ServiceRate, cfg.Limits.ServiceBurst = 1e6, 1e6
	cfg.Holds.MinCheckInInterval = time.Second
	// 10,000 releases into one channel in a minute is the scenario; the
	// per-channel quota (storage.channel_messages) would hold all but
	// the first thousand back, retried, until the channel has room.
	cfg.Storage.ChannelMessages = 100_000
	if os.Getenv("HOLDS_BENCH_SYNC") == "interval" {
		cfg.Storage.Sync = relay.SyncInterval
	}
	w.Configure(cfg)
	return cfg
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// armer arms plans from its own connection and key.
type armer struct {
	c   *relaytest.Conn
	def *keys.Identity
	to  []envelope.Recipient
}

func newArmer(b *testing.B, url string, w *relaytest.World, cc string) *armer {
	kp, _ := nkeys.CreateUser()
	c, err := relaytest.Dial(url, kp)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	def, err := keys.GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	var to []envelope.Recipient
	for _, m := range w.Dir.MissionsFor(cc) {
		to = append(to, envelope.ToInbox(m.Identity, m.InboxKeys[0].Key))
	}
	return &armer{c: c, def: def, to: to}
}

// arm seals a plan's envelope and arms it with every; it returns the
// envelope's id and the deadline the relay set.
func (a *armer) arm(cc string, every time.Duration) (routing.ID, time.Time, error) {
	hd := envelope.NewHeader(cc, routing.Urgent)
	env, err := envelope.Seal(hd, []byte("I did not check in."), a.def, envelope.Deniable, a.to...)
	if err != nil {
		return routing.ID{}, time.Time{}, err
	}
	id := routing.NewID()
	var seed proto.Link
	rand.Read(seed[:])
	req, err := proto.FrameHold(&proto.CheckInPlan{ID: id, Every: proto.SecondsOf(every), Chain: proto.ChainValue(id, seed, 4, 0), Length: 4}, env)
	if err != nil {
		return routing.ID{}, time.Time{}, err
	}
	m, err := a.c.Request(proto.Ingest(a.c.Mailbox, proto.HoldTarget(proto.HoldArmCheckIn)), req, time.Minute)
	if err != nil {
		return routing.ID{}, time.Time{}, err
	}
	rep, err := proto.ParseHoldReply(m.Data)
	if err != nil {
		return routing.ID{}, time.Time{}, err
	}
	return hd.ID, rep.Holds[0].Deadline, nil
}

// armMany arms n plans from workers connections, each plan's every given
// by every(i), and records each envelope id's deadline.
func armMany(b *testing.B, armers []*armer, cc string, n int, every func(i int) time.Duration, deadlines *sync.Map) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for _, a := range armers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				id, dl, err := a.arm(cc, every(i))
				if err != nil {
					failed.Store(err)
					return
				}
				deadlines.Store(id, dl)
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("arming: %v", err)
	}
}

// collect receives what mission m reads of cc (or its mailbox, with
// mailbox) until it has n messages or until passes, and returns each
// envelope id's arrival time. Each fetch long-polls up to 20 seconds.
func collect(b *testing.B, m *relaytest.Conn, cc string, mailbox bool, n int, until time.Time) map[routing.ID]time.Time {
	b.Helper()
	got := map[routing.ID]time.Time{}
	target := proto.SvcFetchAlerts(cc)
	if mailbox {
		target = proto.SvcFetchMbox
	}
	var after uint64
	for len(got) < n && time.Now().Before(until) {
		batch, err := m.FetchAfter(target, proto.MaxFetch, min(20*time.Second, time.Until(until)), after)
		if err != nil {
			b.Errorf("fetch: %v", err)
			return got
		}
		at := time.Now()
		for _, f := range batch {
			info, err := envelope.Parse(f.Data)
			if err != nil {
				b.Fatal(err)
			}
			if _, dup := got[info.ID]; dup {
				b.Errorf("%s released twice", info.ID)
			}
			got[info.ID] = at
			after = max(after, f.Seq)
		}
		if len(batch) > 0 {
			if err := m.Settle(batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	return got
}

func BenchmarkHoldsCheckInPlans(b *testing.B) {
	total, due := 100_000, 10_000
	if testing.Short() {
		total, due = 10_000, 1_000
	}
	w := relaytest.NewWorld(b, relaytest.MissionSpec{ID: "m1", Countries: []string{"ug"}}, relaytest.MissionSpec{ID: "m2", Countries: []string{"ug"}})
	cfg := benchConfig(b, w)
	r := relaytest.Start(b, cfg)
	var armers []*armer
	for range 16 {
		armers = append(armers, newArmer(b, r.ClientURL(), w, "ug"))
	}
	var far, soon sync.Map
	start := time.Now()
	armMany(b, armers, "ug", total-due, func(int) time.Duration { return 6 * time.Hour }, &far)
	rate := float64(total-due) / time.Since(start).Seconds()
	b.Logf("armed %d plans due in 6h in %s (%.0f/s)", total-due, time.Since(start).Round(time.Millisecond), rate)
	// The 10,000 fall due within one minute that starts once they are all
	// armed (at the rate just measured, with room).
	window := time.Now().Add(time.Duration(float64(due)/rate*1.5*float64(time.Second)) + 10*time.Second).Truncate(time.Second)
	armMany(b, armers, "ug", due, func(i int) time.Duration {
		return time.Until(window.Add(time.Duration(i) * time.Minute / time.Duration(due)))
	}, &soon)
	armed := time.Now()
	if armed.After(window) {
		b.Fatalf("arming took past the window")
	}
	// The arming is done, and so is sealing 100,000 envelopes in this
	// process: what the process holds from here is the relay's, with its
	// plans. The peak is measured from here on (Linux: clear_refs 5
	// resets VmHWM).
	for _, a := range armers {
		a.c.Close()
	}
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss := procKiB("VmRSS") / 1024
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	b.Logf("all %d armed after %s; process RSS %.0f MiB, Go heap in use %.0f MiB", total, armed.Sub(start).Round(time.Millisecond), rss, float64(ms.HeapInuse)/(1<<20))

	m := w.ConnectAs(b, r.ClientURL(), "m1")
	got := collect(b, m, "ug", false, due, window.Add(time.Minute+30*time.Second))
	peak := procKiB("VmHWM") / 1024
	var late []time.Duration
	soon.Range(func(k, v any) bool {
		if at, ok := got[k.(routing.ID)]; ok {
			late = append(late, at.Sub(v.(time.Time)))
		}
		return true
	})
	slices.Sort(late)
	if len(late) != due || len(got) != due {
		b.Errorf("%d of the %d plans due released (%d messages received)", len(late), due, len(got))
	}
	b.Logf("released %d: lateness p50 %s p99 %s max %s, min %s; peak RSS %.0f MiB", len(late),
		percentile(late, .5), percentile(late, .99), percentile(late, 1), percentile(late, 0), peak)
	b.ReportMetric(rss, "MiB-armed")
	b.ReportMetric(peak, "MiB-peak")
	b.ReportMetric(float64(percentile(late, .99).Milliseconds()), "p99-late-ms")
	b.ReportMetric(float64(percentile(late, .5).Milliseconds()), "p50-late-ms")
	b.ReportMetric(rate, "arms/s")
}

func BenchmarkHoldsEscalation(b *testing.B) {
	const perMinute, step = 1000, 5 * time.Second
	alerts := perMinute
	if testing.Short() {
		alerts = 100
	}
	w := relaytest.NewWorld(b,
		relaytest.MissionSpec{ID: "ug-a", Countries: []string{"ug"}, Urgent: step, Escalation: "ke-hub"},
		relaytest.MissionSpec{ID: "ke-hub", Countries: []string{"ke"}})
	cfg := benchConfig(b, w)
	r := relaytest.Start(b, cfg)
	a := newArmer(b, r.ClientURL(), w, "ug")
	ugA := w.ConnectAs(b, r.ClientURL(), "ug-a")
	hub := w.Dir.Missions[1]
	hubTo := envelope.ToInbox(hub.Identity, hub.InboxKeys[0].Key)

	var deadlines sync.Map // tier 1 envelope id → deadline, for the unanswered half
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// ke-hub reads its mailbox all along, as a console does.
	mb := w.ConnectAs(b, r.ClientURL(), "ke-hub")
	gotCh := make(chan map[routing.ID]time.Time, 1)
	go func() {
		gotCh <- collect(b, mb, "", true, alerts/2, time.Now().Add(time.Duration(alerts)*time.Minute/perMinute+step+time.Minute))
	}()
	tick := time.NewTicker(time.Minute / perMinute)
	defer tick.Stop()
	start := time.Now()
	for i := range alerts {
		<-tick.C // the load: 1,000 alerts a minute
		alert := routing.NewID()
		hd := envelope.NewHeader("ug", routing.Urgent)
		env, err := envelope.Seal(hd, []byte("escalate me"), a.def, envelope.Deniable, hubTo)
		if err != nil {
			b.Fatal(err)
		}
		req, _ := proto.FrameHold(&proto.EscalationHold{Alert: alert, Tier: keys.TierTarget}, env)
		m, err := a.c.Request(proto.Ingest(a.c.Mailbox, proto.HoldTarget(proto.HoldArmEscalation)), req, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := proto.ParseHoldReply(m.Data)
		if err != nil {
			b.Fatal(err)
		}
		ah := envelope.Header{ID: alert, Created: time.Now(), Country: "ug", Priority: routing.Urgent}
		alertEnv, _ := envelope.Seal(ah, []byte("help"), a.def, envelope.Deniable, a.to...)
		if _, err := a.c.Publish(proto.AlertTarget("ug", routing.Urgent), alertEnv); err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			deadlines.Store(hd.ID, rep.Holds[0].Deadline)
			continue
		}
		wg.Go(func() {
			if ctx.Err() == nil {
				ugA.Publish(proto.AckTarget(alert), envelope.SignAck(alert, w.Keyrings["ug-a"].Identity, time.Now()))
			}
		})
	}
	wg.Wait()
	b.Logf("%d alerts with their escalation in %s", alerts, time.Since(start).Round(time.Millisecond))
	got := <-gotCh
	// Anything of the answered half would come after the unanswered
	// half: give it the time to.
	for id, at := range collect(b, mb, "", true, 1, time.Now().Add(step+2*time.Second)) {
		got[id] = at
	}
	var late []time.Duration
	unanswered := 0
	deadlines.Range(func(k, v any) bool {
		unanswered++
		if at, ok := got[k.(routing.ID)]; ok {
			late = append(late, at.Sub(v.(time.Time)))
		}
		return true
	})
	slices.Sort(late)
	if len(late) != unanswered || len(got) != unanswered {
		b.Errorf("%d escalations of %d unanswered alerts released; ke-hub received %d (the answered ones' must not be among them)", len(late), unanswered, len(got))
	}
	b.Logf("escalations released %d: lateness p50 %s p99 %s max %s", len(late), percentile(late, .5), percentile(late, .99), percentile(late, 1))
	b.ReportMetric(float64(percentile(late, .99).Milliseconds()), "p99-late-ms")
	b.ReportMetric(float64(percentile(late, .5).Milliseconds()), "p50-late-ms")
}
