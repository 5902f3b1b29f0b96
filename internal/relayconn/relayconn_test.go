package relayconn_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.uber.org/goleak"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects to url with a fresh walk-in key and waits for the
// connection.
func dial(t *testing.T, url string) *relayconn.Conn {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	c, err := relayconn.Dial(relayconn.Config{URLs: []string{url}, NKey: kp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return c
}

// hostile starts a hostile relay whose server buffers little for a slow
// client, so that what a test measures of the process's heap is the
// client's, not the server's in the same process. It lets the test send
// messages of up to 4 MiB, within what a client accepts as a relay's
// maximum payload.
func hostile(t *testing.T) *relaytest.Hostile {
	return relaytest.StartHostileWith(t, nil, relaytest.HostileOptions{MaxPending: 4 << 20, MaxPayload: 4 << 20})
}

// heapGrowth runs f and returns how far the heap the process reserved
// grew meanwhile: an upper bound on the peak of what f held at once (plus
// what the hostile relay's server, in the same process, buffered for it),
// as the heap is only given back to the system well after a collection.
// The collector runs often meanwhile, so that garbage (the hostile
// relay's own, mostly) does not pass for growth. The tests that use it do
// not run in parallel.
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

const mib = 1 << 20

// An endless stream of small messages, with no end marker, is cut off by
// count: the fetch fails once the relay sends one more than was asked for,
// and the client holds no more than that meanwhile.
func TestFetchEndlessStreamIsCutOffByCount(t *testing.T) {
	h := hostile(t)
	h.Set(func(h *relaytest.Hostile) {
		h.NoEnd = true
		h.Fetch = func(routing.Mailbox, proto.Source, proto.FetchRequest) []relaytest.HostileMsg {
			return []relaytest.HostileMsg{{Data: make([]byte, 1024), Subject: "bcn.mbox.x", Settle: "mbox.1", Seq: 1, Repeat: 1 << 30}}
		}
	})
	c := dial(t, h.URL)
	var err error
	grew := heapGrowth(t, func() {
		_, err = c.Fetch(testCtx(t), proto.MailboxSource, relayconn.FetchOptions{Max: 16})
	})
	if !errors.Is(err, relayconn.ErrHostile) {
		t.Fatalf("Fetch of an endless stream: %v, want ErrHostile", err)
	}
	if grew > 8*mib {
		t.Fatalf("the heap grew by %d MiB while a stream was cut off after 16 messages of 1 KiB", grew/mib)
	}
	if n := len(h.Requests(proto.SvcFetch)); n != 1 {
		t.Fatalf("the relay was asked %d times, want once", n)
	}
}

// An endless stream of large messages is cut off by bytes: past what was
// asked for and one message, the fetch fails.
func TestFetchEndlessStreamIsCutOffByBytes(t *testing.T) {
	h := hostile(t)
	h.Set(func(h *relaytest.Hostile) {
		h.NoEnd = true
		h.Fetch = func(routing.Mailbox, proto.Source, proto.FetchRequest) []relaytest.HostileMsg {
			return []relaytest.HostileMsg{{Data: make([]byte, 64<<10), Subject: "bcn.mbox.x", Settle: "mbox.1", Seq: 1, Repeat: 1 << 30}}
		}
	})
	c := dial(t, h.URL)
	var err error
	grew := heapGrowth(t, func() {
		_, err = c.Fetch(testCtx(t), proto.MailboxSource, relayconn.FetchOptions{Max: proto.MaxFetch, MaxBytes: mib})
	})
	if !errors.Is(err, relayconn.ErrHostile) {
		t.Fatalf("Fetch of an endless stream of 64 KiB messages: %v, want ErrHostile", err)
	}
	// The client may hold what it asked for, one message of slack and
	// what its library buffered: well under 8 MiB, where an unbounded
	// client would have grown without end.
	if grew > 8*mib {
		t.Fatalf("the heap grew by %d MiB while a stream was cut off after 1 MiB", grew/mib)
	}
}

// A message larger than any envelope is refused before it is looked at,
// and so is a batch whose end marker miscounts it.
func TestFetchRefusesWhatNoRelaySends(t *testing.T) {
	t.Parallel()
	h := hostile(t)
	c := dial(t, h.URL)
	for _, tc := range []struct {
		name  string
		after uint64
		msgs  []relaytest.HostileMsg
	}{
		{"larger than an envelope", 0, []relaytest.HostileMsg{{Data: make([]byte, envelope.MaxSize+1), Subject: "bcn.mbox.x", Settle: "mbox.1", Seq: 1}}},
		{"sequence not after the cursor", 5, []relaytest.HostileMsg{{Data: []byte("x"), Subject: "bcn.mbox.x", Settle: "mbox.5", Seq: 5}}},
		{"end marker miscounts", 0, []relaytest.HostileMsg{{Raw: endMarker(3)}}},
		{"neither a message nor a refusal", 0, []relaytest.HostileMsg{{Raw: &nats.Msg{Data: []byte(`{"count":1}`)}}}},
	} {
		h.Set(func(h *relaytest.Hostile) {
			h.Fetch = func(routing.Mailbox, proto.Source, proto.FetchRequest) []relaytest.HostileMsg { return tc.msgs }
		})
		if _, err := c.Fetch(testCtx(t), proto.MailboxSource, relayconn.FetchOptions{After: tc.after}); !errors.Is(err, relayconn.ErrHostile) {
			t.Errorf("%s: %v, want ErrHostile", tc.name, err)
		}
	}
}

func endMarker(n int) *nats.Msg {
	m := nats.NewMsg("")
	m.Header.Set(proto.HeaderEnd, strconv.Itoa(n))
	return m
}

// News is bounded like a fetch, and a broadcast larger than any public
// message can be is refused before it is parsed.
func TestNewsIsBounded(t *testing.T) {
	t.Parallel()
	h := hostile(t)
	c := dial(t, h.URL)
	var asked proto.FetchRequest
	h.Set(func(h *relaytest.Hostile) {
		h.News = func(_ string, req proto.FetchRequest) []relaytest.HostileMsg {
			asked = req
			return []relaytest.HostileMsg{{Data: make([]byte, envelope.MaxPublicSize+1), Subject: "bcn.bcast.ug"}}
		}
	})
	if _, err := c.News(testCtx(t), "ug"); !errors.Is(err, relayconn.ErrHostile) {
		t.Fatalf("News with a broadcast of %d bytes: %v, want ErrHostile", envelope.MaxPublicSize+1, err)
	}
	if asked.Max != proto.MaxNews || asked.MaxBytes <= 0 || asked.MaxBytes > proto.MaxFetchBytes {
		t.Fatalf("news asked for %+v, want at most MaxNews messages and a byte bound", asked)
	}
	h.Set(func(h *relaytest.Hostile) {
		h.News = func(string, proto.FetchRequest) []relaytest.HostileMsg {
			return []relaytest.HostileMsg{{Data: make([]byte, 200), Subject: "bcn.bcast.ug", Repeat: proto.MaxNews + 1}}
		}
	})
	if _, err := c.News(testCtx(t), "ug"); !errors.Is(err, relayconn.ErrHostile) {
		t.Fatalf("News with %d broadcasts: %v, want ErrHostile", proto.MaxNews+1, err)
	}
}

// chunkMsg is a directory chunk with the headers a relay sends.
func chunkMsg(chunks, size int, data []byte) *nats.Msg {
	m := nats.NewMsg("")
	m.Header.Set(proto.HeaderDirChunks, strconv.Itoa(chunks))
	m.Header.Set(proto.HeaderDirSize, strconv.Itoa(size))
	m.Data = data
	return m
}

// A directory is checked chunk by chunk as it downloads: an announced
// size over the limit, or a chunk larger than chunks are, ends the
// download at that chunk, having held no more than it.
func TestDirectoryIsCheckedWhileItDownloads(t *testing.T) {
	h := hostile(t)
	c := dial(t, h.URL)
	const big = keys.MaxDirectorySize
	chunks := (big + proto.DirectoryChunkSize - 1) / proto.DirectoryChunkSize
	for _, tc := range []struct {
		name  string
		chunk func(i int) *nats.Msg
		asked int
	}{
		{"announces more than the limit", func(int) *nats.Msg { return chunkMsg(chunks+1, big+1, make([]byte, proto.DirectoryChunkSize)) }, 1},
		{"chunks that cannot hold the size", func(int) *nats.Msg { return chunkMsg(1, big, make([]byte, proto.DirectoryChunkSize)) }, 1},
		// The limit's size in chunks of 1 MiB: the first is refused.
		{"chunks far larger than a chunk", func(int) *nats.Msg { return chunkMsg(chunks, big, make([]byte, mib)) }, 1},
		{"a last chunk longer than the rest of the size", func(i int) *nats.Msg {
			return chunkMsg(2, proto.DirectoryChunkSize+10, make([]byte, map[int]int{0: proto.DirectoryChunkSize, 1: 11}[i]))
		}, 2},
	} {
		before := len(h.Requests(proto.SvcDirectory))
		h.Set(func(h *relaytest.Hostile) { h.DirectoryChunk = tc.chunk })
		var err error
		grew := heapGrowth(t, func() { _, err = c.Directory(testCtx(t)) })
		if !errors.Is(err, relayconn.ErrHostile) {
			t.Errorf("%s: %v, want ErrHostile", tc.name, err)
		}
		if n := len(h.Requests(proto.SvcDirectory)) - before; n != tc.asked {
			t.Errorf("%s: %d chunks asked for, want %d", tc.name, n, tc.asked)
		}
		if grew > 8*mib {
			t.Errorf("%s: the heap grew by %d MiB", tc.name, grew/mib)
		}
	}
	// A directory that changes size while it downloads is not an attack
	// (the relay reloaded it), and is not taken either.
	h.Set(func(h *relaytest.Hostile) {
		h.DirectoryChunk = func(i int) *nats.Msg {
			if i == 0 {
				return chunkMsg(2, proto.DirectoryChunkSize+1, make([]byte, proto.DirectoryChunkSize))
			}
			return chunkMsg(2, proto.DirectoryChunkSize+2, make([]byte, 2))
		}
	})
	if _, err := c.Directory(testCtx(t)); err == nil || errors.Is(err, relayconn.ErrHostile) {
		t.Fatalf("a directory that changed while downloading: %v, want a plain error", err)
	}
}

// Directory downloads never overlap: callers that arrive while one runs
// share it, so a client holds at most one directory download at a time.
func TestDirectoryDownloadsOneAtATime(t *testing.T) {
	t.Parallel()
	dir := make([]byte, 3*proto.DirectoryChunkSize-7)
	rand.Read(dir)
	h := hostile(t)
	c := dial(t, h.URL)
	var mu sync.Mutex
	var asked []int
	h.Set(func(h *relaytest.Hostile) {
		h.DirectoryChunk = func(i int) *nats.Msg {
			mu.Lock()
			asked = append(asked, i)
			mu.Unlock()
			return chunkMsg(3, len(dir), dir[i*proto.DirectoryChunkSize:min(len(dir), (i+1)*proto.DirectoryChunkSize)])
		}
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := c.Directory(testCtx(t))
			if err != nil || !bytes.Equal(got, dir) {
				t.Errorf("Directory: %d bytes, %v", len(got), err)
			}
		})
	}
	wg.Wait()
	// Each download asks for chunks 0, 1, 2 in turn; two at once would
	// interleave their requests.
	mu.Lock()
	defer mu.Unlock()
	if len(asked) == 0 || len(asked)%3 != 0 {
		t.Fatalf("chunks asked for: %v", asked)
	}
	for i, n := range asked {
		if n != i%3 {
			t.Fatalf("downloads overlapped: chunks asked for in the order %v", asked)
		}
	}
}

// A download that began before a caller asked is not shared with it: the
// relay may have reloaded a newer directory since, and the caller gets
// what the relay serves after it asked.
func TestDirectoryNotSharedFromBefore(t *testing.T) {
	t.Parallel()
	h := hostile(t)
	c := dial(t, h.URL)
	v1, v2 := []byte("directory, serial 1"), []byte("directory, serial 2")
	var mu sync.Mutex
	current := v1
	asked, release := make(chan struct{}, 2), make(chan struct{})
	first := true
	h.Set(func(h *relaytest.Hostile) {
		h.DirectoryChunk = func(int) *nats.Msg {
			mu.Lock()
			dir, hold := current, first
			first = false
			mu.Unlock()
			asked <- struct{}{}
			if hold {
				<-release // the first download waits until the second caller does
			}
			return chunkMsg(1, len(dir), dir)
		}
	})
	waiting := make(chan struct{}, 1)
	relayconn.OnDirectoryWait(c, func() { waiting <- struct{}{} })
	results := make(chan []byte, 2)
	download := func() {
		got, err := c.Directory(testCtx(t))
		if err != nil {
			t.Error(err)
		}
		results <- got
	}
	go download()
	<-asked // the first download is running, with serial 1
	mu.Lock()
	current = v2 // the relay reloads
	mu.Unlock()
	go download()
	<-waiting
	close(release)
	got := map[string]bool{string(<-results): true, string(<-results): true}
	if !got[string(v1)] || !got[string(v2)] {
		t.Errorf("downloads got %v, want serial 1 for the first caller and serial 2 for the second", got)
	}
}

// A relay that announces a maximum payload no relay needs is refused for
// good, and WaitConnected says why instead of waiting.
func TestImplausibleMaxPayloadIsRefused(t *testing.T) {
	t.Parallel()
	h := relaytest.StartHostileWith(t, nil, relaytest.HostileOptions{MaxPayload: 2 * relayconn.MaxPayload})
	kp, _ := nkeys.CreateUser()
	c, err := relayconn.Dial(relayconn.Config{URLs: []string{h.URL}, NKey: kp})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitConnected(testCtx(t)); !errors.Is(err, relayconn.ErrHostile) {
		t.Fatalf("WaitConnected to a relay announcing %d bytes: %v, want ErrHostile", 2*relayconn.MaxPayload, err)
	}
	if _, err := c.Fetch(testCtx(t), proto.MailboxSource, relayconn.FetchOptions{}); !errors.Is(err, relayconn.ErrHostile) {
		t.Fatalf("Fetch after the refusal: %v, want ErrHostile", err)
	}
}

// The relay's cluster announces its other nodes to clients; a client
// connects only where it was told to, so a relay cannot send it to a
// server of its choosing.
func TestDiscoveredServersAreIgnored(t *testing.T) {
	t.Parallel()
	start := func(routes ...string) *server.Server {
		o := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true, AlwaysEnableNonce: true,
			Cluster: server.ClusterOpts{Name: "hostile", Host: "127.0.0.1", Port: server.RANDOM_PORT}}
		for _, r := range routes {
			o.Routes = server.RoutesFromStr(r)
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("server not ready")
		}
		return s
	}
	a := start()
	c := dial(t, a.ClientURL())
	// A plain client of a, told of every server a announces.
	discovered := make(chan struct{}, 1)
	plain, err := nats.Connect(a.ClientURL(), nats.DiscoveredServersHandler(func(*nats.Conn) {
		select {
		case discovered <- struct{}{}:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	start("nats://" + a.ClusterAddr().String())
	select {
	case <-discovered:
	case <-testCtx(t).Done():
		t.Fatal("the second node was never announced")
	}
	// a announced it to every client at once; after a round trip the
	// Beacon connection has read that announcement too.
	if err := c.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	if got := plain.DiscoveredServers(); len(got) == 0 {
		t.Fatal("the plain client discovered nothing: the test proves nothing")
	}
	if got := c.NATS().DiscoveredServers(); len(got) != 0 {
		t.Fatalf("the Beacon connection took the announced servers %v", got)
	}
	if got := c.NATS().Servers(); len(got) != 1 {
		t.Fatalf("the Beacon connection would try %v, want only the relay it was given", got)
	}
}

// Sleep waits on the clock it is given, and ends early with its context.
func TestSleepWaitsOnTheClock(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	done := make(chan error, 1)
	go func() { done <- relayconn.Sleep(context.Background(), clock, time.Minute) }()
	if err := clock.BlockUntilContext(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("Sleep returned %v before its minute had passed", err)
	default:
	}
	clock.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := relayconn.Sleep(ctx, clock, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep with a cancelled context: %v", err)
	}
}
