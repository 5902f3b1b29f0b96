package relay_test

// End-to-end tests of who may do what on a relay: a real relay (relaytest)
// and real NATS connections over TCP. Clients have no JetStream rights at
// all: they publish only under their own ingest prefix, subscribe only
// under their own inbox prefix, and read through the relay's services,
// which own every consumer and scope each read by the mailbox in the
// request's subject. A refusal is established by observing it — a
// permission violation naming the exact subject on the connection's error
// channel, a service's refusal code, or an authorization error at connect —
// never by the absence of an error (NATS.md, pitfall 6).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// waitFor bounds every wait for something that must happen; reaching it is
// a failure, never a pass.
const waitFor = 10 * time.Second

func TestWalkInDefenderPublishesForAnyCountry(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	ug := sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "walk-in ug")
	tz := sealAlert(t, w, envelope.NewHeader("tz", routing.High), "walk-in tz")
	for i, c := range []struct {
		target string
		env    []byte
	}{{proto.AlertTarget("ug", routing.Urgent), ug}, {proto.AlertTarget("tz", routing.High), tz}} {
		rep := mustStore(t, d, c.target, c.env)
		if rep.Stream != proto.StreamAlerts || rep.Seq != uint64(i+1) || rep.Duplicate {
			t.Fatalf("%s: reply %+v, want stream ALERTS seq %d", c.target, rep, i+1)
		}
	}
	if got := streamMsgs(t, r)[proto.StreamAlerts]; got != 2 {
		t.Fatalf("ALERTS holds %d messages, want 2", got)
	}
	// The stored bytes are what was sent, under the subject of the target;
	// the UG mission reads the UG alert and only it.
	m := connectMission(t, w, r, "nl-kampala")
	msgs := fetchAll(t, m, proto.SvcFetchAlerts("ug"), 1)
	if msgs[0].Subject != proto.AlertSubject("ug", routing.Urgent) || string(msgs[0].Data) != string(ug) {
		t.Fatalf("mission read %q (%d bytes), want the ug alert on %s", msgs[0].Subject, len(msgs[0].Data), proto.AlertSubject("ug", routing.Urgent))
	}
	noMoreErrs(t, d)
	noMoreErrs(t, m)
}

func TestDefenderSubscriptionsRefused(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	other := relaytest.Connect(t, r.ClientURL(), nil)
	ob := other.Mailbox

	type refused struct {
		sub  *nats.Subscription
		want string
	}
	var subs []refused
	for _, subj := range []string{
		"bcn.to.>", "bcn.to.ug.urgent", proto.MailboxSubject(ob), "bcn.mbox.>", ">", "*.>", "bcn.>", "bcn.*.>",
		proto.ReplyPrefix(ob) + ".>", "bcn.inbox.>", "bcn.in.>", proto.IngestWildcard(ob), "bcn.bcast.>",
		proto.MailboxNotices, // the MAILBOX stream's notices: when which mailbox gets mail
		"$JS.>", "$JS.API.>", "$JS.ACK.>", "_INBOX.>", "_INBOX.*",
	} {
		sub, err := d.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		wantViolation(t, d, subViolation(subj))
		subs = append(subs, refused{sub, subj})
	}
	for _, q := range []struct{ subj, queue string }{
		{"bcn.to.>", "q"}, {proto.ReplyPrefix(ob) + ".>", "q"}, {"bcn.to.ug.urgent", "beacon-ingest"},
		{proto.IngestAll, "beacon-ingest"}, // the relay's own ingest queue group
	} {
		sub, err := d.QueueSubscribeSync(q.subj, q.queue)
		if err != nil {
			t.Fatal(err)
		}
		wantViolation(t, d, queueViolation(q.subj, q.queue))
		subs = append(subs, refused{sub, q.subj + " queue " + q.queue})
	}

	// Traffic every refused subscription would have matched: another
	// defender's alert (bcn.in.… and bcn.to.…, its reply on its inbox), a
	// mission's reply to that defender's mailbox (bcn.mbox.…), and the
	// mission's fetch and ack, which make the relay's connection call the
	// JetStream API ($JS.API.…, replies on _INBOX.…), deliver the alert
	// onto the mission's inbox and acknowledge it ($JS.ACK.…).
	mustStore(t, other, proto.AlertTarget("ug", routing.Urgent), sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "other"))
	m := connectMission(t, w, r, "nl-kampala")
	mustStore(t, m, proto.MailboxTarget(ob), sealToDefender(t, w, "nl-kampala", newIdentity(t), "reply"))
	fetchAll(t, m, proto.SvcFetchAlerts("ug"), 1)
	// All of that happened before d's own request that follows, so anything
	// it matched was written to d's socket before the reply to that request.
	mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "barrier"))
	for _, s := range subs {
		if n, _, err := s.sub.Pending(); err != nil || n != 0 {
			t.Errorf("refused subscription %s received %d messages (err %v)", s.want, n, err)
		}
	}
	noMoreErrs(t, d)
}

func TestDefenderDirectPublishRefused(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	other := relaytest.Connect(t, r.ClientURL(), nil)
	env := sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "direct")
	before := streamMsgs(t, r)
	for _, subj := range []string{
		proto.AlertSubject("ug", routing.Urgent),                             // bypassing the ingest
		proto.Ingest(other.Mailbox, proto.AlertTarget("ug", routing.Urgent)), // as another defender
		"bcn.share.ug.urgent", proto.MailboxSubject(other.Mailbox), "bcn.bcast.ug", "bcn.ack." + routing.NewID().String(),
		"bcn.svc.hold.x", proto.ReplyPrefix(other.Mailbox) + ".x",
	} {
		if err := d.Conn.Publish(subj, env); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, d, pubViolation(subj))
	}
	// The server dropped each publish when it refused it; the relay still
	// serves the same defender.
	mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), env)
	after := streamMsgs(t, r)
	before[proto.StreamAlerts]++
	if !mapsEqual(before, after) {
		t.Fatalf("streams changed: before (plus the one valid alert) %v, after %v", before, after)
	}
}

