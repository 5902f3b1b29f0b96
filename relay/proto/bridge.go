package proto

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/hrdbeacon/beacon/country"
	"github.com/hrdbeacon/beacon/routing"
)

// # The bridge's subjects
//
// A bridge reads, on the sending network's relay, what was shared with
// each partner government ([SharedSource]), and stores it on that
// partner's own relay, which keeps it apart from everything else:
//
//	bcn.bridged.<bridge>.<cc>.<priority>.<id>.<digest>   what bridge <bridge> delivered (stream BRIDGED)
//	bcn.return.<bridge>.mbox.<mailbox>          a partner's sealed answer, for the bridge to carry back (RETURN)
//	bcn.return.<bridge>.ack.<id>                a partner's signed ack token, likewise (RETURN)
//	bcn.rcpt.<id>.<partner>                     the bridge's signed receipt: <partner> stored <id> (RECEIPTS)
//
// <bridge> and <partner> are directory ids; <digest> is [EnvelopeDigest]
// of the envelope. A bridged envelope's subject names its message id and
// its bytes, and BRIDGED keeps one message per subject, so a bridge that
// delivers the same envelope again (after a crash, or a lost
// acknowledgement) is told it is stored already, however long after: the
// message id with the digest is the idempotency key, not JetStream's
// dedup window. The digest keeps anyone who learned an id (and shared an
// envelope of their own under it) from taking the subject of the real
// one; the bridge's id in the subject keeps one network's ids from
// shadowing another's.
//
// BRIDGED is a sink: no bridge reads it, and nothing a bridge delivers is
// stored anywhere a bridge reads, so bridges configured both ways (A→B
// and B→A) cannot carry an envelope back. Every bridged publish says how
// many bridges the envelope has crossed ([HeaderHops]); a relay refuses
// more than [MaxHops].

// Stream names and subjects of the bridge.
const (
	StreamBridged  = "BRIDGED"
	StreamReturn   = "RETURN"
	StreamReceipts = "RECEIPTS"

	SubjectBridged  = "bcn.bridged.>"
	SubjectReturn   = "bcn.return.>"
	SubjectReceipts = "bcn.rcpt.>"
)

// Kinds of the bridge's stored subjects.
const (
	KindBridged       Kind = iota + 32 // bcn.bridged.<bridge>.<cc>.<priority>.<id>
	KindReturnMailbox                  // bcn.return.<bridge>.mbox.<mailbox>
	KindReturnAck                      // bcn.return.<bridge>.ack.<id>
	KindReceipt                        // bcn.rcpt.<id>.<partner>
)

// HeaderHops is set on a bridged publish: how many bridges the envelope
// has crossed, 1 to MaxHops. The relay stores it with the envelope.
const HeaderHops = "Beacon-Hops"

// MaxHops is the most bridges an envelope may cross. One: a partner
// government's relay is where a shared alert ends.
const MaxHops = 1

// Bridged returns the stored subject of envelope env, with id, country
// cc and priority p, that bridge delivered.
func Bridged(bridge, cc string, p routing.Priority, id routing.ID, env []byte) Subject {
	return Subject{Kind: KindBridged, Bridge: bridge, Country: cc, Priority: p, ID: id, Digest: EnvelopeDigest(env)}
}

// EnvelopeDigest names an envelope's bytes in a subject: the first 128
// bits of its SHA-256, in lower-case hex.
func EnvelopeDigest(env []byte) string {
	h := sha256.Sum256(env)
	return hex.EncodeToString(h[:16])
}

// ReturnMailbox returns the stored subject of a partner's answer to
// mailbox m on the other side of bridge.
func ReturnMailbox(bridge string, m routing.Mailbox) Subject {
	return Subject{Kind: KindReturnMailbox, Bridge: bridge, Mailbox: m}
}

// ReturnAck returns the stored subject of a partner's ack token for alert
// id, to be carried back by bridge.
func ReturnAck(bridge string, id routing.ID) Subject {
	return Subject{Kind: KindReturnAck, Bridge: bridge, ID: id}
}

// Receipt returns the stored subject of the receipt that partner stored
// the envelope with id.
func Receipt(id routing.ID, partner string) Subject {
	return Subject{Kind: KindReceipt, ID: id, Partner: partner}
}

// ReceiptFilter is the subject filter of every receipt for id.
func ReceiptFilter(id routing.ID) string {
	return root + kindToken[KindReceipt] + "." + id.String() + ".*"
}

// bridgeTarget is Subject.Target for the bridge's kinds.
func (s Subject) bridgeTarget() string {
	switch s.Kind {
	case KindBridged:
		return "bridged." + s.Bridge + "." + s.Country + "." + s.Priority.String() + "." + s.ID.String() + "." + s.Digest
	case KindReturnMailbox:
		return "return." + s.Bridge + ".mbox." + s.Mailbox.String()
	case KindReturnAck:
		return "return." + s.Bridge + ".ack." + s.ID.String()
	case KindReceipt:
		return "rcpt." + s.ID.String() + "." + s.Partner
	}
	return ""
}

