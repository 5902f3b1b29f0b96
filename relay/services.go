package relay

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// Services are the reads a client makes through the relay: fetching from
// its mailbox (or, for a mission, its countries' alerts), acknowledging,
// counting what is pending, reading broadcasts and the directory. The relay
// owns every consumer and does every pull with its own connection, so no
// client ever names a JetStream reply subject, and each read is scoped by
// the mailbox in the request's subject, which only its owner may publish on.
type services struct {
	r *Relay

	consMu sync.Mutex
	cons   map[string]jetstream.Consumer

	// Long-polling fetches each hold a goroutine; these bound them, per
	// mailbox and in all.
	slots     chan struct{}
	perMbMu   sync.Mutex
	perMb     map[string]int
	inflight  sync.WaitGroup
	stopping  chan struct{}
	stopOnce  sync.Once
	fetchWait func(ms int) time.Duration
}

const (
	// maxFetchesInFlight bounds concurrent long-polls on one relay.
	maxFetchesInFlight = 4096
	// maxFetchesPerMailbox bounds them per connection key, so one key
	// cannot take every slot.
	maxFetchesPerMailbox = 4
	// consumerAckWait is how long a fetched message waits for its ack
	// before the relay delivers it again.
	consumerAckWait = 30 * time.Second
	// consumerMaxAckPending bounds what one reader may hold unacknowledged.
	consumerMaxAckPending = 4096
	// maxCachedConsumers bounds the relay's memory of consumer handles.
	maxCachedConsumers = 16384
)

func newServices(r *Relay) *services {
	return &services{r: r, cons: map[string]jetstream.Consumer{}, slots: make(chan struct{}, maxFetchesInFlight),
		perMb: map[string]int{}, stopping: make(chan struct{}),
		fetchWait: func(ms int) time.Duration { return time.Duration(ms) * time.Millisecond }}
}

