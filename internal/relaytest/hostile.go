package relaytest

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// A Hostile relay is a real embedded nats-server whose relay services are
// answered by the test: it speaks the relay's protocol, and lies where the
// test tells it to — replaying what was settled, sending more than asked,
// serving a directory of its choosing, refusing what it is given. Clients
// connect to it as to any relay (it accepts every NKey, as a relay accepts
// walk-ins). It counts every request it is sent, by service, so a test
// can wait for the n-th one and see how they were spaced.
//
// Set the behaviour with [Hostile.Set]; the fields are read under its lock
// once per request.
type Hostile struct {
	Srv *server.Server
	URL string
	nc  *nats.Conn

	mu sync.Mutex
	// Directory is served by svc.directory, in chunks; nil refuses.
	Directory []byte
	// DirectoryChunk, if set, answers the request for chunk i instead of
	// Directory: the test chooses the headers and the data.
	DirectoryChunk func(i int) *nats.Msg
	// Fetch answers a fetch: the messages to send before the end marker.
	// nil answers every fetch with an empty batch.
	Fetch func(mbox routing.Mailbox, src proto.Source, req proto.FetchRequest) []HostileMsg
	// FetchRefusal, if set, answers every fetch with this refusal.
	FetchRefusal *proto.Error
	// NoEnd leaves fetch and news answers without their end marker.
	NoEnd bool
	// News answers a news request; nil answers with no broadcasts.
	News func(cc string, req proto.FetchRequest) []HostileMsg
	// Refuse, if set, decides each ingest publish: a refusal, or nil to
	// answer it as stored.
	Refuse func(p HostilePublish) *proto.Error
	// Settled receives the tokens of each settle request.
	Settled chan []string
	// Published receives each ingest publish (target and data).
	Published chan HostilePublish
	seq       uint64

	reqMu    sync.Mutex
	requests map[proto.ServiceName][]time.Time // arrival times by service, HostilePublishRequest for the ingest
	wake     chan struct{}                     // closed and replaced on every request
}

// A HostileMsg is one message of a lying fetch answer.
type HostileMsg struct {
	Data    []byte
	Subject string
	Settle  string
	Seq     uint64
	// Raw, if set, is sent as it is, headers and all.
	Raw *nats.Msg
	// Repeat sends the message this many times (0 and 1: once), for a
	// stream far longer than anything a test would build in memory.
	Repeat int
}

// A HostilePublish is an ingest publish the hostile relay took.
type HostilePublish struct {
	Mailbox routing.Mailbox
	Target  string
	Data    []byte
}

// HostileOptions change the hostile relay's nats-server.
type HostileOptions struct {
	// MaxPayload is the maximum payload the server announces (and
	// enforces on what the test publishes); 0 is nats-server's default.
	MaxPayload int32
	// MaxPending bounds what the server buffers for one slow client; 0
	// is nats-server's default. A test that measures the client's memory
	// in the same process sets it, so the server's buffers stay small.
	MaxPending int64
}

// Request names for [Hostile.Requests] and [Hostile.Await]: a service
// name (proto.SvcFetch, proto.SvcDirectory, ...) or this, for a publish
// through the ingest.
const HostilePublishRequest proto.ServiceName = "publish"

// StartHostile starts a hostile relay serving dir (a signed directory,
// normally a World's) and stops it when the test ends.
func StartHostile(t testing.TB, dir []byte) *Hostile {
	return StartHostileWith(t, dir, HostileOptions{})
}

// StartHostileWith is StartHostile with server options.
func StartHostileWith(t testing.TB, dir []byte, o HostileOptions) *Hostile {
	t.Helper()
	h, err := NewHostile(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// NewHostile starts a hostile relay without a test (a testscript
// command's); the caller closes it.
func NewHostile(dir []byte, o HostileOptions) (*Hostile, error) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		AlwaysEnableNonce: true, MaxPayload: o.MaxPayload, MaxPending: o.MaxPending})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	h := &Hostile{Srv: srv, Directory: dir,
		Settled: make(chan []string, 64), Published: make(chan HostilePublish, 64),
		requests: map[proto.ServiceName][]time.Time{}, wake: make(chan struct{})}
	if !srv.ReadyForConnections(10 * time.Second) {
		h.Close()
		return nil, errors.New("hostile relay not ready")
	}
	h.URL = srv.ClientURL()
	if h.nc, err = nats.Connect(h.URL); err != nil {
		h.Close()
		return nil, err
	}
	if _, err := h.nc.Subscribe(proto.IngestAll, h.serve); err != nil {
		h.Close()
		return nil, err
	}
	if err := h.nc.Flush(); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// Close stops the hostile relay.
func (h *Hostile) Close() {
	if h.nc != nil {
		h.nc.Close()
	}
	h.Srv.Shutdown()
	h.Srv.WaitForShutdown()
}

