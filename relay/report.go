package relay

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// The report service (proto.SvcReport) reads what the relay already
// holds in the clear — the ALERTS stream's subjects (country, priority),
// message ids (the dedup header) and store times, and the ACKS stream's
// signed tokens — and hands back, per envelope and per ack, nothing more.
// Both streams are read with ordered consumers that live only for the
// request (headers only for ALERTS), so a report leaves no durable
// consumer behind.

// Records per chunk: a ReportAlert is at most about 80 bytes of JSON and a
// ReportAck about 130, so a chunk stays well under MaxReportChunk.
const (
	reportAlertsPerChunk = 400
	reportAcksPerChunk   = 250
	// reportTimeout bounds the reading of one report.
	reportTimeout = 30 * time.Second
)

// reportScope returns the missions p may have figures for: every post a
// headquarters oversees, a mission itself, nobody else.
func (s *services) reportScope(p *principal) ([]keys.Mission, *refusal) {
	d := s.r.auth.directory()
	if d == nil {
		return nil, refuse(proto.CodeUnavailable, "this relay serves no directory")
	}
	var ids []string
	switch p.role {
	case keys.RoleHeadquarters:
		for _, h := range d.Headquarters {
			if h.ID == p.id {
				ids = h.Missions
			}
		}
	case keys.RoleMission:
		ids = []string{p.id}
	default:
		return nil, refuse(proto.CodeForbidden, "only headquarters and missions read reports")
	}
	var out []keys.Mission
	for _, m := range d.Missions {
		if slices.Contains(ids, m.ID) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *services) report(m *nats.Msg, p *principal) *refusal {
	var req proto.ReportRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return refuse(proto.CodeBadRequest, "report request is not JSON")
	}
	if req.SinceMS <= 0 || req.UntilMS <= req.SinceMS || req.UntilMS-req.SinceMS > proto.MaxReportSpan {
		return refuse(proto.CodeBadRequest, "since_ms must be before until_ms, at most %d days apart", proto.MaxReportSpan/(24*3600*1000))
	}
	scope, ref := s.reportScope(p)
	if ref != nil {
		return ref
	}
	if !s.acquire(p.mbox) {
		return refuse(proto.CodeRateLimited, "too many requests in flight; wait for one to finish")
	}
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		chunks, ref := s.gatherReport(scope, req)
		s.release(p.mbox)
		if ref != nil {
			s.refuseLater(m, ref)
			return
		}
		batch := make([]fetchedMsg, len(chunks))
		for i, c := range chunks {
			batch[i] = fetchedMsg{data: c, subject: proto.ReportSubject}
		}
		s.send(m, batch)
	}()
	return nil
}

// gatherReport reads the alerts of the scope's countries stored in the
// request's period, and the scope's acks stored since its start.
func (s *services) gatherReport(scope []keys.Mission, req proto.ReportRequest) ([][]byte, *refusal) {
	ctx, cancel := context.WithTimeout(s.base, reportTimeout)
	defer cancel()
	since, until := time.UnixMilli(req.SinceMS), time.UnixMilli(req.UntilMS)
	var ccs, ids []string
	byFP := map[keys.Fingerprint]string{}
	for _, m := range scope {
		ids = append(ids, m.ID)
		byFP[m.Identity.Fingerprint()] = m.ID
		for _, cc := range m.Countries {
			if !slices.Contains(ccs, cc) {
				ccs = append(ccs, cc)
			}
		}
	}
	// Half the chunks for alerts, half for acks; past either the report
	// says it was truncated.
	maxAlerts := proto.MaxReportChunks / 2 * reportAlertsPerChunk
	maxAcks := (proto.MaxReportChunks/2 - 1) * reportAcksPerChunk
	alerts, acks := 0, 0
	out := &reportWriter{first: proto.ReportChunk{Missions: ids}}
	// Drills are no real cases: an alert marked as one before it was
	// stored is left out (relay/holds.go, markDrill).
	drills, err := s.drillMarks(ctx, since.Add(-s.r.cfg.Storage.Retention))
	if err != nil {
		return nil, refuse(proto.CodeUnavailable, "the relay cannot read the drill marks now; try again")
	}
	if len(ccs) > 0 {
		filters := make([]string, len(ccs))
		for i, cc := range ccs {
			filters[i] = proto.AlertFilter(cc)
		}
		err := s.readSince(ctx, proto.StreamAlerts, filters, since, true, func(msg jetstream.Msg, at time.Time) bool {
			if !at.Before(until) {
				return false
			}
			subj, err := proto.ParseSubject(msg.Subject())
			id, ierr := idOfDedupKey(msg.Headers().Get(jetstream.MsgIDHeader))
			if t, drill := drills[id]; ierr == nil && drill && !t.After(at) {
				return true
			}
			if err == nil && ierr == nil && subj.Kind == proto.KindAlert {
				out.alert(proto.ReportAlert{ID: id, Country: subj.Country, Priority: subj.Priority, StoredMS: at.UnixMilli()})
				alerts++
			}
			return alerts < maxAlerts
		})
		if err != nil {
			return nil, refuse(proto.CodeUnavailable, "the relay cannot read the alerts now; try again")
		}
	}
	err = s.readSince(ctx, proto.StreamAcks, []string{proto.SubjectAcks}, since, false, func(msg jetstream.Msg, at time.Time) bool {
		tok, err := envelope.ParseAck(msg.Data())
		if err != nil {
			return true
		}
		if id, ok := byFP[tok.Signer]; ok {
			out.ack(proto.ReportAck{Alert: tok.Alert, Mission: id, AtMS: at.UnixMilli()})
			acks++
		}
		return acks < maxAcks
	})
	if err != nil {
		return nil, refuse(proto.CodeUnavailable, "the relay cannot read the acks now; try again")
	}
	return out.finish(alerts >= maxAlerts || acks >= maxAcks), nil
}

// readSince hands fn every message of stream on filters stored from
// since, in order, until fn returns false or nothing is left.
func (s *services) readSince(ctx context.Context, stream string, filters []string, since time.Time, headersOnly bool,
	fn func(jetstream.Msg, time.Time) bool) error {
	cons, err := s.r.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
		HeadersOnly: headersOnly, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return err
	}
	for {
		batch, err := cons.FetchNoWait(512)
		if err != nil {
			return err
		}
		n := 0
		done := false
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			if !fn(msg, md.Timestamp) || md.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil && n == 0 {
			return err
		}
		if done || n == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// reportWriter cuts records into chunks.
type reportWriter struct {
	first  proto.ReportChunk
	cur    proto.ReportChunk
	chunks [][]byte
}

func (w *reportWriter) alert(a proto.ReportAlert) {
	w.cur.Alerts = append(w.cur.Alerts, a)
	if len(w.cur.Alerts) >= reportAlertsPerChunk {
		w.flush()
	}
}

func (w *reportWriter) ack(a proto.ReportAck) {
	w.cur.Acks = append(w.cur.Acks, a)
	if len(w.cur.Acks) >= reportAcksPerChunk {
		w.flush()
	}
}

func (w *reportWriter) flush() {
	if len(w.chunks) == 0 {
		w.cur.Missions = w.first.Missions
	}
	b, _ := json.Marshal(&w.cur)
	w.chunks = append(w.chunks, b)
	w.cur = proto.ReportChunk{}
}

func (w *reportWriter) finish(truncated bool) [][]byte {
	w.cur.Truncated = truncated
	if len(w.cur.Alerts) > 0 || len(w.cur.Acks) > 0 || len(w.chunks) == 0 || truncated {
		w.flush()
	}
	return w.chunks
}
