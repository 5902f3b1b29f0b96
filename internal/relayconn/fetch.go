package relayconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// FetchOptions bound one fetch.
type FetchOptions struct {
	// Max is the most messages to take, 1 to proto.MaxFetch (default 256).
	Max int
	// MaxBytes bounds the bytes of the batch, at most
	// proto.MaxFetchBytes (default DefaultFetchBytes).
	MaxBytes int
	// Wait is how long the relay may wait for the first message; 0
	// returns what is there now.
	Wait time.Duration
	// After is a mailbox reader's cursor: only messages stored after this
	// sequence are returned (see proto.FetchRequest).
	After uint64
}

func (o FetchOptions) normal() FetchOptions {
	if o.Max <= 0 {
		o.Max = 256
	}
	o.Max = min(o.Max, proto.MaxFetch)
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultFetchBytes
	}
	o.MaxBytes = min(o.MaxBytes, proto.MaxFetchBytes)
	o.Wait = min(max(o.Wait, 0), proto.MaxFetchWait*time.Millisecond)
	return o
}

// Fetched is one message as a fetch hands it over: its bytes, unread.
type Fetched struct {
	Data []byte
	// Settle is the token to settle it with once it is kept.
	Settle string
	// Subject is the stream subject it was stored under.
	Subject string
	// Seq is a mailbox message's stream sequence, for the reader's
	// cursor; 0 for other sources.
	Seq uint64
}

// answerGrace is how long a relay may take to answer beyond the wait it
// was given. It is real time, not the connection's clock: it bounds how
// long a silent relay holds a caller, and a fake clock in a test must not
// stop it from firing.
const answerGrace = 10 * time.Second

// maxMessage bounds one fetched message: every stored envelope and ack
// token is at most an envelope's maximum size.
const maxMessage = envelope.MaxSize

// maxNewsMessage bounds one broadcast: a public message's maximum size.
const maxNewsMessage = envelope.MaxPublicSize

// DefaultFetchBytes is how many bytes a fetch takes in unless asked for
// more: about forty of the largest envelopes, or two thousand alerts of a
// few paragraphs, and little enough for a phone to hold while it opens
// them. The relay may exceed it by one message.
const DefaultFetchBytes = 4 << 20

// newsBytes bounds one news answer: the most broadcasts a relay may return
// (proto.MaxNews) at a typical size of a few KiB.
const newsBytes = 4 << 20

// Fetch asks the relay for a batch from src and collects it until the
// batch's end marker. It fails with ErrHostile if the relay sends more
// messages or bytes than were asked for, a message larger than any
// envelope, or an answer that is neither.
func (c *Conn) Fetch(ctx context.Context, src proto.Source, o FetchOptions) ([]Fetched, error) {
	o = o.normal()
	body, _ := json.Marshal(proto.FetchRequest{Max: o.Max, MaxBytes: o.MaxBytes, WaitMS: int(o.Wait / time.Millisecond), After: o.After})
	return c.batch(ctx, proto.FetchTarget(src), body, o, maxMessage)
}

// News returns the broadcasts the relay holds for cc ("" for every
// country), unverified: at most proto.MaxNews of them, in about newsBytes,
// none larger than a public message can be.
func (c *Conn) News(ctx context.Context, cc string) ([]Fetched, error) {
	o := FetchOptions{Max: proto.MaxNews, MaxBytes: newsBytes}.normal()
	body, _ := json.Marshal(proto.FetchRequest{Max: o.Max, MaxBytes: o.MaxBytes})
	return c.batch(ctx, proto.NewsTarget(cc), body, o, maxNewsMessage)
}

// batch collects one answer of at most o.Max messages and about
// o.MaxBytes, none larger than maxMsg. Every bound is checked on each
// message as it arrives, before its bytes are looked at, and the
// subscription itself holds no more than the bounds allow: the client
// library drops what lies beyond.
func (c *Conn) batch(ctx context.Context, target string, body []byte, o FetchOptions, maxMsg int) ([]Fetched, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	// Room for what was asked, the end marker and one message of slack;
	// anything beyond is dropped by the client library, and the batch
	// then fails below for want of its end marker or its count.
	sub.SetPendingLimits(o.Max+2, o.MaxBytes+2*maxMsg+4096)
	if err := c.nc.PublishRequest(proto.Ingest(c.mbox, target), inbox, body); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Wait+answerGrace)
	defer cancel()
	var out []Fetched
	size := 0
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if errors.Is(err, nats.ErrSlowConsumer) {
				return nil, fmt.Errorf("%w: answered a fetch with more than it asked for", ErrHostile)
			}
			return nil, fmt.Errorf("fetch: %w", err)
		}
		switch {
		case m.Header.Get("Status") == "503":
			return nil, nats.ErrNoResponders
		case m.Header.Get(proto.HeaderEnd) != "":
			n, err := strconv.Atoi(m.Header.Get(proto.HeaderEnd))
			if err != nil || n != len(out) {
				return nil, fmt.Errorf("%w: a batch of %d ended with count %q", ErrHostile, len(out), m.Header.Get(proto.HeaderEnd))
			}
			return out, nil
		case m.Header.Get(proto.HeaderSubject) != "":
			size += len(m.Data)
			switch {
			case len(out) == o.Max:
				return nil, fmt.Errorf("%w: more than the %d messages asked for", ErrHostile, o.Max)
			case len(m.Data) > maxMsg:
				return nil, fmt.Errorf("%w: a message of %d bytes, larger than any it may hold (%d)", ErrHostile, len(m.Data), maxMsg)
			case size > o.MaxBytes+maxMsg:
				return nil, fmt.Errorf("%w: more than the %d bytes asked for", ErrHostile, o.MaxBytes)
			}
			f := Fetched{Data: m.Data, Settle: m.Header.Get(proto.HeaderSettle), Subject: m.Header.Get(proto.HeaderSubject)}
			if s := m.Header.Get(proto.HeaderSeq); s != "" {
				if f.Seq, err = strconv.ParseUint(s, 10, 64); err != nil || f.Seq <= o.After {
					return nil, fmt.Errorf("%w: a mailbox message with sequence %q, asked for after %d", ErrHostile, s, o.After)
				}
			}
			out = append(out, f)
		default:
			r, err := proto.ParseSvcReply(m.Data)
			if err == nil {
				return nil, fmt.Errorf("%w: an answer that is neither a message nor a refusal", ErrHostile)
			}
			if r == nil {
				return nil, fmt.Errorf("%w: %w", ErrHostile, err)
			}
			return nil, err
		}
	}
}
