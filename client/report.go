package client

import (
	"context"
	"time"

	"github.com/hrdbeacon/beacon/client/report"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// Report asks the relay for the metadata of a response report over
// [since, until): every post headquarters oversees, or this mission
// alone. Compute the figures with report.Compute.
func (c *Client) Report(ctx context.Context, since, until time.Time) (*report.Data, error) {
	if err := c.WaitConnected(ctx); err != nil {
		return nil, err
	}
	chunks, err := c.conn.Report(ctx, proto.ReportRequest{SinceMS: since.UnixMilli(), UntilMS: until.UnixMilli()})
	if err != nil {
		return nil, err
	}
	d := &report.Data{Since: since, Until: until}
	for _, ch := range chunks {
		if len(ch.Missions) > 0 {
			d.Missions = ch.Missions
		}
		d.Alerts = append(d.Alerts, ch.Alerts...)
		d.Acks = append(d.Acks, ch.Acks...)
		d.Truncated = d.Truncated || ch.Truncated
	}
	return d, nil
}
