package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// holds keeps held envelopes (see holds_state.go for how one is stored)
// and releases them: it answers the hold requests of the ingest, runs
// the release consumer on the timers that fire, and follows ACKS to stop
// escalations that were answered. It never opens an envelope: a held one
// is sealed to its recipients, and the relay only moves it.
type holds struct {
	r      *Relay
	in     *ingest
	stream jetstream.Stream

	due  jetstream.ConsumeContext // the release consumer
	acks jetstream.ConsumeContext // the tail of ACKS

	work     chan func(context.Context)
	quit     chan struct{} // closed at stop: workers and callbacks give up
	workers  sync.WaitGroup
	inflight sync.WaitGroup
	slots    chan struct{}
	base     context.Context
	stopping context.CancelFunc

	sizeMu sync.Mutex
	sizeAt time.Time
	size   uint64

	outcomes *prometheus.CounterVec
	// A release that waits (a full channel: every firing retried every
	// holdRetry) is logged once per holdRetryLogEvery, not per hold and
	// try; retries counts the tries since the last line.
	retryMu     sync.Mutex
	retryLogged time.Time
	retries     int
}

const (
	// holdWorkers release, re-arm and stop holds concurrently: each is a
	// few JetStream round trips, most of them an fsync, so many overlap.
	holdWorkers = 32
	// maxHoldRequests bounds the hold requests in flight on one relay;
	// past it a request is refused as rate limited.
	maxHoldRequests = 1024
	// holdAckWait is how long the release consumer waits for a release
	// before JetStream offers the timer's firing again.
	holdAckWait = 30 * time.Second
	// holdRetry is how long a release that failed (a full stream, a
	// failover) waits before it is tried again.
	holdRetry = 2 * time.Second
	// holdRetryLogEvery is how often a waiting release is logged at most.
	holdRetryLogEvery = 10 * time.Second
	// holdSizeEvery is how often the stream's size is read for the quota.
	holdSizeEvery = time.Second
	// holdPullExpiry is how long each pull of the release consumer lasts.
	holdPullExpiry = 4 * time.Second
	// maxAcksRead bounds the ack tokens read for one alert's quorum: far
	// more institutions than cover any country.
	maxAcksRead = 1024
)

func startHolds(ctx context.Context, in *ingest) (*holds, error) {
	r := in.r
	h := &holds{r: r, in: in, work: make(chan func(context.Context)), quit: make(chan struct{}), slots: make(chan struct{}, maxHoldRequests),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "beacon_relay_holds_total",
			Help: "Held envelopes by kind and what became of them: armed, checked_in, released, stopped, disarmed, rearmed."},
			[]string{"kind", "outcome"})}
	h.base, h.stopping = context.WithCancel(context.Background())
	var err error
	if h.stream, err = r.js.Stream(ctx, proto.StreamHolds); err != nil {
		return nil, fmt.Errorf("relay: holds: %w", err)
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, proto.StreamHolds, jetstream.ConsumerConfig{
		Durable: proto.HoldReleaseConsumer, FilterSubject: proto.HoldDue,
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait: holdAckWait, MaxAckPending: 4 * holdWorkers * 64,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: holds: release consumer: %w", err)
	}
	for range holdWorkers {
		h.workers.Go(func() {
			for {
				select {
				case f := <-h.work:
					f(h.base)
				case <-h.quit:
					return
				}
			}
		})
	}
	// Short pulls and heartbeats: when a node is lost, the consumer's new
	// leader is found within seconds, not after a 30 s pull expires.
	if h.due, err = cons.Consume(func(m jetstream.Msg) { h.dispatch(func(ctx context.Context) { h.onDue(ctx, m) }) },
		jetstream.PullExpiry(holdPullExpiry), jetstream.PullHeartbeat(holdPullExpiry/4)); err != nil {
		h.stop(context.Background())
		return nil, fmt.Errorf("relay: holds: %w", err)
	}
	tail, err := r.js.OrderedConsumer(ctx, proto.StreamAcks, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{proto.SubjectAcks}, DeliverPolicy: jetstream.DeliverNewPolicy, HeadersOnly: true})
	if err == nil {
		h.acks, err = tail.Consume(func(m jetstream.Msg) {
			if s, err := proto.ParseSubject(m.Subject()); err == nil && s.Kind == proto.KindAck {
				h.dispatch(func(ctx context.Context) { h.onAck(ctx, s.ID) })
			}
		})
	}
	if err != nil {
		h.stop(context.Background())
		return nil, fmt.Errorf("relay: holds: ack tail: %w", err)
	}
	r.metrics.reg.MustRegister(h.outcomes)
	return h, nil
}

