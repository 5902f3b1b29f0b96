package relay

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// The relay's side of the bridge. On the sending network's relay, a
// bridge (a bridge in the directory) reads SHARED, one durable consumer
// per partner filtered to the countries the directory gives that partner,
// and nothing else; it stores signed receipts (in the sender's mailbox
// and in RECEIPTS) and carries partners' answers back (into mailboxes and
// ACKS, where an ack token must be signed by a partner of the directory).
//
// On a partner government's relay, a bridge its own directory lists
// delivers shared envelopes into BRIDGED under its own id; the partner
// (a partner in that directory) reads them for its countries, and puts
// its answers in RETURN under the bridge's id for the bridge to carry
// back. Nothing a bridge delivers is stored where a bridge reads.
//
// A bridge's publishes are not rate-limited per key: it publishes one
// envelope per shared alert and one receipt per partner that stored it,
// so its rate is bounded by what defenders and missions shared, and a
// catch-up after a partner's outage must not take hours.

// checkBridge admits the bridge's own kinds of publish.
func (in *ingest) checkBridge(p *principal, m *nats.Msg, subj proto.Subject) (*admitted, *refusal) {
	switch subj.Kind {
	case proto.KindBridged:
		if p.role != keys.RoleBridge || subj.Bridge != p.id {
			return nil, refuse(proto.CodeForbidden, "only bridge %q delivers under its id", subj.Bridge)
		}
		hops, err := strconv.Atoi(m.Header.Get(proto.HeaderHops))
		if err != nil || hops < 1 || hops > proto.MaxHops {
			return nil, refuse(proto.CodeForbidden, "a bridged envelope crosses 1 to %d bridges; this one says %q", proto.MaxHops, m.Header.Get(proto.HeaderHops))
		}
		if subj.Digest != proto.EnvelopeDigest(m.Data) {
			return nil, refuse(proto.CodeMismatch, "the subject names other bytes than the envelope's")
		}
		a, ref := in.checkBridgedEnvelope(m.Data, subj)
		if ref != nil {
			return nil, ref
		}
		a.hops = strconv.Itoa(hops)
		return a, nil
	case proto.KindReturnMailbox, proto.KindReturnAck:
		if p.role != keys.RolePartner {
			return nil, refuse(proto.CodeForbidden, "only partners answer through a bridge")
		}
		if !in.isBridge(subj.Bridge) {
			return nil, refuse(proto.CodeForbidden, "no bridge %q in this relay's directory", subj.Bridge)
		}
		if subj.Kind == proto.KindReturnAck {
			return in.checkAck(p, m.Data, subj)
		}
		a, ref := in.checkEnvelope(m.Data, subj)
		if ref == nil {
			a.id = subj.Bridge + "." + a.id
		}
		return a, ref
	case proto.KindReceipt:
		if p.role != keys.RoleBridge {
			return nil, refuse(proto.CodeForbidden, "only bridges write receipts")
		}
		a, ref := in.checkReceipt(p, m.Data, subj)
		if ref == nil {
			// One receipt per envelope and partner, whoever sends it
			// again: the subject names both.
			a.id = subj.Target()
		}
		return a, ref
	}
	return nil, refuse(proto.CodeBadTarget, "no stream takes that subject")
}

// checkBridgedEnvelope checks an envelope a bridge delivers: well formed,
// its header matching the subject (country, priority and id), and created
// within the retention (it may have waited in SHARED while this relay was
// out of reach, longer than the dedup window) and not in the future. A
// copy delivered again is a duplicate within the dedup window; after it,
// BRIDGED's one message per subject refuses it, and the bridge reads that
// refusal as "stored already" ([proto.Error.AlreadyStored]): the message
// id is the key, however long ago the first delivery was.
func (in *ingest) checkBridgedEnvelope(data []byte, subj proto.Subject) (*admitted, *refusal) {
	// The dedup key names the bytes (dedupKey), as everywhere.
	info, err := envelope.Parse(data)
	if err != nil {
		return nil, envelopeRefusal(err)
	}
	h := info.Header
	if h.Country != subj.Country || h.Priority != subj.Priority || h.ID != subj.ID {
		return nil, refuse(proto.CodeMismatch, "the subject and the envelope header disagree")
	}
	if r := in.withinRetention(h.Created); r != nil {
		return nil, r
	}
	return &admitted{subject: subj, id: dedupKey(h.ID.String(), data), country: h.Country, priority: h.Priority.String()}, nil
}

