package relayconn

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hrdbeacon/beacon/relay/proto"
)

// reportWait is how long a relay may take to read a report before it
// answers: it reads two streams from the period's start.
const reportWait = 30 * time.Second

// Report asks the relay for the metadata of a report (see
// proto.SvcReport) and returns its chunks, each checked against the
// protocol's bounds.
func (c *Conn) Report(ctx context.Context, req proto.ReportRequest) ([]proto.ReportChunk, error) {
	body, _ := json.Marshal(req)
	msgs, err := c.batch(ctx, proto.SvcReportTarget, body, FetchOptions{Max: proto.MaxReportChunks, MaxBytes: proto.MaxFetchBytes, Wait: reportWait}, proto.MaxReportChunk)
	if err != nil {
		return nil, err
	}
	out := make([]proto.ReportChunk, 0, len(msgs))
	for _, m := range msgs {
		if m.Subject != proto.ReportSubject || len(m.Data) > proto.MaxReportChunk {
			return nil, fmt.Errorf("%w: a report chunk of %d bytes on %q", ErrHostile, len(m.Data), m.Subject)
		}
		var ch proto.ReportChunk
		dec := json.NewDecoder(bytes.NewReader(m.Data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ch); err != nil {
			return nil, fmt.Errorf("%w: a report chunk that does not decode: %v", ErrHostile, err)
		}
		out = append(out, ch)
	}
	return out, nil
}