// TestDefenderJetStreamAPIRefused: no client has any JetStream subject. For
// a walk-in defender and for a mission alike, every $JS subject — the whole
// API on every stream, the relay's own consumers by name (theirs included),
// acks in both token formats, the real ack tokens the relay handed them,
// flow control, advisories, wildcards — is a publish permission violation,
// and afterwards every stream and every consumer is as it was.
func TestDefenderJetStreamAPIRefused(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	other := relaytest.Connect(t, r.ClientURL(), nil)
	nl := connectMission(t, w, r, "nl-kampala")
	de := connectMission(t, w, r, "de-nairobi")
	own, ob := d.Mailbox, other.Mailbox

	// Something to protect in each stream a client reaches, and the relay's
	// consumers reading it: two UG alerts and a KE one, two replies for d
	// and one for the other defender, a broadcast.
	ug := [][]byte{sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "keep 1"),
		sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "keep 2")}
	ke := sealAlert(t, w, envelope.NewHeader("ke", routing.Urgent), "keep ke")
	for _, env := range ug {
		mustStore(t, other, proto.AlertTarget("ug", routing.Urgent), env)
	}
	mustStore(t, other, proto.AlertTarget("ke", routing.Urgent), ke)
	private := sealToDefender(t, w, "nl-kampala", newIdentity(t), "private")
	mustStore(t, nl, proto.MailboxTarget(ob), private)
	mine := [][]byte{sealToDefender(t, w, "nl-kampala", newIdentity(t), "mine 1"), sealToDefender(t, w, "nl-kampala", newIdentity(t), "mine 2")}
	for _, env := range mine {
		mustStore(t, nl, proto.MailboxTarget(own), env)
	}
	mustStore(t, nl, proto.BroadcastTarget("ug"), mustSignPublic(t, "ug", "news", w.Keyrings["nl-kampala"].Identity, time.Now()))
	// d and the UG mission hold a message each, unacknowledged, and so a
	// real ack token; the other two consumers exist and hold one each.
	dFetched := fetchOne(t, d, proto.SvcFetchMbox, mine[0])
	dTok := dFetched.Settle
	nlTok := fetchOne(t, nl, proto.SvcFetchAlerts("ug"), ug[0]).Settle
	wantCount(t, other, "svc.pending.mbox", 1)
	wantCount(t, de, proto.SvcPendingAlerts("ke"), 1)
	before := streamStates(t, r)

	// Mailboxes have no consumers (they are read with direct gets, and
	// the relay's mailbox tail follows the stream's notices).
	consumers := []consumerRef{
		{proto.StreamAlerts, proto.AlertConsumer("nl-kampala", "ug"), proto.AlertFilter("ug")},
		{proto.StreamAlerts, proto.AlertConsumer("de-nairobi", "ke"), proto.AlertFilter("ke")},
	}
	subjects := jetStreamSubjects(consumers, dTok, nlTok, v1Ack(t, nlTok))
	for _, c := range []*relaytest.Conn{d, nl} {
		inbox := proto.ReplyPrefix(c.Mailbox) + ".api"
		for _, subj := range subjects {
			body := []byte("{}")
			if strings.HasPrefix(subj, "$JS.ACK.") {
				body = []byte("+ACK")
			}
			if err := c.PublishRequest(subj, inbox, body); err != nil {
				t.Fatal(err)
			}
			wantViolation(t, c, pubViolation(subj))
		}
	}

	if after := streamStates(t, r); !mapsEqual(before, after) {
		t.Fatalf("streams changed: before %v, after %v", before, after)
	}
	// Every reader holds what it held: d and the mission still owe their
	// settles (the fetched message waits for it; the next one comes), and
	// nothing of the other two was read.
	wantCount(t, d, "svc.pending.mbox", 2)
	wantCount(t, nl, proto.SvcPendingAlerts("ug"), 2)
	fetchOneAfter(t, d, dFetched.Seq, mine[1])
	fetchOne(t, nl, proto.SvcFetchAlerts("ug"), ug[1])
	fetchOne(t, other, proto.SvcFetchMbox, private)
	fetchOne(t, de, proto.SvcFetchAlerts("ke"), ke)
	noMoreErrs(t, d)
	noMoreErrs(t, nl)
}

// consumerRef names one of the relay's consumers.
type consumerRef struct{ stream, name, filter string }

// jetStreamSubjects lists $JS subjects of every kind: the account and
// stream API on every stream, the consumer API on each consumer named,
// hand-made ack subjects for them, and the given ack tokens.
func jetStreamSubjects(consumers []consumerRef, tokens ...string) []string {
	subjs := []string{"$JS.>", "$JS.API.>", "$JS.ACK.>", "$JS.API.INFO", "$JS.API.STREAM.LIST", "$JS.API.STREAM.NAMES",
		"$JS.API.STREAM.CREATE.EVIL", "$JS.API.ACCOUNT.PURGE.x", "$JS.API.META.LEADER.STEPDOWN", "$JS.API.SERVER.REMOVE",
		"$JS.FC.x.y", "$JS.EVENT.ADVISORY.API"}
	for _, s := range allStreams {
		for _, op := range []string{"STREAM.INFO", "STREAM.UPDATE", "STREAM.DELETE", "STREAM.PURGE", "STREAM.MSG.GET",
			"STREAM.MSG.DELETE", "STREAM.SNAPSHOT", "STREAM.RESTORE", "STREAM.LEADER.STEPDOWN", "STREAM.PEER.REMOVE",
			"DIRECT.GET", "CONSUMER.LIST", "CONSUMER.NAMES", "CONSUMER.CREATE"} {
			subjs = append(subjs, "$JS.API."+op+"."+s)
		}
		subjs = append(subjs, "$JS.API.DIRECT.GET."+s+".bcn.>", "$JS.API.CONSUMER.CREATE."+s+".x.bcn.>")
	}
	for _, c := range consumers {
		for _, op := range []string{"CONSUMER.CREATE", "CONSUMER.DURABLE.CREATE", "CONSUMER.INFO", "CONSUMER.DELETE",
			"CONSUMER.MSG.NEXT", "CONSUMER.PAUSE", "CONSUMER.RESET", "CONSUMER.UNPIN", "CONSUMER.LEADER.STEPDOWN"} {
			subjs = append(subjs, "$JS.API."+op+"."+c.stream+"."+c.name)
		}
		subjs = append(subjs, "$JS.API.CONSUMER.CREATE."+c.stream+"."+c.name+"."+c.filter,
			"$JS.ACK."+c.stream+"."+c.name+".1.1.1.1.0", "$JS.ACK."+c.stream+"."+c.name+".>")
	}
	return append(subjs, tokens...)
}

// v1Ack rewrites an ack token in the 11-token format
// ($JS.ACK.<domain>.<hash>.<stream>.<consumer>.…) into the 9-token one
// ($JS.ACK.<stream>.<consumer>.…), which JetStream also accepts.
func v1Ack(t testing.TB, tok string) string {
	t.Helper()
	p := strings.Split(tok, ".")
	switch {
	case len(p) == 9:
		return tok
	case len(p) >= 11:
		return strings.Join(append(p[:2:2], p[4:]...), ".")
	}
	t.Fatalf("ack token %q has %d tokens", tok, len(p))
	return ""
}

