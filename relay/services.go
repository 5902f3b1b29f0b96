package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// Services are the reads a client makes through the relay: fetching from
// its mailbox (or, for a mission, its countries' alerts), settling what it
// kept, counting what is pending, reading broadcasts and the directory.
// The relay does every read with its own connection, so no client ever
// names a JetStream reply subject, and each read is scoped by the mailbox
// in the request's subject, which only its owner may publish on.
//
// A mission's alerts are read through one durable consumer per mission
// and country: a handful per mission, for as long as the mission exists.
// A mailbox is read with no consumer at all (JetStream direct get by
// subject, from the reader's own cursor), so the cost of mailbox reads
// does not grow with the number of mailboxes that ever existed; a
// settled mailbox message is deleted, so the relay keeps a reply only
// until its owner has it. A long-poll on a mailbox is woken by the
// relay's one subscription to the MAILBOX stream's notices ([mailboxTail]).
//
// These are not nats.go/micro services: micro answers discovery on $SRV
// subjects that no client may reach, its handlers answer one request with
// one reply while a fetch streams a batch, and the statistics it keeps
// are exported as Prometheus metrics here instead.
type services struct {
	r       *Relay
	tail    *mailboxTail
	batches *batchReplies

	consMu sync.Mutex
	cons   map[string]consumerHandle

	// Long-polling fetches each hold a goroutine; these bound them, per
	// mailbox and in all.
	slots    chan struct{}
	perMbMu  sync.Mutex
	perMb    map[routing.Mailbox]int
	inflight sync.WaitGroup
	// base is cancelled when the relay stops: every wait of a service
	// ends with it.
	base     context.Context
	stopping context.CancelFunc
}

const (
	// maxFetchesInFlight bounds concurrent long-polls on one relay.
	maxFetchesInFlight = 4096
	// maxFetchesPerMailbox bounds them per connection key, so one key
	// cannot take every slot.
	maxFetchesPerMailbox = 4
	// consumerMaxAckPending bounds what one mission may hold unsettled
	// per country.
	consumerMaxAckPending = 4096
	// maxCachedConsumers bounds the relay's memory of consumer handles.
	maxCachedConsumers = 16384
	// serviceTimeout bounds one JetStream call made for a service.
	serviceTimeout = 10 * time.Second
)

func newServices(r *Relay) *services {
	base, stop := context.WithCancel(context.Background())
	return &services{r: r, cons: map[string]consumerHandle{}, slots: make(chan struct{}, maxFetchesInFlight),
		perMb: map[routing.Mailbox]int{}, base: base, stopping: stop}
}

// start subscribes to the answers of batch reads and begins the mailbox
// tail.
func (s *services) start(_ context.Context) error {
	var err error
	if s.batches, err = startBatchReplies(s.r.nc); err != nil {
		return err
	}
	if s.tail, err = startMailboxTail(s.r); err != nil {
		s.batches.stop()
		return err
	}
	return nil
}

// stop ends the long-polls (they answer with what they have), waits for
// them, and stops the tail and the batch replies.
func (s *services) stop(ctx context.Context) error {
	s.stopping()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("relay: long-polls still running: %w", ctx.Err())
	}
	if s.tail != nil {
		s.tail.stop()
	}
	if s.batches != nil {
		s.batches.stop()
	}
	return err
}

// handle serves one service request. The reply subject has been checked
// to be the sender's reply prefix.
func (s *services) handle(m *nats.Msg, p *principal, svc proto.Service) *refusal {
	switch svc.Name {
	case proto.SvcFetch:
		return s.fetch(m, p, svc.Source)
	case proto.SvcSettle:
		return s.settle(m, p)
	case proto.SvcPending:
		return s.pending(m, p, svc.Source)
	case proto.SvcNews:
		return s.news(m, svc.Country)
	case proto.SvcDirectory:
		return s.directory(m)
	case proto.SvcReport:
		return s.report(m, p)
	case proto.SvcRollUp:
		return s.rollUp(m, p, svc.ID)
	case proto.SvcJunk:
		return s.junk(m, p)
	case proto.SvcInspect, proto.SvcPurge:
		return s.purge(m, p, svc.Name == proto.SvcPurge)
	}
	return refuse(proto.CodeBadTarget, "no such service")
}

func (s *services) replyJSON(m *nats.Msg, v any) {
	b, _ := json.Marshal(v)
	s.r.nc.Publish(m.Reply, b)
}

// refuseLater answers a request whose handling went on in a goroutine.
func (s *services) refuseLater(m *nats.Msg, ref *refusal) {
	s.r.ingest.refuse(m, ref)
}

// acquire takes a long-poll slot for mbox.
func (s *services) acquire(mbox routing.Mailbox) bool { return s.acquireN(mbox, maxFetchesPerMailbox) }