// stop ends the long-polls (they answer with what they have) and waits.
func (s *services) stop(ctx context.Context) {
	s.stopOnce.Do(func() { close(s.stopping) })
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// source is a consumer a principal may read.
type source struct {
	stream, name, filter string
}

// sourceFor maps a fetch or pending target to the consumer the principal
// may read, or refuses.
func sourceFor(p *principal, what string) (source, *refusal) {
	if what == "mbox" {
		return source{proto.StreamMailbox, proto.MailboxConsumer(p.mbox), proto.MailboxSubject(p.mbox)}, nil
	}
	if cc, ok := strings.CutPrefix(what, "alerts."); ok {
		if p.role != keys.RoleMission {
			return source{}, refuse(proto.CodeForbidden, "only missions read alerts")
		}
		if !contains(p.countries, cc) {
			return source{}, refuse(proto.CodeForbidden, "this mission does not cover that country")
		}
		return source{proto.StreamAlerts, proto.AlertConsumer(p.id, cc), proto.AlertFilter(cc)}, nil
	}
	return source{}, refuse(proto.CodeBadTarget, "no such source")
}

// consumer returns the relay's durable consumer for src, creating it once.
func (s *services) consumer(ctx context.Context, src source) (jetstream.Consumer, error) {
	key := src.stream + "/" + src.name
	s.consMu.Lock()
	c, ok := s.cons[key]
	s.consMu.Unlock()
	if ok {
		return c, nil
	}
	c, err := s.r.js.CreateOrUpdateConsumer(ctx, src.stream, jetstream.ConsumerConfig{
		Durable: src.name, FilterSubject: src.filter, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: consumerAckWait, MaxAckPending: consumerMaxAckPending,
		// A reader gone for longer than the retention has nothing left
		// to read; its consumer goes too, so one-time walk-in keys do
		// not pile up consumers.
		InactiveThreshold: s.r.cfg.Storage.Retention,
	})
	if err != nil {
		return nil, err
	}
	s.consMu.Lock()
	if len(s.cons) >= maxCachedConsumers {
		s.cons = map[string]jetstream.Consumer{} // looked up again on next use
	}
	s.cons[key] = c
	s.consMu.Unlock()
	return c, nil
}

// handle serves one service request; target is what follows
// bcn.in.<mailbox>. ("svc.fetch.mbox", ...). The reply subject has been
// checked to be the sender's inbox.
func (s *services) handle(m *nats.Msg, p *principal, target string) *refusal {
	parts := strings.SplitN(strings.TrimPrefix(target, "svc."), ".", 2)
	arg := ""
	if len(parts) == 2 {
		arg = parts[1]
	}
	switch parts[0] {
	case "fetch":
		return s.fetch(m, p, arg)
	case "ack":
		return s.ack(m, p)
	case "pending":
		return s.pending(m, p, arg)
	case "news":
		return s.news(m, arg)
	case "directory":
		return s.directory(m)
	}
	return refuse(proto.CodeBadTarget, "no such service")
}

func (s *services) replyJSON(m *nats.Msg, v any) {
	b, _ := json.Marshal(v)
	s.r.nc.Publish(m.Reply, b)
}

// acquire takes a long-poll slot for mbox.
func (s *services) acquire(mbox string) bool {
	s.perMbMu.Lock()
	if s.perMb[mbox] >= maxFetchesPerMailbox {
		s.perMbMu.Unlock()
		return false
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.perMbMu.Unlock()
		return false
	}
	s.perMb[mbox]++
	s.perMbMu.Unlock()
	return true
}

func (s *services) release(mbox string) {
	s.perMbMu.Lock()
	if s.perMb[mbox]--; s.perMb[mbox] <= 0 {
		delete(s.perMb, mbox)
	}
	s.perMbMu.Unlock()
	<-s.slots
}

func (s *services) fetch(m *nats.Msg, p *principal, what string) *refusal {
	var req proto.FetchRequest
	if len(m.Data) > 0 {
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return refuse(proto.CodeBadRequest, "fetch request is not JSON")
		}
	}
	if req.Max <= 0 || req.Max > proto.MaxFetch || req.WaitMS < 0 || req.WaitMS > proto.MaxFetchWait {
		return refuse(proto.CodeBadRequest, "max must be 1–%d and wait_ms 0–%d", proto.MaxFetch, proto.MaxFetchWait)
	}
	src, ref := sourceFor(p, what)
	if ref != nil {
		return ref
	}
	if !s.acquire(p.mbox) {
		return refuse(proto.CodeRateLimited, "too many fetches in flight; wait for one to finish")
	}
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		// The slot is free before the end marker goes out, so a reader
		// that re-polls at once is not refused.
		n := 0
		defer func() { s.release(p.mbox); s.end(m, n) }()
		wait := s.fetchWait(req.WaitMS)
		ctx, cancel := context.WithTimeout(context.Background(), wait+10*time.Second)
		defer cancel()
		cons, err := s.consumer(ctx, src)
		if err != nil {
			s.r.log.Warn("fetch: consumer", "err", err)
			return
		}
		var msgs []jetstream.Msg
		if wait > 0 {
			next, err := s.next(cons, wait)
			if err != nil {
				return
			}
			msgs = append(msgs, next)
		}
		if len(msgs) < req.Max {
			if batch, err := cons.FetchNoWait(req.Max - len(msgs)); err == nil {
				for msg := range batch.Messages() {
					msgs = append(msgs, msg)
				}
			}
		}
		for _, msg := range msgs {
			out := nats.NewMsg(m.Reply)
			out.Data = msg.Data()
			out.Header.Set(proto.HeaderAck, msg.Reply())
			out.Header.Set(proto.HeaderSubject, msg.Subject())
			s.r.nc.PublishMsg(out)
		}
		n = len(msgs)
	}()
	return nil
}

// next waits up to wait for one message, or until the relay stops.
func (s *services) next(cons jetstream.Consumer, wait time.Duration) (jetstream.Msg, error) {
	type result struct {
		m   jetstream.Msg
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := cons.Next(jetstream.FetchMaxWait(wait))
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-s.stopping:
		// The pull finishes on its own within wait; its message, if any,
		// is redelivered after AckWait.
		return nil, errors.New("relay stopping")
	}
}

func (s *services) end(m *nats.Msg, n int) {
	out := nats.NewMsg(m.Reply)
	out.Header.Set(proto.HeaderEnd, strconv.Itoa(n))
	s.r.nc.PublishMsg(out)
}

// ack acknowledges fetched messages. Each token must be a JetStream ack
// subject of a consumer this principal reads.
func (s *services) ack(m *nats.Msg, p *principal) *refusal {
	lines := strings.Split(strings.TrimSpace(string(m.Data)), "\n")
	if len(lines) == 0 || len(lines) > proto.MaxAcks || lines[0] == "" {
		return refuse(proto.CodeBadRequest, "1–%d ack tokens, one per line", proto.MaxAcks)
	}
	for _, tok := range lines {
		if !mayAck(p, tok) {
			return refuse(proto.CodeForbidden, "an ack token is not for a consumer this key reads")
		}
	}
	for _, tok := range lines {
		if err := s.r.nc.Publish(tok, []byte("+ACK")); err != nil {
			return refuse(proto.CodeUnavailable, "ack: %v", err)
		}
	}
	// Acks and later pulls go out on the relay's one connection in order,
	// so a fetch after this reply sees them applied.
	s.replyJSON(m, &proto.SvcReply{Count: uint64(len(lines))})
	return nil
}

