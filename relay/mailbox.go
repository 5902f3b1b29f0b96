package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// A mailboxTail wakes the long-polls waiting on a mailbox when something
// is stored in it. It is one core subscription per relay node to
// proto.MailboxNotices, however many mailboxes exist, and no consumer: the
// stream leader republishes each message's headers once it has stored
// it. A consumer following the stream (as this tail once was) reads every
// message back as it is written, and nats-server keeps the cache of a
// block read within the last 10 s (its filestore cache expiry) in memory
// instead of dropping it when the block is full: under a burst of
// replies, every block written in the burst stayed in the heap (the
// whole ~330 MiB of 100,000 stored 3 KB replies, BenchmarkMemory).
// A notice is core NATS, at most once: one lost (a stream leader
// change mid-store, a subscription fallen far behind) costs a long-poll
// its early wake, never a message, which its reader's next fetch finds.
type mailboxTail struct {
	sub *nats.Subscription

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{} // stored subject → waiting long-polls
}

func startMailboxTail(r *Relay) (*mailboxTail, error) {
	t := &mailboxTail{waiters: map[string]map[chan struct{}]struct{}{}}
	var err error
	t.sub, err = r.nc.Subscribe(proto.MailboxNotices, func(m *nats.Msg) { t.notify(m.Header.Get(jetstream.SubjectHeader)) })
	if err != nil {
		return nil, fmt.Errorf("relay: mailbox tail: %w", err)
	}
	// The server has the interest before the relay serves a long-poll.
	if err := r.nc.Flush(); err != nil {
		t.sub.Unsubscribe()
		return nil, fmt.Errorf("relay: mailbox tail: %w", err)
	}
	return t, nil
}

func (t *mailboxTail) stop() { t.sub.Unsubscribe() }

