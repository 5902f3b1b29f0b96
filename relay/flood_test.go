package relay_test

// Floods against real relays on loopback: fresh keys over many
// connections at the rate the machine allows, a flood of one channel, and
// walk-ins holding every connection slot they can get. Each flood stops
// once what it is about is shown, and is bounded by floodFor.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// floodFor bounds a flood test: reaching it is a failure.
const floodFor = 2 * time.Minute

// floodConfig is a relay under admission with a small budget and cheap
// tries, so that a flood on two shared cores drives the difficulty up
// within seconds.
func floodConfig(t testing.TB, w *relaytest.World) *relay.Config {
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	a := &cfg.Admission
	a.Rate, a.Burst = 20, 20
	a.BytesPerSecond, a.BytesBurst = 1<<20, 4<<20
	a.MinBits, a.MaxBits = 0, 12
	a.StampBits = 8
	a.MemoryKiB = 16
	a.AdjustEvery = 250 * time.Millisecond
	return cfg
}

// junkTemplate is an envelope for cc/p sealed to nobody of the directory:
// junk to every mission. Each copy gets a fresh id.
func junkTemplate(t testing.TB, cc string, p routing.Priority) func() []byte {
	t.Helper()
	env := sealAlert(t, nil, header(cc, p, time.Now()), "junk")
	return func() []byte {
		b := slices.Clone(env)
		id := routing.NewID()
		copy(b[8:8+routing.IDSize], id[:])
		return b
	}
}

// A flood runs flooders until stopped: each connects with a fresh key,
// publishes a few envelopes through relayconn (solving every challenge
// the relay sets, as a flooder following the protocol must), and connects
// again with another key. Others send junk without any proof.
type flood struct {
	stop    context.CancelFunc
	wg      sync.WaitGroup
	stored  atomic.Int64
	refused atomic.Int64
	tries   atomic.Uint64
	proofs  chan struct{} // closed once some flooder had to solve
	once    sync.Once
	// unproven is closed once a spammer (no proof) was refused for want
	// of one.
	unproven     chan struct{}
	unprovenOnce sync.Once
}

func startFlood(t testing.TB, url string, solvers, spammers int, target string, next func() []byte) *flood {
	ctx, cancel := context.WithCancel(context.Background())
	f := &flood{stop: cancel, proofs: make(chan struct{}), unproven: make(chan struct{})}
	const perKey = 4
	for range solvers {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for ctx.Err() == nil {
				c, err := relaytest.Dial(url, nil)
				if err != nil {
					continue // refused: walk-ins may hold too many slots
				}
				for range perKey {
					pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
					_, err := c.Relay.Publish(pctx, target, next())
					pcancel()
					if err == nil {
						f.stored.Add(1)
					} else {
						f.refused.Add(1)
					}
					if c.Relay.ProofTries() > 0 {
						f.once.Do(func() { close(f.proofs) })
					}
				}
				f.tries.Add(c.Relay.ProofTries())
				c.Close()
			}
		}()
	}
	for range spammers {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			c, err := relaytest.Dial(url, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for ctx.Err() == nil {
				// Raw publishes with no proof: answered at once.
				m, err := c.Conn.Request(proto.Ingest(c.Mailbox, target), next(), 5*time.Second)
				if err != nil {
					continue
				}
				var perr *proto.Error
				if _, err := proto.ParseReply(m.Data); errors.As(err, &perr) && perr.Code == proto.CodeAdmission {
					f.unprovenOnce.Do(func() { close(f.unproven) })
				}
			}
		}()
	}
	t.Cleanup(f.end)
	return f
}

func (f *flood) end() { f.stop(); f.wg.Wait() }

// missionReader reads country cc's alerts as a mission does, until it
// has opened the alert with id. What it cannot open it reports as junk
// off the read path, as a mission's client should; junk waits for those
// reports and returns how many alerts they removed.
func missionReader(t testing.TB, c *relaytest.Conn, kr *keys.Keyring, cc string, id routing.ID) (body []byte, junk func() uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), floodFor)
	reports := make(chan []string, 64)
	var removed atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for bad := range reports {
			n, err := c.Relay.ReportJunk(ctx, bad)
			if err != nil {
				t.Errorf("junk report: %v", err)
				return
			}
			removed.Add(n)
		}
	}()
	junk = func() uint64 {
		close(reports)
		<-done
		cancel()
		return removed.Load()
	}
	for {
		msgs, err := c.Relay.Fetch(ctx, proto.AlertsSource(cc), relayconn.FetchOptions{Max: 256, Wait: 2 * time.Second})
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the mission did not read the alert within %s: %v", floodFor, err)
			}
			continue
		}
		var keep, bad []string
		for _, m := range msgs {
			o, err := envelope.Open(m.Data, kr.Identity, kr.InboxKeys()...)
			if err != nil {
				bad = append(bad, m.Settle)
				continue
			}
			keep = append(keep, m.Settle)
			if o.Header.ID == id {
				body = o.Body
			}
		}
		if len(keep) > 0 {
			if err := c.Relay.Settle(ctx, keep); err != nil {
				t.Fatalf("settle: %v", err)
			}
		}
		if len(bad) > 0 {
			reports <- bad
		}
		if body != nil {
			return body, junk
		}
	}
}