// TestDefenderReadsOwnMailbox: a defender counts, fetches and acknowledges
// what waits in its own mailbox, through the relay; reading alerts is not
// its business.
func TestDefenderReadsOwnMailbox(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	me := newIdentity(t)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	m := connectMission(t, w, r, "nl-kampala")
	env := sealToDefender(t, w, "nl-kampala", me, "we received your alert")
	rep := mustStore(t, m, proto.MailboxTarget(d.Mailbox), env)
	if rep.Stream != proto.StreamMailbox {
		t.Fatalf("stored in %s, want MAILBOX", rep.Stream)
	}
	// A mailbox is read straight from the stream: the count is exact at
	// once, and no consumer is made for it.
	wantCount(t, d, "svc.pending.mbox", 1)
	msg := fetchOne(t, d, proto.SvcFetchMbox, env)
	if msg.Subject != proto.MailboxSubject(d.Mailbox) {
		t.Fatalf("fetched from %s, want %s", msg.Subject, proto.MailboxSubject(d.Mailbox))
	}
	if seq, ok := proto.ParseMailboxToken(msg.Settle); !ok || seq != rep.Seq || msg.Seq != rep.Seq {
		t.Fatalf("settle token %q, seq %d: not the stored message's sequence %d", msg.Settle, msg.Seq, rep.Seq)
	}
	if n := streamStates(t, r)[proto.StreamMailbox].Consumers; n != 0 {
		t.Fatalf("MAILBOX has %d consumers, want none", n)
	}
	// Fetched and not yet settled, it still counts, and a reader that
	// starts over is offered it again.
	wantCount(t, d, "svc.pending.mbox", 1)
	fetchOne(t, d, proto.SvcFetchMbox, env)
	o, err := envelope.Open(msg.Data, me)
	if err != nil {
		t.Fatal(err)
	}
	if string(o.Body) != "we received your alert" || !o.Sender.Equal(w.Keyrings["nl-kampala"].Identity.Public()) || o.Auth != envelope.Signed {
		t.Fatalf("opened %q from %v (%v)", o.Body, o.Sender.Fingerprint(), o.Auth)
	}
	if rep, err := d.Svc(proto.SvcSettleTarget, []byte(msg.Settle)); err != nil || rep.Count != 1 {
		t.Fatalf("settle: %+v, %v", rep, err)
	}
	// Settled, it is deleted: nothing waits, and the relay no longer
	// holds it.
	wantCount(t, d, "svc.pending.mbox", 0)
	if got, code := fetchCode(t, d, proto.SvcFetchMbox, proto.MaxFetch, 0); code != "" || len(got) != 0 {
		t.Fatalf("after the settle: %d messages, code %q", len(got), code)
	}
	if n := streamMsgs(t, r)[proto.StreamMailbox]; n != 0 {
		t.Fatalf("MAILBOX holds %d messages after the settle", n)
	}
	// The next reply is the only one fetched (the fetch waits for it, then
	// takes whatever else there is).
	env2 := sealToDefender(t, w, "nl-kampala", me, "a mission officer will call")
	mustStore(t, m, proto.MailboxTarget(d.Mailbox), env2)
	got, code := fetchCode(t, d, proto.SvcFetchMbox, proto.MaxFetch, waitFor)
	if code != "" || len(got) != 1 || string(got[0].Data) != string(env2) {
		t.Fatalf("after the next reply: %d messages, code %q; want just that reply", len(got), code)
	}
	// Past the reader's cursor there is nothing new.
	if more, err := d.FetchAfter(proto.SvcFetchMbox, proto.MaxFetch, 0, got[0].Seq); err != nil || len(more) != 0 {
		t.Fatalf("nothing new: %d messages, %v", len(more), err)
	}

	// Alerts are for missions.
	for _, target := range []string{proto.SvcFetchAlerts("ug"), proto.SvcPendingAlerts("ug")} {
		if code := svcCode(t, d, target, mustJSON(proto.FetchRequest{Max: 1})); code != proto.CodeForbidden {
			t.Errorf("%s: code %q, want %q", target, code, proto.CodeForbidden)
		}
	}
	noMoreErrs(t, d)
}

