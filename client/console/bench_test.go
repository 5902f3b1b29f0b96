package console

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/internal/state"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// BenchmarkConsoleLatency measures, in a real headless Chromium, the time
// from a defender's send to the case being drawn in an open console page
// (the page stamps each new case with Date.now() once the frame that
// draws it has run), at 10 and at 200 alerts a second, against a real
// relay with sync: always. Run it once:
//
//	go test -run='^$' -bench=ConsoleLatency -benchtime=1x ./client/console
func BenchmarkConsoleLatency(b *testing.B) {
	ctx := browser(b)
	for _, tc := range []struct{ rate, n int }{{10, 100}, {200, 1000}} {
		b.Run(fmt.Sprintf("%d/s", tc.rate), func(b *testing.B) {
			for range b.N {
				p50, p99, worst := consoleLatency(b, ctx, tc.rate, tc.n)
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
			}
		})
	}
}

func consoleLatency(b *testing.B, ctx context.Context, rate, n int) (p50, p99, worst time.Duration) {
	tb := newTestbed(b)
	c, _ := tb.console("nl-kampala")
	// Many defenders, as at a busy post: each keeps its own cases, and
	// one defender's device is not where the rate comes from.
	defs := make([]*client.Client, 10)
	for i := range defs {
		defs[i] = tb.defender()
	}
	step(b, ctx, "opening the console", chromedp.Navigate(c.URL()), chromedp.WaitVisible(`body[data-live="yes"]`))
	// Each defender sends its share at its share of the rate, on its own
	// goroutine, so a slow send does not lower the rate offered.
	var mu sync.Mutex
	sentMS := make(map[string]int64, n)
	var wg sync.WaitGroup
	start := time.Now()
	b.ResetTimer()
	for d, def := range defs {
		wg.Go(func() {
			every := time.Second * time.Duration(len(defs)) / time.Duration(rate)
			// Staggered, so the defenders together send evenly spaced
			// alerts rather than bursts of ten.
			<-time.After(every * time.Duration(d) / time.Duration(len(defs)))
			tick := time.NewTicker(every)
			defer tick.Stop()
			for i := d; i < n; i += len(defs) {
				<-tick.C
				at := time.Now().UnixMilli()
				s, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: routing.Priority(1 + i%3), Category: message.CategoryThreat,
					Summary: fmt.Sprintf("Benchmark alert %d: threats against our office", i)})
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				sentMS[s.ID.String()] = at
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "sent/s")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(wctx, until(fmt.Sprintf(`Object.keys(window.__beacon.shown).length >= %d`, n))); err != nil {
		b.Fatalf("the page shows fewer than %d cases: %v", n, err)
	}
	b.StopTimer()
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](`window.__beacon.shown`))
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for id, at := range sentMS {
		lat = append(lat, time.Duration(int64(shown[id])-at)*time.Millisecond)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
}

// BenchmarkConsoleMemory measures the console's store with 10,000 cases:
// the heap the replayed log holds, and how long opening it takes (what a
// restart costs). Run it once:
//
//	go test -run='^$' -bench=ConsoleMemory -benchtime=1x ./client/console
func BenchmarkConsoleMemory(b *testing.B) {
	const cases = 10_000
	dir, key := b.TempDir(), make([]byte, state.KeySize)
	kr, err := keys.NewKeyring(keys.RoleDefender)
	if err != nil {
		b.Fatal(err)
	}
	details := strings.Repeat("Plain-clothes officers came at dawn and took laptops. ", 10)
	st, err := OpenStore(dir, key)
	if err != nil {
		b.Fatal(err)
	}
	// Written in one durable append: the figure is the store's, not the
	// disk's fsync rate.
	var recs [][]byte
	for i := range cases {
		r := &client.Received{ID: routing.NewID(), Sender: kr.Identity.Public(), Message: &message.Alert{Country: "ug",
			Priority: routing.Priority(1 + i%3), Category: message.CategoryRaid, Summary: fmt.Sprintf("Office raided, case %d", i),
			Details: details, Location: "Kampala Central", Share: i%2 == 0}}
		r.Case, r.Header.Created, r.Header.Country, r.Header.Priority = r.ID, time.Now(), "ug", r.Message.(*message.Alert).Priority
		body, _ := message.Marshal(r.Message)
		rec, _ := jsonRecord(&record{Msg: &msgRecord{ID: r.ID, Case: r.ID, Created: r.Header.Created, Received: time.Now(),
			Country: "ug", Priority: r.Header.Priority, Sender: r.Sender, Body: body}})
		recs = append(recs, rec)
	}
	if err := st.dir.Do(func() error {
		if err := st.sync(map[routing.ID]bool{}); err != nil {
			return err
		}
		return st.log.Append(true, recs...)
	}); err != nil {
		b.Fatal(err)
	}
	st.Close()
	recs = nil
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		t0 := time.Now()
		st, err := OpenStore(dir, key)
		if err != nil {
			b.Fatal(err)
		}
		open := time.Since(t0)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if st.Len() != cases {
			b.Fatalf("%d cases", st.Len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(open.Milliseconds()), "open-ms")
		t1 := time.Now()
		all := st.Cases()
		b.ReportMetric(float64(time.Since(t1).Microseconds())/1000, "list-ms")
		runtime.KeepAlive(all)
		st.Close()
	}
}
