package relay

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/country"
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
	r    *Relay
	subs []*nats.Subscription
	svc  *services
	// Token buckets per connection key: walk-in defenders, directory
	// institutions, and service requests (fetches, acks) each have their own.
	lim, instLim, svcLim *limiter
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

func startIngest(r *Relay) (*ingest, error) {
	l := r.cfg.Limits
	in := &ingest{r: r, svc: newServices(r),
		lim:     newLimiter(l.PublishRate, l.PublishBurst, r.now),
		instLim: newLimiter(l.InstitutionPublishRate, l.InstitutionPublishBurst, r.now),
		svcLim:  newLimiter(l.ServiceRate, l.ServiceBurst, r.now)}

	// Each subscription has its own delivery goroutine; several let the
	// checks run on every core.
	for range max(2, runtime.GOMAXPROCS(0)) {
		sub, err := r.nc.QueueSubscribe(proto.IngestAll, ingestQueue, in.handle)
		if err != nil {
			in.stop(context.Background())
			return nil, fmt.Errorf("relay: ingest: %w", err)
		}
		sub.SetPendingLimits(ingestPendingMsgs, ingestPendingBytes)
		in.subs = append(in.subs, sub)
	}
	if err := r.nc.Flush(); err != nil {
		return nil, err
	}
	return in, nil
}

// stop drains the subscriptions (handling what is queued), stops the
// services and flushes what the handlers forwarded to JetStream.
func (in *ingest) stop(ctx context.Context) {
	closed := make([]<-chan nats.SubStatus, len(in.subs))
	for i, s := range in.subs {
		closed[i] = s.StatusChanged(nats.SubscriptionClosed)
		s.Drain()
	}
	for _, c := range closed {
		select {
		case <-c:
		case <-ctx.Done():
			return
		}
	}
	in.svc.stop(ctx)
	// What the drained handlers forwarded reaches the server before the
	// relay's connection closes; JetStream acknowledges it to the senders.
	in.r.nc.FlushWithContext(ctx)
}

// refusal is a publish the relay will not store.
type refusal struct {
	code proto.Code
	msg  string
}

func refuse(code proto.Code, format string, args ...any) *refusal {
	return &refusal{code: code, msg: fmt.Sprintf(format, args...)}
}

// admitted is what the checks learned about an accepted message.
type admitted struct {
	stored   string // stream subject
	stream   string
	id       string // dedup key
	country  string
	priority string
}

func (in *ingest) handle(m *nats.Msg) {
	mt := in.r.metrics
	mbox, target, ok := splitIngest(m.Subject)
	// Answer only on the sender's own inbox. The relay's connection may
	// publish anywhere; a reply subject chosen by the sender must not let
	// it write into a stream or onto another key's ingest prefix.
	if !ok || !strings.HasPrefix(m.Reply, proto.InboxPrefix(mbox)+".") {
		mt.refused.WithLabelValues(string(proto.CodeBadReply)).Inc()
		return
	}
	if strings.HasPrefix(target, "svc.") {
		in.service(m, mbox, target)
		return
	}
	a, ref := in.check(m, mbox, target)
	if ref != nil {
		in.refuse(m, ref)
		return
	}
	mt.received.WithLabelValues(a.stream, a.country, a.priority).Inc()
	msg := &nats.Msg{Subject: a.stored, Reply: m.Reply, Data: m.Data, Header: nats.Header{jetstream.MsgIDHeader: []string{a.id}}}
	if err := in.r.nc.PublishMsg(msg); err != nil {
		in.refuse(m, refuse(proto.CodeUnavailable, "relay busy, send it again"))
	}
}

// refuse counts a refusal by its code and tells the sender, on the inbox
// handle checked the reply subject to be. Publishes and service requests
// share the answer's shape: {"error":{"code":…,"description":…}}.
func (in *ingest) refuse(m *nats.Msg, ref *refusal) {
	in.r.metrics.refused.WithLabelValues(string(ref.code)).Inc()
	in.r.log.Debug("refused", "code", ref.code)
	in.svc.replyJSON(m, &proto.Reply{Error: &proto.Error{Code: ref.code, Description: ref.msg}})
}

// splitIngest splits bcn.in.<mailbox>.<target>.
func splitIngest(subject string) (mbox, target string, ok bool) {
	mbox, stored, ok := proto.ParseIngest(subject)
	if !ok || len(mbox) != 2*routing.MailboxSize {
		return "", "", false
	}
	return mbox, strings.TrimPrefix(stored, "bcn."), true
}