// TestSettleRefusedForOthers: the settle service deletes mailbox messages
// and acknowledges consumer messages with the relay's own connection, so
// every token must name a message of the requester's own: its mailbox, or
// a consumer of a country it covers. A token for another defender's
// mailbox or for a mission's consumer (in either ack format, alone or
// beside a valid one), a token with wildcards, an empty request or 1025
// tokens are refused, and none settles anything: each victim then still
// receives its message.
func TestSettleRefusedForOthers(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	victim := relaytest.Connect(t, r.ClientURL(), nil)
	nl := connectMission(t, w, r, "nl-kampala")
	de := connectMission(t, w, r, "de-nairobi")
	ugAlert := sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "for nl")
	keDecoy := sealAlert(t, w, envelope.NewHeader("ke", routing.Urgent), "de reads this one")
	keAlert := sealAlert(t, w, envelope.NewHeader("ke", routing.Urgent), "for de")
	if rep := mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), ugAlert); rep.Seq != 1 {
		t.Fatalf("UG alert at seq %d, want 1", rep.Seq)
	}
	mustStore(t, d, proto.AlertTarget("ke", routing.Urgent), keDecoy)
	keSeq := mustStore(t, d, proto.AlertTarget("ke", routing.Urgent), keAlert).Seq
	toVictim := sealToDefender(t, w, "nl-kampala", newIdentity(t), "for the victim")
	vSeq := mustStore(t, nl, proto.MailboxTarget(victim.Mailbox), toVictim).Seq
	toD := sealToDefender(t, w, "nl-kampala", newIdentity(t), "for d")
	mustStore(t, nl, proto.MailboxTarget(d.Mailbox), toD)
	wantCount(t, victim, "svc.pending.mbox", 1)
	wantCount(t, nl, proto.SvcPendingAlerts("ug"), 1)
	wantCount(t, de, proto.SvcPendingAlerts("ke"), 2)
	own := fetchOne(t, d, proto.SvcFetchMbox, toD).Settle
	deOwn := fetchOne(t, de, proto.SvcFetchAlerts("ke"), keDecoy).Settle

	// Consumer tokens made from de's own by swapping the stream, consumer
	// and sequence, in the format the relay hands out and in the 9-token
	// one.
	swap := func(stream, consumer string, seq uint64) []string {
		p := strings.Split(deOwn, ".")
		off := 2
		if len(p) >= 11 {
			off = 4
		}
		p[off], p[off+1], p[off+3] = stream, consumer, fmt.Sprint(seq)
		tok := strings.Join(p, ".")
		return []string{tok, v1Ack(t, tok)}
	}
	nlToks := append(swap(proto.StreamAlerts, proto.AlertConsumer("nl-kampala", "ug"), 1),
		"$JS.ACK.ALERTS."+proto.AlertConsumer("nl-kampala", "ug")+".1.1.1.1.0")
	deToks := swap(proto.StreamAlerts, proto.AlertConsumer("de-nairobi", "ke"), keSeq)
	deV1 := v1Ack(t, deOwn)
	dePrefix := deV1[:strings.LastIndex(deV1, ".")] // without the last number
	deCons := "$JS.ACK.ALERTS." + proto.AlertConsumer("de-nairobi", "ke")
	many := strings.TrimSuffix(strings.Repeat(own+"\n", proto.MaxSettle+1), "\n")
	victimTok := proto.MailboxToken(vSeq)

	type settleCase struct {
		name string
		conn *relaytest.Conn
		body string
		code proto.Code
	}
	cases := []settleCase{
		{"empty", d, "", proto.CodeBadRequest},
		{"blank lines", d, "\n\n", proto.CodeBadRequest},
		{"1025 tokens", d, many, proto.CodeBadRequest},
		{"an empty line between", d, own + "\n\n" + own, proto.CodeForbidden},
		{"not a token", d, proto.MailboxSubject(d.Mailbox), proto.CodeForbidden},
		{"a mailbox token with a leading zero", d, "mbox.0" + strings.TrimPrefix(own, "mbox."), proto.CodeForbidden},
		{"the victim's mailbox message", d, victimTok, proto.CodeForbidden},
		{"own token then the victim's", d, own + "\n" + victimTok, proto.CodeForbidden},
		{"a mission settling the victim's", nl, victimTok, proto.CodeForbidden},
		{"a consumer token by a defender", d, deOwn, proto.CodeForbidden},
		{"an API subject", de, "$JS.API.CONSUMER.DELETE.ALERTS." + proto.AlertConsumer("de-nairobi", "ke"), proto.CodeForbidden},
		{"too short", de, deCons + ".1.1", proto.CodeForbidden},
		{"wildcard last", de, dePrefix + ".*", proto.CodeForbidden},
		{"all wildcards", de, deCons + ".*.*.*.*.*", proto.CodeForbidden},
		{"full wildcard", de, deCons + ".1.1.1.1.>", proto.CodeForbidden},
		{"wildcard consumer", de, "$JS.ACK.ALERTS.*.1." + fmt.Sprint(keSeq) + ".1.1.0", proto.CodeForbidden},
		{"empty token", de, deCons + ".1..1.1.0", proto.CodeForbidden},
		{"own consumer token then the UG mission's", de, deOwn + "\n" + nlToks[0], proto.CodeForbidden},
	}
	for i, tok := range nlToks {
		for _, c := range []*relaytest.Conn{d, de, victim} {
			cases = append(cases, settleCase{fmt.Sprintf("the UG mission's alerts (token %d) by %s", i, c.Mailbox.String()[:6]), c, tok, proto.CodeForbidden})
		}
	}
	for i, tok := range deToks {
		cases = append(cases, settleCase{fmt.Sprintf("the KE mission's alerts by the UG mission (format %d)", i), nl, tok, proto.CodeForbidden})
	}
	want := map[proto.Code]float64{}
	for _, c := range cases {
		if code := svcCode(t, c.conn, proto.SvcSettleTarget, []byte(c.body)); code != c.code {
			t.Errorf("%s: code %q, want %q", c.name, code, c.code)
		}
		want[c.code]++
	}
	// The limit is 1024: that many of its own tokens are accepted.
	if rep, err := d.Svc(proto.SvcSettleTarget, []byte(strings.TrimSuffix(strings.Repeat(own+"\n", proto.MaxSettle), "\n"))); err != nil || rep.Count != proto.MaxSettle {
		t.Fatalf("%d own tokens: %+v, %v", proto.MaxSettle, rep, err)
	}
	wantCount(t, d, "svc.pending.mbox", 0)

	// Every victim still receives its message.
	fetchOne(t, victim, proto.SvcFetchMbox, toVictim)
	fetchOne(t, nl, proto.SvcFetchAlerts("ug"), ugAlert)
	fetchOne(t, de, proto.SvcFetchAlerts("ke"), keAlert)
	wantRefused(t, r, want)
}

// TestDefenderAckTokenWithWhitespaceRefused: a token with a space, a tab
// or a carriage return (a CRLF-separated body) is not a subject. The relay
// must refuse it rather than count it as acknowledged: publishing it fails
// in the client library (which the relay ignores), and a library that did
// not check would send "PUB <ack> <rest> …", giving the rest as the reply
// subject JetStream answers on.
func TestDefenderAckTokenWithWhitespaceRefused(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	m := connectMission(t, w, r, "nl-kampala")
	env := sealToDefender(t, w, "nl-kampala", newIdentity(t), "x")
	mustStore(t, m, proto.MailboxTarget(d.Mailbox), env)
	mine := fetchOne(t, d, proto.SvcFetchMbox, env).Settle
	alert := sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "for nl")
	mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), alert)
	own := fetchOne(t, m, proto.SvcFetchAlerts("ug"), alert).Settle
	// The 11-token format JetStream also subscribes to, for the key's own
	// consumer (the account hash is not checked by the relay), with a
	// stream subject after a space.
	p := strings.Split(v1Ack(t, own), ".")
	v2 := strings.Join(append([]string{"$JS", "ACK", "_", "hash"}, p[2:]...), ".")
	for _, c := range []struct {
		conn *relaytest.Conn
		body string
	}{
		{m, v2 + " " + proto.AlertSubject("ug", routing.Urgent)},
		{m, own + "\tx"},
		{m, own + "\r\n" + own}, // CRLF lines
		{d, mine + " x"},
		{d, mine + "\tx"},
		{d, mine + "\r\n" + mine},
	} {
		rep, err := c.conn.Svc(proto.SvcSettleTarget, []byte(c.body))
		var perr *proto.Error
		if !errors.As(err, &perr) || (perr.Code != proto.CodeBadRequest && perr.Code != proto.CodeForbidden) {
			t.Errorf("settle %q: %+v, %v; want a refusal (bad_request or forbidden), not a count of settles that never happened", c.body, rep, err)
		}
	}
	// Nothing was settled.
	wantCount(t, d, "svc.pending.mbox", 1)
	wantCount(t, m, proto.SvcPendingAlerts("ug"), 1)
}