// TestFloodFromFreshKeys: flooders with fresh keys over many connections,
// solving every challenge, and spammers sending junk without proofs, at
// the rate two cores allow. Once the relay asks for proofs, a defender
// sends an urgent alert through the same client code: it is stored, and
// the mission reads and opens it. The relay removes the flood as the
// mission reports it.
func TestFloodFromFreshKeys(t *testing.T) {
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	r := relaytest.Start(t, floodConfig(t, w))
	target := proto.AlertTarget("ug", routing.Urgent)
	f := startFlood(t, r.ClientURL(), 8, 2, target, junkTemplate(t, "ug", routing.Urgent))
	for what, ch := range map[string]chan struct{}{"a flooder to solve a proof of work": f.proofs,
		"a walk-in without a proof to be refused": f.unproven} {
		select {
		case <-ch:
		case <-time.After(floodFor):
			t.Fatalf("the flood never made the relay ask %s", what)
		}
	}
	mission := w.ConnectAs(t, r.ClientURL(), "nl-kampala")
	defender := relaytest.Connect(t, r.ClientURL(), nil)
	h := header("ug", routing.Urgent, time.Now())
	alert := sealAlert(t, w, h, "detained at the border")
	start := time.Now()
	sent := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), floodFor)
		defer cancel()
		_, err := defender.Relay.Publish(ctx, target, alert)
		sent <- err
	}()
	body, junkWait := missionReader(t, mission, w.Keyrings["nl-kampala"], "ug", h.ID)
	latency := time.Since(start)
	if err := <-sent; err != nil {
		t.Fatalf("the defender's alert: %v", err)
	}
	bits := gather(t, r)["beacon_relay_admission_bits"]
	f.end()
	junk := junkWait()
	if string(body) != "detained at the border" {
		t.Fatalf("the mission opened %q", body)
	}
	g := gather(t, r)
	t.Logf("send to opened during the flood: %v; defender's Argon2id tries %d; difficulty then %v bits; flood stored %d, refused %d, %d tries; junk removed %v",
		latency.Round(time.Millisecond), defender.Relay.ProofTries(), bits, f.stored.Load(), f.refused.Load(), f.tries.Load(), junk)
	// Refused for want of a proof: at the difficulty, or once the
	// walk-ins' budget was spent.
	if g[`beacon_relay_admission_total,outcome=admission`]+g[`beacon_relay_admission_total,outcome=budget`] == 0 {
		t.Error("the relay never refused a walk-in for want of a proof")
	}
	if junk == 0 {
		t.Error("the mission's junk reports removed nothing")
	}
}

