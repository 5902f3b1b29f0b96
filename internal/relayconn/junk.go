package relayconn

import (
	"context"
	"strings"

	"github.com/hrdbeacon/beacon/relay/proto"
)

// ReportJunk tells the relay that the fetched alerts with these settle
// tokens cannot be opened by this mission, and settles them. It returns
// how many the relay removed: those every mission of their country has
// now reported.
func (c *Conn) ReportJunk(ctx context.Context, tokens []string) (uint64, error) {
	var removed uint64
	for len(tokens) > 0 {
		n := min(len(tokens), proto.MaxSettle)
		r, err := c.Call(ctx, proto.SvcJunkTarget, []byte(strings.Join(tokens[:n], "\n")))
		if err != nil {
			return removed, err
		}
		removed += r.Count
		tokens = tokens[n:]
	}
	return removed, nil
}
