package relay

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// consumerHandle is the part of a JetStream consumer the services use.
type consumerHandle = jetstream.Consumer

// alertConsumer returns mission p's durable consumer of country cc's
// alerts, creating it once.
func (s *services) alertConsumer(ctx context.Context, p *principal, cc string) (consumerHandle, error) {
	name := proto.AlertConsumer(p.id, cc)
	s.consMu.Lock()
	c, ok := s.cons[name]
	s.consMu.Unlock()
	if ok {
		return c, nil
	}
	c, err := s.r.js.CreateOrUpdateConsumer(ctx, proto.StreamAlerts, jetstream.ConsumerConfig{
		Durable: name, FilterSubject: proto.AlertFilter(cc), AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: s.r.cfg.Storage.RedeliverAfter,
		MaxAckPending: consumerMaxAckPending,
		// A mission gone for longer than the retention has nothing left
		// to read; its consumer goes too.
		InactiveThreshold: s.r.cfg.Storage.Retention,
	})
	if err != nil {
		return nil, err
	}
	s.consMu.Lock()
	if len(s.cons) >= maxCachedConsumers {
		s.cons = map[string]consumerHandle{} // looked up again on next use
	}
	s.cons[name] = c
	s.consMu.Unlock()
	return c, nil
}

// fetchAlerts reads a batch of country cc's alerts for mission p: it waits
// up to wait for the first (JetStream's own pull expiry does the waiting),
// then takes what else is there, up to req's count and bytes. What does
// not fit the bytes goes back at once (a NAK), not after the redelivery
// wait.
func (s *services) fetchAlerts(p *principal, cc string, req proto.FetchRequest, wait time.Duration) ([]fetchedMsg, *refusal) {
	ctx, cancel := context.WithTimeout(context.Background(), wait+serviceTimeout)
	defer cancel()
	cons, err := s.alertConsumer(ctx, p, cc)
	if err != nil {
		s.r.log.Warn("fetch: consumer", "err", err)
		return nil, refuse(proto.CodeUnavailable, "the relay cannot read alerts now; try again")
	}
	return s.fetchFrom(cons, req, wait)
}

// fetchFrom reads a batch from a durable consumer: it waits up to wait
// for the first message, then takes what else is there, up to req's count
// and bytes.
func (s *services) fetchFrom(cons consumerHandle, req proto.FetchRequest, wait time.Duration) ([]fetchedMsg, *refusal) {
	var msgs []jetstream.Msg
	if wait > 0 {
		// JetStream's own pull expiry does the waiting; the relay's stop
		// ends it early (its message, if any, is offered again after the
		// redelivery wait).
		wctx, cancel := context.WithTimeout(s.base, wait)
		next, err := cons.Next(jetstream.FetchContext(wctx))
		cancel()
		switch {
		case s.base.Err() != nil:
			return nil, nil
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoMessages):
			return nil, nil
		case err != nil:
			return nil, refuse(proto.CodeUnavailable, "the relay cannot read alerts now; try again")
		}
		msgs = append(msgs, next)
	}
	if len(msgs) < req.Max {
		batch, err := cons.FetchNoWait(req.Max - len(msgs))
		if err != nil {
			return nil, refuse(proto.CodeUnavailable, "the relay cannot read alerts now; try again")
		}
		for msg := range batch.Messages() {
			msgs = append(msgs, msg)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && len(msgs) == 0 {
			return nil, refuse(proto.CodeUnavailable, "the relay cannot read alerts now; try again")
		}
	}
	out := make([]fetchedMsg, 0, len(msgs))
	size := 0
	for _, msg := range msgs {
		if len(out) > 0 && size+len(msg.Data()) > req.MaxBytes {
			msg.Nak()
			continue
		}
		size += len(msg.Data())
		out = append(out, fetchedMsg{data: msg.Data(), subject: msg.Subject(), settle: msg.Reply()})
	}
	return out, nil
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
	if stream == proto.StreamAlerts && p.role == keys.RoleMission {
		for _, cc := range p.countries {
			if cons == proto.AlertConsumer(p.id, cc) {
				return true
			}
		}
	}
	return mayAckBridge(p, stream, cons)
}
