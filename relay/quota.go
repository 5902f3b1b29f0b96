package relay

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// dedupKey is the Nats-Msg-Id of a stored message: its id and a digest of
// its bytes. "Duplicate" then means the same bytes: a recipient who
// learned a message id and stores something else under it (in any
// stream) is stored beside the sender's envelope, never instead of it,
// and the sender's own publish is never answered "duplicate". Readers
// drop what they cannot open and keep their seen-sets by id, so the
// squatter's message is noise and the real one is delivered.
func dedupKey(id string, data []byte) string {
	h := sha256.Sum256(data)
	return id + "." + base64.RawURLEncoding.EncodeToString(h[:16])
}

// admitWalkIn runs a walk-in's envelope through admission (proof of work
// and the global budget) and the walk-ins' share of the stream.
func (in *ingest) admitWalkIn(m *nats.Msg, mbox routing.Mailbox, subj proto.Subject) *refusal {
	if in.fill.walkInFull(subj.Stream()) {
		return refuse(proto.CodeFull, "the walk-ins' share of %s is full; send it again later", subj.Stream())
	}
	return in.adm.admit(mbox, m.Data, m.Header.Get(proto.HeaderProof))
}

// streamFill follows how full the streams walk-ins publish to are, from
// JetStream's own stream state, refreshed every second: walk-ins are
// refused once a stream holds storage.walkin_share of its max_bytes, so
// the rest stays for the missions of the directory.
type streamFill struct {
	r     *Relay
	limit int64

	mu    sync.Mutex
	bytes map[string]uint64
}

// walkInStreams are the streams walk-ins may publish to.
var walkInStreams = []string{proto.StreamAlerts, proto.StreamShared}

// fillEvery is how often the fill is read.
const fillEvery = time.Second

func newStreamFill(r *Relay) *streamFill {
	return &streamFill{r: r, limit: int64(float64(r.cfg.Storage.MaxBytes) * r.cfg.Storage.WalkInShare), bytes: map[string]uint64{}}
}

func (f *streamFill) run(ctx context.Context) {
	t := f.r.clock.NewTicker(fillEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
			f.refresh(ctx)
		}
	}
}

func (f *streamFill) refresh(ctx context.Context) {
	for _, name := range walkInStreams {
		cctx, cancel := context.WithTimeout(ctx, serviceTimeout)
		st, err := f.r.js.Stream(cctx, name)
		if err == nil {
			var n uint64
			if info, err := st.Info(cctx); err == nil {
				n = info.State.Bytes
				f.mu.Lock()
				f.bytes[name] = n
				f.mu.Unlock()
			}
		}
		cancel()
	}
}

func (f *streamFill) walkInFull(stream string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(f.bytes[stream]) >= f.limit
}

// institutionSubs keeps one ingest subscription per institution of the
// directory, on the relay's main connection.
type institutionSubs struct {
	nc     *nats.Conn
	handle nats.MsgHandler

	mu   sync.RWMutex
	subs map[routing.Mailbox]*nats.Subscription
}

// has reports whether mb's requests are taken by a subscription of its
// own.
func (s *institutionSubs) has(mb routing.Mailbox) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.subs[mb] != nil
}

// institutionQueue is the queue group of the institutions' ingest: with a
// cluster, every node's subscriptions share the load.
const institutionQueue = "beacon-ingest-institutions"

func newInstitutionSubs(nc *nats.Conn, h nats.MsgHandler) *institutionSubs {
	return &institutionSubs{nc: nc, handle: h, subs: map[routing.Mailbox]*nats.Subscription{}}
}

// sync subscribes for every mailbox in want and drops the others.
func (s *institutionSubs) sync(want map[routing.Mailbox]bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for mb, sub := range s.subs {
		if !want[mb] {
			sub.Drain()
			delete(s.subs, mb)
		}
	}
	for mb := range want {
		if s.subs[mb] != nil {
			continue
		}
		sub, err := s.nc.QueueSubscribe(proto.IngestWildcard(mb), institutionQueue, s.handle)
		if err != nil {
			return err
		}
		sub.SetPendingLimits(ingestPendingMsgs, ingestPendingBytes)
		s.subs[mb] = sub
	}
	return s.nc.Flush()
}

func (s *institutionSubs) all() []*nats.Subscription {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*nats.Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		out = append(out, sub)
	}
	return out
}

// idOfDedupKey is the message id a dedup key starts with.
func idOfDedupKey(key string) (routing.ID, error) {
	id, _, _ := strings.Cut(key, ".")
	return routing.ParseID(id)
}