// watch registers a long-poll on subject; the channel receives a value
// when something is stored there.
func (t *mailboxTail) watch(subject string) chan struct{} {
	ch := make(chan struct{}, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.waiters[subject]
	if w == nil {
		w = map[chan struct{}]struct{}{}
		t.waiters[subject] = w
	}
	w[ch] = struct{}{}
	return ch
}

func (t *mailboxTail) unwatch(subject string, ch chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.waiters[subject]; w != nil {
		delete(w, ch)
		if len(w) == 0 {
			delete(t.waiters, subject)
		}
	}
}

func (t *mailboxTail) notify(subject string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ch := range t.waiters[subject] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// lagRetries are the delays after a wake-up that found nothing: in a
// cluster, the replica answering a direct get may apply a message a
// moment after the stream leader told the tail.
var lagRetries = []time.Duration{5 * time.Millisecond, 50 * time.Millisecond, 250 * time.Millisecond}

// fetchMailbox reads the messages in p's mailbox after req.After, waiting
// up to wait for the first.
func (s *services) fetchMailbox(p *principal, req proto.FetchRequest, wait time.Duration) ([]fetchedMsg, *refusal) {
	subject := proto.MailboxSubject(p.mbox)
	ctx, cancel := context.WithTimeout(s.base, wait+serviceTimeout)
	defer cancel()
	ch := s.tail.watch(subject)
	defer s.tail.unwatch(subject, ch)
	timer := s.r.clock.NewTimer(wait)
	defer timer.Stop()
	retries := 0
	for {
		msgs, err := s.directGet(ctx, proto.StreamMailbox, directRequest{Seq: req.After + 1, NextFor: subject, Batch: req.Max, MaxBytes: req.MaxBytes})
		if err != nil {
			s.r.log.Warn("fetch: mailbox", "err", err)
			return nil, refuse(proto.CodeUnavailable, "the relay cannot read the mailbox now; try again")
		}
		if len(msgs) > 0 || wait <= 0 {
			out := make([]fetchedMsg, len(msgs))
			for i, m := range msgs {
				out[i] = fetchedMsg{data: m.data, subject: m.subject, settle: proto.MailboxToken(m.seq), seq: m.seq}
			}
			return out, nil
		}
		var lag <-chan time.Time
		if retries > 0 && retries <= len(lagRetries) {
			lag = s.r.clock.After(lagRetries[retries-1])
		}
		select {
		case <-ch:
			retries = 1
		case <-lag:
			retries++
		case <-timer.Chan():
			return nil, nil
		case <-s.base.Done():
			return nil, nil
		}
	}
}

// mailboxCount is how many messages wait in a mailbox.
func (s *services) mailboxCount(ctx context.Context, mbox routing.Mailbox) (uint64, error) {
	st, err := s.r.js.Stream(ctx, proto.StreamMailbox)
	if err != nil {
		return 0, err
	}
	subject := proto.MailboxSubject(mbox)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// checkMailboxTokens refuses the settle of any sequence that holds a
// message of another mailbox: a token names a sequence, and only the
// mailbox's owner may settle what is in it. A sequence that holds nothing
// any more was settled already.
func (s *services) checkMailboxTokens(ctx context.Context, mbox routing.Mailbox, seqs []uint64) *refusal {
	subject := proto.MailboxSubject(mbox)
	for _, seq := range seqs {
		msgs, err := s.directGet(ctx, proto.StreamMailbox, directRequest{Seq: seq})
		if err != nil {
			return refuse(proto.CodeUnavailable, "mailbox: %v", err)
		}
		if len(msgs) > 0 && msgs[0].subject != subject {
			return refuse(proto.CodeForbidden, "a settle token is not for this key's mailbox")
		}
	}
	return nil
}

// deleteFromMailbox deletes settled mailbox messages (checked by
// checkMailboxTokens).
func (s *services) deleteFromMailbox(ctx context.Context, seqs []uint64) *refusal {
	if len(seqs) == 0 {
		return nil
	}
	st, err := s.r.js.Stream(ctx, proto.StreamMailbox)
	if err != nil {
		return refuse(proto.CodeUnavailable, "mailbox: %v", err)
	}
	slices.Sort(seqs)
	for _, seq := range slices.Compact(seqs) {
		if err := st.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNotFound(err) {
			return refuse(proto.CodeUnavailable, "mailbox: %v", err)
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var apiErr *jetstream.APIError
	// 10043: "sequence not found", what deleting a deleted message says.
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound || apiErr.ErrorCode == 10043 || apiErr.Code == 404)
}

// directRequest is JetStream's direct get request (JSApiMsgGetRequest).
type directRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	Batch     int        `json:"batch,omitempty"`
	MaxBytes  int        `json:"max_bytes,omitempty"`
}

// directMsg is one message of a direct get.
type directMsg struct {
	data    []byte
	subject string
	seq     uint64
}

// directGet reads messages with no consumer: one message by sequence, or
// (with NextFor and Batch) up to Batch messages on a subject from Seq on,
// stopping once MaxBytes are out. It needs AllowDirect on the stream.
func (s *services) directGet(ctx context.Context, stream string, req directRequest) ([]directMsg, error) {
	body, _ := json.Marshal(req)
	subject := "$JS.API.DIRECT.GET." + stream
	if req.Batch <= 1 {
		// One answer: the connection's shared reply subscription.
		m, err := s.r.nc.RequestWithContext(ctx, subject, body)
		if err != nil {
			return nil, err
		}
		dm, done, err := parseDirect(m)
		if err != nil || done {
			return nil, err
		}
		return []directMsg{dm}, nil
	}
	// A batch: the answers come through the services' one batch reply
	// subscription, into a channel with room for the batch, its end
	// marker and one message too many (which the loop refuses).
	inbox, ch, end := s.batches.open(req.Batch + 2)
	defer end()
	if err := s.r.nc.PublishRequest(subject, inbox, body); err != nil {
		return nil, err
	}
	var out []directMsg
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		dm, done, err := parseDirect(m)
		if err != nil {
			return nil, err
		}
		if done {
			return out, nil
		}
		out = append(out, dm)
		if len(out) > req.Batch {
			return nil, fmt.Errorf("direct get: more than the %d messages asked for", req.Batch)
		}
	}
}

// parseDirect reads one answer of a direct get: a message, or the end
// (nothing there, or the end of a batch).
func parseDirect(m *nats.Msg) (directMsg, bool, error) {
	switch status := m.Header.Get("Status"); status {
	case "":
	case "404", "204":
		return directMsg{}, true, nil
	default:
		return directMsg{}, false, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return directMsg{}, false, fmt.Errorf("direct get: bad sequence %q", m.Header.Get(jetstream.SequenceHeader))
	}
	return directMsg{data: m.Data, subject: m.Header.Get(jetstream.SubjectHeader), seq: seq}, false, nil
}

// batchReplies routes the answers of batch direct gets to their readers
// through one subscription of the relay's connection. A subscription per
// read counts against the connection's max_subscriptions like any
// client's: with a few hundred reads at once the server refused the
// subscriptions past the limit, and those reads waited out their timeout
// and were refused as unavailable (BenchmarkMemory keeps 512 reads in
// flight).
type batchReplies struct {
	prefix string // a read's answers come to prefix + its token
	sub    *nats.Subscription

	mu      sync.Mutex
	next    uint64
	readers map[string]chan *nats.Msg
}

func startBatchReplies(nc *nats.Conn) (*batchReplies, error) {
	b := &batchReplies{prefix: nc.NewInbox() + ".", readers: map[string]chan *nats.Msg{}}
	var err error
	if b.sub, err = nc.Subscribe(b.prefix+"*", b.route); err != nil {
		return nil, fmt.Errorf("relay: batch replies: %w", err)
	}
	return b, nil
}

func (b *batchReplies) stop() { b.sub.Unsubscribe() }

// open registers a read whose answers fit in room messages: the subject
// to ask them to, the channel they arrive on, and the func that ends the
// read.
func (b *batchReplies) open(room int) (string, <-chan *nats.Msg, func()) {
	ch := make(chan *nats.Msg, room)
	b.mu.Lock()
	b.next++
	token := strconv.FormatUint(b.next, 36)
	b.readers[token] = ch
	b.mu.Unlock()
	return b.prefix + token, ch, func() {
		b.mu.Lock()
		delete(b.readers, token)
		b.mu.Unlock()
	}
}

func (b *batchReplies) route(m *nats.Msg) {
	b.mu.Lock()
	ch := b.readers[strings.TrimPrefix(m.Subject, b.prefix)]
	b.mu.Unlock()
	select {
	case ch <- m: // a nil channel (a read that ended) takes nothing
	default: // more than the read has room for, which it refuses already
	}
}