func TestMissionReadsOnlyItsCountries(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	var ug, ke [][]byte
	for i := range 3 {
		env := sealAlert(t, w, envelope.NewHeader("ug", routing.Priority(i%3+1)), fmt.Sprintf("ug %d", i))
		mustStore(t, d, proto.AlertTarget("ug", routing.Priority(i%3+1)), env)
		ug = append(ug, env)
	}
	for i := range 2 {
		env := sealAlert(t, w, envelope.NewHeader("ke", routing.Urgent), fmt.Sprintf("ke %d", i))
		mustStore(t, d, proto.AlertTarget("ke", routing.Urgent), env)
		ke = append(ke, env)
	}

	nl := connectMission(t, w, r, "nl-kampala")
	de := connectMission(t, w, r, "de-nairobi")
	got := fetchAll(t, nl, proto.SvcFetchAlerts("ug"), 3)
	for i, m := range got {
		if string(m.Data) != string(ug[i]) || m.Subject != proto.AlertSubject("ug", routing.Priority(i%3+1)) {
			t.Fatalf("UG alert %d differs (subject %s)", i, m.Subject)
		}
	}
	got = fetchAll(t, de, proto.SvcFetchAlerts("ke"), 2)
	for i, m := range got {
		if string(m.Data) != string(ke[i]) {
			t.Fatalf("KE alert %d differs", i)
		}
	}

	// Another country's alerts, by fetch or count, under any spelling.
	refused := 0
	for _, c := range []struct {
		conn   *relaytest.Conn
		target string
		code   proto.Code
	}{
		{nl, proto.SvcFetchAlerts("ke"), proto.CodeForbidden},
		{nl, proto.SvcPendingAlerts("ke"), proto.CodeForbidden},
		{de, proto.SvcFetchAlerts("ug"), proto.CodeForbidden},
		{de, proto.SvcPendingAlerts("ug"), proto.CodeForbidden},
		{nl, proto.SvcFetchAlerts("tz"), proto.CodeForbidden},
		{nl, proto.SvcFetchAlerts("*"), proto.CodeBadTarget},         // not a source
		{nl, proto.SvcFetchAlerts(">"), proto.CodeBadTarget},         // not a source
		{nl, proto.SvcFetchAlerts("ug.urgent"), proto.CodeBadTarget}, // not a source
		{nl, proto.SvcFetchAlerts("ug") + ".x", proto.CodeBadTarget}, // not a source
		{nl, "svc.fetch.alerts", proto.CodeBadTarget},
		{nl, "svc.fetch.ALERTS.ug", proto.CodeBadTarget},
		{d, proto.SvcFetchAlerts("ug"), proto.CodeForbidden},
		{d, proto.SvcPendingAlerts("ke"), proto.CodeForbidden},
	} {
		if code := svcCode(t, c.conn, c.target, mustJSON(proto.FetchRequest{Max: 1})); code != c.code {
			t.Errorf("%s: code %q, want %q", c.target, code, c.code)
		}
		refused++
	}
	// A mission may not read or subscribe to the alerts either, nor to the
	// JetStream traffic its own reads cause.
	for _, s := range []string{"bcn.to.ke.>", "bcn.to.ug.>", "bcn.to.>", "$JS.>", "$JS.ACK.>", "_INBOX.>",
		proto.ReplyPrefix(d.Mailbox) + ".>"} {
		if _, err := nl.SubscribeSync(s); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, nl, subViolation(s))
	}
	// Nothing moved: neither mission has anything more to fetch (what they
	// acknowledged is not delivered again), and the refusals were counted.
	for _, c := range []struct {
		conn *relaytest.Conn
		cc   string
	}{{nl, "ug"}, {de, "ke"}} {
		if got, code := fetchCode(t, c.conn, proto.SvcFetchAlerts(c.cc), proto.MaxFetch, 0); code != "" || len(got) != 0 {
			t.Errorf("%s alerts afterwards: %d, code %q", c.cc, len(got), code)
		}
	}
	if g := gather(t, r); g["beacon_relay_refused_total,reason=forbidden"]+g["beacon_relay_refused_total,reason=bad_target"] != float64(refused) {
		t.Errorf("refusals counted: %v forbidden, %v bad_target; want %d in all", g["beacon_relay_refused_total,reason=forbidden"],
			g["beacon_relay_refused_total,reason=bad_target"], refused)
	}
	noMoreErrs(t, nl)
	noMoreErrs(t, de)
}

func TestConnectRefused(t *testing.T) {
	t.Parallel()
	_, r, _ := startWorld(t, nil)
	url := r.ClientURL()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	other, _ := nkeys.CreateUser()
	acct, _ := nkeys.CreateAccount()
	acctPub, _ := acct.PublicKey()
	for _, c := range []struct {
		name string
		opts []nats.Option
	}{
		{"no credentials", nil},
		{"signature by another key", []nats.Option{nats.Nkey(pub, other.Sign)}},
		{"garbage signature", []nats.Option{nats.Nkey(pub, func([]byte) ([]byte, error) { return make([]byte, 64), nil })}},
		{"short signature", []nats.Option{nats.Nkey(pub, func(n []byte) ([]byte, error) { s, _ := kp.Sign(n); return s[:63], nil })}},
		{"account nkey", []nats.Option{nats.Nkey(acctPub, acct.Sign)}},
		{"user and password", []nats.Option{nats.UserInfo("admin", "admin")}},
		{"token", []nats.Option{nats.Token("s3cret")}},
		{"nkey plus user", []nats.Option{nats.Nkey(pub, kp.Sign), nats.UserInfo("admin", "admin")}},
		{"nkey plus token", []nats.Option{nats.Nkey(pub, kp.Sign), nats.Token("s3cret")}},
	} {
		nc, err := nats.Connect(url, append(c.opts, nats.NoReconnect())...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", c.name)
			continue
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v, want an authorization violation", c.name, err)
		}
	}
	// The same key, signing properly, is let in.
	nc, err := nats.Connect(url, nats.Nkey(pub, kp.Sign))
	if err != nil {
		t.Fatalf("valid nkey refused: %v", err)
	}
	nc.Close()
}