// mayAck reports whether tok is the ack subject of a message from one of
// p's consumers. Ack subjects are $JS.ACK.<stream>.<consumer>.<7 numbers>
// or, with a domain and account hash, $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<...>.
func mayAck(p *principal, tok string) bool {
	for _, c := range []byte(tok) {
		if c <= ' ' || c == 0x7f || c == '*' || c == '>' {
			return false
		}
	}
	t := strings.Split(tok, ".")
	if (len(t) != 9 && len(t) < 11) || len(t) > 12 || t[0] != "$JS" || t[1] != "ACK" {
		return false
	}
	stream, cons, nums := t[2], t[3], t[4:]
	if len(t) >= 11 {
		stream, cons, nums = t[4], t[5], t[6:]
	}
	for _, x := range nums {
		if _, err := strconv.ParseUint(x, 10, 64); err != nil {
			return false
		}
	}
	if stream == proto.StreamMailbox && cons == proto.MailboxConsumer(p.mbox) {
		return true
	}
	if stream == proto.StreamAlerts && p.role == keys.RoleMission {
		for _, cc := range p.countries {
			if cons == proto.AlertConsumer(p.id, cc) {
				return true
			}
		}
	}
	return false
}

func (s *services) pending(m *nats.Msg, p *principal, what string) *refusal {
	src, ref := sourceFor(p, what)
	if ref != nil {
		return ref
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := s.consumer(ctx, src)
	if err != nil {
		return refuse(proto.CodeUnavailable, "consumer: %v", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return refuse(proto.CodeUnavailable, "consumer: %v", err)
	}
	s.replyJSON(m, &proto.SvcReply{Count: info.NumPending + uint64(info.NumAckPending)})
	return nil
}

// news streams the broadcasts for a country (or all), read message by
// message with the stream's next-by-subject lookup, so a request leaves no
// consumer behind.
func (s *services) news(m *nats.Msg, cc string) *refusal {
	filter := "bcn.bcast.>"
	if cc != "all" {
		if !validCountryToken(cc) {
			return refuse(proto.CodeBadTarget, "bad country")
		}
		filter = proto.BroadcastSubject(cc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := s.r.js.Stream(ctx, proto.StreamBroadcasts)
	if err != nil {
		return refuse(proto.CodeUnavailable, "broadcasts: %v", err)
	}
	n := 0
	for seq := uint64(1); n < proto.MaxNews; n++ {
		msg, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if err != nil {
			break // ErrMsgNotFound: no more
		}
		out := nats.NewMsg(m.Reply)
		out.Data = msg.Data
		out.Header.Set(proto.HeaderSubject, msg.Subject)
		s.r.nc.PublishMsg(out)
		seq = msg.Sequence + 1
	}
	s.end(m, n)
	return nil
}

func validCountryToken(cc string) bool {
	return len(cc) == 2 && cc[0] >= 'a' && cc[0] <= 'z' && cc[1] >= 'a' && cc[1] <= 'z'
}

// directory answers with one chunk of the signed directory the relay
// loaded. Clients verify it against the root they pinned, so a
// compromised relay can withhold the directory but not forge one.
func (s *services) directory(m *nats.Msg) *refusal {
	d := s.r.auth.directory()
	if d == nil {
		return refuse(proto.CodeUnavailable, "this relay serves no directory")
	}
	i := 0
	if len(m.Data) > 0 {
		n, err := strconv.Atoi(string(m.Data))
		if err != nil || n < 0 {
			return refuse(proto.CodeBadRequest, "bad chunk index")
		}
		i = n
	}
	chunks := (len(d.Raw) + proto.DirectoryChunkSize - 1) / proto.DirectoryChunkSize
	if i >= chunks {
		return refuse(proto.CodeBadRequest, "no such chunk")
	}
	out := nats.NewMsg(m.Reply)
	out.Header.Set(proto.HeaderDirChunks, strconv.Itoa(chunks))
	out.Header.Set(proto.HeaderDirSerial, strconv.FormatUint(d.Serial, 10))
	out.Header.Set(proto.HeaderDirSize, strconv.Itoa(len(d.Raw)))
	out.Data = d.Raw[i*proto.DirectoryChunkSize : min(len(d.Raw), (i+1)*proto.DirectoryChunkSize)]
	s.r.nc.PublishMsg(out)
	return nil
}
