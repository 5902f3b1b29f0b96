package relayconn

import (
	"context"
	"errors"
	"fmt"

	"github.com/hrdbeacon/beacon/relay/proto"
)

// Hold sends a hold request (proto.HoldTarget(op)) and returns the
// relay's answer; a refusal is a *proto.Error.
func (c *Conn) Hold(ctx context.Context, op proto.HoldOp, body []byte) (*proto.HoldReply, error) {
	m, err := c.request(ctx, proto.HoldTarget(op), body)
	if err != nil {
		return nil, err
	}
	r, err := proto.ParseHoldReply(m.Data)
	if errors.Is(err, proto.ErrBadReply) {
		return nil, fmt.Errorf("%w: %w", ErrHostile, err)
	}
	if err == nil && op != proto.HoldStatus && len(r.Holds) != 1 {
		return nil, fmt.Errorf("%w: a hold request answered for %d holds", ErrHostile, len(r.Holds))
	}
	return r, err
}
