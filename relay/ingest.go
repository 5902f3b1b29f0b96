package relay

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// ingest admits publishes into the streams. Clients publish requests on
// bcn.in.<mailbox>.<target>; ingest checks, cheapest first, the reply
// subject, the size, the sender's rate, the target, the envelope's
// structure and that its header matches the subject, then publishes it to
// JetStream under bcn.<target> with the message id as the dedup key and
// the sender's own reply subject: JetStream's acknowledgement (sent once
// the write is on disk, fsynced under sync: always) goes straight to the
// sender and parses as a proto.Reply. Keeping the relay out of the ack's
// path saves a hop each way; the reply subject was checked to be the
// sender's own inbox, so the ack cannot be sent anywhere else.
//
// ingest never sees a plaintext and never does envelope cryptography; it
// verifies signatures only on the two clear-text signed kinds (broadcasts
// and ack tokens), against the directory.
type ingest struct {
	r *Relay
	// subs take every connection's requests on the relay's walk-in
	// connection; inst takes the institutions' on the relay's main one,
	// each institution on a subscription of its own, so that a flood of
	// walk-ins that fills the walk-ins' queue delays no mission.
	subs  []*nats.Subscription
	inst  *institutionSubs
	svc   *services
	holds *holds
	// Token buckets per connection key: walk-in defenders, directory
	// institutions, and service requests (fetches, acks) each have their own.
	lim, instLim, svcLim *limiter[routing.Mailbox]
	adm                  *admission
	fill                 *streamFill

	stopBg context.CancelFunc
	bg     sync.WaitGroup
}

// ingestQueue is the queue group of the ingest workers; with a cluster,
// every node's workers share the load.
const ingestQueue = "beacon-ingest"

// Pending limits of each ingest subscription: a burst this large is
// buffered rather than dropped.
const (
	ingestPendingMsgs  = 1 << 16
	ingestPendingBytes = 256 << 20
)

func startIngest(ctx context.Context, r *Relay) (*ingest, error) {
	l := r.cfg.Limits
	key, err := r.admissionKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("relay: admission key: %w", err)
	}
	in := &ingest{r: r, svc: newServices(r),
		lim:     newLimiter[routing.Mailbox](l.PublishRate, l.PublishBurst, r.clock),
		instLim: newLimiter[routing.Mailbox](l.InstitutionPublishRate, l.InstitutionPublishBurst, r.clock),
		svcLim:  newLimiter[routing.Mailbox](l.ServiceRate, l.ServiceBurst, r.clock),
		adm:     newAdmission(r.cfg.Admission, key, r.clock, r.metrics.reg),
		fill:    newStreamFill(r)}
	in.fill.refresh(ctx)
	bg, stop := context.WithCancel(context.Background())
	in.stopBg = stop
	in.bg.Add(2)
	go func() { defer in.bg.Done(); in.adm.run(bg) }()
	go func() { defer in.bg.Done(); in.fill.run(bg) }()

	if in.holds, err = startHolds(context.Background(), in); err != nil {
		stop()
		in.bg.Wait()
		return nil, err
	}
	in.inst = newInstitutionSubs(r.nc, in.handle)
	if err := in.inst.sync(r.auth.institutionMailboxes()); err != nil {
		in.stop(context.Background())
		return nil, fmt.Errorf("relay: ingest: %w", err)
	}
	// Each subscription has its own delivery goroutine; several let the
	// checks run on every core.
	for range max(2, runtime.GOMAXPROCS(0)) {
		sub, err := r.ncIn.QueueSubscribe(proto.IngestAll, ingestQueue, in.handleWalkIn)
		if err != nil {
			in.stop(context.Background())
			return nil, fmt.Errorf("relay: ingest: %w", err)
		}
		sub.SetPendingLimits(ingestPendingMsgs, ingestPendingBytes)
		in.subs = append(in.subs, sub)
	}
	for _, nc := range []*nats.Conn{r.nc, r.ncIn} {
		if err := nc.Flush(); err != nil {
			return nil, err
		}
	}
	if err := in.svc.start(context.Background()); err != nil {
		in.stop(context.Background())
		return nil, err
	}
	return in, nil
}

