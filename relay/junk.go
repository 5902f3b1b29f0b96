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
	ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
	defer cancel()
	removed := uint64(0)
	for _, seq := range seqs {
		gone, err := s.reportJunk(ctx, p, seq)
		if err != nil {
			s.r.log.Warn("junk report", "err", err)
			return refuse(proto.CodeUnavailable, "the relay cannot record the report now; try again")
		}
		if gone {
			removed++
		}
	}
	for _, tok := range lines {
		if err := s.r.nc.Publish(tok, []byte("+ACK")); err != nil {
			return refuse(proto.CodeUnavailable, "settle: %v", err)
		}
	}
	s.replyJSON(m, &proto.SvcReply{Count: removed})
	return nil
}

// reportJunk records p's report of the alert at seq and removes the
// alert if every mission covering its country reported it. It reports
// whether the alert is gone.
func (s *services) reportJunk(ctx context.Context, p *principal, seq uint64) (bool, error) {
	msgs, err := s.directGet(ctx, proto.StreamAlerts, directRequest{Seq: seq})
	if err != nil {
		return false, err
	}
	if len(msgs) == 0 {
		return true, nil // expired or removed already
	}
	subj, err := proto.ParseSubject(msgs[0].subject)
	if err != nil || subj.Kind != proto.KindAlert || !slices.Contains(p.countries, subj.Country) {
		return false, nil // not an alert this mission covers: the report counts for nothing
	}
	js := s.r.js
	report := proto.JunkSubject(proto.StreamAlerts, seq)
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: report, Data: []byte(p.id),
		Header: nats.Header{jetstream.MsgIDHeader: []string{report + "." + p.id}}}); err != nil {
		return false, err
	}
	st, err := js.Stream(ctx, proto.StreamJunk)
	if err != nil {
		return false, err
	}
	reporters := map[string]bool{}
	for next := uint64(1); len(reporters) < maxJunkReports; {
		rm, err := st.GetMsg(ctx, next, jetstream.WithGetMsgSubject(report))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return false, err
		}
		reporters[string(rm.Data)] = true
		next = rm.Sequence + 1
	}
	dir := s.r.auth.directory()
	if dir == nil {
		return false, nil
	}
	for _, mi := range dir.Missions {
		if slices.Contains(mi.Countries, subj.Country) && !reporters[mi.ID] {
			return false, nil
		}
	}
	as, err := js.Stream(ctx, proto.StreamAlerts)
	if err != nil {
		return false, err
	}
	if err := as.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNotFound(err) {
		return false, err
	}
	s.r.metrics.junk.WithLabelValues(subj.Country).Inc()
	s.r.log.Info("junk removed", "stream", proto.StreamAlerts, "country", subj.Country, "reports", len(reporters))
	return true, nil
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
