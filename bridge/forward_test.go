package bridge_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hrdbeacon/beacon/bridge"
	"github.com/hrdbeacon/beacon/bridge/bridgetest"
	"github.com/hrdbeacon/beacon/bridge/receipt"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// fakeConfig is a bridge config whose partners are all reached through
// fakes (their URLs are never dialled).
func (w *world) fakeConfig(t testing.TB) *bridge.Config {
	cfg := w.bridgeConfig(t, false)
	for i := range cfg.Partners {
		cfg.Partners[i].URLs = []string{"nats://127.0.0.1:1"}
	}
	return cfg
}

// TestBackoffWhilePartnerDown: while a partner's relay cannot be
// reached, the bridge retries the batch it holds after exponentially
// growing delays, with jitter, on its clock — never sooner — settles
// nothing, and delivers each envelope once when the relay is back.
func TestBackoffWhilePartnerDown(t *testing.T) {
	w := newWorld(t, "de-mfa")
	fake := bridgetest.New()
	fake.Down()
	clock := clockwork.NewFakeClockAt(time.Now())
	cfg := w.fakeConfig(t)
	cfg.Retry = bridge.RetryConfig{Min: time.Second, Max: time.Minute}
	envs := w.sealShares(t, 3, "ug", routing.Urgent)
	w.publishShares(t, envs, "ug", routing.Urgent)
	w.startBridge(t, cfg, bridge.WithClock(clock), bridge.WithTransport("de-mfa", fake))
	ctx := testCtx(t)

	<-fake.Attempts // the first try, as soon as it read the batch
	// Waiting: the directory refresh and the forwarder's backoff.
	const waiters = 2
	delay := time.Second // failure n waits between delay/2 and delay
	for try := 2; try <= 4; try++ {
		if err := clock.BlockUntilContext(ctx, waiters); err != nil {
			t.Fatal(err)
		}
		clock.Advance(delay/2 - time.Millisecond)
		if err := clock.BlockUntilContext(ctx, waiters); err != nil {
			t.Fatal(err)
		}
		select {
		case <-fake.Attempts:
			t.Fatalf("try %d came before the shortest backoff of %s", try, delay/2)
		default:
		}
		if try == 4 {
			fake.Up()
		}
		clock.Advance(delay/2 + time.Millisecond)
		<-fake.Attempts
		delay *= 2
	}
	for range envs {
		<-fake.Stored
	}
	if n := fake.DeliverCalls(); n != 4 {
		t.Errorf("%d deliveries, want 4 (three failed, one stored)", n)
	}
	assertOnce(t, fake.IDs(), envs)
}

// TestSlowPartnerDelaysNoOther: a partner whose relay takes a delivery
// and does not answer holds up its own forwarder only; the other partner
// receives the whole burst meanwhile, and the slow one catches up once
// it answers.
func TestSlowPartnerDelaysNoOther(t *testing.T) {
	const n = 300
	w := newWorld(t, "de-mfa", "fr-mfa")
	slow, fast := bridgetest.New(), bridgetest.New()
	slow.Hold()
	cfg := w.fakeConfig(t)
	cfg.Timeout = time.Minute
	w.startBridge(t, cfg, bridge.WithTransport("de-mfa", slow), bridge.WithTransport("fr-mfa", fast))
	envs := w.sealShares(t, n, "ug", routing.Urgent)
	w.publishShares(t, envs, "ug", routing.Urgent)
	<-slow.Attempts // de-mfa's forwarder is stuck in its first delivery
	for range n {
		<-fast.Stored
	}
	if got := len(slow.IDs()); got != 0 {
		t.Fatalf("the slow partner stored %d while held", got)
	}
	slow.Release()
	for range n {
		<-slow.Stored
	}
	assertOnce(t, fast.IDs(), envs)
	assertOnce(t, slow.IDs(), envs)
}