func TestDirectoryReload(t *testing.T) {
	t.Parallel()
	w, r, cfg := startWorld(t, nil)
	url := r.ClientURL()

	// A walk-in defender, with an alert for UG waiting.
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	disc, recon := make(chan error, 4), make(chan struct{}, 4)
	c := relaytest.Connect(t, url, kp,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { sendNoWait(disc, err) }),
		nats.ReconnectHandler(func(*nats.Conn) { sendNoWait(recon, struct{}{}) }),
		nats.ReconnectWait(10*time.Millisecond), nats.ReconnectJitter(0, 0))
	alert := sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "before reload")
	mustStore(t, c, proto.AlertTarget("ug", routing.Urgent), alert)
	newID := "fr-kampala"
	kr, err := keys.NewKeyring(keys.RoleMission)
	if err != nil {
		t.Fatal(err)
	}
	bcast := proto.Ingest(c.Mailbox, proto.BroadcastTarget("ug"))
	// As a walk-in it may neither read alerts nor broadcast.
	assertWalkIn := func(c *relaytest.Conn) {
		t.Helper()
		if code := svcCode(t, c, proto.SvcFetchAlerts("ug"), mustJSON(proto.FetchRequest{Max: 1})); code != proto.CodeForbidden {
			t.Fatalf("walk-in fetching UG alerts: code %q, want %q", code, proto.CodeForbidden)
		}
		if err := c.Conn.Publish(bcast, mustSignPublic(t, "ug", "hello", kr.Identity, time.Now())); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, c, pubViolation(bcast))
	}
	assertWalkIn(c)
	bystander := connectMission(t, w, r, "de-nairobi") // its role does not change

	// Serial 2 makes the key a mission for UG.
	v2 := nextRoster(w.Dir, func(ro *keys.Roster) {
		ro.Missions = append(ro.Missions, keys.Mission{ID: newID, Name: "Mission " + newID, Countries: []string{"ug"},
			Identity: kr.Identity.Public(), NKey: pub, InboxKeys: []keys.SignedInboxKey{kr.Inboxes[0].Signed},
			Response: w.Dir.Missions[0].Response})
	})
	d2 := writeDirectory(t, w, v2, w.Root)
	if err := r.ReloadDirectory(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, disc, "disconnect after the key became a mission")
	waitEvent(t, recon, "reconnect")
	got := fetchAll(t, c, proto.SvcFetchAlerts("ug"), 1)
	if string(got[0].Data) != string(alert) {
		t.Fatal("new mission read another alert")
	}
	// A mission may broadcast for its country; a walk-in could not even publish there.
	mustStore(t, c, proto.BroadcastTarget("ug"), mustSignPublic(t, "ug", "hello", kr.Identity, time.Now()))
	// A connection whose role did not change stays connected.
	if !bystander.IsConnected() || bystander.Stats().Reconnects != 0 {
		t.Fatal("a mission whose role did not change was disconnected")
	}

	// An older serial is refused and the loaded one stays in force.
	if err := os.WriteFile(w.DirFile, w.Dir.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.ReloadDirectory(); !errors.Is(err, keys.ErrRollback) {
		t.Fatalf("reload of serial 1 after 2: %v, want ErrRollback", err)
	}
	// So is serial 2 with other contents, and a directory signed by another root.
	evil := newIdentity(t)
	for _, bad := range []struct {
		name string
		ro   *keys.Roster
		root *keys.Identity
		want error
	}{
		{"serial 2 with other contents", nextRoster(w.Dir, func(ro *keys.Roster) { ro.Missions = ro.Missions[:1] }), w.Root, keys.ErrRollback},
		{"serial 3 signed by another root", nextRoster(d2, func(ro *keys.Roster) { ro.Missions = ro.Missions[:1] }), evil, keys.ErrUntrustedRoot},
	} {
		writeDirectory(t, w, bad.ro, bad.root)
		if err := r.ReloadDirectory(); !errors.Is(err, bad.want) {
			t.Fatalf("%s: %v, want %v", bad.name, err, bad.want)
		}
	}
	// A fresh connection with the key still gets the serial-2 rights.
	again := relaytest.Connect(t, url, kp)
	if got, code := fetchCode(t, again, proto.SvcFetchAlerts("ug"), 1, 0); code != "" || len(got) != 0 {
		t.Fatalf("mission's second connection: %d alerts, code %q", len(got), code)
	}
	mustStore(t, again, proto.BroadcastTarget("ug"), mustSignPublic(t, "ug", "again", kr.Identity, time.Now()))
	if c.Stats().Reconnects != 1 {
		t.Fatalf("mission connection reconnected %d times, want 1", c.Stats().Reconnects)
	}

	// Serial 3 removes the mission again: it is disconnected and comes
	// back as a walk-in, refused the alerts and the broadcast.
	v3 := nextRoster(d2, func(ro *keys.Roster) {
		ro.Missions = slices.DeleteFunc(ro.Missions, func(m keys.Mission) bool { return m.ID == newID })
	})
	d3 := writeDirectory(t, w, v3, w.Root)
	if err := r.ReloadDirectory(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, disc, "disconnect after the mission was removed")
	waitEvent(t, recon, "reconnect")
	assertWalkIn(c)

	// The relay keeps the newest serial it loaded in its data directory, so
	// a restart on an older file is refused although this relay never read
	// that file after serial 3.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r.Shutdown(ctx)
	seen, err := os.ReadFile(filepath.Join(cfg.DataDir, "directory.version"))
	if err != nil || !strings.HasPrefix(string(seen), "3 ") || !strings.Contains(string(seen), keys.HashString(d3.Hash)) {
		t.Fatalf("directory.version: %q, %v; want serial 3 and its hash", seen, err)
	}
	for _, old := range []*keys.Directory{w.Dir, d2} {
		if err := os.WriteFile(w.DirFile, old.Raw, 0o644); err != nil {
			t.Fatal(err)
		}
		r2, err := relay.New(cfg)
		if err == nil {
			r2.Shutdown(ctx)
		}
		if !errors.Is(err, keys.ErrRollback) {
			t.Fatalf("restart on serial %d after 3: %v, want ErrRollback", old.Serial, err)
		}
	}
	// Serial 3 itself is served again, with its rights.
	if err := os.WriteFile(w.DirFile, d3.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	r = relaytest.Start(t, cfg)
	assertWalkIn(relaytest.Connect(t, r.ClientURL(), kp))
	fetchAll(t, connectMission(t, w, r, "de-nairobi"), proto.SvcFetchAlerts("ke"), 0)
}

// TestPullRequestCannotDeliverIntoStreams: a pull request's reply subject is
// where JetStream delivers the pulled messages, and the relay pulls with
// its own connection, which may publish anywhere. A defender must not get
// its mailbox message delivered onto a stream subject (which would store
// it there without the ingest): not by a pull of its own (the JetStream API
// is not its to use) and not through the fetch service (which answers only
// on the sender's inbox).
func TestPullRequestCannotDeliverIntoStreams(t *testing.T) {
	t.Parallel()
	w, r, _ := startWorld(t, nil)
	d := relaytest.Connect(t, r.ClientURL(), nil)
	m := connectMission(t, w, r, "nl-kampala")
	env := sealToDefender(t, w, "nl-kampala", newIdentity(t), "for d only")
	mustStore(t, m, proto.MailboxTarget(d.Mailbox), env)
	wantCount(t, d, "svc.pending.mbox", 1) // the relay's consumer exists and holds it
	before := streamStates(t, r)

	next := "$JS.API.CONSUMER.MSG.NEXT.ALERTS." + proto.AlertConsumer("nl-kampala", "ug")
	for _, reply := range []string{proto.AlertSubject("ug", routing.Urgent), proto.ReplyPrefix(d.Mailbox) + ".x"} {
		if err := d.PublishRequest(next, reply, []byte(`{"batch":1,"no_wait":true}`)); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, d, pubViolation(next))
	}
	for _, reply := range []string{proto.AlertSubject("ug", routing.Urgent), proto.MailboxSubject(d.Mailbox), "bcn.share.ug.urgent"} {
		if err := d.PublishRequest(proto.Ingest(d.Mailbox, proto.SvcFetchMbox), reply, mustJSON(proto.FetchRequest{Max: 1})); err != nil {
			t.Fatal(err)
		}
	}
	// The message is still d's to fetch: neither pull delivered it. (The
	// ingest's workers may serve this fetch before the bogus ones; those
	// are then dropped all the same, which the stream states show.)
	fetchOne(t, d, proto.SvcFetchMbox, env)
	after := streamStates(t, r)
	// The fetch above and its ack pending change no stream.
	if !mapsEqual(before, after) {
		t.Fatalf("streams changed: before %v, after %v", before, after)
	}
	// And the first alert stored is ALERTS seq 1.
	rep := mustStore(t, d, proto.AlertTarget("ug", routing.Urgent), sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "first"))
	if rep.Seq != 1 {
		t.Errorf("first alert stored at ALERTS seq %d: the defender's mailbox message was delivered into ALERTS", rep.Seq)
	}
	noMoreErrs(t, d)
}

