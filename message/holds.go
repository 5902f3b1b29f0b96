package message

import (
	"encoding/json"
	"time"

	"github.com/hrdbeacon/beacon/routing"
)

// Kinds released from held envelopes: the relay holds them sealed, and
// releases them when a condition fires, so that what a mission reads
// says, authenticated by the defender, why it came.
const (
	KindCheckIn    Kind = "checkin"
	KindEscalation Kind = "escalation"
)

var (
	_ Message = (*CheckIn)(nil)
	_ Message = (*Escalation)(nil)
)

// maxCheckInText: what to do if the defender goes silent, as long as an
// update.
const maxCheckInText = 4000

// maxPlanDuration bounds a check-in interval or grace: a year; the relay
// bounds it further by its retention.
const maxPlanDuration = 366 * 24 * time.Hour

// CheckIn is what a defender's check-in plan says when the defender
// stops checking in: sealed to the missions of Country when the plan is
// armed, held by the relay, and released into their alerts once a
// check-in is missed by more than the grace.
type CheckIn struct {
	Country  string
	Priority routing.Priority
	// Text is what the defender asks the missions to know and do.
	Text string
	// Armed is when the plan was armed; Every and Grace its terms (whole
	// seconds), so a reader knows the defender was last heard from at
	// most Every + Grace before the release.
	Armed time.Time
	Every time.Duration
	Grace time.Duration
	// Exercise marks a drill: it travels the whole path, marked, and
	// never counts as a real case.
	Exercise bool
}

func (*CheckIn) Kind() Kind { return KindCheckIn }

func (m *CheckIn) Validate() error {
	if m == nil {
		return errNil(KindCheckIn)
	}
	return validate(KindCheckIn, m.fields())
}

func (m *CheckIn) fields() []field {
	return []field{
		&countryField{name: "country", p: &m.Country},
		&priorityField{name: "priority", p: &m.Priority},
		&textField{name: "text", p: &m.Text, min: 1, max: maxCheckInText, multiline: true},
		&timeField{name: "armed", p: &m.Armed},
		&durationField{name: "every", p: &m.Every, min: time.Second},
		&durationField{name: "grace", p: &m.Grace},
		&exerciseField{p: &m.Exercise},
	}
}

// EscalationTier names who an [Escalation] was released to.
type EscalationTier string

const (
	TierTarget       EscalationTier = "target"       // the posts' escalation target
	TierHeadquarters EscalationTier = "headquarters" // the posts' headquarters
	TierPartners     EscalationTier = "partners"     // partner governments, with consent
)

var escalationTiers = []EscalationTier{TierTarget, TierHeadquarters, TierPartners}

// Escalation is an alert that no one acknowledged in time, released to
// the next tier: sealed by the defender to that tier when the alert was
// sent, held by the relay, released if too few acknowledged it by the
// tier's deadline.
type Escalation struct {
	Ref   routing.ID // the alert's message id
	Tier  EscalationTier
	Alert Alert // what the alert said, exercise flag included
}

func (*Escalation) Kind() Kind { return KindEscalation }

func (m *Escalation) Validate() error {
	if m == nil {
		return errNil(KindEscalation)
	}
	return validate(KindEscalation, m.fields())
}

func (m *Escalation) fields() []field {
	return append([]field{
		&idField{name: "ref", p: &m.Ref},
		&enumField[EscalationTier]{name: "tier", p: &m.Tier, values: escalationTiers},
	}, m.Alert.fields()...)
}

// IsExercise reports whether m is marked as a drill: an alert, a check-in
// or an escalation of one. A drill is shown as one and never counted as a
// real case.
func IsExercise(m Message) bool {
	switch m := m.(type) {
	case *Alert:
		return m.Exercise
	case *CheckIn:
		return m.Exercise
	case *Escalation:
		return m.Alert.Exercise
	}
	return false
}

// exerciseField is the drill flag: left out unless set, so every body
// written before it existed reads the same, and "exercise": false is
// refused as a second spelling of no flag.
type exerciseField struct{ p *bool }

func (f *exerciseField) key() string        { return "exercise" }
func (f *exerciseField) optional() bool     { return true }
func (f *exerciseField) empty() bool        { return !*f.p }
func (f *exerciseField) check() *FieldError { return nil }
func (f *exerciseField) encode(b []byte) []byte {
	return append(b, "true"...)
}

func (f *exerciseField) decode(raw json.RawMessage) *FieldError {
	switch string(raw) {
	case "true":
		*f.p = true
	case "false":
		*f.p = false // refused by decodeField: leave the field out instead
	default:
		return bad("exercise", "not true")
	}
	return nil
}

// durationField is a whole number of seconds written in Go's duration
// form ("6h0m0s", "30m0s", "0s"): readable, and one form per value.
type durationField struct {
	name string
	p    *time.Duration
	min  time.Duration
}

func (f *durationField) key() string    { return f.name }
func (f *durationField) optional() bool { return false }
func (f *durationField) empty() bool    { return false }

func (f *durationField) decode(raw json.RawMessage) *FieldError {
	s, fe := decodeString(f.name, raw)
	if fe != nil {
		return fe
	}
	d, err := time.ParseDuration(s)
	if err != nil || d.String() != s {
		return bad(f.name, "not a duration such as 6h0m0s")
	}
	*f.p = d
	return nil
}

func (f *durationField) check() *FieldError {
	switch d := *f.p; {
	case d%time.Second != 0:
		return bad(f.name, "not a whole number of seconds")
	case d < f.min || d > maxPlanDuration:
		return bad(f.name, "out of range")
	}
	return nil
}

func (f *durationField) encode(b []byte) []byte { return appendString(b, f.p.String()) }
