package relay

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/country"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// purge serves an operator's inspect (purge false) or purge: what one
// stream holds for a country (and priority) stored before a time, per
// subject. A purge removes it with JetStream's own purge by subject and
// sequence, and is logged with the operator's name and the selection;
// the log names no mailbox.
func (s *services) purge(m *nats.Msg, p *principal, purge bool) *refusal {
	if p.role != roleOperator {
		return refuse(proto.CodeForbidden, "only the relay's operators inspect and purge")
	}
	var req proto.PurgeRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return refuse(proto.CodeBadRequest, "not a purge request")
	}
	filter, ref := purgeFilter(req)
	if ref != nil {
		return ref
	}
	ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
	defer cancel()
	st, err := s.r.js.Stream(ctx, req.Stream)
	if err != nil {
		return refuse(proto.CodeUnavailable, "stream: %v", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return refuse(proto.CodeUnavailable, "stream: %v", err)
	}
	reply := proto.PurgeReply{Subjects: map[string]uint64{}}
	var all uint64
	for subj, n := range info.State.Subjects {
		all += n
		if req.Stream != proto.StreamMailbox && len(reply.Subjects) < proto.MaxPurgeSubjects {
			reply.Subjects[subj] = n
		}
	}
	// The first sequence stored at or after the cutoff: everything
	// selected lies before it.
	upto := info.State.LastSeq + 1
	if !req.Before.IsZero() {
		msgs, err := s.directGet(ctx, req.Stream, directRequest{StartTime: &req.Before})
		if err != nil {
			return refuse(proto.CodeUnavailable, "stream: %v", err)
		}
		if len(msgs) > 0 {
			upto = msgs[0].seq
		}
	}
	reply.Total = all
	if upto <= info.State.LastSeq {
		if reply.Total, err = s.countBefore(ctx, req.Stream, filter, upto, all); err != nil {
			return refuse(proto.CodeUnavailable, "stream: %v", err)
		}
	}
	if purge && reply.Total > 0 {
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(filter), jetstream.WithPurgeSequence(upto)); err != nil {
			return refuse(proto.CodeUnavailable, "purge: %v", err)
		}
		s.r.log.Warn("operator purge", "operator", p.id, "stream", req.Stream, "filter", filter,
			"before", req.Before.Format(time.RFC3339), "purged", reply.Total)
	} else if !purge {
		s.r.log.Info("operator inspect", "operator", p.id, "stream", req.Stream, "filter", filter)
	}
	s.replyJSON(m, &reply)
	return nil
}

// countBefore counts the messages on filter with a sequence below upto:
// all of them, less those a consumer starting at upto would still see.
// The consumer is ephemeral and deleted at once; only operators get here.
func (s *services) countBefore(ctx context.Context, stream, filter string, upto, all uint64) (uint64, error) {
	c, err := s.r.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{FilterSubject: filter,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: upto, AckPolicy: jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute})
	if err != nil {
		return 0, err
	}
	defer s.r.js.DeleteConsumer(context.Background(), stream, c.CachedInfo().Name)
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return all - min(all, info.NumPending), nil
}

// purgeFilter is the subject filter a purge request selects.
func purgeFilter(req proto.PurgeRequest) (string, *refusal) {
	if !slices.Contains(proto.PurgeStreams, req.Stream) {
		return "", refuse(proto.CodeBadRequest, "stream must be one of %v", proto.PurgeStreams)
	}
	cc, prio := "*", "*"
	if req.Country != "" {
		if !country.Known(req.Country) {
			return "", refuse(proto.CodeBadRequest, "unknown country %q", req.Country)
		}
		cc = req.Country
	}
	if req.Priority != "" {
		p, err := routing.ParsePriority(req.Priority)
		if err != nil {
			return "", refuse(proto.CodeBadRequest, "unknown priority %q", req.Priority)
		}
		prio = p.String()
	}
	switch req.Stream {
	case proto.StreamAlerts:
		return "bcn.to." + cc + "." + prio, nil
	case proto.StreamShared:
		return "bcn.share." + cc + "." + prio, nil
	case proto.StreamBroadcasts:
		if req.Priority != "" {
			return "", refuse(proto.CodeBadRequest, "broadcasts have no priority")
		}
		return "bcn.bcast." + cc, nil
	}
	if req.Country != "" || req.Priority != "" {
		return "", refuse(proto.CodeBadRequest, "mailboxes have no country or priority: purge them by age")
	}
	return proto.SubjectMailbox, nil
}
