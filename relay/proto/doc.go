// Package proto is the relay's protocol as clients see it: every subject
// the relay and its clients use, built and parsed here and nowhere else;
// the bodies of requests and replies; the names of streams and consumers;
// and the derivation of a connection's mailbox from its NKey. It imports
// no NATS code, so the client, the console, the bridge and the relay share
// one grammar.
//
// # Subjects
//
// Everything lives under "bcn.":
//
//	bcn.in.<mailbox>.<target>     what a connection publishes: an ingest or service request
//	bcn.reply.<mailbox>.>         where its answers arrive (its reply prefix, [ReplyPrefix])
//	bcn.to.<cc>.<priority>        stored alerts (stream ALERTS)
//	bcn.share.<cc>.<priority>     stored alerts for partner governments (SHARED)
//	bcn.mbox.<mailbox>            stored replies, acks and receipts for one mailbox (MAILBOX)
//	bcn.bcast.<cc>                stored signed broadcasts (BROADCASTS)
//	bcn.ack.<message id>          stored signed ack tokens (ACKS)
//	bcn.hold.state.<id>           a held envelope and its release condition (HOLDS)
//	bcn.hold.timer.<id>           its message schedule; it fires to bcn.hold.due
//	bcn.bridged.<bridge>.<cc>.<priority>.<id>.<digest>  what a bridge delivered to a partner's relay (BRIDGED)
//	bcn.return.<bridge>.{mbox.<mailbox>|ack.<id>}  a partner's answers, for the bridge to carry back (RETURN)
//	bcn.rcpt.<id>.<partner>       a bridge's signed receipt (RECEIPTS)
//	bcn.notice.mbox.<mailbox>     MAILBOX's republished headers, for the relay alone ([MailboxNotices])
//
// The bridge's subjects are described in bridge.go.
//
// <mailbox> and <message id> are 32 lower-case hex digits
// ([routing.Mailbox], [routing.ID]); <cc> an ISO 3166-1 alpha-2 code in
// lower case; <priority> urgent, high or routine.
//
// # Publishing
//
// A client never publishes straight into a stream. It publishes a request
// on [Ingest](its mailbox, target), where target is a stored subject
// without the "bcn." prefix ([AlertTarget], [ShareTarget], [MailboxTarget],
// [BroadcastTarget], [AckTarget]). Its mailbox is [MailboxFor] its NKey; the
// relay's permissions let a connection publish under its own mailbox only,
// so the relay knows who sends without trusting any header. The relay
// checks the envelope, stores it under "bcn.<target>" and answers with a
// [Reply].
//
// # Reading
//
// Clients have no JetStream API rights. The relay serves reads as requests
// under the same ingest prefix ([Service]):
//
//	svc.fetch.<source>    a batch from a source: "mbox" (the connection's own
//	                      mailbox), "alerts.<cc>" (a mission's country),
//	                      "shared.<partner>" (a bridge), "bridged.<cc>" (a
//	                      partner on its own relay) or "return" (a bridge on
//	                      a partner's relay)
//	svc.pending.<source>  how many messages wait in a source
//	svc.settle            the reader is done with fetched messages
//	svc.news.<cc|all>     the public broadcasts, oldest first (the relay keeps
//	                      each country's newest [MaxNews]; a reader who wants
//	                      every country's newest asks country by country)
//	svc.directory         the signed directory, in chunks
//	svc.report            report metadata for headquarters and missions ([SvcReport])
//	svc.rollup.<id>       an institution: the ack tokens and receipts held for an alert
//
// Held envelopes are handed over and checked in on with hold requests,
// hold.<op> ([HoldTarget]): hold.checkin and hold.escalate arm a hold,
// hold.ok checks in, hold.disarm, hold.release and hold.panic end a
// check-in plan, hold.status reports on holds by id. Each is answered by
// a [HoldReply].
//
// A fetch ([FetchRequest]) is answered with one message per envelope —
// header [HeaderSettle] carries the token to settle it with, [HeaderSubject]
// the subject it was stored under — and then an empty message with header
// [HeaderEnd]. A reader settles a message only once it has kept it (the
// two-phase receive): until then the relay offers it again.
//
// Every answer goes to the request's reply subject, which must lie under
// the connection's reply prefix: the only subjects it may subscribe to.
//
// The services are not built on nats.go/micro: micro's services listen
// on subjects of their own and answer $SRV.PING, INFO and STATS to anyone
// who may publish there, while these are reached only through the ingest,
// under the caller's own prefix, after the caller's role and rate were
// checked, and a fetch is a stream of messages closed by an end marker,
// which micro's one-reply handlers do not model. The relay's /metrics
// serves what an operator needs instead (refusals by code, streams,
// connections, holds).
//
// # Words
//
// A mailbox is where replies to a sender are stored; a reply prefix is
// where a connection's answers arrive; to settle is to tell the relay a
// fetched message was kept; an ack is a mission's signed acknowledgement
// to a defender, and an ack token its signed counterpart for the relay.
package proto
