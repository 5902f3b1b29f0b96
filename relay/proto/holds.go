package proto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/routing"
)

// Held envelopes. A defender hands the relay an envelope already sealed
// to its recipients, with a release condition; the relay keeps it in
// stream HOLDS and releases it into its channel when the condition fires,
// never reading it. Two conditions exist:
//
//   - a check-in plan ([CheckInPlan]): released when the defender misses a
//     check-in. Each check-in reveals the next link of a hash chain
//     ([ChainLink]) whose tip the relay holds, so the relay holds nothing
//     that would let it check in by itself;
//   - an escalation ([EscalationHold]): one tier of an alert's escalation,
//     released to that tier when too few institutions acknowledged the
//     alert in time.
//
// A client publishes hold requests on [Ingest](its mailbox, [HoldTarget](op))
// and the relay answers each with a [HoldReply]. envelope/SPEC.md
// ("Held envelopes") specifies the bytes.

// A HoldOp is one operation on holds, the target hold.<op>.
type HoldOp string

// Hold operations.
const (
	// HoldArmCheckIn arms a check-in plan: the body is [FrameHold] of a
	// [CheckInPlan] and the sealed envelope.
	HoldArmCheckIn HoldOp = "checkin"
	// HoldArmEscalation hands over one tier of an alert's escalation: the
	// body is [FrameHold] of an [EscalationHold] and the sealed envelope.
	HoldArmEscalation HoldOp = "escalate"
	// HoldOK is a check-in: a [CheckIn] with the next link of the chain.
	// The plan's deadline moves to now + every + grace.
	HoldOK HoldOp = "ok"
	// HoldDisarm cancels a plan with the next link of the chain.
	HoldDisarm HoldOp = "disarm"
	// HoldRelease releases a plan now, with the next link of the chain.
	HoldRelease HoldOp = "release"
	// HoldPanic releases a plan now with its panic secret ([PanicRequest]),
	// for a device that holds no chain: the duress path.
	HoldPanic HoldOp = "panic"
	// HoldStatus reports on holds by id ([StatusRequest]): ids, kinds,
	// deadlines; never content.
	HoldStatus HoldOp = "status"
	// HoldDrill marks an alert about to be sent as a drill ([DrillMark]),
	// so that response reports, which the relay computes from metadata,
	// leave it out. The defender tells the relay, and only the relay,
	// that the alert is an exercise; a mark made after the alert was
	// stored does not count.
	HoldDrill HoldOp = "drill"
)

var holdOps = []HoldOp{HoldArmCheckIn, HoldArmEscalation, HoldOK, HoldDisarm, HoldRelease, HoldPanic, HoldStatus, HoldDrill}

const holdTargetPrefix = "hold."

// HoldTargets is the wildcard of every hold target: what a defender's
// connection may publish on under its ingest prefix.
const HoldTargets = holdTargetPrefix + "*"

// HoldTarget is the ingest target of op.
func HoldTarget(op HoldOp) string { return holdTargetPrefix + string(op) }

// IsHold reports whether an ingest target is a hold request.
func IsHold(target string) bool { return strings.HasPrefix(target, holdTargetPrefix) }

// ParseHoldTarget parses a hold target ("hold.ok").
func ParseHoldTarget(target string) (HoldOp, error) {
	op, ok := strings.CutPrefix(target, holdTargetPrefix)
	for _, o := range holdOps {
		if ok && HoldOp(op) == o {
			return o, nil
		}
	}
	return "", fmt.Errorf("%w: %q is not a hold operation", ErrSubject, target)
}

// Subjects of stream HOLDS, one set per hold id. They are the relay's
// own: no client publishes or reads them.
const holdRoot = root + "hold."

// HoldStateSubject holds a hold's sealed envelope and condition, or, once
// it has ended, a tombstone saying how.
func HoldStateSubject(id routing.ID) string { return holdRoot + "state." + id.String() }

// HoldTimerSubject holds the hold's message schedule.
func HoldTimerSubject(id routing.ID) string { return holdRoot + "timer." + id.String() }

// HoldDue is where every hold's schedule fires: one subject, so that
// firings cost no subject of their own. A firing names its hold in the
// Nats-Scheduler header JetStream sets on it (the timer's subject).
const HoldDue = holdRoot + "due"

