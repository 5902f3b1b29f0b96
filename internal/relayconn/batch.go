package relayconn

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// An Outgoing is one message of a [Conn.PublishBatch].
type Outgoing struct {
	Target string // ingest target
	Data   []byte
	Header nats.Header // optional; the relay reads only the headers it documents
}

// MaxBatch bounds one PublishBatch: the replies it waits for are
// buffered by one subscription, a few hundred bytes each. Four times a
// fetch: a bridge sends two receipts per envelope of a batch.
const MaxBatch = 4 * proto.MaxFetch

// PublishBatch publishes every message to its ingest target at once and
// waits for all the relay's replies: where each was stored, or why it was
// refused (*proto.Error), in the order given. It is [Conn.Publish] for many
// messages, at the cost of one round trip rather than one each. A message
// whose reply has not come when ctx ends fails with ErrNotConnected: it
// may or may not have been stored, and sending it again is safe where the
// relay deduplicates (every stored kind but a bridge's mailbox receipt).
//
// A reply the relay could not have sent (malformed, or for no message of
// the batch) fails that message with ErrHostile, or is ignored.
func (c *Conn) PublishBatch(ctx context.Context, batch []Outgoing) ([]*proto.Reply, []error) {
	replies := make([]*proto.Reply, len(batch))
	errs := make([]error, len(batch))
	fill := func(err error) ([]*proto.Reply, []error) {
		for i := range errs {
			if replies[i] == nil && errs[i] == nil {
				errs[i] = err
			}
		}
		return replies, errs
	}
	switch {
	case len(batch) == 0:
		return replies, errs
	case len(batch) > MaxBatch:
		return fill(fmt.Errorf("relayconn: a batch of %d, the limit is %d", len(batch), MaxBatch))
	}
	if err := c.usable(); err != nil {
		return fill(err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox + ".*")
	if err != nil {
		return fill(fmt.Errorf("%w: %w", ErrNotConnected, err))
	}
	defer sub.Unsubscribe()
	// One reply per message and room for a few more; past that the
	// client library drops them and the batch ends by ctx.
	sub.SetPendingLimits(len(batch)+16, (len(batch)+16)*4096)
	for i, o := range batch {
		m := &nats.Msg{Subject: proto.Ingest(c.mbox, o.Target), Reply: inbox + "." + strconv.Itoa(i), Data: o.Data, Header: o.Header}
		if err := c.nc.PublishMsg(m); err != nil {
			errs[i] = fmt.Errorf("%w: %w", ErrNotConnected, err)
		}
	}
	left := 0
	for i := range batch {
		if errs[i] == nil {
			left++
		}
	}
	for left > 0 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrConnectionClosed) {
				return fill(fmt.Errorf("%w: no reply: %w", ErrNotConnected, err))
			}
			return fill(fmt.Errorf("%w: %w", ErrNotConnected, err))
		}
		n, err := strconv.Atoi(strings.TrimPrefix(m.Subject, inbox+"."))
		if err != nil || n < 0 || n >= len(batch) || replies[n] != nil || errs[n] != nil {
			continue // not an answer to anything outstanding
		}
		if m.Header.Get("Status") == "503" {
			errs[n] = fmt.Errorf("%w: %w", ErrNotConnected, nats.ErrNoResponders)
		} else if r, err := proto.ParseReply(m.Data); errors.Is(err, proto.ErrBadReply) {
			errs[n] = fmt.Errorf("%w: %w", ErrHostile, err)
		} else if err != nil {
			errs[n] = err
		} else {
			replies[n] = r
		}
		left--
	}
	return replies, errs
}

// maxStatement bounds one statement of a roll-up: an ack token or a
// bridge's receipt is a few hundred bytes.
const maxStatement = 4096

// RollUp returns the signed statements the relay holds about alert id —
// ack tokens and the bridge's receipts — unverified: the caller verifies
// each against its directory. Only institutions of the directory may ask.
func (c *Conn) RollUp(ctx context.Context, id routing.ID) ([][]byte, error) {
	msgs, err := c.batch(ctx, proto.RollUpTarget(id), nil, FetchOptions{Max: proto.MaxRollUp, MaxBytes: proto.MaxRollUp * maxStatement}.normal(), maxStatement)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Data
	}
	return out, nil
}