// withinRetention refuses a created time in the future or older than the
// relay keeps anything. What a bridge carries may have waited, at the
// other relay, longer than the dedup window; within it a copy carried
// again is a duplicate, past it the reader's seen-set drops it.
func (in *ingest) withinRetention(created time.Time) *refusal {
	now := in.r.clock.Now()
	if created.After(now.Add(maxClockSkew)) || created.Before(now.Add(-in.r.cfg.Storage.Retention)) {
		return refuse(proto.CodeStale, "created %s, outside this relay's retention", created.Format(time.RFC3339))
	}
	return nil
}

// checkCarriedEnvelope admits a partner's sealed answer a bridge carries
// back to a mailbox: well formed, and created within the retention (see
// withinRetention).
func (in *ingest) checkCarriedEnvelope(data []byte, subj proto.Subject) (*admitted, *refusal) {
	info, err := envelope.Parse(data)
	if err != nil {
		return nil, envelopeRefusal(err)
	}
	if r := in.withinRetention(info.Created); r != nil {
		return nil, r
	}
	return &admitted{subject: subj, id: dedupKey(info.ID.String(), data), country: info.Country, priority: info.Priority.String()}, nil
}

// checkReceipt admits a bridge's signed receipt: a public message signed
// by the publishing bridge. The relay does not read the body (a
// message.Receipt); readers verify the signature and the body against
// their directory, as they do for every statement they rely on.
func (in *ingest) checkReceipt(p *principal, data []byte, subj proto.Subject) (*admitted, *refusal) {
	pm, err := envelope.ParsePublic(data)
	if err != nil {
		return nil, envelopeRefusal(err)
	}
	if !pm.Signer.Equal(p.identity.Fingerprint()) {
		return nil, refuse(proto.CodeBadSig, "a receipt is signed by the bridge that stores it")
	}
	if r := in.fresh(pm.Created); r != nil {
		return nil, r
	}
	return &admitted{subject: subj, id: dedupKey(pm.ID.String(), data), country: pm.Country}, nil
}

// isPublic reports whether data is a public message rather than an
// envelope, by its magic: a bridge's mailbox publish is one of the two.
func isPublic(data []byte) bool {
	_, err := envelope.ParsePublic(data)
	return err == nil
}

// checkCarriedAck admits an ack token a bridge carries back from a
// partner: it must be signed by a partner of this relay's directory, and
// created within the retention (see withinRetention). One per alert and
// signer, as every ack token.
func (in *ingest) checkCarriedAck(data []byte, subj proto.Subject) (*admitted, *refusal) {
	tok, err := envelope.ParseAck(data)
	if err != nil {
		return nil, envelopeRefusal(err)
	}
	if tok.Alert != subj.ID {
		return nil, refuse(proto.CodeMismatch, "the subject and the token name different alerts")
	}
	var signer *keys.PublicIdentity
	if d := in.r.auth.directory(); d != nil {
		for _, pt := range d.Partners {
			if pt.Identity.Fingerprint().Equal(tok.Signer) {
				signer = pt.Identity
			}
		}
	}
	if signer == nil {
		return nil, refuse(proto.CodeForbidden, "a bridge carries back only ack tokens signed by a partner in the directory")
	}
	if err := tok.Verify(signer); err != nil {
		return nil, refuse(proto.CodeBadSig, "%v", err)
	}
	if r := in.withinRetention(tok.Created); r != nil {
		return nil, r
	}
	return &admitted{subject: subj, id: dedupKey(tok.Alert.String()+"."+tok.Signer.Short(), data)}, nil
}

func (in *ingest) isBridge(id string) bool {
	d := in.r.auth.directory()
	return d != nil && slices.ContainsFunc(d.Bridges, func(b keys.Bridge) bool { return b.ID == id })
}

