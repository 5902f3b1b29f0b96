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
const MaxBatch = proto.MaxFrameParts

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
	return c.publishBatch(ctx, batch, false)
}

// PublishFrames is [Conn.PublishBatch] for a bridge of the relay's
// directory: it packs the messages into frames, as many as the relay's
// maximum payload holds, so that the relay's server carries one message
// per frame rather than one per publish (see proto.FrameTarget). A
// message with headers other than proto.HeaderHops is sent alone, and so
// is every message of a frame the relay refuses whole (a relay that
// predates frames, a key that may not send them).
func (c *Conn) PublishFrames(ctx context.Context, batch []Outgoing) ([]*proto.Reply, []error) {
	return c.publishBatch(ctx, batch, true)
}

// alone marks a message of a batch sent on its own, not in a frame.
const alone = -1

func (c *Conn) publishBatch(ctx context.Context, batch []Outgoing, frames bool) ([]*proto.Reply, []error) {
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
	sub, err := c.nc.SubscribeSync(inbox + ".>")
	if err != nil {
		return fill(fmt.Errorf("%w: %w", ErrNotConnected, err))
	}
	defer sub.Unsubscribe()
	// One reply per message and room for a few more; past that the
	// client library drops them and the batch ends by ctx.
	sub.SetPendingLimits(len(batch)+16, (len(batch)+16)*4096)
	// in[i] is the first message of the frame message i went in, or alone.
	in := make([]int, len(batch))
	sendAlone := func(i int) {
		in[i] = alone
		m := &nats.Msg{Subject: proto.Ingest(c.mbox, batch[i].Target), Reply: inbox + "." + strconv.Itoa(i), Data: batch[i].Data, Header: batch[i].Header}
		if err := c.nc.PublishMsg(m); err != nil {
			errs[i] = fmt.Errorf("%w: %w", ErrNotConnected, err)
		}
	}
	frameEnd := map[int]int{}
	limit := int(c.nc.MaxPayload())
	for i := 0; i < len(batch); {
		// The parts that fit, sized first so the frame is built in place.
		j, size := i, 0
		var parts []proto.FramePart
		for frames && j < len(batch) {
			part, ok := framePart(batch[j])
			if n := proto.FramePartSize(part); ok && size+n <= limit {
				parts, size, j = append(parts, part), size+n, j+1
				continue
			}
			break
		}
		if j == i { // not framed, or too large for one
			sendAlone(i)
			i++
			continue
		}
		frame := make([]byte, 0, size)
		for _, part := range parts {
			frame = proto.AppendFramePart(frame, part)
		}
		frameEnd[i] = j
		err := c.nc.PublishRequest(proto.Ingest(c.mbox, proto.FrameTarget), inbox+".f"+strconv.Itoa(i), frame)
		for k := i; k < j; k++ {
			in[k] = i
			if err != nil {
				errs[k] = fmt.Errorf("%w: %w", ErrNotConnected, err)
			}
		}
		i = j
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
		n, whole := whom(strings.TrimPrefix(m.Subject, inbox+"."), in, frameEnd)
		switch {
		case whole:
			// A frame refused whole (a relay that predates frames, or
			// limits of its own): its messages go again one by one, each
			// at most once, and are answered alone.
			end := frameEnd[n]
			delete(frameEnd, n)
			for k := n; k < end; k++ {
				if replies[k] == nil && errs[k] == nil {
					if sendAlone(k); errs[k] != nil {
						left--
					}
				}
			}
		case n >= 0 && replies[n] == nil && errs[n] == nil:
			replies[n], errs[n] = answer(m)
			left--
		}
		// Anything else answers nothing outstanding.
	}
	return replies, errs
}

// whom reads a reply's subject after the batch's inbox: "<i>" answers
// message i sent alone, "f<s>.<j>" part j of the frame whose first
// message is s, "f<s>" that frame whole. It returns the message (the
// frame's first if whole), or -1 for a subject that answers nothing sent.
func whom(rest string, in []int, frameEnd map[int]int) (n int, whole bool) {
	f, framed := strings.CutPrefix(rest, "f")
	if !framed {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || n >= len(in) || in[n] != alone {
			return -1, false
		}
		return n, false
	}
	first, part, isPart := strings.Cut(f, ".")
	s, err := strconv.Atoi(first)
	end, ok := frameEnd[s]
	if err != nil || !ok {
		return -1, false
	}
	if !isPart {
		return s, true
	}
	j, err := strconv.Atoi(part)
	if err != nil || j < 0 || s+j >= end {
		return -1, false
	}
	return s + j, false
}

// framePart is o as a part of a frame, if it can be one: no headers but
// its hops.
func framePart(o Outgoing) (proto.FramePart, bool) {
	p := proto.FramePart{Target: o.Target, Data: o.Data}
	for k, v := range o.Header {
		if k != proto.HeaderHops || len(v) != 1 {
			return p, false
		}
		h, err := strconv.Atoi(v[0])
		if err != nil || h < 1 || h > 255 {
			return p, false
		}
		p.Hops = h
	}
	return p, true
}

// answer reads the relay's answer to one publish.
func answer(m *nats.Msg) (*proto.Reply, error) {
	if m.Header.Get("Status") == "503" {
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, nats.ErrNoResponders)
	}
	r, err := proto.ParseReply(m.Data)
	if errors.Is(err, proto.ErrBadReply) {
		return nil, fmt.Errorf("%w: %w", ErrHostile, err)
	}
	return r, err
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