// stop drains the subscriptions (handling what is queued), stops the
// services and flushes what the handlers forwarded to JetStream.
func (in *ingest) stop(ctx context.Context) error {
	if in.stopBg != nil {
		in.stopBg()
		in.bg.Wait()
	}
	subs := append(in.subs, in.inst.all()...)
	closed := make([]<-chan nats.SubStatus, len(subs))
	for i, s := range subs {
		closed[i] = s.StatusChanged(nats.SubscriptionClosed)
		s.Drain()
	}
	var errs []error
	for _, c := range closed {
		select {
		case <-c:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("relay: ingest still draining: %w", ctx.Err()))
		}
		if len(errs) > 0 {
			break
		}
	}
	if in.holds != nil {
		errs = append(errs, in.holds.stop(ctx))
	}
	errs = append(errs, in.svc.stop(ctx))
	// What the drained handlers forwarded reaches the server before the
	// relay's connection closes; JetStream acknowledges it to the senders.
	fctx, cancel := context.WithTimeout(ctx, serviceTimeout)
	defer cancel()
	if err := in.r.nc.FlushWithContext(fctx); err != nil {
		errs = append(errs, fmt.Errorf("relay: flushing the ingest: %w", err))
	}
	return errors.Join(errs...)
}

// refusal is a publish the relay will not store.
type refusal struct {
	code      proto.Code
	msg       string
	challenge *proto.Challenge // with CodeAdmission
}

func refuse(code proto.Code, format string, args ...any) *refusal {
	return &refusal{code: code, msg: fmt.Sprintf(format, args...)}
}

// admitted is what the checks learned about an accepted message.
type admitted struct {
	subject  proto.Subject
	id       string // dedup key
	country  string
	priority string
	hops     string // a bridged envelope's proto.HeaderHops, stored with it
}

// handleWalkIn handles what the walk-in subscriptions receive, leaving
// the institutions' requests (which they receive too) to theirs.
func (in *ingest) handleWalkIn(m *nats.Msg) {
	if mbox, _, err := proto.ParseIngest(m.Subject); err == nil && in.inst.has(mbox) {
		return
	}
	in.handle(m)
}

func (in *ingest) handle(m *nats.Msg) {
	mt := in.r.metrics
	mbox, target, err := proto.ParseIngest(m.Subject)
	// Answer only on the sender's own reply prefix. The relay's connection
	// may publish anywhere; a reply subject chosen by the sender must not
	// let it write into a stream or onto another key's ingest prefix.
	if err != nil || !proto.IsReplyOf(m.Reply, mbox) {
		mt.refused.WithLabelValues(string(proto.CodeBadReply)).Inc()
		return
	}
	switch {
	case target == proto.FrameTarget:
		in.frame(m, mbox)
	case proto.IsService(target):
		in.service(m, mbox, target)
	case proto.IsHold(target):
		in.hold(m, mbox, target)
	default:
		in.store(m, mbox, target)
	}
}

// frame stores each part of a bridge's frame as if it had been published
// alone, answering each on its own reply subject (see proto.FrameTarget).
// Services and holds are not framed. Only bridges frame: their publishes
// are not rate-limited per key (bridge.go), so a frame changes nothing
// about what they may store; for a rate-limited key a frame would buy
// thousands of refusals for one message.
func (in *ingest) frame(m *nats.Msg, mbox routing.Mailbox) {
	if p := in.r.auth.principalByMailbox(mbox); p.role != keys.RoleBridge {
		in.refuse(m, refuse(proto.CodeForbidden, "only bridges of the directory send frames; publish these one by one"))
		return
	}
	parts, err := proto.ParseFrame(m.Data)
	if err != nil {
		in.refuse(m, refuse(proto.CodeMalformed, "%v", err))
		return
	}
	for i, part := range parts {
		pm := &nats.Msg{Subject: proto.Ingest(mbox, part.Target), Reply: proto.FramePartReply(m.Reply, i), Data: part.Data}
		if part.Target == proto.FrameTarget || proto.IsService(part.Target) || proto.IsHold(part.Target) {
			in.refuse(pm, refuse(proto.CodeBadTarget, "a frame carries stored messages only"))
			continue
		}
		if part.Hops > 0 {
			pm.Header = nats.Header{proto.HeaderHops: []string{strconv.Itoa(part.Hops)}}
		}
		in.store(pm, mbox, part.Target)
	}
}