// bridgeConsumer returns the durable consumer that serves src to p, or a
// refusal if p may not read src.
func (s *services) bridgeConsumer(ctx context.Context, p *principal, src proto.Source) (consumerHandle, *refusal) {
	var stream, name string
	var filters []string
	switch {
	case src.Shared != "":
		if p.role != keys.RoleBridge {
			return nil, refuse(proto.CodeForbidden, "only bridges read what is shared")
		}
		d := s.r.auth.directory()
		var pt *keys.Partner
		if d != nil {
			if i := slices.IndexFunc(d.Partners, func(x keys.Partner) bool { return x.ID == src.Shared }); i >= 0 {
				pt = &d.Partners[i]
			}
		}
		if pt == nil {
			return nil, refuse(proto.CodeForbidden, "no partner %q in the directory", src.Shared)
		}
		stream, name = proto.StreamShared, proto.SharedConsumer(p.id, pt.ID)
		for _, cc := range pt.Countries {
			filters = append(filters, proto.SharedFilter(cc))
		}
	case src.Bridged:
		if p.role != keys.RolePartner || !slices.Contains(p.countries, src.Country) {
			return nil, refuse(proto.CodeForbidden, "only a partner covering that country reads what bridges delivered for it")
		}
		stream, name, filters = proto.StreamBridged, proto.BridgedConsumer(p.id, src.Country), []string{proto.BridgedFilter(src.Country)}
	case src.Return:
		if p.role != keys.RoleBridge {
			return nil, refuse(proto.CodeForbidden, "only bridges read what goes back through them")
		}
		stream, name, filters = proto.StreamReturn, proto.ReturnConsumer(p.id), []string{proto.ReturnFilter(p.id)}
	default:
		return nil, refuse(proto.CodeBadTarget, "no such source")
	}
	c, err := s.durable(ctx, stream, name, filters)
	if err != nil {
		s.r.log.Warn("bridge consumer", "stream", stream, "err", err)
		return nil, refuse(proto.CodeUnavailable, "the relay cannot read %s now; try again", stream)
	}
	return c, nil
}

// durable returns the durable consumer name on stream with filters,
// creating it, or updating its filters when the directory changed them
// (the consumer keeps its position).
func (s *services) durable(ctx context.Context, stream, name string, filters []string) (consumerHandle, error) {
	key := name + "|" + strings.Join(filters, ",")
	s.consMu.Lock()
	c, ok := s.cons[key]
	s.consMu.Unlock()
	if ok {
		return c, nil
	}
	c, err := s.r.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: name, FilterSubjects: filters, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: s.r.cfg.Storage.RedeliverAfter,
		MaxAckPending:     consumerMaxAckPending,
		InactiveThreshold: s.r.cfg.Storage.Retention,
	})
	if err != nil {
		return nil, err
	}
	s.consMu.Lock()
	if len(s.cons) >= maxCachedConsumers {
		s.cons = map[string]consumerHandle{}
	}
	s.cons[key] = c
	s.consMu.Unlock()
	return c, nil
}

// mayAckBridge reports whether consumer cons on stream is one of p's
// bridge sources.
func mayAckBridge(p *principal, stream, cons string) bool {
	switch p.role {
	case keys.RoleBridge:
		return stream == proto.StreamShared && strings.HasPrefix(cons, proto.SharedConsumer(p.id, "")) ||
			stream == proto.StreamReturn && cons == proto.ReturnConsumer(p.id)
	case keys.RolePartner:
		if stream == proto.StreamBridged {
			for _, cc := range p.countries {
				if cons == proto.BridgedConsumer(p.id, cc) {
					return true
				}
			}
		}
	}
	return false
}

// fetchLimit is how many long-polls p may have in flight: a bridge polls
// once per partner.
func (s *services) fetchLimit(p *principal) int {
	if p.role == keys.RoleBridge {
		if d := s.r.auth.directory(); d != nil {
			return maxFetchesPerMailbox + len(d.Partners)
		}
	}
	return maxFetchesPerMailbox
}

// rollUp answers an institution with the ack tokens and receipts the
// relay holds for one alert, unverified: the reader verifies them.
func (s *services) rollUp(m *nats.Msg, p *principal, id routing.ID) *refusal {
	if p.role == keys.RoleDefender {
		return refuse(proto.CodeForbidden, "only institutions of the directory read roll-ups")
	}
	ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
	defer cancel()
	var batch []fetchedMsg
	for _, q := range []struct{ stream, subject string }{
		{proto.StreamAcks, proto.AckOf(id).String()},
		{proto.StreamReceipts, proto.ReceiptFilter(id)},
	} {
		msgs, err := s.subjectMsgs(ctx, q.stream, q.subject, proto.MaxRollUp-len(batch))
		if err != nil {
			return refuse(proto.CodeUnavailable, "roll-up: %v", err)
		}
		batch = append(batch, msgs...)
	}
	s.send(m, batch)
	return nil
}

// subjectMsgs reads up to max messages on subject (a filter may hold
// wildcards) from a stream without direct gets, one stream API request
// per message: a roll-up holds a handful.
func (s *services) subjectMsgs(ctx context.Context, stream, subject string, max int) ([]fetchedMsg, error) {
	st, err := s.r.js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	var out []fetchedMsg
	for seq := uint64(1); len(out) < max; {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, fetchedMsg{data: raw.Data, subject: raw.Subject})
		seq = raw.Sequence + 1
	}
	return out, nil
}