// parseBridgeTarget parses the bridge's targets; ok is false for a target
// that is not one of them.
func parseBridgeTarget(target string, tok []string) (s Subject, ok bool, err error) {
	bad := func(what string) (Subject, bool, error) {
		return Subject{}, true, fmt.Errorf("%w: %q: %s", ErrSubject, target, what)
	}
	switch {
	case tok[0] == "bridged":
		if len(tok) != 6 {
			return bad("want bridged.<bridge>.<cc>.<priority>.<id>.<digest>")
		}
		if !ValidID(tok[1]) {
			return bad("bad bridge id")
		}
		if !country.Known(tok[2]) {
			return bad("unknown country")
		}
		p, err := routing.ParsePriority(tok[3])
		if err != nil {
			return bad("bad priority")
		}
		id, err := routing.ParseID(tok[4])
		if err != nil {
			return bad("bad message id")
		}
		if d := tok[5]; len(d) != 32 || strings.Trim(d, "0123456789abcdef") != "" {
			return bad("bad digest")
		}
		return Subject{Kind: KindBridged, Bridge: tok[1], Country: tok[2], Priority: p, ID: id, Digest: tok[5]}, true, nil
	case tok[0] == "return":
		if len(tok) != 4 || !ValidID(tok[1]) {
			return bad("want return.<bridge>.mbox.<mailbox> or return.<bridge>.ack.<id>")
		}
		switch tok[2] {
		case "mbox":
			m, err := routing.ParseMailbox(tok[3])
			if err != nil {
				return bad("bad mailbox")
			}
			return ReturnMailbox(tok[1], m), true, nil
		case "ack":
			id, err := routing.ParseID(tok[3])
			if err != nil {
				return bad("bad message id")
			}
			return ReturnAck(tok[1], id), true, nil
		}
		return bad("want return.<bridge>.mbox.<mailbox> or return.<bridge>.ack.<id>")
	case tok[0] == "rcpt":
		if len(tok) != 3 {
			return bad("want rcpt.<id>.<partner>")
		}
		id, err := routing.ParseID(tok[1])
		if err != nil {
			return bad("bad message id")
		}
		if !ValidID(tok[2]) {
			return bad("bad partner id")
		}
		return Receipt(id, tok[2]), true, nil
	}
	return Subject{}, false, nil
}

// ValidID reports whether s is a directory id: 1 to 64 of a-z, 0-9 and
// "-", not starting with "-" (the rule package keys enforces on every
// directory entry). Such an id is one subject token and holds no "_",
// so consumer names built from ids cannot collide.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Sources of the bridge.

// SharedSource is what was shared with partner: the bridge's read of
// SHARED on the sending network's relay, one durable position per
// partner, filtered to the countries the directory gives the partner.
func SharedSource(partner string) Source { return Source{Shared: partner} }

// BridgedSource is what bridges delivered for country cc: a partner's
// read of BRIDGED on its own relay.
func BridgedSource(cc string) Source { return Source{Bridged: true, Country: cc} }

// ReturnSource is what this relay's partners send back through the
// reading bridge: the bridge's read of RETURN on a partner's relay.
var ReturnSource = Source{Return: true}

// parseBridgeSource parses "shared.<partner>", "bridged.<cc>" and
// "return".
func parseBridgeSource(s string) (Source, bool) {
	if s == "return" {
		return ReturnSource, true
	}
	if p, ok := strings.CutPrefix(s, "shared."); ok && ValidID(p) {
		return SharedSource(p), true
	}
	if cc, ok := strings.CutPrefix(s, "bridged."); ok && country.Known(cc) {
		return BridgedSource(cc), true
	}
	return Source{}, false
}

// Consumer names of the bridge's sources. Directory ids hold no "_", so
// the names of different principals cannot collide.

// SharedConsumer names bridge's durable position on what is shared with
// partner.
func SharedConsumer(bridge, partner string) string { return "b_" + bridge + "_" + partner }

// SharedFilter is the subject filter of country cc's shared alerts.
func SharedFilter(cc string) string { return root + kindToken[KindShare] + "." + cc + ".>" }

// BridgedConsumer names partner's durable position on what bridges
// delivered for cc.
func BridgedConsumer(partner, cc string) string { return "p_" + partner + "_" + cc }

// BridgedFilter is the subject filter of every bridge's deliveries for cc.
func BridgedFilter(cc string) string { return root + kindToken[KindBridged] + ".*." + cc + ".>" }

// ReturnConsumer names bridge's durable position on what partners send
// back through it.
func ReturnConsumer(bridge string) string { return "r_" + bridge }

// ReturnFilter is the subject filter of what goes back through bridge.
func ReturnFilter(bridge string) string { return root + "return." + bridge + ".>" }

// The roll-up service: "svc.rollup.<id>" answers an institution with the
// signed statements the relay holds about the alert with that id — ack
// tokens (ACKS) and receipts (RECEIPTS) — as a batch, like a fetch, with
// nothing to settle. The reader verifies each against its directory.

// SvcRollUp names the roll-up service.
const SvcRollUp ServiceName = "rollup"

// RollUpTarget is the target that reads the roll-up of alert id.
func RollUpTarget(id routing.ID) string { return Service{Name: SvcRollUp, ID: id}.Target() }

// MaxRollUp bounds the statements one roll-up returns: one ack token per
// institution and one receipt per partner.
const MaxRollUp = 1024

// JetStream refuses a store into a stream that keeps one message per
// subject (BRIDGED, RECEIPTS) when the subject holds one already, with
// this error code and description (nats-server's JSStreamStoreFailedF
// and ErrMaxMsgsPerSubject). The code alone also means other store
// failures, such as a full stream.
const (
	jsErrStoreFailed       = 10077
	jsMaxMsgsPerSubjectMsg = "maximum messages per subject exceeded"
)

// AlreadyStored reports whether the refusal says the message is stored
// already: a delivery to BRIDGED, or a receipt to RECEIPTS, made again
// after the dedup window. Their subjects name the message, so what holds
// the subject is the same message; the sender takes it as stored.
func (e *Error) AlreadyStored() bool {
	return e.JSErrCode == jsErrStoreFailed && e.Description == jsMaxMsgsPerSubjectMsg
}
