package client

import (
	"context"
	"errors"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// ErrNotInDirectory means this client's identity is not a mission (or
// partner) in the directory, so it has no alerts to read.
var ErrNotInDirectory = errors.New("this identity is not a mission in the directory")

// self returns this client's mission entry in the directory.
func (c *Client) self() (*keys.Mission, error) {
	d, err := c.Directory()
	if err != nil {
		return nil, err
	}
	for i := range d.Missions {
		if d.Missions[i].Identity.Equal(c.id.Public()) {
			return &d.Missions[i], nil
		}
	}
	return nil, ErrNotInDirectory
}

// ReceiveAlerts receives, for a mission, one batch of what defenders sent
// to each country it covers — alerts, updates, cancellations, meeting and
// observation requests — and hands each new message to h (see [Handler]:
// nothing is settled with the relay before h has kept it). Only the first
// country's fetch waits.
func (c *Client) ReceiveAlerts(ctx context.Context, o FetchOptions, h Handler) (Batch, error) {
	m, err := c.self()
	if err != nil {
		return Batch{}, err
	}
	var all Batch
	for i, cc := range m.Countries {
		oc := o
		if i > 0 {
			oc.Wait = 0
		}
		b, err := c.receive(ctx, proto.AlertsSource(cc), oc, h)
		all.add(b)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// Pending returns how many alerts wait for the mission in country cc
// (0 when it has settled everything).
func (c *Client) Pending(ctx context.Context, cc string) (uint64, error) {
	if err := c.WaitConnected(ctx); err != nil {
		return 0, err
	}
	return c.conn.Pending(ctx, proto.AlertsSource(cc))
}

// Acknowledge tells the defender who sent r that the mission has it and
// who acts, signed, to the defender's reply mailbox; and tells the relay,
// with a signed ack token, so it stops escalating.
func (c *Client) Acknowledge(ctx context.Context, r *Received, by, next string) (*Sent, error) {
	// The token goes first and is not waited for: it only stops
	// escalation, and the relay stores it while the ack to the defender is
	// sealed and sent.
	tok := envelope.SignAck(r.Case, c.id, c.clock.Now())
	if err := c.conn.Send(ackTarget(r), tok); err != nil {
		c.log.Warn("ack token not sent", "err", err)
	}
	return c.answer(ctx, r, &message.Ack{Ref: r.Case, By: by, NextStep: next})
}

// Reply answers r in its case thread.
func (c *Client) Reply(ctx context.Context, r *Received, text string) (*Sent, error) {
	return c.answer(ctx, r, &message.Reply{Ref: r.Case, Text: text})
}

// answer seals m to r's sender, signed, and sends it to r's reply mailbox.
func (c *Client) answer(ctx context.Context, r *Received, m message.Message) (*Sent, error) {
	return c.AnswerTo(ctx, r.Addressee(), m)
}

// Broadcast publishes a signed public message to everyone in b.Country.
func (c *Client) Broadcast(ctx context.Context, b *message.Broadcast) error {
	_, err := c.PublishBroadcast(ctx, b)
	return err
}
