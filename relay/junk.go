package relay

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// junk takes a mission's reports of alerts it fetched and cannot open.
// Each report is stored in the JUNK stream (one subject per alert, one
// message per mission, deduplicated); once every mission the directory
// lists for the alert's country has reported it, the alert is deleted.
// Envelopes carry no recipient names, so "every mission covering the
// country" is the only set of recipients the relay can know; an alert a
// defender sealed to some of them only is never removed, because those
// open it. One mission, or a few, cannot remove anything. The reported
// alerts are settled as well.
func (s *services) junk(m *nats.Msg, p *principal) *refusal {
	if p.role != keys.RoleMission {
		return refuse(proto.CodeForbidden, "only missions report junk")
	}
	lines := strings.Split(strings.TrimSpace(string(m.Data)), "\n")
	if len(lines) == 0 || len(lines) > proto.MaxSettle || lines[0] == "" {
		return refuse(proto.CodeBadRequest, "1–%d settle tokens, one per line", proto.MaxSettle)
	}
	seqs := make([]uint64, len(lines))
	for i, tok := range lines {
		seq, ok := alertSeqOf(p, tok)
		if !ok {
			return refuse(proto.CodeForbidden, "a token is not for an alert this mission reads")
		}
		seqs[i] = seq
	}
	// A report takes a few JetStream calls per alert: it runs beside the
	// mission's other requests, as a fetch does.
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		if ref := s.reportAll(p, seqs, lines); ref != nil {
			s.refuseLater(m, ref)
		} else {
			s.replyJSON(m, &proto.SvcReply{Count: s.lastRemoved(seqs)})
		}
	}()
	return nil
}

// reportAll records every report, then settles the reported alerts.
func (s *services) reportAll(p *principal, seqs []uint64, tokens []string) *refusal {
	ctx, cancel := context.WithTimeout(s.base, serviceTimeout)
	defer cancel()
	js := s.r.js
	alerts, err1 := js.Stream(ctx, proto.StreamAlerts)
	junk, err2 := js.Stream(ctx, proto.StreamJunk)
	if err := errors.Join(err1, err2); err != nil {
		s.r.log.Warn("junk report", "err", err)
		return refuse(proto.CodeUnavailable, "the relay cannot record the report now; try again")
	}
	for _, seq := range seqs {
		// Each report has its own deadline: a batch of them is as long as
		// a batch of alerts.
		ctx, cancel := context.WithTimeout(s.base, serviceTimeout)
		err := s.reportJunk(ctx, p, alerts, junk, seq)
		cancel()
		if err != nil {
			s.r.log.Warn("junk report", "err", err)
			return refuse(proto.CodeUnavailable, "the relay cannot record the report now; try again")
		}
	}
	for _, tok := range tokens {
		if err := s.r.nc.Publish(tok, []byte("+ACK")); err != nil {
			return refuse(proto.CodeUnavailable, "settle: %v", err)
		}
	}
	return nil
}

// lastRemoved counts the reported alerts no longer stored.
func (s *services) lastRemoved(seqs []uint64) uint64 {
	ctx, cancel := context.WithTimeout(s.base, serviceTimeout)
	defer cancel()
	var n uint64
	for _, seq := range seqs {
		if msgs, err := s.directGet(ctx, proto.StreamAlerts, directRequest{Seq: seq}); err == nil && len(msgs) == 0 {
			n++
		}
	}
	return n
}

// reportJunk records p's report of the alert at seq and removes the
// alert if every mission covering its country reported it. It reports
// whether the alert is gone.
func (s *services) reportJunk(ctx context.Context, p *principal, alerts, junk jetstream.Stream, seq uint64) error {
	msgs, err := s.directGet(ctx, proto.StreamAlerts, directRequest{Seq: seq})
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil // expired or removed already
	}
	subj, err := proto.ParseSubject(msgs[0].subject)
	if err != nil || subj.Kind != proto.KindAlert || !slices.Contains(p.countries, subj.Country) {
		return nil // not an alert this mission covers: the report counts for nothing
	}
	report := proto.JunkSubject(proto.StreamAlerts, seq)
	if _, err := s.r.js.PublishMsg(ctx, &nats.Msg{Subject: report, Data: []byte(p.id),
		Header: nats.Header{jetstream.MsgIDHeader: []string{report + "." + p.id}}}); err != nil {
		return err
	}
	reporters := map[string]bool{}
	for next := uint64(1); len(reporters) < maxJunkReports; {
		rm, err := junk.GetMsg(ctx, next, jetstream.WithGetMsgSubject(report))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return err
		}
		reporters[string(rm.Data)] = true
		next = rm.Sequence + 1
	}
	dir := s.r.auth.directory()
	if dir == nil {
		return nil
	}
	for _, mi := range dir.Missions {
		if slices.Contains(mi.Countries, subj.Country) && !reporters[mi.ID] {
			return nil
		}
	}
	if err := alerts.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNotFound(err) {
		return err
	}
	s.r.metrics.junk.WithLabelValues(subj.Country).Inc()
	s.r.log.Info("junk removed", "stream", proto.StreamAlerts, "country", subj.Country, "reports", len(reporters))
	return nil
}

// alertSeqOf returns the ALERTS stream sequence in an ack token of one of
// p's consumers ($JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...,
// or with a domain and account hash before the stream).
func alertSeqOf(p *principal, tok string) (uint64, bool) {
	if !mayAck(p, tok) {
		return 0, false
	}
	t := strings.Split(tok, ".")
	i := 5
	if len(t) >= 11 {
		i = 7
	}
	seq, err := strconv.ParseUint(t[i], 10, 64)
	return seq, err == nil && seq > 0
}
