package relaytest

import (
	"encoding/json"
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
// serving a directory of its choosing. Clients connect to it as to any
// relay (it accepts every NKey, as a relay accepts walk-ins).
type Hostile struct {
	Srv *server.Server
	URL string
	nc  *nats.Conn

	mu sync.Mutex
	// Directory is served by svc.directory, in chunks; nil refuses.
	Directory []byte
	// Fetch answers a fetch: the messages to send before the end marker.
	// nil answers every fetch with an empty batch.
	Fetch func(mbox routing.Mailbox, src proto.Source, req proto.FetchRequest) []HostileMsg
	// Settled receives the tokens of each settle request.
	Settled chan []string
	// Published receives each ingest publish (target and data); every
	// publish is answered as stored.
	Published chan HostilePublish
	seq       uint64
}

// A HostileMsg is one message of a lying fetch answer.
type HostileMsg struct {
	Data    []byte
	Subject string
	Settle  string
	Seq     uint64
	// Raw, if set, is sent as it is, headers and all.
	Raw *nats.Msg
}

// A HostilePublish is an ingest publish the hostile relay took.
type HostilePublish struct {
	Mailbox routing.Mailbox
	Target  string
	Data    []byte
}

// StartHostile starts a hostile relay serving dir (a signed directory,
// normally a World's) and stops it when the test ends.
func StartHostile(t testing.TB, dir []byte) *Hostile {
	t.Helper()
	srv := StartBare(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h := &Hostile{Srv: srv, URL: srv.ClientURL(), nc: nc, Directory: dir,
		Settled: make(chan []string, 64), Published: make(chan HostilePublish, 64)}
	if _, err := nc.Subscribe(proto.IngestAll, h.serve); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return h
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

// Set changes the hostile relay's behaviour under its lock.
func (h *Hostile) Set(f func(h *Hostile)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

func (h *Hostile) serve(m *nats.Msg) {
	mbox, target, err := proto.ParseIngest(m.Subject)
	if err != nil || m.Reply == "" {
		return
	}
	if !proto.IsService(target) {
		h.mu.Lock()
		h.seq++
		seq := h.seq
		h.mu.Unlock()
		select {
		case h.Published <- HostilePublish{Mailbox: mbox, Target: target, Data: m.Data}:
		default:
		}
		b, _ := json.Marshal(proto.Reply{Stream: "HOSTILE", Seq: seq})
		h.nc.Publish(m.Reply, b)
		return
	}
	svc, err := proto.ParseService(target)
	if err != nil {
		h.refuse(m, proto.CodeBadTarget)
		return
	}
	h.mu.Lock()
	dir, fetch := h.Directory, h.Fetch
	h.mu.Unlock()
	switch svc.Name {
	case proto.SvcDirectory:
		if dir == nil {
			h.refuse(m, proto.CodeUnavailable)
			return
		}
		i, _ := strconv.Atoi(string(m.Data))
		chunks := (len(dir) + proto.DirectoryChunkSize - 1) / proto.DirectoryChunkSize
		out := nats.NewMsg(m.Reply)
		out.Header.Set(proto.HeaderDirChunks, strconv.Itoa(chunks))
		out.Header.Set(proto.HeaderDirSize, strconv.Itoa(len(dir)))
		out.Data = dir[min(len(dir), i*proto.DirectoryChunkSize):min(len(dir), (i+1)*proto.DirectoryChunkSize)]
		h.nc.PublishMsg(out)
	case proto.SvcFetch:
		var req proto.FetchRequest
		json.Unmarshal(m.Data, &req)
		var msgs []HostileMsg
		if fetch != nil {
			msgs = fetch(mbox, svc.Source, req)
		}
		for _, f := range msgs {
			if f.Raw != nil {
				raw := *f.Raw
				raw.Subject = m.Reply
				h.nc.PublishMsg(&raw)
				continue
			}
			out := nats.NewMsg(m.Reply)
			out.Data = f.Data
			out.Header.Set(proto.HeaderSubject, f.Subject)
			if f.Settle != "" {
				out.Header.Set(proto.HeaderSettle, f.Settle)
			}
			if f.Seq != 0 {
				out.Header.Set(proto.HeaderSeq, strconv.FormatUint(f.Seq, 10))
			}
			h.nc.PublishMsg(out)
		}
		end := nats.NewMsg(m.Reply)
		end.Header.Set(proto.HeaderEnd, strconv.Itoa(len(msgs)))
		h.nc.PublishMsg(end)
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

func (h *Hostile) refuse(m *nats.Msg, code proto.Code) {
	b, _ := json.Marshal(proto.SvcReply{Error: &proto.Error{Code: code, Description: "hostile relay"}})
	h.nc.Publish(m.Reply, b)
}