// HoldDrillSubject marks message id as a drill; HoldDrillFilter is every
// mark.
func HoldDrillSubject(id routing.ID) string { return holdRoot + "drill." + id.String() }

const HoldDrillFilter = holdRoot + "drill.>"

// HoldReleaseConsumer names the durable consumer of HoldDue.
const HoldReleaseConsumer = "holds-release"

// ParseHoldSubject returns the hold id of a HOLDS subject and which of
// them it is ("state", "timer" or "drill").
func ParseHoldSubject(subject string) (part string, id routing.ID, err error) {
	rest, ok := strings.CutPrefix(subject, holdRoot)
	part, hid, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || (part != "state" && part != "timer" && part != "drill") {
		return "", routing.ID{}, fmt.Errorf("%w: %q is not a hold subject", ErrSubject, subject)
	}
	if id, err = routing.ParseID(hid); err != nil {
		return "", routing.ID{}, fmt.Errorf("%w: %q: %v", ErrSubject, subject, err)
	}
	return part, id, nil
}

// HeaderReleased is set on a message the relay released from a hold: its
// value is the hold's kind. It is the relay's word, not authenticated;
// the plaintext says the same, authenticated by the defender
// (message.KindCheckIn, message.KindEscalation).
const HeaderReleased = "Beacon-Released"

// Hold kinds, in [HoldInfo.Kind] and [HeaderReleased].
const (
	HoldKindCheckIn    = "checkin"
	HoldKindEscalation = "escalation"
	HoldKindDrill      = "drill" // a drill mark (HoldDrill)
)

// Hold states, in [HoldInfo.State].
const (
	HoldArmed    = "armed"    // waiting for its deadline
	HoldReleased = "released" // released into its channel
	HoldDisarmed = "disarmed" // cancelled by its owner
	HoldStopped  = "stopped"  // an escalation the acknowledgements stopped
	HoldMarked   = "marked"   // a drill mark
)

// Limits of hold requests.
const (
	// MaxHoldParams bounds the JSON parameters in front of a held
	// envelope: a few ids and numbers.
	MaxHoldParams = 1024
	// MaxChainLength bounds a check-in chain: 2^20 check-ins is ten years
	// at the shortest interval, and computing a link costs the client at
	// most that many hashes (well under a second).
	MaxChainLength = 1 << 20
	// MaxStatusIDs bounds the ids of one status request.
	MaxStatusIDs = 256
	// MaxEscalationTier is the last tier: the post's escalation target,
	// then headquarters, then partner governments.
	MaxEscalationTier = 3
)

// Seconds is a duration in whole seconds, as hold requests carry it.
type Seconds int64

// Duration is s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) * time.Second }

// SecondsOf rounds d up to whole seconds.
func SecondsOf(d time.Duration) Seconds { return Seconds((d + time.Second - 1) / time.Second) }

// A Link is one value of a check-in chain, or a panic secret or lock: 32
// bytes, in JSON as 64 lower-case hex digits.
type Link [32]byte

func (l Link) String() string { return hex.EncodeToString(l[:]) }

// MarshalText implements encoding.TextMarshaler.
func (l Link) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText takes exactly 64 lower-case hex digits.
func (l *Link) UnmarshalText(b []byte) error {
	if len(b) != 64 || strings.ToLower(string(b)) != string(b) {
		return errors.New("proto: a link is 64 lower-case hex digits")
	}
	_, err := hex.Decode(l[:], b)
	return err
}

// IsZero reports whether l is all zeros: never a valid tip or lock.
func (l Link) IsZero() bool { return l == Link{} }

// A CheckInPlan arms a check-in plan. The relay releases the held
// envelope into the channel its header names (the alerts of its country
// and priority) at every + grace after the last check-in, unless a
// check-in ([HoldOK]) comes first.
type CheckInPlan struct {
	// ID is the plan's hold id, chosen by the client: random, or
	// [PanicID] of the duress key.
	ID routing.ID `json:"id"`
	// Every is how often the defender promises to check in; the relay
	// refuses less than its minimum interval.
	Every Seconds `json:"every"`
	// Grace is how long past a missed check-in the relay waits.
	Grace Seconds `json:"grace"`
	// Chain is the tip of the hash chain, c_0; Length the chain's N.
	Chain  Link   `json:"chain"`
	Length uint32 `json:"length"`
	// Panic, if set, is [PanicLock](ID, secret): whoever shows the secret
	// releases the plan at once ([HoldPanic]).
	Panic *Link `json:"panic,omitempty"`
	// Exercise marks a drill: the relay marks the held envelope's id as
	// one ([HoldDrill]) when it arms the plan.
	Exercise bool `json:"exercise,omitempty"`
}