// ---- helpers shared by auth_test.go and ingest_test.go ----

// startWorld starts a relay with a signed directory of two missions:
// nl-kampala covers ug, de-nairobi covers ke.
func startWorld(t *testing.T, tweak func(*relay.Config), opts ...relay.Option) (*relaytest.World, *relay.Relay, *relay.Config) {
	t.Helper()
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "de-nairobi", Countries: []string{"ke"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	if tweak != nil {
		tweak(cfg)
	}
	return w, relaytest.Start(t, cfg, opts...), cfg
}

func connectMission(t *testing.T, w *relaytest.World, r *relay.Relay, id string) *relaytest.Conn {
	t.Helper()
	return w.ConnectAs(t, r.ClientURL(), id)
}

func newIdentity(t testing.TB) *keys.Identity {
	t.Helper()
	id, err := keys.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var (
	senderOnce sync.Once
	sender     *keys.Identity // a defender's identity, generated once
	strayOnce  sync.Once
	stray      *keys.Identity // a recipient for countries no mission covers
)

// sealAlert seals body as a defender's alert to the missions covering h's
// country.
func sealAlert(t testing.TB, w *relaytest.World, h envelope.Header, body string) []byte {
	t.Helper()
	senderOnce.Do(func() { sender = newIdentity(t) })
	var to []envelope.Recipient
	if w != nil {
		for _, m := range w.Dir.MissionsFor(h.Country) {
			to = append(to, envelope.ToInbox(m.Identity, m.InboxKeys[0].Key))
		}
	}
	if len(to) == 0 {
		strayOnce.Do(func() { stray = newIdentity(t) })
		to = append(to, envelope.To(stray.Public()))
	}
	env, err := envelope.Seal(h, []byte(body), sender, envelope.Deniable, to...)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// sealToDefender seals a mission's Signed reply to a defender's identity.
func sealToDefender(t testing.TB, w *relaytest.World, mission string, to *keys.Identity, body string) []byte {
	t.Helper()
	env, err := envelope.Seal(envelope.NewHeader("ug", routing.Routine), []byte(body), w.Keyrings[mission].Identity,
		envelope.Signed, envelope.To(to.Public()))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func mustSignPublic(t testing.TB, cc, body string, signer *keys.Identity, now time.Time) []byte {
	t.Helper()
	b, err := envelope.SignPublic(cc, []byte(body), signer, now)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustStore publishes through the ingest and requires that it was stored.
func mustStore(t testing.TB, c *relaytest.Conn, target string, data []byte) *proto.Reply {
	t.Helper()
	rep, err := c.Publish(target, data)
	if err != nil {
		t.Fatalf("publish to %s: %v", target, err)
	}
	return rep
}

// publishCode publishes through the ingest and returns the refusal code,
// or "" if it was stored.
func publishCode(t testing.TB, c *relaytest.Conn, target string, data []byte) (*proto.Reply, proto.Code) {
	t.Helper()
	m, err := c.Request(proto.Ingest(c.Mailbox, target), data, waitFor)
	if err != nil {
		t.Fatalf("publish to %s: %v", target, err)
	}
	rep, err := proto.ParseReply(m.Data)
	var perr *proto.Error
	switch {
	case errors.As(err, &perr):
		return rep, perr.Code
	case err != nil:
		t.Fatalf("reply %q: %v", m.Data, err)
	}
	return rep, ""
}

// svcCode makes a service request answered by a proto.SvcReply (ack,
// pending, or any refusal) and returns the refusal code, or "".
func svcCode(t testing.TB, c *relaytest.Conn, target string, body []byte) proto.Code {
	t.Helper()
	_, err := c.Svc(target, body)
	var perr *proto.Error
	switch {
	case errors.As(err, &perr):
		return perr.Code
	case err != nil:
		t.Fatalf("%s: %.200v", target, err) // a fetched envelope can be in err
	}
	return ""
}

// wantCount requires a counting service (svc.pending.…) to answer n. The
// count is exact when the relay's consumer is created by this request or
// has been read since the last store and ack: JetStream tells an existing
// consumer of new messages, and applies acks, asynchronously.
func wantCount(t testing.TB, c *relaytest.Conn, target string, n uint64) {
	t.Helper()
	rep, err := c.Svc(target, nil)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	if rep.Count != n {
		t.Fatalf("%s: count %d, want %d", target, rep.Count, n)
	}
}

// fetchCode fetches without acknowledging and returns what came, or the
// refusal code.
func fetchCode(t testing.TB, c *relaytest.Conn, target string, max int, wait time.Duration) ([]relaytest.Fetched, proto.Code) {
	t.Helper()
	got, err := c.Fetch(target, max, wait)
	var perr *proto.Error
	switch {
	case errors.As(err, &perr):
		return nil, perr.Code
	case err != nil:
		t.Fatalf("fetch %s: %v", target, err)
	}
	return got, ""
}

// fetchOne fetches the next message, without waiting, and requires it to
// be want; it is not acknowledged.
func fetchOne(t testing.TB, c *relaytest.Conn, target string, want []byte) relaytest.Fetched {
	t.Helper()
	got, code := fetchCode(t, c, target, 1, 0)
	if code != "" || len(got) != 1 || string(got[0].Data) != string(want) {
		t.Fatalf("fetch %s: %d messages (code %q), want the one expected", target, len(got), code)
	}
	return got[0]
}

// fetchOneAfter fetches d's mailbox after cursor and requires the next
// message to be want; it is not settled.
func fetchOneAfter(t testing.TB, c *relaytest.Conn, after uint64, want []byte) relaytest.Fetched {
	t.Helper()
	got, err := c.FetchAfter(proto.SvcFetchMbox, 1, 0, after)
	if err != nil || len(got) != 1 || string(got[0].Data) != string(want) {
		t.Fatalf("fetch after %d: %d messages (%v), want the one expected", after, len(got), err)
	}
	return got[0]
}

// fetchAll reads target (svc.fetch.…) through the relay and requires
// exactly want messages, acknowledging them: the matching count service
// says how many there are, so no wait is needed for the absence of more.
// The relay's consumer for target must not exist yet (see wantCount).
func fetchAll(t testing.TB, c *relaytest.Conn, target string, want int) []relaytest.Fetched {
	t.Helper()
	wantCount(t, c, "svc.pending."+strings.TrimPrefix(target, "svc.fetch."), uint64(want))
	if want == 0 {
		return nil
	}
	got, err := c.FetchAll(target, want)
	if err != nil || len(got) != want {
		t.Fatalf("%s: fetched %d messages (%v), want %d", target, len(got), err, want)
	}
	return got
}

// streamMsgs reads every stream's message count from the embedded server.
func streamMsgs(t testing.TB, r *relay.Relay) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for name, st := range streamStates(t, r) {
		out[name] = st.Msgs
	}
	return out
}

// streamState is what a write into a stream, a deletion or a new consumer
// would change.
type streamState struct {
	Msgs, Bytes, FirstSeq, LastSeq, Deleted uint64
	Consumers                               int
}

// streamStates reads every stream's state from the embedded server.
func streamStates(t testing.TB, r *relay.Relay) map[string]streamState {
	t.Helper()
	info, err := r.Server().Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]streamState{}
	for _, a := range info.AccountDetails {
		for _, st := range a.Streams {
			if strings.HasPrefix(st.Name, "KV_") {
				continue // the relay's own key-value buckets
			}
			s := st.State
			out[st.Name] = streamState{Msgs: s.Msgs, Bytes: s.Bytes, FirstSeq: s.FirstSeq, LastSeq: s.LastSeq,
				Deleted: uint64(s.NumDeleted), Consumers: s.Consumers}
		}
	}
	if len(out) != len(allStreams) {
		t.Fatalf("streams: %v, want the streams of DESIGN.md, the bridge's and JUNK", out)
	}
	return out
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func gather(t testing.TB, r *relay.Relay) map[string]float64 {
	t.Helper()
	g, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// wantRefused requires refused_total to be exactly want, code by code.
func wantRefused(t testing.TB, r *relay.Relay, want map[proto.Code]float64) {
	t.Helper()
	g := gather(t, r)
	for _, code := range proto.Codes {
		if got := g["beacon_relay_refused_total,reason="+string(code)]; got != want[code] {
			t.Errorf("refused_total{reason=%s} = %v, want %v", code, got, want[code])
		}
	}
}

func subViolation(subject string) string {
	return fmt.Sprintf("Permissions Violation for Subscription to %q", subject)
}

func queueViolation(subject, queue string) string {
	return fmt.Sprintf("Permissions Violation for Subscription to %q using queue %q", subject, queue)
}

func pubViolation(subject string) string {
	return fmt.Sprintf("Permissions Violation for Publish to %q", subject)
}

// wantViolation waits for the next asynchronous error of c and requires it
// to be the permission violation want (the server's text, exactly).
func wantViolation(t testing.TB, c *relaytest.Conn, want string) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case err := <-c.Errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.HasSuffix(err.Error(), want) {
			t.Fatalf("async error %q, want %q", err, want)
		}
	case <-timer.C:
		t.Fatalf("no permission violation %q", want)
	}
}

// noMoreErrs checks, after a round trip, that no asynchronous error is
// queued. Errors are delivered in order, so a violation of an earlier
// operation would have been received by now.
func noMoreErrs(t testing.TB, c *relaytest.Conn) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.Errs:
		t.Fatalf("unexpected async error: %v", err)
	default:
	}
}

// sendNoWait sends v unless ch is full: a connection callback must not
// block the client library.
func sendNoWait[T any](ch chan<- T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func waitEvent[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("no %s", what)
	}
	panic("unreachable")
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// nextRoster returns the roster following d: serial+1, naming d's hash.
func nextRoster(d *keys.Directory, edit func(*keys.Roster)) *keys.Roster {
	ro := d.Roster
	ro.Missions = slices.Clone(ro.Missions)
	ro.Serial++
	ro.Previous = keys.HashString(d.Hash)
	ro.Issued = time.Now().Add(-time.Minute)
	ro.Expires = time.Now().Add(24 * time.Hour)
	edit(&ro)
	// A headquarters oversees only the missions that are left.
	ro.Headquarters = slices.Clone(ro.Headquarters)
	for i := range ro.Headquarters {
		ro.Headquarters[i].Missions = slices.DeleteFunc(slices.Clone(ro.Headquarters[i].Missions), func(id string) bool {
			return !slices.ContainsFunc(ro.Missions, func(m keys.Mission) bool { return m.ID == id })
		})
	}
	return &ro
}

// writeDirectory signs ro with root, writes it where the relay reads its
// directory and returns it verified.
func writeDirectory(t *testing.T, w *relaytest.World, ro *keys.Roster, root *keys.Identity) *keys.Directory {
	t.Helper()
	signed, err := keys.SignDirectory(ro, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.DirFile, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := keys.VerifyDirectory(signed, root.Public().Fingerprint(), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