// store checks a publish and hands it to JetStream, whose ack answers the
// sender.
func (in *ingest) store(m *nats.Msg, mbox routing.Mailbox, target string) {
	mt := in.r.metrics
	a, ref := in.check(m, mbox, target)
	if ref != nil {
		in.refuse(m, ref)
		return
	}
	mt.received.WithLabelValues(a.subject.Stream(), a.country, a.priority).Inc()
	msg := &nats.Msg{Subject: a.subject.String(), Reply: m.Reply, Data: m.Data, Header: nats.Header{jetstream.MsgIDHeader: []string{a.id}}}
	if a.hops != "" {
		msg.Header.Set(proto.HeaderHops, a.hops)
	}
	if err := in.r.nc.PublishMsg(msg); err != nil {
		in.refuse(m, refuse(proto.CodeUnavailable, "relay busy, send it again"))
	}
}

// refuse counts a refusal by its code and tells the sender, on the reply
// subject handle checked. Publishes and service requests share the
// answer's shape: {"error":{"code":…,"description":…}}.
func (in *ingest) refuse(m *nats.Msg, ref *refusal) {
	in.r.metrics.refused.WithLabelValues(string(ref.code)).Inc()
	in.r.log.Debug("refused", "code", ref.code)
	in.svc.replyJSON(m, &proto.Reply{Error: &proto.Error{Code: ref.code, Description: ref.msg, Challenge: ref.challenge}})
}

// service rate-limits and serves a service request.
func (in *ingest) service(m *nats.Msg, mbox routing.Mailbox, target string) {
	if !in.svcLim.Allow(mbox) {
		in.refuse(m, refuse(proto.CodeRateLimited, "too many requests; slow down"))
		return
	}
	svc, err := proto.ParseService(target)
	if err != nil {
		in.refuse(m, refuse(proto.CodeBadTarget, "no such service"))
		return
	}
	p := in.r.auth.principalByMailbox(mbox)
	if ref := in.svc.handle(m, p, svc); ref != nil {
		in.refuse(m, ref)
	}
}

// check runs the admission checks, cheapest first.
func (in *ingest) check(m *nats.Msg, mbox routing.Mailbox, target string) (*admitted, *refusal) {
	if max := int(in.r.cfg.Storage.MaxMessageSize); len(m.Data) > max {
		return nil, refuse(proto.CodeTooLarge, "%d bytes, the limit is %d", len(m.Data), max)
	}
	p := in.r.auth.principalByMailbox(mbox)
	lim := in.lim
	if p.role != keys.RoleDefender {
		lim = in.instLim
	}
	if p.role != keys.RoleBridge && !lim.Allow(mbox) { // a bridge's rate: see bridge.go
		return nil, refuse(proto.CodeRateLimited, "over the publish rate of this connection key; slow down")
	}
	subj, err := proto.ParseTarget(target)
	if err != nil {
		return nil, refuse(proto.CodeBadTarget, "no stream takes that subject")
	}
	switch subj.Kind {
	case proto.KindAlert, proto.KindShare:
		if p.role != keys.RoleDefender && p.role != keys.RoleMission {
			return nil, refuse(proto.CodeForbidden, "a %s may not publish alerts", p.role)
		}
		a, ref := in.checkEnvelope(m.Data, subj)
		if ref == nil && p.role == keys.RoleDefender {
			ref = in.admitWalkIn(m, mbox, subj)
		}
		return a, ref
	case proto.KindMailbox:
		if p.role == keys.RoleDefender {
			return nil, refuse(proto.CodeForbidden, "a defender may not publish to mailboxes")
		}
		if p.role == keys.RoleBridge && isPublic(m.Data) {
			return in.checkReceipt(p, m.Data, subj) // a receipt to the sender
		}
		if p.role == keys.RoleBridge {
			return in.checkCarriedEnvelope(m.Data, subj) // a partner's answer
		}
		return in.checkEnvelope(m.Data, subj)
	case proto.KindBroadcast:
		return in.checkBroadcast(p, m.Data, subj)
	case proto.KindAck:
		if p.role == keys.RoleBridge {
			return in.checkCarriedAck(m.Data, subj)
		}
		return in.checkAck(p, m.Data, subj)
	case proto.KindBridged, proto.KindReturnMailbox, proto.KindReturnAck, proto.KindReceipt:
		return in.checkBridge(p, m, subj)
	}
	return nil, refuse(proto.CodeBadTarget, "no stream takes that subject")
}