// Check checks what a relay can check without its settings.
func (p *CheckInPlan) Check() error {
	switch {
	case p.ID.IsZero():
		return errors.New("hold id is all zeros")
	case p.Every <= 0 || p.Grace < 0:
		return errors.New("every must be positive and grace not negative")
	case p.Chain.IsZero():
		return errors.New("chain tip is all zeros")
	case p.Length < 1 || p.Length > MaxChainLength:
		return fmt.Errorf("chain length must be 1–%d", MaxChainLength)
	case p.Panic != nil && p.Panic.IsZero():
		return errors.New("panic lock is all zeros")
	}
	return nil
}

// An EscalationHold hands over one tier of an alert's escalation. Its
// hold id is [EscalationHoldID](Alert, Tier); the relay decides the
// deadline and the quorum from the directory.
type EscalationHold struct {
	// Alert is the message id of the alert it escalates.
	Alert routing.ID `json:"alert"`
	// Tier is 1 (the posts' escalation targets), 2 (their headquarters)
	// or 3 (partner governments).
	Tier int `json:"tier"`
	// Share says the defender consented to partner governments: without
	// it the relay releases nothing into a partner's channel.
	Share bool `json:"share"`
}

// Check checks the fields.
func (e *EscalationHold) Check() error {
	switch {
	case e.Alert.IsZero():
		return errors.New("alert id is all zeros")
	case e.Tier < 1 || e.Tier > MaxEscalationTier:
		return fmt.Errorf("tier must be 1–%d", MaxEscalationTier)
	case e.Tier == MaxEscalationTier && !e.Share:
		return errors.New("the partners' tier needs the defender's consent to share")
	}
	return nil
}

// A CheckIn proves, with link Index of the plan's chain, that the
// defender (or whoever holds the chain) acts now: HoldOK, HoldDisarm and
// HoldRelease take it.
type CheckIn struct {
	ID    routing.ID `json:"id"`
	Index uint32     `json:"index"`
	Value Link       `json:"value"`
}

// A PanicRequest releases plan ID now with its panic secret.
type PanicRequest struct {
	ID     routing.ID `json:"id"`
	Secret Link       `json:"secret"`
}

// A DrillMark marks alert Alert (not yet sent) as a drill.
type DrillMark struct {
	Alert routing.ID `json:"alert"`
}

// A StatusRequest asks about holds by id.
type StatusRequest struct {
	IDs []routing.ID `json:"ids"`
}

// A HoldReply answers a hold request. A successful arm also carries the
// stream and sequence, so that it parses as a [Reply] as well.
type HoldReply struct {
	Stream string     `json:"stream,omitempty"`
	Seq    uint64     `json:"seq,omitempty"`
	Holds  []HoldInfo `json:"holds,omitempty"`
	Error  *Error     `json:"error,omitempty"`
}

// HoldInfo is what the relay says of one hold: never its content.
type HoldInfo struct {
	ID    routing.ID `json:"id"`
	Kind  string     `json:"kind"`
	State string     `json:"state"`
	// Deadline is when an armed hold is released; for one that ended,
	// when it ended.
	Deadline time.Time `json:"deadline"`
	// Index and Length: check-ins used, of the chain's length.
	Index  uint32 `json:"index,omitempty"`
	Length uint32 `json:"length,omitempty"`
	// Alert and Tier of an escalation.
	Alert routing.ID `json:"alert,omitzero"`
	Tier  int        `json:"tier,omitempty"`
}

// ParseHoldReply decodes a relay's answer to a hold request; a refusal
// is returned as *Error.
func ParseHoldReply(b []byte) (*HoldReply, error) {
	var r HoldReply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReply, err)
	}
	if r.Error != nil {
		return &r, r.Error
	}
	return &r, nil
}