// Set changes the hostile relay's behaviour under its lock.
func (h *Hostile) Set(f func(h *Hostile)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

// Requests returns the arrival times of the requests named name so far.
func (h *Hostile) Requests(name proto.ServiceName) []time.Time {
	h.reqMu.Lock()
	defer h.reqMu.Unlock()
	return append([]time.Time(nil), h.requests[name]...)
}

// Await waits until at least n requests named name have arrived, and
// returns their arrival times.
func (h *Hostile) Await(ctx context.Context, name proto.ServiceName, n int) ([]time.Time, error) {
	for {
		h.reqMu.Lock()
		got, wake := h.requests[name], h.wake
		h.reqMu.Unlock()
		if len(got) >= n {
			return h.Requests(name), nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return h.Requests(name), ctx.Err()
		}
	}
}

func (h *Hostile) count(name proto.ServiceName) {
	h.reqMu.Lock()
	defer h.reqMu.Unlock()
	h.requests[name] = append(h.requests[name], time.Now())
	close(h.wake)
	h.wake = make(chan struct{})
}

func (h *Hostile) serve(m *nats.Msg) {
	mbox, target, err := proto.ParseIngest(m.Subject)
	if err != nil || m.Reply == "" {
		return
	}
	if !proto.IsService(target) {
		h.publish(m, mbox, target)
		return
	}
	svc, err := proto.ParseService(target)
	if err != nil {
		h.refuse(m, proto.CodeBadTarget)
		return
	}
	h.count(svc.Name)
	h.mu.Lock()
	dir, chunk, fetch, fetchRefusal, news, noEnd := h.Directory, h.DirectoryChunk, h.Fetch, h.FetchRefusal, h.News, h.NoEnd
	h.mu.Unlock()
	switch svc.Name {
	case proto.SvcDirectory:
		i, _ := strconv.Atoi(string(m.Data))
		if chunk != nil {
			out := chunk(i)
			out.Subject = m.Reply
			h.nc.PublishMsg(out)
			return
		}
		if dir == nil {
			h.refuse(m, proto.CodeUnavailable)
			return
		}
		chunks := (len(dir) + proto.DirectoryChunkSize - 1) / proto.DirectoryChunkSize
		out := nats.NewMsg(m.Reply)
		out.Header.Set(proto.HeaderDirChunks, strconv.Itoa(chunks))
		out.Header.Set(proto.HeaderDirSize, strconv.Itoa(len(dir)))
		out.Data = dir[min(len(dir), i*proto.DirectoryChunkSize):min(len(dir), (i+1)*proto.DirectoryChunkSize)]
		h.nc.PublishMsg(out)
	case proto.SvcFetch:
		if fetchRefusal != nil {
			b, _ := json.Marshal(proto.SvcReply{Error: fetchRefusal})
			h.nc.Publish(m.Reply, b)
			return
		}
		var req proto.FetchRequest
		json.Unmarshal(m.Data, &req)
		var msgs []HostileMsg
		if fetch != nil {
			msgs = fetch(mbox, svc.Source, req)
		}
		h.answer(m.Reply, msgs, noEnd)
	case proto.SvcNews:
		var req proto.FetchRequest
		json.Unmarshal(m.Data, &req)
		var msgs []HostileMsg
		if news != nil {
			msgs = news(svc.Country, req)
		}
		h.answer(m.Reply, msgs, noEnd)
	case proto.SvcSettle:
		toks := strings.FieldsFunc(string(m.Data), func(r rune) bool { return r == '\n' })
		select {
		case h.Settled <- toks:
		default:
		}
		b, _ := json.Marshal(proto.SvcReply{Count: uint64(len(toks))})
		h.nc.Publish(m.Reply, b)
	default:
		b, _ := json.Marshal(proto.SvcReply{})
		h.nc.Publish(m.Reply, b)
	}
}

// publish answers an ingest publish: stored, or the test's refusal.
func (h *Hostile) publish(m *nats.Msg, mbox routing.Mailbox, target string) {
	h.count(HostilePublishRequest)
	p := HostilePublish{Mailbox: mbox, Target: target, Data: m.Data}
	h.mu.Lock()
	refuse := h.Refuse
	h.seq++
	seq := h.seq
	h.mu.Unlock()
	if refuse != nil {
		if perr := refuse(p); perr != nil {
			b, _ := json.Marshal(proto.Reply{Error: perr})
			h.nc.Publish(m.Reply, b)
			return
		}
	}
	select {
	case h.Published <- p:
	default:
	}
	b, _ := json.Marshal(proto.Reply{Stream: "HOSTILE", Seq: seq})
	h.nc.Publish(m.Reply, b)
}

// answer sends a batch: the messages, then (unless noEnd) the end marker
// with their count.
func (h *Hostile) answer(reply string, msgs []HostileMsg, noEnd bool) {
	n := 0
	for _, f := range msgs {
		for range max(f.Repeat, 1) {
			// An endless stream flows only while the client listens.
			if n++; n%16 == 0 && !h.Srv.GlobalAccount().SubscriptionInterest(reply) {
				return
			}
			if f.Raw != nil {
				raw := *f.Raw
				raw.Subject = reply
				if h.nc.PublishMsg(&raw) != nil {
					return
				}
				continue
			}
			out := nats.NewMsg(reply)
			out.Data = f.Data
			out.Header.Set(proto.HeaderSubject, f.Subject)
			if f.Settle != "" {
				out.Header.Set(proto.HeaderSettle, f.Settle)
			}
			if f.Seq != 0 {
				out.Header.Set(proto.HeaderSeq, strconv.FormatUint(f.Seq, 10))
			}
			if h.nc.PublishMsg(out) != nil {
				return
			}
		}
	}
	if noEnd {
		return
	}
	end := nats.NewMsg(reply)
	end.Header.Set(proto.HeaderEnd, strconv.Itoa(n))
	h.nc.PublishMsg(end)
}

func (h *Hostile) refuse(m *nats.Msg, code proto.Code) {
	b, _ := json.Marshal(proto.SvcReply{Error: &proto.Error{Code: code, Description: "hostile relay"}})
	h.nc.Publish(m.Reply, b)
}

// StartBare starts a bare nats-server on loopback with no JetStream and
// no authentication (it accepts any NKey, sending a nonce to sign as a
// relay does), and stops it when the test ends: a server on which the
// test plays every part.
func StartBare(t testing.TB) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		AlwaysEnableNonce: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("bare server not ready")
	}
	return srv
}