// acquireN takes a long-poll slot for mbox, which may hold limit.
func (s *services) acquireN(mbox routing.Mailbox, limit int) bool {
	s.perMbMu.Lock()
	defer s.perMbMu.Unlock()
	if s.perMb[mbox] >= limit {
		return false
	}
	select {
	case s.slots <- struct{}{}:
	default:
		return false
	}
	s.perMb[mbox]++
	return true
}

func (s *services) release(mbox routing.Mailbox) {
	s.perMbMu.Lock()
	if s.perMb[mbox]--; s.perMb[mbox] <= 0 {
		delete(s.perMb, mbox)
	}
	s.perMbMu.Unlock()
	<-s.slots
}

// parseFetch reads and bounds a fetch request.
func parseFetch(data []byte) (proto.FetchRequest, *refusal) {
	var req proto.FetchRequest
	if len(data) > 0 {
		if err := json.Unmarshal(data, &req); err != nil {
			return req, refuse(proto.CodeBadRequest, "fetch request is not JSON")
		}
	}
	if req.Max <= 0 || req.Max > proto.MaxFetch || req.WaitMS < 0 || req.WaitMS > proto.MaxFetchWait ||
		req.MaxBytes < 0 || req.MaxBytes > proto.MaxFetchBytes {
		return req, refuse(proto.CodeBadRequest, "max must be 1–%d, max_bytes 0–%d and wait_ms 0–%d",
			proto.MaxFetch, proto.MaxFetchBytes, proto.MaxFetchWait)
	}
	if req.MaxBytes == 0 {
		req.MaxBytes = proto.MaxFetchBytes
	}
	return req, nil
}

// fetch serves a batch from src in a goroutine of its own: a long-poll
// must not hold the ingest.
func (s *services) fetch(m *nats.Msg, p *principal, src proto.Source) *refusal {
	req, ref := parseFetch(m.Data)
	if ref != nil {
		return ref
	}
	var cons consumerHandle
	switch {
	case src.Alerts:
		if ref := mayReadAlerts(p, src.Country); ref != nil {
			return ref
		}
	case src.Consumed():
		ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
		defer cancel()
		var ref *refusal
		if cons, ref = s.bridgeConsumer(ctx, p, src); ref != nil {
			return ref
		}
	}
	if !s.acquireN(p.mbox, s.fetchLimit(p)) {
		return refuse(proto.CodeRateLimited, "too many fetches in flight; wait for one to finish")
	}
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		wait := time.Duration(req.WaitMS) * time.Millisecond
		var batch []fetchedMsg
		var ref *refusal
		switch {
		case src.Alerts:
			batch, ref = s.fetchAlerts(p, src.Country, req, wait)
		case cons != nil:
			batch, ref = s.fetchFrom(cons, req, wait)
		default:
			batch, ref = s.fetchMailbox(p, req, wait)
		}
		// The slot is free before the answer goes out, so a reader that
		// polls again at once is not refused.
		s.release(p.mbox)
		if ref != nil {
			// Never an empty batch for a failure: the reader must know to
			// try again, not conclude that nothing waits.
			s.refuseLater(m, ref)
			return
		}
		s.send(m, batch)
	}()
	return nil
}

// A fetchedMsg is one message of a batch on its way to the reader.
type fetchedMsg struct {
	data    []byte
	subject string
	settle  string
	seq     uint64 // mailbox messages: for the reader's cursor
}

// send streams a batch and its end marker to the reader.
func (s *services) send(m *nats.Msg, batch []fetchedMsg) {
	for _, f := range batch {
		out := nats.NewMsg(m.Reply)
		out.Data = f.data
		out.Header.Set(proto.HeaderSubject, f.subject)
		if f.settle != "" {
			out.Header.Set(proto.HeaderSettle, f.settle)
		}
		if f.seq != 0 {
			out.Header.Set(proto.HeaderSeq, strconv.FormatUint(f.seq, 10))
		}
		s.r.nc.PublishMsg(out)
	}
	end := nats.NewMsg(m.Reply)
	end.Header.Set(proto.HeaderEnd, strconv.Itoa(len(batch)))
	s.r.nc.PublishMsg(end)
}

func mayReadAlerts(p *principal, cc string) *refusal {
	if p.role != keys.RoleMission {
		return refuse(proto.CodeForbidden, "only missions read alerts")
	}
	if !slices.Contains(p.countries, cc) {
		return refuse(proto.CodeForbidden, "this mission does not cover that country")
	}
	return nil
}