// dispatch hands f to a worker, waiting for one; once the relay stops, f
// is dropped (a firing not acknowledged is offered again).
func (h *holds) dispatch(f func(context.Context)) {
	select {
	case h.work <- f:
	case <-h.quit:
	}
}

// stop ends the consumers, lets the requests and releases in progress
// finish, and stops the workers. A release cut short is offered again by
// JetStream after holdAckWait, to this node or another.
func (h *holds) stop(ctx context.Context) error {
	for _, cc := range []jetstream.ConsumeContext{h.due, h.acks} {
		if cc != nil {
			cc.Stop()
			select {
			case <-cc.Closed():
			case <-ctx.Done():
			}
		}
	}
	done := make(chan struct{})
	go func() { h.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("relay: hold requests still running: %w", ctx.Err())
	}
	close(h.quit)
	h.stopping()
	h.workers.Wait()
	return err
}

// load returns the state of hold id, the held envelope (nil for a
// tombstone) and the state's stream sequence; nil and 0 if there is none.
func (h *holds) load(ctx context.Context, id routing.ID) (*holdState, []byte, uint64, error) {
	m, err := h.stream.GetLastMsgForSubject(ctx, proto.HoldStateSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil, 0, nil
	}
	if err != nil {
		return nil, nil, 0, err
	}
	st, err := decodeHoldState(m.Header.Get(hdrHold))
	if err != nil {
		return nil, nil, 0, err
	}
	return st, m.Data, m.Sequence, nil
}

// errConflict means another change of the hold was stored first.
var errConflict = errors.New("relay: the hold changed meanwhile")

// save replaces the state of hold id with st (and env) if its sequence is
// still prev (0: there is none), and returns the new sequence.
func (h *holds) save(ctx context.Context, id routing.ID, st *holdState, env []byte, prev uint64) (uint64, error) {
	m := nats.NewMsg(proto.HoldStateSubject(id))
	m.Data = env
	m.Header.Set(hdrHold, st.encode())
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	ack, err := h.r.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(prev))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return 0, errConflict
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// setTimer (re)places hold id's message schedule at st's deadline.
func (h *holds) setTimer(ctx context.Context, id routing.ID, st *holdState) error {
	_, err := h.r.js.PublishMsg(ctx, h.timerMsg(id, st), jetstream.WithScheduleAt(st.Deadline), jetstream.WithScheduleTarget(proto.HoldDue))
	return err
}

func (h *holds) timerMsg(id routing.ID, st *holdState) *nats.Msg {
	m := nats.NewMsg(proto.HoldTimerSubject(id))
	m.Header.Set(hdrHoldGen, strconv.FormatUint(st.Gen, 10))
	return m
}

// clearTimer removes hold id's schedule, so it does not fire for nothing.
func (h *holds) clearTimer(ctx context.Context, id routing.ID) error {
	return h.stream.Purge(ctx, jetstream.WithPurgeSubject(proto.HoldTimerSubject(id)))
}

// end replaces the state of an armed hold with its tombstone and removes
// its timer (unless it fired: a firing removes its schedule). It returns
// errConflict if the state changed since prev.
func (h *holds) end(ctx context.Context, id routing.ID, st *holdState, prev uint64, state string) error {
	if _, err := h.save(ctx, id, st.ended(state, h.r.clock.Now()), nil, prev); err != nil {
		return err
	}
	h.outcomes.WithLabelValues(st.Kind, state).Inc()
	if state == proto.HoldReleased {
		return nil
	}
	if err := h.clearTimer(ctx, id); err != nil {
		h.r.log.Warn("holds: removing a timer", "err", err)
	}
	return nil
}

// markDrill marks message id as a drill, once: the first mark's time is
// the one a report compares with the alert's.
func (h *holds) markDrill(ctx context.Context, id routing.ID) (uint64, error) {
	m := nats.NewMsg(proto.HoldDrillSubject(id))
	ack, err := h.r.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(0))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		old, err := h.stream.GetLastMsgForSubject(ctx, proto.HoldDrillSubject(id)) // marked already
		if err != nil {
			return 0, err
		}
		return old.Sequence, nil
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// drillMarks returns the drill marks stored since since, by message id,
// with when each was stored.
func (s *services) drillMarks(ctx context.Context, since time.Time) (map[routing.ID]time.Time, error) {
	marks := map[routing.ID]time.Time{}
	err := s.readSince(ctx, proto.StreamHolds, []string{proto.HoldDrillFilter}, since, true, func(msg jetstream.Msg, at time.Time) bool {
		if part, id, err := proto.ParseHoldSubject(msg.Subject()); err == nil && part == "drill" {
			marks[id] = at
		}
		return true
	})
	return marks, err
}