// Refusal codes of hold requests.
const (
	CodeNoHold   Code = "no_hold"   // no armed hold has that id
	CodeChain    Code = "chain"     // a check-in link that does not verify: forged, or replayed
	CodeLate     Code = "late"      // the plan fell due before the check-in came
	CodeConflict Code = "conflict"  // another request changed the hold first
	CodeNoTier   Code = "no_tier"   // the directory has no one for that escalation tier
	CodeHoldFull Code = "hold_full" // the relay holds all it may
)

// FrameHold is the body of an arm request: the length of the JSON
// parameters (2 bytes, big-endian), the parameters, then the sealed
// envelope.
func FrameHold(params any, envelope []byte) ([]byte, error) {
	p, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	if len(p) > MaxHoldParams {
		return nil, fmt.Errorf("proto: hold parameters are %d bytes, the limit is %d", len(p), MaxHoldParams)
	}
	b := make([]byte, 0, 2+len(p)+len(envelope))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	return append(append(b, p...), envelope...), nil
}

// UnframeHold splits an arm request into its parameters, decoded into v
// with unknown fields refused, and the envelope.
func UnframeHold(b []byte, v any) (envelope []byte, err error) {
	if len(b) < 2 {
		return nil, errors.New("proto: hold request too short")
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > MaxHoldParams || len(b) < 2+n {
		return nil, errors.New("proto: hold parameters too long or cut short")
	}
	if err := DecodeStrict(b[2:2+n], v); err != nil {
		return nil, err
	}
	return b[2+n:], nil
}

// DecodeStrict decodes JSON into v, refusing unknown fields and anything
// after the value.
func DecodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("proto: %w", err)
	}
	if dec.More() {
		return errors.New("proto: data after the request")
	}
	return nil
}

// Labels of the hold derivations (envelope/SPEC.md, "Held envelopes").
const (
	chainLabel      = "beacon.hold.v1/chain"
	escalationLabel = "beacon.hold.v1/escalation"
	panicIDLabel    = "beacon.hold.v1/panic-id"
	panicKeyLabel   = "beacon.hold.v1/panic-secret"
	panicLockLabel  = "beacon.hold.v1/panic-lock"
)

// ChainLink is the link that value, the chain's value number i, proves:
// c_{i-1} = SHA-256(label || id || uint32(i) || c_i). The relay checks a
// check-in by computing it; the client builds the chain down from its
// seed c_N with it.
func ChainLink(id routing.ID, i uint32, value Link) Link {
	h := sha256.New()
	h.Write([]byte(chainLabel))
	h.Write(id[:])
	h.Write(binary.BigEndian.AppendUint32(nil, i))
	h.Write(value[:])
	return Link(h.Sum(nil))
}

// ChainValue returns c_i of the chain of length n with seed c_n.
func ChainValue(id routing.ID, seed Link, n, i uint32) Link {
	v := seed
	for j := n; j > i; j-- {
		v = ChainLink(id, j, v)
	}
	return v
}

// EscalationHoldID is the hold id of tier of alert's escalation: both
// sides compute it, so acks find the holds without an index.
func EscalationHoldID(alert routing.ID, tier int) routing.ID {
	h := sha256.New()
	h.Write([]byte(escalationLabel))
	h.Write(alert[:])
	h.Write([]byte{byte(tier)})
	return routing.ID(h.Sum(nil)[:routing.IDSize])
}

// PanicID and PanicSecret derive, from a device's duress key, the hold id
// its check-in plan is armed under and the secret that releases it at
// once. A device unlocked with the duress passphrase holds the key and
// nothing else of the plan.
func PanicID(duressKey []byte) routing.ID {
	return routing.ID(mac(duressKey, panicIDLabel)[:routing.IDSize])
}

// PanicSecret: see [PanicID].
func PanicSecret(duressKey []byte) Link { return Link(mac(duressKey, panicKeyLabel)) }

// PanicLock is what the relay stores to recognise the panic secret of
// plan id.
func PanicLock(id routing.ID, secret Link) Link {
	h := sha256.New()
	h.Write([]byte(panicLockLabel))
	h.Write(id[:])
	h.Write(secret[:])
	return Link(h.Sum(nil))
}

func mac(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}