// settle takes the tokens of kept messages: a mailbox token deletes the
// message (if it is in this connection's mailbox), a consumer token
// acknowledges it (if the consumer is one this principal reads).
func (s *services) settle(m *nats.Msg, p *principal) *refusal {
	lines := strings.Split(strings.TrimSpace(string(m.Data)), "\n")
	if len(lines) == 0 || len(lines) > proto.MaxSettle || lines[0] == "" {
		return refuse(proto.CodeBadRequest, "1–%d settle tokens, one per line", proto.MaxSettle)
	}
	var seqs []uint64
	var acks []string
	for _, tok := range lines {
		if seq, ok := proto.ParseMailboxToken(tok); ok {
			seqs = append(seqs, seq)
		} else if mayAck(p, tok) {
			acks = append(acks, tok)
		} else {
			return refuse(proto.CodeForbidden, "a settle token is not for something this key reads")
		}
	}
	// Every mailbox token is checked before anything is settled, so a
	// request with one bad token settles nothing.
	ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
	defer cancel()
	if ref := s.checkMailboxTokens(ctx, p.mbox, seqs); ref != nil {
		return ref
	}
	if ref := s.ack(ctx, acks); ref != nil {
		return ref
	}
	if ref := s.deleteFromMailbox(ctx, seqs); ref != nil {
		return ref
	}
	s.replyJSON(m, &proto.SvcReply{Count: uint64(len(lines))})
	return nil
}

// ack acknowledges consumer messages by their ack subjects and waits, up
// to ackConfirmWait, until JetStream confirmed each (as nats.go's AckSync
// does, for many at once): JetStream applies acks after taking them, so
// without the wait a count of what is pending, read right after a
// settle, could still include what was settled. In a cluster the
// confirmation comes once the ack is replicated; acking a message again
// is confirmed too.
//
// JetStream confirms nothing for a consumer that is gone or has no
// leader (it answers "no responders") or for a token past what the
// consumer delivered (it stays silent). Such a settle is answered as
// before confirmations existed, once the wait is over: a message whose
// ack did not take is offered again after the redelivery wait, and its
// reader's seen-set drops it.
func (s *services) ack(ctx context.Context, tokens []string) *refusal {
	tokens = slices.Compact(slices.Sorted(slices.Values(tokens)))
	if len(tokens) == 0 {
		return nil
	}
	reply, answers, done := s.batches.open(len(tokens))
	defer done()
	for _, tok := range tokens {
		if err := s.r.nc.PublishRequest(tok, reply, []byte("+ACK")); err != nil {
			return refuse(proto.CodeUnavailable, "settle: %v", err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, ackConfirmWait)
	defer cancel()
	unconfirmed := 0
	for range tokens {
		select {
		case m := <-answers:
			if m.Header.Get("Status") != "" {
				unconfirmed++
			}
		case <-wctx.Done():
			s.r.log.Debug("settle: acks not confirmed in time", "acks", len(tokens))
			return nil
		case <-s.base.Done(): // the relay stops
			return nil
		}
	}
	if unconfirmed > 0 {
		s.r.log.Debug("settle: acks not confirmed", "acks", unconfirmed)
	}
	return nil
}

// ackConfirmWait bounds how long a settle waits for JetStream to confirm
// its acks. A confirmation takes well under a millisecond on a relay of
// its own and a replication round trip in a cluster; the wait holds the
// settling institution's ingest subscription, so it is short.
const ackConfirmWait = 2 * time.Second

func (s *services) pending(m *nats.Msg, p *principal, src proto.Source) *refusal {
	ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
	defer cancel()
	var n uint64
	if src.Consumed() {
		var cons consumerHandle
		if src.Alerts {
			if ref := mayReadAlerts(p, src.Country); ref != nil {
				return ref
			}
			var err error
			if cons, err = s.alertConsumer(ctx, p, src.Country); err != nil {
				return refuse(proto.CodeUnavailable, "consumer: %v", err)
			}
		} else {
			var ref *refusal
			if cons, ref = s.bridgeConsumer(ctx, p, src); ref != nil {
				return ref
			}
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return refuse(proto.CodeUnavailable, "consumer: %v", err)
		}
		n = info.NumPending + uint64(info.NumAckPending)
	} else {
		c, err := s.mailboxCount(ctx, p.mbox)
		if err != nil {
			return refuse(proto.CodeUnavailable, "mailbox: %v", err)
		}
		n = c
	}
	s.replyJSON(m, &proto.SvcReply{Count: n})
	return nil
}

// news streams the broadcasts for a country (or all) with one direct get,
// so a request leaves no consumer behind.
func (s *services) news(m *nats.Msg, cc string) *refusal {
	req := proto.FetchRequest{Max: proto.MaxNews, MaxBytes: proto.MaxFetchBytes}
	if len(m.Data) > 0 {
		var ref *refusal
		if req, ref = parseFetch(m.Data); ref != nil {
			return ref
		}
		req.Max = min(req.Max, proto.MaxNews)
	}
	filter := proto.BroadcastFilter
	if cc != "" {
		filter = proto.BroadcastSubject(cc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
	defer cancel()
	msgs, err := s.directGet(ctx, proto.StreamBroadcasts, directRequest{Seq: 1, NextFor: filter, Batch: req.Max, MaxBytes: req.MaxBytes})
	if err != nil {
		return refuse(proto.CodeUnavailable, "broadcasts: %v", err)
	}
	batch := make([]fetchedMsg, len(msgs))
	for i, dm := range msgs {
		batch[i] = fetchedMsg{data: dm.data, subject: dm.subject}
	}
	s.send(m, batch)
	return nil
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