// full reports whether the stream holds as much as the relay keeps per
// stream: HOLDS has no limit of its own (holdsStreamConfig).
func (h *holds) full(ctx context.Context) bool {
	h.sizeMu.Lock()
	defer h.sizeMu.Unlock()
	if now := h.r.clock.Now(); now.Sub(h.sizeAt) >= holdSizeEvery {
		info, err := h.stream.Info(ctx)
		if err != nil {
			return false // the write itself will fail if storage does
		}
		h.size, h.sizeAt = info.State.Bytes, now
	}
	return h.size >= uint64(h.r.cfg.Storage.MaxBytes)
}

// request runs one hold request in a goroutine of its own, so that its
// JetStream round trips do not hold the ingest, and answers it.
func (h *holds) request(m *nats.Msg, p *principal, op proto.HoldOp) *refusal {
	select {
	case h.slots <- struct{}{}:
	default:
		return refuse(proto.CodeRateLimited, "too many hold requests in flight; try again")
	}
	h.inflight.Add(1)
	go func() {
		defer h.inflight.Done()
		defer func() { <-h.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
		defer cancel()
		rep, ref := h.serve(ctx, m.Data, p, op)
		if ref != nil {
			h.in.refuse(m, ref)
			return
		}
		h.in.svc.replyJSON(m, rep)
	}()
	return nil
}

func (h *holds) serve(ctx context.Context, data []byte, p *principal, op proto.HoldOp) (*proto.HoldReply, *refusal) {
	switch op {
	case proto.HoldArmCheckIn, proto.HoldArmEscalation:
		if p.role != keys.RoleDefender {
			return nil, refuse(proto.CodeForbidden, "a %s may not hand over holds", p.role)
		}
		return h.arm(ctx, data, op)
	case proto.HoldOK, proto.HoldDisarm, proto.HoldRelease:
		var ci proto.CheckIn
		if err := proto.DecodeStrict(data, &ci); err != nil {
			return nil, refuse(proto.CodeBadRequest, "%v", err)
		}
		return h.checkIn(ctx, &ci, op)
	case proto.HoldPanic:
		var pr proto.PanicRequest
		if err := proto.DecodeStrict(data, &pr); err != nil {
			return nil, refuse(proto.CodeBadRequest, "%v", err)
		}
		return h.panic(ctx, &pr)
	case proto.HoldDrill:
		var dm proto.DrillMark
		if err := proto.DecodeStrict(data, &dm); err != nil || dm.Alert.IsZero() {
			return nil, refuse(proto.CodeBadRequest, "a drill mark names the alert")
		}
		if p.role != keys.RoleDefender {
			return nil, refuse(proto.CodeForbidden, "a %s may not mark drills", p.role)
		}
		seq, err := h.markDrill(ctx, dm.Alert)
		if err != nil {
			return nil, unavailable(err)
		}
		return &proto.HoldReply{Stream: proto.StreamHolds, Seq: seq, Holds: []proto.HoldInfo{{ID: dm.Alert, Kind: proto.HoldKindDrill,
			State: proto.HoldMarked, Deadline: h.r.clock.Now().UTC().Truncate(time.Second)}}}, nil
	case proto.HoldStatus:
		var sr proto.StatusRequest
		if err := proto.DecodeStrict(data, &sr); err != nil || len(sr.IDs) > proto.MaxStatusIDs {
			return nil, refuse(proto.CodeBadRequest, "a status request lists 0–%d hold ids", proto.MaxStatusIDs)
		}
		return h.status(ctx, sr.IDs)
	}
	return nil, refuse(proto.CodeBadTarget, "no such hold operation")
}

// arm takes a held envelope: a check-in plan, or a tier of an escalation.
func (h *holds) arm(ctx context.Context, data []byte, op proto.HoldOp) (*proto.HoldReply, *refusal) {
	var plan proto.CheckInPlan
	var esc proto.EscalationHold
	var params any = &plan
	if op == proto.HoldArmEscalation {
		params = &esc
	}
	env, err := proto.UnframeHold(data, params)
	if err != nil {
		return nil, refuse(proto.CodeBadRequest, "%v", err)
	}
	info, err := envelope.Parse(env)
	if err != nil {
		return nil, envelopeRefusal(err)
	}
	// The envelope's created time is not checked against the freshness
	// window: a hold is kept by its id, stored once, and a held
	// envelope is old by design when it is released.
	now := h.r.clock.Now()
	var id routing.ID
	var st *holdState
	var ref *refusal
	if op == proto.HoldArmCheckIn {
		id = plan.ID
		st, ref = newCheckInPlan(&plan, info, now, h.r.cfg)
	} else {
		d := h.r.auth.directory()
		if d == nil {
			return nil, refuse(proto.CodeNoTier, "this relay has no directory to escalate by")
		}
		id = proto.EscalationHoldID(esc.Alert, esc.Tier)
		st, ref = newEscalation(&esc, info, d.Escalation(info.Country, info.Priority, esc.Share), now)
	}
	if ref != nil {
		return nil, ref
	}
	if op == proto.HoldArmCheckIn && plan.Exercise {
		if _, err := h.markDrill(ctx, info.ID); err != nil {
			return nil, unavailable(err)
		}
	}
	if h.full(ctx) {
		return nil, refuse(proto.CodeHoldFull, "this relay holds all it may; try another relay")
	}
	// A new id is the usual case: stored if the subject is empty, and
	// only a conflict costs a read.
	seq, err := h.save(ctx, id, st, env, 0)
	if errors.Is(err, errConflict) {
		old, _, prev, lerr := h.load(ctx, id)
		switch {
		case lerr != nil:
			return nil, unavailable(lerr)
		case old != nil && old.Msg == st.Msg:
			// The same envelope again: a retry whose answer was lost, or
			// an escalation resent from an outbox after it ended. Nothing
			// changes; it is never armed twice.
			return &proto.HoldReply{Stream: proto.StreamHolds, Seq: prev, Holds: []proto.HoldInfo{old.info(id)}}, nil
		case old != nil && (old.armed() || old.Kind == proto.HoldKindEscalation):
			return nil, refuse(proto.CodeConflict, "a hold with this id exists")
		}
		// A check-in plan that ended may be armed again under its id
		// (the duress key's id is one per device).
		seq, err = h.save(ctx, id, st, env, prev)
	}
	if errors.Is(err, errConflict) {
		return nil, refuse(proto.CodeConflict, "a hold with this id was armed meanwhile")
	}
	if err != nil {
		return nil, unavailable(err)
	}
	// The timer only once the state is stored: a refused arm must not
	// move another hold's timer.
	if err := h.setTimer(ctx, id, st); err != nil {
		// The state is stored; without its timer it would never fire.
		// Take it back, so the defender is not told it is armed.
		h.end(ctx, id, st, seq, proto.HoldDisarmed)
		return nil, unavailable(err)
	}
	h.outcomes.WithLabelValues(st.Kind, "armed").Inc()
	return &proto.HoldReply{Stream: proto.StreamHolds, Seq: seq, Holds: []proto.HoldInfo{st.info(id)}}, nil
}

// checkIn serves ok, disarm and release: each spends the next link of
// the plan's chain.
func (h *holds) checkIn(ctx context.Context, ci *proto.CheckIn, op proto.HoldOp) (*proto.HoldReply, *refusal) {
	st, env, prev, err := h.load(ctx, ci.ID)
	if err != nil {
		return nil, unavailable(err)
	}
	if st == nil {
		return nil, refuse(proto.CodeNoHold, "no check-in plan has that id")
	}
	now := h.r.clock.Now()
	switch op {
	case proto.HoldOK:
		if ref := st.checkIn(ci.ID, ci, now); ref != nil {
			return nil, ref
		}
	case proto.HoldDisarm:
		if ref := st.verifyLink(ci.ID, ci); ref != nil {
			return nil, ref
		}
		if err := h.end(ctx, ci.ID, st, prev, proto.HoldDisarmed); err != nil {
			return nil, conflictOr(err)
		}
		return &proto.HoldReply{Holds: []proto.HoldInfo{st.ended(proto.HoldDisarmed, now).info(ci.ID)}}, nil
	case proto.HoldRelease:
		if ref := st.verifyLink(ci.ID, ci); ref != nil {
			return nil, ref
		}
		st.Index, st.Chain = ci.Index, ci.Value
		st.releaseNow(now)
	}
	return h.rewrite(ctx, ci.ID, st, env, prev, "checked_in")
}

// panic releases a plan at once for whoever shows its panic secret. A
// wrong secret and an unknown plan get the same answer.
func (h *holds) panic(ctx context.Context, pr *proto.PanicRequest) (*proto.HoldReply, *refusal) {
	st, env, prev, err := h.load(ctx, pr.ID)
	if err != nil {
		return nil, unavailable(err)
	}
	if st == nil || !st.panicMatches(pr.ID, pr.Secret) {
		return nil, refuse(proto.CodeNoHold, "no armed check-in plan opens with that secret")
	}
	st.releaseNow(h.r.clock.Now())
	return h.rewrite(ctx, pr.ID, st, env, prev, "panic")
}

// rewrite stores a plan's new state and its timer, both at once: the
// request was verified, and the order does not matter. A timer without
// its state (the state lost a race to another request) fires, finds the
// state of another generation, and arms the state's own deadline again;
// a state without its timer is woken by the old timer, which finds a
// newer state and does the same.
func (h *holds) rewrite(ctx context.Context, id routing.ID, st *holdState, env []byte, prev uint64, outcome string) (*proto.HoldReply, *refusal) {
	tm := h.timerMsg(id, st)
	tf, terr := h.r.js.PublishMsgAsync(tm, jetstream.WithScheduleAt(st.Deadline), jetstream.WithScheduleTarget(proto.HoldDue))
	seq, err := h.save(ctx, id, st, env, prev)
	if terr == nil {
		select {
		case <-tf.Ok():
		case terr = <-tf.Err():
		case <-ctx.Done():
			terr = ctx.Err()
		}
	}
	if err != nil {
		return nil, conflictOr(err)
	}
	if terr != nil {
		h.r.log.Warn("holds: replacing a timer", "err", terr)
	}
	h.outcomes.WithLabelValues(st.Kind, outcome).Inc()
	return &proto.HoldReply{Stream: proto.StreamHolds, Seq: seq, Holds: []proto.HoldInfo{st.info(id)}}, nil
}

func (h *holds) status(ctx context.Context, ids []routing.ID) (*proto.HoldReply, *refusal) {
	rep := &proto.HoldReply{Holds: []proto.HoldInfo{}}
	for _, id := range ids {
		st, _, _, err := h.load(ctx, id)
		if err != nil {
			return nil, unavailable(err)
		}
		if st != nil {
			rep.Holds = append(rep.Holds, st.info(id))
		}
	}
	return rep, nil
}

func unavailable(err error) *refusal {
	return refuse(proto.CodeUnavailable, "the relay cannot reach its hold store now (%v); try again", err)
}

func conflictOr(err error) *refusal {
	if errors.Is(err, errConflict) {
		return refuse(proto.CodeConflict, "another request changed the plan first; check its status")
	}
	return unavailable(err)
}

// maxHoldRequestSize bounds a hold request other than an arm: a status
// request of MaxStatusIDs ids is the largest.
const maxHoldRequestSize = 16 << 10

// hold checks a hold request's size and the sender's rate, cheapest
// first, and hands it to holds. An arm stores an envelope and counts
// against the publish rate; the rest are requests.
func (in *ingest) hold(m *nats.Msg, mbox routing.Mailbox, target string) {
	op, err := proto.ParseHoldTarget(target)
	if err != nil {
		in.refuse(m, refuse(proto.CodeBadTarget, "no such hold operation"))
		return
	}
	p := in.r.auth.principalByMailbox(mbox)
	arm := op == proto.HoldArmCheckIn || op == proto.HoldArmEscalation
	limit, lim := maxHoldRequestSize, in.svcLim
	if arm {
		limit, lim = 2+proto.MaxHoldParams+int(in.r.cfg.Storage.MaxMessageSize), in.lim
	}
	if len(m.Data) > limit {
		in.refuse(m, refuse(proto.CodeTooLarge, "%d bytes, the limit is %d", len(m.Data), limit))
		return
	}
	if !lim.Allow(mbox) {
		in.refuse(m, refuse(proto.CodeRateLimited, "over the request rate of this connection key; slow down"))
		return
	}
	if ref := in.holds.request(m, p, op); ref != nil {
		in.refuse(m, ref)
	}
}

// retryFailed logs that a release failed and is tried again, at most once
// per holdRetryLogEvery on the relay's clock, with the failures since.
func (h *holds) retryFailed(err error) {
	h.retryMu.Lock()
	defer h.retryMu.Unlock()
	h.retries++
	if now := h.r.clock.Now(); h.retryLogged.IsZero() || now.Sub(h.retryLogged) >= holdRetryLogEvery {
		h.r.log.Warn("holds: release failed; trying again", "err", err, "failures", h.retries)
		h.retryLogged, h.retries = now, 0
	}
}
