package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// The tests here put a client in front of a hostile relay
// (relaytest.Hostile: a real nats-server whose services the test
// answers), one class of lie per test, as issue 12 lists them: unbounded
// answers, silent loss, spinning, broadcasts, and a misleading status.

const mib = 1 << 20

// hostileWorld is a directory with two missions for Uganda and one for
// Kenya, and no relay: the test brings a hostile one.
func hostileWorld(t *testing.T) *relaytest.World {
	t.Helper()
	return relaytest.NewWorld(t,
		relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "se-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "de-nairobi", Countries: []string{"ke"}})
}

// openOn opens a client for kr on the hostile relay h, given dir out of
// band, and waits for the background round its connecting started.
func openOn(t *testing.T, h *relaytest.Hostile, w *relaytest.World, kr *keys.Keyring, dir []byte, tweak func(*client.Config)) *party {
	t.Helper()
	cfg := client.Config{URLs: []string{h.URL}, Keyring: kr, Root: w.Root.Public().Fingerprint(), StateDir: t.TempDir(), Directory: dir}
	if tweak != nil {
		tweak(&cfg)
	}
	p := reopen(t, cfg)
	p.waitReady(t)
	return p
}

// heapGrowth runs f and returns how far the heap the process reserved
// grew meanwhile, with the collector running often so that garbage does
// not pass for growth: a bound on what f held at once, plus what the
// hostile relay's server in the same process buffered. Tests that use it
// do not run in parallel.
func heapGrowth(t *testing.T, f func()) uint64 {
	t.Helper()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	grew := uint64(max(int64(after.HeapSys)-int64(before.HeapSys), 0))
	t.Logf("heap grew by %d KiB", grew>>10)
	return grew
}

// settled collects what the client settled so far.
func settled(h *relaytest.Hostile) []string {
	var out []string
	for {
		select {
		case toks := <-h.Settled:
			out = append(out, toks...)
		default:
			return out
		}
	}
}

// mailboxMsgs turns envelopes into mailbox messages with sequences from 1.
func mailboxMsgs(envs ...[]byte) []relaytest.HostileMsg {
	out := make([]relaytest.HostileMsg, len(envs))
	for i, e := range envs {
		out[i] = relaytest.HostileMsg{Data: e, Subject: "bcn.mbox.x", Seq: uint64(i + 1), Settle: proto.MailboxToken(uint64(i + 1))}
	}
	return out
}

// serveMailbox has h answer mailbox fetches with msgs after the cursor.
func serveMailbox(h *relaytest.Hostile, msgs []relaytest.HostileMsg) {
	h.Set(func(h *relaytest.Hostile) {
		h.Fetch = func(_ routing.Mailbox, _ proto.Source, req proto.FetchRequest) []relaytest.HostileMsg {
			var out []relaytest.HostileMsg
			for _, m := range msgs {
				if m.Seq > req.After && len(out) < req.Max {
					out = append(out, m)
				}
			}
			return out
		}
	})
}

// Class 1: bounded work. A batch of envelopes with the most stanzas an
// envelope may have, none for this client, costs at most the batch's
// decryption bound; what lies beyond is left unopened and unsettled, and
// the cursor stays before it.
func TestBatchDecryptionWorkIsBounded(t *testing.T) {
	t.Parallel()
	w := hostileWorld(t)
	h := relaytest.StartHostile(t, w.Dir.Raw)
	var to []envelope.Recipient
	for range envelope.MaxRecipients {
		id, err := keys.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		to = append(to, envelope.To(id.Public()))
	}
	sender, _ := keys.GenerateIdentity()
	junk, err := envelope.Seal(envelope.NewHeader("ug", routing.Urgent), []byte("for others"), sender, envelope.Signed, to...)
	if err != nil {
		t.Fatal(err)
	}
	envs := make([][]byte, 64)
	for i := range envs {
		envs[i] = junk
	}
	serveMailbox(h, mailboxMsgs(envs...))
	var asked []uint64
	var mu sync.Mutex
	fetch := h.Fetch
	h.Set(func(h *relaytest.Hostile) {
		h.Fetch = func(m routing.Mailbox, src proto.Source, req proto.FetchRequest) []relaytest.HostileMsg {
			mu.Lock()
			asked = append(asked, req.After)
			mu.Unlock()
			return fetch(m, src, req)
		}
	})
	def := openOn(t, h, w, newDefender(t), w.Dir.Raw, nil)
	// A bound of 8 envelopes' worth, so the test costs little: a
	// defender tries one key on each of 32 stanzas.
	client.SetOpenWork(def.Client, 8*envelope.MaxRecipients)
	b, err := def.ReceiveMailbox(ctx(t), client.FetchOptions{Max: 64}, func(context.Context, *client.Received) error {
		t.Error("the handler was given a message addressed to others")
		return nil
	})
	if err != nil || b != (client.Batch{Dropped: 8, Deferred: 56}) {
		t.Fatalf("batch = %+v, %v; want 8 dropped and 56 deferred", b, err)
	}
	if toks := settled(h); !slices.Equal(toks, []string{"mbox.1", "mbox.2", "mbox.3", "mbox.4", "mbox.5", "mbox.6", "mbox.7", "mbox.8"}) {
		t.Fatalf("settled %v, want the 8 opened and dropped, none of the deferred", toks)
	}
	// The next batch starts at the first deferred message.
	if _, err := def.ReceiveMailbox(ctx(t), client.FetchOptions{Max: 64}, func(context.Context, *client.Received) error { return nil }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) < 2 || asked[len(asked)-1] != 8 {
		t.Fatalf("fetches asked for messages after %v, want the second after 8", asked)
	}
}

// Class 1: bounded memory. An endless stream into the mailbox ends the
// receive with relayconn.ErrHostile, having held no more than a batch.
func TestEndlessMailboxStreamIsCutOff(t *testing.T) {
	w := hostileWorld(t)
	h := relaytest.StartHostileWith(t, w.Dir.Raw, relaytest.HostileOptions{MaxPending: 4 << 20})
	reply := sealReply(t, w.Keyrings["nl-kampala"], newDefender(t).Identity.Public(), routing.NewID(), "not yours")
	h.Set(func(h *relaytest.Hostile) {
		h.NoEnd = true
		h.Fetch = func(routing.Mailbox, proto.Source, proto.FetchRequest) []relaytest.HostileMsg {
			return []relaytest.HostileMsg{{Data: reply, Subject: "bcn.mbox.x", Seq: 1, Settle: "mbox.1", Repeat: 1 << 30}}
		}
	})
	def := openOn(t, h, w, newDefender(t), w.Dir.Raw, nil)
	var err error
	grew := heapGrowth(t, func() { _, err = def.ReadMailbox(ctx(t), client.FetchOptions{}) })
	if !errors.Is(err, relayconn.ErrHostile) {
		t.Fatalf("ReadMailbox of an endless stream: %v, want ErrHostile", err)
	}
	// A batch is at most 256 messages and 4 MiB.
	if grew > 16*mib {
		t.Fatalf("the heap grew by %d MiB reading an endless stream", grew/mib)
	}
	if toks := settled(h); len(toks) != 0 {
		t.Fatalf("settled %v from a batch that broke the protocol", toks)
	}
}

// newMission makes a mission for Uganda that w's directory does not list.
func newMission(t *testing.T, w *relaytest.World, id string) (*keys.Keyring, keys.Mission) {
	t.Helper()
	kr, err := keys.NewKeyring(keys.RoleMission)
	if err != nil {
		t.Fatal(err)
	}
	m := w.Dir.Missions[0]
	m.ID, m.Name, m.Countries = id, "Mission "+id, []string{"ug"}
	m.Identity, m.NKey, m.InboxKeys = kr.Identity.Public(), kr.NKeyPublic(), []keys.SignedInboxKey{kr.Inboxes[0].Signed}
	return kr, m
}

// Class 2: no silent loss. A genuine reply from a mission that only a
// newer directory names, while the relay serves an older one, is held:
// not handed over, not marked seen, not settled. Once the newer directory
// arrives it is read, once.
func TestReplyFromANewerDirectoryIsHeldNotDropped(t *testing.T) {
	t.Parallel()
	w := hostileWorld(t)
	frKR, fr := newMission(t, w, "fr-kampala")
	v2 := signNext(t, w, fr)
	h := relaytest.StartHostile(t, w.Dir.Raw)
	kr := newDefender(t)
	caseID := routing.NewID()
	serveMailbox(h, mailboxMsgs(sealReply(t, frKR, kr.Identity.Public(), caseID, "We are calling the airport police.")))
	def := openOn(t, h, w, kr, w.Dir.Raw, nil)

	// Twice: the first receive refreshes the directory (the relay still
	// serves serial 1), the second finds the refresh not due yet.
	for range 2 {
		b, err := def.ReceiveMailbox(ctx(t), client.FetchOptions{}, func(context.Context, *client.Received) error {
			t.Error("a reply from a signer not in the directory was handed over")
			return nil
		})
		if err != nil || b != (client.Batch{HeldBack: 1}) {
			t.Fatalf("batch = %+v, %v; want one held back", b, err)
		}
		def.RewindMailbox()
	}
	if toks := settled(h); len(toks) != 0 {
		t.Fatalf("settled %v: the relay would delete the held reply", toks)
	}
	if st, err := def.Status(); err != nil || st.HeldBack != 1 {
		t.Fatalf("status = %+v (%v), want one held back", st, err)
	}

	// The relay serves serial 2, and the client takes it.
	h.Set(func(h *relaytest.Hostile) { h.Directory = v2 })
	if err := def.RefreshDirectory(ctx(t)); err != nil {
		t.Fatal(err)
	}
	got, err := def.ReadMailbox(ctx(t), client.FetchOptions{})
	if err != nil || len(got) != 1 || got[0].From != "fr-kampala" || got[0].Case != caseID {
		t.Fatalf("after serial 2: %d messages (err %v), want fr-kampala's reply", len(got), err)
	}
	if toks := settled(h); !slices.Equal(toks, []string{"mbox.1"}) {
		t.Fatalf("settled %v, want the reply once kept", toks)
	}
	if st, _ := def.Status(); st.HeldBack != 0 {
		t.Fatalf("status holds back %d after the reply was read", st.HeldBack)
	}
	def.RewindMailbox()
	if got, err := def.ReadMailbox(ctx(t), client.FetchOptions{}); err != nil || len(got) != 0 {
		t.Fatalf("the reply was handed over again: %d (err %v)", len(got), err)
	}
}

// Class 2: the bound on holding back. A message from an unknown signer
// written before the directory held was issued is dropped (its signer was
// no institution by then), so is one older than the hold, and no more
// than the most held at once are held; the rest are dropped and settled.
func TestHoldingBackIsBounded(t *testing.T) {
	t.Parallel()
	w := hostileWorld(t)
	h := relaytest.StartHostile(t, w.Dir.Raw)
	kr := newDefender(t)
	stranger, _ := keys.NewKeyring(keys.RoleMission)
	seal := func(created time.Time) []byte {
		body, _ := message.Marshal(&message.Reply{Ref: routing.NewID(), Text: "hello"})
		hd := envelope.NewHeader("ug", routing.Urgent)
		hd.Created = created
		env, err := envelope.Seal(hd, body, stranger.Identity, envelope.Signed, envelope.To(kr.Identity.Public()))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	var envs [][]byte
	envs = append(envs, seal(w.Dir.Issued.Add(-time.Hour))) // written before the directory
	for range client.MaxHeldBack + 6 {
		envs = append(envs, seal(time.Now()))
	}
	serveMailbox(h, mailboxMsgs(envs...))
	def := openOn(t, h, w, kr, w.Dir.Raw, nil)
	var b client.Batch
	grew := heapGrowth(t, func() {
		var err error
		b, err = def.ReceiveMailbox(ctx(t), client.FetchOptions{}, func(context.Context, *client.Received) error {
			t.Error("a message from an unknown signer was handed over")
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if b != (client.Batch{HeldBack: client.MaxHeldBack, Dropped: 7}) {
		t.Fatalf("batch = %+v, want %d held back and 7 dropped", b, client.MaxHeldBack)
	}
	if toks := settled(h); len(toks) != 7 || toks[0] != "mbox.1" {
		t.Fatalf("settled %v, want the 7 dropped, the one written before the directory first", toks)
	}
	if grew > 8*mib {
		t.Fatalf("the heap grew by %d MiB holding back %d messages", grew/mib, client.MaxHeldBack)
	}

	// Eight days later (the directory given again, valid then) the held
	// messages are older than the hold and go too.
	later := clockwork.NewFakeClockAt(time.Now().Add(8 * 24 * time.Hour))
	r := w.Dir.Roster
	r.Serial, r.Previous = 2, keys.HashString(w.Dir.Hash)
	r.Issued, r.Expires = w.Dir.Issued, later.Now().Add(24*time.Hour)
	v2, err := keys.SignDirectory(&r, w.Root)
	if err != nil {
		t.Fatal(err)
	}
	h.Set(func(h *relaytest.Hostile) { h.Directory = v2 })
	def2 := openOn(t, h, w, kr, v2, func(c *client.Config) { c.Clock = later })
	b, err = def2.ReceiveMailbox(ctx(t), client.FetchOptions{}, func(context.Context, *client.Received) error { return nil })
	if err != nil || b.HeldBack != 0 || b.Dropped != client.MaxHeldBack+7 {
		t.Fatalf("eight days on: batch = %+v, %v; want all %d dropped", b, err, client.MaxHeldBack+7)
	}
}

// Class 2: a refusal deletes nothing without the user knowing. One
// "forbidden" answer marks its message refused, with the reason, in the
// outbox and its case; the others go; the outbox counts as empty of
// waiting messages only once none waits.
func TestOneRefusalLosesNothingElse(t *testing.T) {
	t.Parallel()
	w := hostileWorld(t)
	h := relaytest.StartHostile(t, w.Dir.Raw)
	unavailable := &proto.Error{Code: proto.CodeUnavailable, Description: "busy"}
	refusals := []*proto.Error{unavailable, unavailable, unavailable}
	var mu sync.Mutex
	h.Set(func(h *relaytest.Hostile) {
		h.Refuse = func(relaytest.HostilePublish) *proto.Error {
			mu.Lock()
			defer mu.Unlock()
			if len(refusals) == 0 {
				return nil
			}
			r := refusals[0]
			refusals = refusals[1:]
			return r
		}
	})
	var events []client.Event
	var evMu sync.Mutex
	def := openOn(t, h, w, newDefender(t), w.Dir.Raw, func(c *client.Config) {
		c.OnEvent = func(e client.Event) {
			evMu.Lock()
			events = append(events, e)
			evMu.Unlock()
		}
	})
	var ids []routing.ID
	for _, s := range []string{"first", "second", "third"} {
		// High, not urgent: one publish each, no escalation handed over.
		a := ugAlert(s)
		a.Priority = routing.High
		sent, err := def.SendAlert(ctx(t), a)
		if err != nil || !sent.Queued {
			t.Fatalf("SendAlert = %+v, %v; want queued", sent, err)
		}
		ids = append(ids, sent.ID)
	}
	mu.Lock()
	refusals = []*proto.Error{{Code: proto.CodeForbidden, Description: "not you"}}
	mu.Unlock()
	if n, err := def.Flush(ctx(t)); n != 2 || err != nil {
		t.Fatalf("Flush = %d, %v; want 2 sent", n, err)
	}
	q, err := def.Outbox()
	if err != nil || len(q) != 1 || q[0].ID != ids[0] || q[0].Refused == nil || q[0].Refused.Code != "forbidden" || q[0].Refused.Reason != "not you" {
		t.Fatalf("outbox = %+v (err %v), want the first alert refused with its reason", q, err)
	}
	st, err := def.Status()
	if err != nil || st.Waiting != 0 || st.Refused != 1 {
		t.Fatalf("status = %+v (%v), want none waiting and one refused", st, err)
	}
	cs, err := def.Cases()
	if err != nil || len(cs) != 3 {
		t.Fatalf("cases = %d (err %v)", len(cs), err)
	}
	for _, k := range cs {
		e := k.Thread[0]
		switch {
		case k.ID == ids[0] && (e.Queued || e.Refused != "relay refused: forbidden: not you"):
			t.Errorf("the refused alert's case: %+v", e)
		case k.ID != ids[0] && (e.Queued || e.Refused != ""):
			t.Errorf("a sent alert's case: %+v", e)
		}
	}
	evMu.Lock()
	defer evMu.Unlock()
	var kinds []client.EventKind
	for _, e := range events {
		if e.Kind == client.EventSent || e.Kind == client.EventRefused {
			kinds = append(kinds, e.Kind)
		}
	}
	if !slices.Equal(kinds, []client.EventKind{client.EventRefused, client.EventSent, client.EventSent}) {
		t.Fatalf("events %v, want the refusal and the two sent", kinds)
	}
}

// Class 3: backoff on the clock. A relay that fails every fetch gets one
// fetch per wait of the client's clock, and the waits double; when it
// answers again the reply shows and the backoff starts over.
func TestFollowBacksOffOnTheClock(t *testing.T) {
	t.Parallel()
	w := hostileWorld(t)
	h := relaytest.StartHostile(t, w.Dir.Raw)
	h.Set(func(h *relaytest.Hostile) {
		h.FetchRefusal = &proto.Error{Code: proto.CodeUnavailable, Description: "down"}
	})
	clock := clockwork.NewFakeClock()
	kr := newDefender(t)
	def := openOn(t, h, w, kr, w.Dir.Raw, func(c *client.Config) { c.Clock = clock })

	shown := make(chan *client.Received, 4)
	var problems []error
	fctx, stop := context.WithCancel(ctx(t))
	done := make(chan error, 1)
	go func() {
		done <- def.FollowMailbox(fctx, func(r *client.Received) { shown <- r }, func(err error) { problems = append(problems, err) })
	}()
	// Blocked on the clock: the outbox loop's timer and the follow's wait.
	blocked := func() {
		t.Helper()
		if err := clock.BlockUntilContext(ctx(t), 2); err != nil {
			t.Fatal(err)
		}
	}
	caseID := routing.NewID()
	for i := range 6 {
		if _, err := h.Await(ctx(t), proto.SvcFetch, i+1); err != nil {
			t.Fatal(err)
		}
		blocked()
		if n := len(h.Requests(proto.SvcFetch)); n != i+1 {
			t.Fatalf("after %d failures the relay was asked %d times while the client's clock stood still", i+1, n)
		}
		if i == 5 {
			// The relay answers again, with a reply.
			serveMailbox(h, mailboxMsgs(sealReply(t, w.Keyrings["nl-kampala"], kr.Identity.Public(), caseID, "Back.")))
			h.Set(func(h *relaytest.Hostile) { h.FetchRefusal = nil })
		}
		// The wait is at most 250 ms, doubled per failure.
		clock.Advance(250 * time.Millisecond << i)
	}
	select {
	case r := <-shown:
		if r.Case != caseID {
			t.Fatalf("shown %+v", r)
		}
	case <-ctx(t).Done():
		t.Fatal("the reply was never shown")
	}
	// It brought something: the backoff starts over, and the next round
	// that brings nothing waits 250 ms at most.
	if _, err := h.Await(ctx(t), proto.SvcFetch, 8); err != nil {
		t.Fatal(err)
	}
	blocked()
	clock.Advance(250 * time.Millisecond)
	if _, err := h.Await(ctx(t), proto.SvcFetch, 9); err != nil {
		t.Fatalf("no fetch 250 ms after a round that brought a reply: %v", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("FollowMailbox: %v", err)
	}
	var perr *proto.Error
	if len(problems) != 6 || !errors.As(problems[0], &perr) || perr.Code != proto.CodeUnavailable {
		t.Fatalf("problems %v, want the 6 failures", problems)
	}
}

// broadcast signs a broadcast for cc by kr at created.
func broadcast(t *testing.T, kr *keys.Keyring, cc, title string, created, until time.Time) []byte {
	t.Helper()
	body, err := message.Marshal(&message.Broadcast{Country: cc, Category: message.BroadcastTraining, Title: title,
		Text: "Apply by the end of the month.", ValidUntil: until})
	if err != nil {
		t.Fatal(err)
	}
	pm, err := envelope.SignPublic(cc, body, kr.Identity, created)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// Class 4: broadcasts. Expired ones are not shown, copies collapse to
// one (the same message replayed, or the same text signed again), one
// dated in the future or signed by a mission not covering the country is
// not verified, and a mission shows at most MaxBulletinsPerMission.
func TestBroadcastsExpireCollapseAndAreCapped(t *testing.T) {
	w := hostileWorld(t)
	h := relaytest.StartHostile(t, w.Dir.Raw)
	nl, de := w.Keyrings["nl-kampala"], w.Keyrings["de-nairobi"]
	now := time.Now()
	current := broadcast(t, nl, "ug", "Digital security training", now.Add(-time.Hour), now.Add(24*time.Hour))
	var msgs []relaytest.HostileMsg
	add := func(b []byte, n int) {
		msgs = append(msgs, relaytest.HostileMsg{Data: b, Subject: "bcn.bcast.ug", Repeat: n})
	}
	add(current, 1000)                                                                                           // replayed a thousand times
	add(broadcast(t, nl, "ug", "Digital security training", now.Add(-30*time.Minute), now.Add(24*time.Hour)), 1) // same text, signed again
	add(broadcast(t, nl, "ug", "Last year's grants", now.Add(-48*time.Hour), now.Add(-24*time.Hour)), 1)         // expired
	add(broadcast(t, nl, "ug", "From the future", now.Add(time.Hour), time.Time{}), 1)
	add(broadcast(t, de, "ug", "Not Kenya's to announce", now.Add(-time.Hour), time.Time{}), 1)
	for i := range client.MaxBulletinsPerMission {
		add(broadcast(t, nl, "ug", "Programme "+string(rune('A'+i)), now.Add(-time.Duration(i+2)*time.Hour), time.Time{}), 1)
	}
	h.Set(func(h *relaytest.Hostile) {
		h.News = func(string, proto.FetchRequest) []relaytest.HostileMsg { return msgs }
	})
	def := openOn(t, h, w, newDefender(t), w.Dir.Raw, nil)
	var n *client.News
	var err error
	grew := heapGrowth(t, func() { n, err = def.ReadNews(ctx(t), "ug") })
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Bulletins) != client.MaxBulletinsPerMission || n.Expired != 1 || n.Duplicates != 1000 || n.Unverified != 2 || n.Capped != 1 {
		t.Fatalf("news: %d bulletins, %d expired, %d duplicates, %d unverified, %d capped; want %d, 1, 1000, 2, 1",
			len(n.Bulletins), n.Expired, n.Duplicates, n.Unverified, n.Capped, client.MaxBulletinsPerMission)
	}
	// The newest are kept, oldest first, the current one last and once.
	if b := n.Bulletins[len(n.Bulletins)-1]; b.Broadcast.Title != "Digital security training" || b.ID != mustParse(t, current).ID {
		t.Fatalf("last bulletin %+v, want the current training", b)
	}
	for _, b := range n.Bulletins {
		if b.Broadcast.Title == "Programme T" || b.Broadcast.Title == "Last year's grants" {
			t.Fatalf("shown: %q", b.Broadcast.Title)
		}
	}
	if grew > 16*mib {
		t.Fatalf("the heap grew by %d MiB reading %d broadcasts", grew/mib, len(msgs))
	}
}

func mustParse(t *testing.T, b []byte) envelope.Public {
	t.Helper()
	pm, err := envelope.ParsePublic(b)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// Class 5: honest status. Each way a relay can serve a bad directory is a
// *RelayDirectoryError with its reason, an event and a status, while the
// device keeps the directory it holds; a relay that cannot answer is
// none of those; and a good directory clears the alarm.
func TestRefusedRelayDirectoryIsASecurityEvent(t *testing.T) {
	t.Parallel()
	w := hostileWorld(t)
	_, fr := newMission(t, w, "fr-kampala")
	v2 := signNext(t, w, fr)
	h := relaytest.StartHostile(t, v2)
	var events []client.Event
	var mu sync.Mutex
	def := openOn(t, h, w, newDefender(t), v2, func(c *client.Config) {
		c.Clock = clockwork.NewFakeClock() // no background round but the first
		c.OnEvent = func(e client.Event) {
			if e.Kind == client.EventDirectoryRefused {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}
		}
	})
	expired := func() []byte {
		r := w.Dir.Roster
		r.Serial, r.Previous = 3, keys.HashString(sha256.Sum256(v2))
		r.Issued, r.Expires = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
		b, err := keys.SignDirectory(&r, w.Root)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	other := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	for _, tc := range []struct {
		name  string
		serve func(h *relaytest.Hostile)
		want  error
	}{
		{"older", func(h *relaytest.Hostile) { h.Directory = w.Dir.Raw }, keys.ErrRollback},
		{"expired", func(h *relaytest.Hostile) { h.Directory = expired }, keys.ErrExpired},
		{"tampered", func(h *relaytest.Hostile) {
			h.Directory = bytes.Replace(v2, []byte("Mission fr-kampala"), []byte("Mission fr-kampalb"), 1)
		}, keys.ErrBadSignature},
		{"another root", func(h *relaytest.Hostile) { h.Directory = other.Dir.Raw }, keys.ErrUntrustedRoot},
		{"outside the protocol", func(h *relaytest.Hostile) {
			h.DirectoryChunk = func(int) *nats.Msg {
				m := nats.NewMsg("")
				m.Header.Set(proto.HeaderDirChunks, "1")
				m.Header.Set(proto.HeaderDirSize, "10")
				m.Data = make([]byte, 11)
				return m
			}
		}, relayconn.ErrHostile},
	} {
		before := len(h.Requests(proto.SvcDirectory))
		h.Set(func(h *relaytest.Hostile) { h.DirectoryChunk = nil; tc.serve(h) })
		err := def.RefreshDirectory(ctx(t))
		var re *client.RelayDirectoryError
		if !errors.As(err, &re) || !errors.Is(err, tc.want) || re.Held == nil || re.Held.Serial != 2 {
			t.Errorf("%s: %v, want a RelayDirectoryError for %v, holding serial 2", tc.name, err, tc.want)
			continue
		}
		if n := len(h.Requests(proto.SvcDirectory)) - before; n != 1 {
			t.Errorf("%s: %d directory requests for one refresh", tc.name, n)
		}
		st, _ := def.Status()
		if st.DirectoryRefused != re || st.Directory == nil || st.Directory.Serial != 2 {
			t.Errorf("%s: status %+v, want the refusal and serial 2 kept", tc.name, st)
		}
	}
	mu.Lock()
	if len(events) != 5 {
		t.Errorf("%d EventDirectoryRefused, want one per refused directory", len(events))
	}
	mu.Unlock()
	// A relay that has no directory to give is not a security event, and
	// leaves the last one reported.
	h.Set(func(h *relaytest.Hostile) { h.DirectoryChunk, h.Directory = nil, nil })
	err := def.RefreshDirectory(ctx(t))
	var re *client.RelayDirectoryError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("a relay without a directory: %v, want a plain error", err)
	}
	// Serial 2 again: accepted, the alarm is over.
	h.Set(func(h *relaytest.Hostile) { h.Directory = v2 })
	if err := def.RefreshDirectory(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if st, _ := def.Status(); st.DirectoryRefused != nil {
		t.Fatalf("status still reports %v after a good directory", st.DirectoryRefused)
	}

	// Given out of band, an expired or older directory is refused at Open.
	for _, tc := range []struct {
		dir  []byte
		want error
	}{{expired, keys.ErrExpired}, {w.Dir.Raw, keys.ErrRollback}} {
		cfg := def.cfg
		cfg.Directory, cfg.URLs = tc.dir, []string{deadURL(t)}
		def.Close()
		if c, err := client.Open(cfg); !errors.Is(err, tc.want) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("Open with a directory that is %v: %v", tc.want, err)
		}
	}
}

// Class 5: stored at the relay is not acknowledged by a person. A case
// shows no acknowledgement until a mission's signed ack is in its thread.
func TestStoredIsNotAcknowledged(t *testing.T) {
	t.Parallel()
	w := hostileWorld(t)
	h := relaytest.StartHostile(t, w.Dir.Raw)
	kr := newDefender(t)
	def := openOn(t, h, w, kr, w.Dir.Raw, nil)
	sent, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport"))
	if err != nil || sent.Queued {
		t.Fatalf("SendAlert = %+v, %v", sent, err)
	}
	cs, _ := def.Cases()
	if len(cs) != 1 || len(cs[0].Acknowledged()) != 0 {
		t.Fatalf("cases = %+v: an alert the relay stored shows as acknowledged", cs)
	}
	body, _ := message.Marshal(&message.Ack{Ref: sent.ID, By: "Mission nl-kampala"})
	ack, err := envelope.Seal(envelope.NewHeader("ug", routing.Urgent), body, w.Keyrings["nl-kampala"].Identity, envelope.Signed, envelope.To(kr.Identity.Public()))
	if err != nil {
		t.Fatal(err)
	}
	serveMailbox(h, mailboxMsgs(ack))
	if got, err := def.ReadMailbox(ctx(t), client.FetchOptions{}); err != nil || len(got) != 1 {
		t.Fatalf("ReadMailbox = %d, %v", len(got), err)
	}
	cs, _ = def.Cases()
	if got := cs[0].Acknowledged(); !slices.Equal(got, []string{"nl-kampala"}) {
		t.Fatalf("acknowledged by %v, want nl-kampala", got)
	}
}

// TestMissionsReportJunk: alerts no mission of their country can open (a
// flood sealed to nobody) are reported by each mission's client, off the
// read path, and removed by the relay once every mission said so; a real
// alert among them is kept and shown.
func TestMissionsReportJunk(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	flooder := relaytest.Connect(t, w.relay.ClientURL(), nil)
	const flood = 5
	for range flood {
		env, err := envelope.Seal(envelope.NewHeader("ug", routing.Urgent), []byte("junk"), newDefender(t).Identity, envelope.Deniable,
			envelope.To(newDefender(t).Identity.Public()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := flooder.Publish(proto.AlertTarget("ug", routing.Urgent), env); err != nil {
			t.Fatal(err)
		}
	}
	def := w.open(t, newDefender(t))
	sent, err := def.SendAlert(ctx(t), ugAlert("Arrested at the airport"))
	if err != nil {
		t.Fatal(err)
	}
	before := w.stored(t, proto.StreamAlerts)
	var removed int
	for _, id := range []string{"nl-kampala", "se-kampala"} {
		events := make(chan client.Event, 16)
		kr := w.Keyrings[id]
		cfg := client.Config{URLs: []string{w.relay.ClientURL()}, Keyring: kr, Root: w.Root.Public().Fingerprint(),
			StateDir: t.TempDir(), Directory: w.Dir.Raw, OnEvent: func(e client.Event) {
				if e.Kind == client.EventJunkReported {
					events <- e
				}
			}}
		m := reopen(t, cfg)
		m.waitConnected(t)
		got, err := receiveAlerts(m, ctx(t), client.FetchOptions{Max: 64, Wait: 5 * time.Second})
		if err != nil || len(got) != 1 || got[0].ID != sent.ID {
			t.Fatalf("%s: %d alerts (%v), want the real one", id, len(got), err)
		}
		select {
		case e := <-events:
			if e.Junk != flood {
				t.Fatalf("%s reported %d junk alerts, want %d", id, e.Junk, flood)
			}
			removed += e.Removed
		case <-ctx(t).Done():
			t.Fatalf("%s reported no junk", id)
		}
	}
	// The first report removes nothing (the other mission may still open
	// them); the second, every one.
	if removed != flood {
		t.Fatalf("the relay removed %d junk alerts, want %d", removed, flood)
	}
	if after := w.stored(t, proto.StreamAlerts); after != before-flood {
		t.Fatalf("ALERTS holds %d messages, want %d", after, before-flood)
	}
}
