package client

import (
	"context"
	"time"

	"github.com/hrdbeacon/beacon/internal/relayconn"
)

// followWait is how long one fetch of a follow waits at the relay for a
// message: a long-poll, so a reply shows as it arrives.
const followWait = 30 * time.Second

// FollowMailbox reads the mailbox until ctx ends, keeping each new
// message in its case (as [Client.ReadMailbox] does) and then handing it
// to show, as it arrives. It returns nil when ctx ends.
//
// It never spins on the relay. While disconnected it waits for the
// connection; each fetch waits at the relay for the first message; and a
// round that fails, that the relay answers early with nothing, or that
// brings nothing new (only what was dropped or held back) is followed by
// a wait on the client's clock that backs off from 250 ms to 30 s, reset
// by the next round that hands over a message. problem, if set, is told
// of each failure.
func (c *Client) FollowMailbox(ctx context.Context, show func(*Received), problem func(error)) error {
	var backoff relayconn.Backoff
	for ctx.Err() == nil {
		start := c.clock.Now()
		rs, err := c.ReadMailbox(ctx, FetchOptions{Wait: followWait})
		if ctx.Err() != nil {
			break
		}
		for _, r := range rs {
			show(r)
		}
		waited := c.clock.Since(start) >= followWait/2
		switch {
		case err == nil && len(rs) > 0:
			backoff.Reset()
			continue
		case err == nil && waited:
			continue // an honest long-poll that found nothing
		case err != nil && problem != nil:
			problem(err)
		}
		d := backoff.Next()
		c.log.Info("mailbox follow backs off", "delay", d, "err", err)
		if relayconn.Sleep(ctx, c.clock, d) != nil {
			break
		}
	}
	return nil
}
