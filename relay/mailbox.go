package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// A mailboxTail follows the MAILBOX stream with one ordered consumer
// (headers only, new messages only) and wakes the long-polls waiting on a
// mailbox when something is stored in it. It is the only consumer mailbox
// reads need, however many mailboxes exist: one per relay node.
type mailboxTail struct {
	cc jetstream.ConsumeContext

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{} // stored subject → waiting long-polls
}

func startMailboxTail(ctx context.Context, r *Relay) (*mailboxTail, error) {
	t := &mailboxTail{waiters: map[string]map[chan struct{}]struct{}{}}
	cons, err := r.js.OrderedConsumer(ctx, proto.StreamMailbox, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{proto.SubjectMailbox},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		HeadersOnly:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: mailbox tail: %w", err)
	}
	t.cc, err = cons.Consume(func(m jetstream.Msg) { t.notify(m.Subject()) })
	if err != nil {
		return nil, fmt.Errorf("relay: mailbox tail: %w", err)
	}
	return t, nil
}

func (t *mailboxTail) stop() { t.cc.Stop() }

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
	// A batch: a subscription of its own, with room for exactly the
	// batch and its end marker (a default subscription's 64k-slot channel
	// per read would cost more than the read).
	inbox := s.r.nc.NewRespInbox()
	ch := make(chan *nats.Msg, req.Batch+2)
	sub, err := s.r.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
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