// service rate-limits and serves a service request.
func (in *ingest) service(m *nats.Msg, mbox, target string) {
	if !in.svcLim.Allow(mbox) {
		in.refuse(m, refuse(proto.CodeRateLimited, "too many requests; slow down"))
		return
	}
	p := in.r.auth.principalByMailbox(mbox)
	if ref := in.svc.handle(m, p, target); ref != nil {
		in.refuse(m, ref)
	}
}

// check runs the admission checks, cheapest first.
func (in *ingest) check(m *nats.Msg, mbox, target string) (*admitted, *refusal) {
	stored := "bcn." + target
	if max := int(in.r.cfg.Storage.MaxMessageSize); len(m.Data) > max {
		return nil, refuse(proto.CodeTooLarge, "%d bytes, the limit is %d", len(m.Data), max)
	}
	p := in.r.auth.principalByMailbox(mbox)
	lim := in.lim
	if p.role != keys.RoleDefender {
		lim = in.instLim
	}
	if !lim.Allow(mbox) {
		return nil, refuse(proto.CodeRateLimited, "over the publish rate of this connection key; slow down")
	}
	tok := strings.Split(stored, ".")
	switch {
	case len(tok) == 4 && (tok[1] == "to" || tok[1] == "share"):
		if p.role != keys.RoleDefender && p.role != keys.RoleMission {
			return nil, refuse(proto.CodeForbidden, "a %s may not publish alerts", p.role)
		}
		stream := proto.StreamAlerts
		if tok[1] == "share" {
			stream = proto.StreamShared
		}
		return in.checkEnvelope(m.Data, stored, stream, tok[2], tok[3])
	case len(tok) == 3 && tok[1] == "mbox":
		if p.role == keys.RoleDefender {
			return nil, refuse(proto.CodeForbidden, "a defender may not publish to mailboxes")
		}
		if _, err := routing.ParseMailbox(tok[2]); err != nil {
			return nil, refuse(proto.CodeBadTarget, "bad mailbox in subject")
		}
		return in.checkEnvelope(m.Data, stored, proto.StreamMailbox, "", "")
	case len(tok) == 3 && tok[1] == "bcast":
		return in.checkBroadcast(p, m.Data, stored, tok[2])
	case len(tok) == 3 && tok[1] == "ack":
		return in.checkAck(p, m.Data, stored, tok[2])
	}
	return nil, refuse(proto.CodeBadTarget, "no stream takes that subject")
}

// checkEnvelope checks an envelope's structure and that its header agrees
// with the subject it is stored under (country and priority, when the
// subject names them) and is fresh.
func (in *ingest) checkEnvelope(data []byte, stored, stream, cc, prio string) (*admitted, *refusal) {
	info, err := envelope.Parse(data)
	if err != nil {
		return nil, envelopeRefusal(err)
	}
	h := info.Header
	if cc != "" && (h.Country != cc || h.Priority.String() != prio) {
		return nil, refuse(proto.CodeMismatch, "subject says %s/%s, the envelope header says %s/%s", cc, prio, h.Country, h.Priority)
	}
	if r := in.fresh(h.Created); r != nil {
		return nil, r
	}
	return &admitted{stored: stored, stream: stream, id: h.ID.String(), country: h.Country, priority: h.Priority.String()}, nil
}

// fresh refuses a created time outside [now − dedup window, now + skew].
// Within the window JetStream's dedup drops a replayed id; outside it this
// check does, so the relay stores no envelope twice.
func (in *ingest) fresh(created time.Time) *refusal {
	now := in.r.now()
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
func (in *ingest) checkBroadcast(p *principal, data []byte, stored, cc string) (*admitted, *refusal) {
	if p.role != keys.RoleMission {
		return nil, refuse(proto.CodeForbidden, "only missions broadcast")
	}
	if !country.Known(cc) || !contains(p.countries, cc) {
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
	return &admitted{stored: stored, stream: proto.StreamBroadcasts, id: pm.ID.String(), country: cc}, nil
}

// checkAck admits a signed ack token from a mission or partner.
func (in *ingest) checkAck(p *principal, data []byte, stored, id string) (*admitted, *refusal) {
	if p.role != keys.RoleMission && p.role != keys.RolePartner {
		return nil, refuse(proto.CodeForbidden, "only missions and partners acknowledge")
	}
	alert, err := routing.ParseID(id)
	if err != nil {
		return nil, refuse(proto.CodeBadTarget, "bad alert id in subject")
	}
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
	// One ack per alert per signer: the dedup key names both.
	return &admitted{stored: stored, stream: proto.StreamAcks, id: id + "." + tok.Signer.Short()}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