// checkEnvelope checks an envelope's structure and that its header agrees
// with the subject it is stored under (country and priority, when the
// subject names them).
func (in *ingest) checkEnvelope(data []byte, subj proto.Subject) (*admitted, *refusal) {
	info, err := envelope.Parse(data)
	if err != nil {
		return nil, envelopeRefusal(err)
	}
	h := info.Header
	if subj.Country != "" && (h.Country != subj.Country || h.Priority != subj.Priority) {
		return nil, refuse(proto.CodeMismatch, "subject says %s/%s, the envelope header says %s/%s", subj.Country, subj.Priority, h.Country, h.Priority)
	}
	if r := in.fresh(h.Created); r != nil {
		return nil, r
	}
	return &admitted{subject: subj, id: dedupKey(h.ID.String(), data), country: h.Country, priority: h.Priority.String()}, nil
}

// fresh refuses a created time outside [now − dedup window, now + skew].
// Within the window JetStream's dedup drops a replayed id; outside it this
// check does, so the relay stores no envelope twice.
func (in *ingest) fresh(created time.Time) *refusal {
	now := in.r.clock.Now()
	switch {
	case created.After(now.Add(maxClockSkew)):
		return refuse(proto.CodeStale, "created %s, in the future (check the clock)", created.Format(time.RFC3339))
	case created.Before(now.Add(-in.r.cfg.Storage.DedupWindow)):
		return refuse(proto.CodeStale, "created %s, older than the %s window", created.Format(time.RFC3339), in.r.cfg.Storage.DedupWindow)
	}
	return nil
}

func envelopeRefusal(err error) *refusal {
	switch {
	case errors.Is(err, envelope.ErrTooLarge):
		return refuse(proto.CodeTooLarge, "%v", err)
	case errors.Is(err, envelope.ErrUnsupportedVersion):
		return refuse(proto.CodeVersion, "%v", err)
	}
	return refuse(proto.CodeMalformed, "%v", err)
}

// checkBroadcast admits a mission's signed public broadcast for a country
// it covers.
func (in *ingest) checkBroadcast(p *principal, data []byte, subj proto.Subject) (*admitted, *refusal) {
	cc := subj.Country
	if p.role != keys.RoleMission {
		return nil, refuse(proto.CodeForbidden, "only missions broadcast")
	}
	if !slices.Contains(p.countries, cc) {
		return nil, refuse(proto.CodeForbidden, "this mission does not cover %q", cc)
	}
	pm, err := envelope.ParsePublic(data)
	if err != nil {
		return nil, envelopeRefusal(err)
	}
	if pm.Country != cc {
		return nil, refuse(proto.CodeMismatch, "subject says %s, the broadcast says %s", cc, pm.Country)
	}
	if !pm.Signer.Equal(p.identity.Fingerprint()) {
		return nil, refuse(proto.CodeBadSig, "broadcast is not signed by the publishing mission")
	}
	if err := pm.Verify(p.identity); err != nil {
		return nil, refuse(proto.CodeBadSig, "%v", err)
	}
	if r := in.fresh(pm.Created); r != nil {
		return nil, r
	}
	return &admitted{subject: subj, id: dedupKey(pm.ID.String(), data), country: cc}, nil
}

// checkAck admits a signed ack token from a mission or partner.
func (in *ingest) checkAck(p *principal, data []byte, subj proto.Subject) (*admitted, *refusal) {
	// Headquarters acknowledge too: an escalation's second tier reaches
	// them, and their ack stops the third.
	if p.role != keys.RoleMission && p.role != keys.RolePartner && p.role != keys.RoleHeadquarters {
		return nil, refuse(proto.CodeForbidden, "only missions, partners and headquarters acknowledge")
	}
	alert := subj.ID
	tok, err := envelope.ParseAck(data)
	if err != nil {
		return nil, envelopeRefusal(err)
	}
	if tok.Alert != alert {
		return nil, refuse(proto.CodeMismatch, "the subject and the token name different alerts")
	}
	if err := tok.Verify(p.identity); err != nil {
		return nil, refuse(proto.CodeBadSig, "%v", err)
	}
	if r := in.fresh(tok.Created); r != nil {
		return nil, r
	}
	// The dedup key names the alert, the signer and the token's bytes.
	return &admitted{subject: subj, id: dedupKey(alert.String()+"."+tok.Signer.Short(), data)}, nil
}