// TestFloodOfOneChannel: a flood of one country's routine alerts fills
// that channel and no other: an urgent alert of the same country and an
// alert of another country are stored and read.
func TestFloodOfOneChannel(t *testing.T) {
	w := relaytest.NewWorld(t,
		relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "de-nairobi", Countries: []string{"ke"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	cfg.Storage.ChannelMessages = 50
	r := relaytest.Start(t, cfg)
	flooded := proto.AlertTarget("ug", routing.Routine)
	next := junkTemplate(t, "ug", routing.Routine)

	// Flood until the channel is full, over several connections.
	var full atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := relaytest.Dial(r.ClientURL(), nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := 0; i < 1000 && full.Load() == 0; i++ {
				_, err := c.Publish(flooded, next())
				var perr *proto.Error
				if errors.As(err, &perr) && perr.Code == proto.CodeFull {
					full.Add(1)
				} else if err != nil {
					t.Errorf("flood: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if full.Load() == 0 {
		t.Fatal("the flooded channel never filled")
	}
	st := streamStates(t, r)[proto.StreamAlerts]
	if st.Msgs != 50 {
		t.Fatalf("ALERTS holds %d messages; want the channel's 50", st.Msgs)
	}

	d := relaytest.Connect(t, r.ClientURL(), nil)
	urgent := header("ug", routing.Urgent, time.Now())
	mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), sealAlert(t, w, urgent, "a flood of one priority"))
	other := header("ke", routing.Routine, time.Now())
	mustStore(t, d, proto.AlertTarget("ke", routing.Routine), sealAlert(t, w, other, "a flood of another country"))
	if _, code := publishCode(t, d, flooded, next()); code != proto.CodeFull {
		t.Errorf("the flooded channel took another: %s", code)
	}

	nl := w.ConnectAs(t, r.ClientURL(), "nl-kampala")
	body, junk := missionReader(t, nl, w.Keyrings["nl-kampala"], "ug", urgent.ID)
	if n := junk(); string(body) != "a flood of one priority" || n != 50 {
		t.Errorf("ug: %q, junk removed %d; want the flood's 50", body, n)
	}
	de := w.ConnectAs(t, r.ClientURL(), "de-nairobi")
	body, junk = missionReader(t, de, w.Keyrings["de-nairobi"], "ke", other.ID)
	if n := junk(); string(body) != "a flood of another country" || n != 0 {
		t.Errorf("ke: %q, junk removed %d", body, n)
	}
	// The mission's reports emptied the flooded channel: it takes alerts again.
	mustStore(t, d, flooded, sealAlert(t, w, header("ug", routing.Routine, time.Now()), "room again"))
}

// TestInstitutionsConnectWhileWalkInsHoldEverySlot: walk-ins connect until
// the relay refuses them; missions, the partner and the bridge still
// connect, read, settle and acknowledge.
func TestInstitutionsConnectWhileWalkInsHoldEverySlot(t *testing.T) {
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	cfg.Limits.MaxConnections = 40
	cfg.Limits.ReservedConnections = 8
	r := relaytest.Start(t, cfg)

	d := relaytest.Connect(t, r.ClientURL(), nil)
	h := header("ug", routing.Urgent, time.Now())
	alert := sealAlert(t, w, h, "held slots")
	mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), alert)

	var walkIns []*relaytest.Conn
	refused := 0
	for range 2 * cfg.Limits.MaxConnections {
		c, err := relaytest.Dial(r.ClientURL(), nil, nats.MaxReconnects(0))
		if err != nil {
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("walk-in connect: %v", err)
			}
			refused++
			continue
		}
		walkIns = append(walkIns, c)
	}
	defer func() {
		for _, c := range walkIns {
			c.Close()
		}
	}()
	// Three of the relay's own connections, the defender, and the walk-ins
	// up to the unreserved slots.
	if want := cfg.Limits.MaxConnections - cfg.Limits.ReservedConnections - 3 - 1; len(walkIns) != want || refused == 0 {
		t.Fatalf("%d walk-ins connected, %d refused; want %d connected", len(walkIns), refused, want)
	}
	mission := w.ConnectAs(t, r.ClientURL(), "nl-kampala")
	w.ConnectAs(t, r.ClientURL(), "partner")
	w.ConnectAs(t, r.ClientURL(), "bridge")
	got := fetchOne(t, mission, proto.SvcFetchAlerts("ug"), alert)
	if err := mission.Settle([]relaytest.Fetched{got}); err != nil {
		t.Fatalf("settle: %v", err)
	}
	mustStore(t, mission, proto.AckTarget(h.ID), envelope.SignAck(h.ID, w.Keyrings["nl-kampala"].Identity, time.Now()))
}

// TestPerAddressConnections: one address holds at most its share of
// walk-in connections; a closed one frees its place.
func TestPerAddressConnections(t *testing.T) {
	cfg := relaytest.Config(t)
	cfg.Admission.PerAddressConnections = 3
	r := relaytest.Start(t, cfg)
	var held []*relaytest.Conn
	for range 3 {
		held = append(held, relaytest.Connect(t, r.ClientURL(), nil))
	}
	if _, err := relaytest.Dial(r.ClientURL(), nil, nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("a fourth connection from the address: %v; want refused", err)
	}
	held[0].Close()
	// The relay hears of the close through a system event; until then
	// the address still holds three.
	waitUntil(t, "a place freed", func() (bool, string) {
		c, err := relaytest.Dial(r.ClientURL(), nil, nats.MaxReconnects(0))
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}