// TestReceiptsRetriedUntilStored: when the home relay does not take the
// receipts of what the partner's relay stored, the bridge signs them
// again and sends them again, with backoff, and settles nothing until the
// home relay has them; the partner is not asked again.
func TestReceiptsRetriedUntilStored(t *testing.T) {
	const n = 5
	port := fixedPort(t)
	w := newWorldWith(t, func(c *relay.Config) { c.Listen = fmt.Sprintf("127.0.0.1:%d", port) }, "de-mfa")
	fake := bridgetest.New()
	fake.Hold()
	events := make(chan bridge.Event, 1024)
	envs := w.sealShares(t, n, "ug", routing.Urgent)
	w.publishShares(t, envs, "ug", routing.Urgent)
	w.startBridge(t, w.fakeConfig(t), bridge.WithTransport("de-mfa", fake), bridge.WithEvents(func(e bridge.Event) { events <- e }))
	<-fake.Attempts // the batch is read; its delivery waits
	w.home.stop(t)
	fake.Release()

	// The first receipts were signed before the refusal was reported;
	// those the home relay stores are signed after it is back, later.
	var refused time.Time
	for refused.IsZero() {
		switch e := <-events; {
		case e.Settled > 0:
			t.Fatalf("settled %d while the home relay was down", e.Settled)
		case e.Retry > 0 && e.Stored == 0: // the receipts, not the delivery
			if e.Retry != n {
				t.Fatalf("%d receipts to send again, want %d", e.Retry, n)
			}
			refused = time.Now().Truncate(time.Millisecond) // receipts carry milliseconds
		}
	}
	if got := len(fake.IDs()); got != n {
		t.Fatalf("the partner's relay stored %d, want %d", got, n)
	}
	w.home.start(t, w.home.cfg)
	for settled := 0; settled < n; {
		settled += (<-events).Settled
	}

	bc := w.bridgeConn(t)
	if pending, err := bc.Relay.Pending(testCtx(t), proto.SharedSource("de-mfa")); err != nil || pending != 0 {
		t.Errorf("SHARED: %d pending (%v), want 0", pending, err)
	}
	if got := streamMsgs(t, w.home.relay, proto.StreamReceipts); got != n {
		t.Errorf("RECEIPTS holds %d, want %d", got, n)
	}
	for _, env := range envs {
		info, _ := envelope.Parse(env)
		stmts, err := bc.Relay.RollUp(testCtx(t), info.ID)
		if err != nil || len(stmts) != 1 {
			t.Fatalf("roll-up of %s: %d statements (%v), want its receipt", info.ID, len(stmts), err)
		}
		r, err := receipt.Parse(stmts[0])
		if err != nil {
			t.Fatal(err)
		}
		if !r.Created.After(refused) {
			t.Errorf("the receipt stored was signed at %s, by the time the home relay refused it (%s): not signed again", r.Created, refused)
		}
	}
	if calls := fake.DeliverCalls(); calls != 1 {
		t.Errorf("%d deliveries, want 1: only the receipts were sent again", calls)
	}
	assertOnce(t, fake.IDs(), envs)
}

// TestMetrics: /metrics counts, per partner, what was forwarded, what
// waits and for how long, the retries and the last success.
func TestMetrics(t *testing.T) {
	w := newWorld(t, "de-mfa")
	fake := bridgetest.New()
	fake.Down()
	cfg := w.fakeConfig(t)
	cfg.Metrics = "127.0.0.1:0"
	events := make(chan bridge.Event, 64)
	b := w.startBridge(t, cfg, bridge.WithTransport("de-mfa", fake), bridge.WithEvents(func(e bridge.Event) { events <- e }))
	envs := w.sealShares(t, 5, "ug", routing.Urgent)
	w.publishShares(t, envs, "ug", routing.Urgent)
	<-fake.Attempts
	<-fake.Attempts // retried once: the first retry is counted before it
	m := scrape(t, b.MetricsAddr())
	lbl := `{partner="de-mfa"}`
	if m["beacon_bridge_pending"+lbl] != 5 || m["beacon_bridge_oldest_pending_age_seconds"+lbl] <= 0 ||
		m["beacon_bridge_retries_total"+lbl] < 1 || m["beacon_bridge_partner_connected"+lbl] != 0 ||
		m["beacon_bridge_forwarded_total"+lbl] != 0 || m["beacon_bridge_last_success_timestamp_seconds"+lbl] != 0 {
		t.Errorf("while the partner is down: %v", pick(m, lbl))
	}
	start := time.Now()
	fake.Up()
	for settled := 0; settled < len(envs); {
		settled += (<-events).Settled
	}
	m = scrape(t, b.MetricsAddr())
	if m["beacon_bridge_pending"+lbl] != 0 || m["beacon_bridge_oldest_pending_age_seconds"+lbl] != 0 ||
		m["beacon_bridge_forwarded_total"+lbl] != 5 || m["beacon_bridge_receipts_total"+lbl] != 5 ||
		m["beacon_bridge_partner_connected"+lbl] != 1 ||
		m["beacon_bridge_last_success_timestamp_seconds"+lbl] < float64(start.Unix()) {
		t.Errorf("once delivered: %v", pick(m, lbl))
	}
}

func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err == nil {
			out[name] = f
		}
	}
	return out
}

func pick(m map[string]float64, label string) string {
	var b strings.Builder
	for k, v := range m {
		if strings.HasPrefix(k, "beacon_bridge_") && strings.Contains(k, label) {
			fmt.Fprintf(&b, "%s=%v ", k, v)
		}
	}
	return b.String()
}
