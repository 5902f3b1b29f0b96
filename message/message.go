package message

import (
	"time"

	"github.com/hrdbeacon/beacon/routing"
)

// Kind is the "kind" discriminator of a body.
type Kind string

const (
	KindAlert              Kind = "alert"
	KindUpdate             Kind = "update"
	KindCancel             Kind = "cancel"
	KindMeetingRequest     Kind = "meeting_request"
	KindObservationRequest Kind = "observation_request"
	KindAck                Kind = "ack"
	KindReply              Kind = "reply"
	KindReceipt            Kind = "receipt"
	KindBroadcast          Kind = "broadcast"
)

// Message is one of the kinds in this package: [*Alert], [*Update],
// [*Cancel], [*MeetingRequest], [*ObservationRequest], [*Ack], [*Reply],
// [*Receipt], [*Broadcast], [*CheckIn] or [*Escalation]. [Marshal] refuses any other implementation,
// because it could not promise [Unmarshal] would accept the result.
type Message interface {
	Kind() Kind
	// Validate reports the first field that Marshal would refuse, as a
	// *FieldError.
	Validate() error
}

var (
	_ Message = (*Alert)(nil)
	_ Message = (*Update)(nil)
	_ Message = (*Cancel)(nil)
	_ Message = (*MeetingRequest)(nil)
	_ Message = (*ObservationRequest)(nil)
	_ Message = (*Ack)(nil)
	_ Message = (*Reply)(nil)
	_ Message = (*Receipt)(nil)
	_ Message = (*Broadcast)(nil)
)

// schema is what the codec needs from a kind: one list of fields drives
// encoding, decoding and validation, so the three cannot drift apart.
type schema interface {
	Message
	fields() []field
}

// newSchema returns an empty message of kind k to decode into, or nil.
func newSchema(k Kind) schema {
	switch k {
	case KindAlert:
		return new(Alert)
	case KindUpdate:
		return new(Update)
	case KindCancel:
		return new(Cancel)
	case KindMeetingRequest:
		return new(MeetingRequest)
	case KindObservationRequest:
		return new(ObservationRequest)
	case KindAck:
		return new(Ack)
	case KindReply:
		return new(Reply)
	case KindReceipt:
		return new(Receipt)
	case KindBroadcast:
		return new(Broadcast)
	case KindMeetingResponse, KindObservation, KindLiaison, KindBroadcastAnswer, KindCaseReport, KindSharedAlert:
		return newMissionSchema(k)
	case KindCheckIn:
		return new(CheckIn)
	case KindEscalation:
		return new(Escalation)
	}
	return nil
}

// schemaOf accepts only this package's concrete types. Asserting to schema
// alone would also accept a caller's struct that embeds *Alert and overrides
// Kind, and Marshal would then write a body that Unmarshal refuses.
func schemaOf(m Message) (schema, bool) {
	switch m := m.(type) {
	case *Alert, *Update, *Cancel, *MeetingRequest, *ObservationRequest,
		*Ack, *Reply, *Receipt, *Broadcast,
		*MeetingResponse, *Observation, *Liaison, *BroadcastAnswer, *CaseReport, *SharedAlert,
		*CheckIn, *Escalation:
		return m.(schema), true
	}
	return nil, false
}

// Alert is a defender's call for help to the missions covering a country.
type Alert struct {
	Country  string // lower-case ISO 3166-1 alpha-2, see package country
	Priority routing.Priority
	Category Category
	Summary  string // one line
	Details  string // may be empty
	Location string // optional, one line, coarse
	// Consent is explicit in every alert, never a default: a body without
	// "share" or "publicise" is refused.
	Share     bool // may be shared with partner governments
	Publicise bool // may be made public
	// Exercise marks a drill (as CAP's status=Exercise): it travels the
	// whole path, marked, and never counts as a real case.
	Exercise bool
}

func (*Alert) Kind() Kind { return KindAlert }

func (m *Alert) Validate() error {
	if m == nil {
		return errNil(KindAlert)
	}
	return validate(KindAlert, m.fields())
}

func (m *Alert) fields() []field {
	return []field{
		&countryField{name: "country", p: &m.Country},
		&priorityField{name: "priority", p: &m.Priority},
		&enumField[Category]{name: "category", p: &m.Category, values: categories},
		&textField{name: "summary", p: &m.Summary, min: 1, max: maxSummary},
		&textField{name: "details", p: &m.Details, max: maxDetails, multiline: true},
		&textField{name: "location", p: &m.Location, max: maxLocation, opt: true},
		&boolField{name: "share", p: &m.Share},
		&boolField{name: "publicise", p: &m.Publicise},
		&exerciseField{p: &m.Exercise},
	}
}

// Update adds facts to an earlier alert.
type Update struct {
	Ref  routing.ID // the alert's message id
	Text string
}

func (*Update) Kind() Kind { return KindUpdate }

func (m *Update) Validate() error {
	if m == nil {
		return errNil(KindUpdate)
	}
	return validate(KindUpdate, m.fields())
}

func (m *Update) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&textField{name: "text", p: &m.Text, min: 1, max: maxUpdateText, multiline: true},
	}
}

// Cancel withdraws an earlier alert: the defender is safe, or it was a false
// alarm.
type Cancel struct {
	Ref    routing.ID // the alert's message id
	Reason CancelReason
	Text   string // optional
}

func (*Cancel) Kind() Kind { return KindCancel }

func (m *Cancel) Validate() error {
	if m == nil {
		return errNil(KindCancel)
	}
	return validate(KindCancel, m.fields())
}

func (m *Cancel) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&enumField[CancelReason]{name: "reason", p: &m.Reason, values: cancelReasons},
		&textField{name: "text", p: &m.Text, max: maxCancelText, multiline: true, opt: true},
	}
}

// MeetingRequest asks a mission for a meeting.
type MeetingRequest struct {
	Country     string
	Purpose     string
	Times       []time.Time // 1 to 5, distinct once truncated to seconds
	Place       Place
	SafetyNotes string // optional
}

func (*MeetingRequest) Kind() Kind { return KindMeetingRequest }

func (m *MeetingRequest) Validate() error {
	if m == nil {
		return errNil(KindMeetingRequest)
	}
	return validate(KindMeetingRequest, m.fields())
}

func (m *MeetingRequest) fields() []field {
	return []field{
		&countryField{name: "country", p: &m.Country},
		&textField{name: "purpose", p: &m.Purpose, min: 1, max: maxPurpose, multiline: true},
		&timesField{name: "times", p: &m.Times, max: maxTimes},
		&enumField[Place]{name: "place", p: &m.Place, values: places},
		&textField{name: "safety_notes", p: &m.SafetyNotes, max: maxSafetyNotes, multiline: true, opt: true},
	}
}

// ObservationRequest asks missions to send observers to a hearing.
type ObservationRequest struct {
	Country    string
	Court      string
	Case       string
	Hearing    time.Time
	Defendants []string // 0 to 20 names; an empty list decodes as nil
	Charges    string   // optional
}

func (*ObservationRequest) Kind() Kind { return KindObservationRequest }

func (m *ObservationRequest) Validate() error {
	if m == nil {
		return errNil(KindObservationRequest)
	}
	return validate(KindObservationRequest, m.fields())
}

func (m *ObservationRequest) fields() []field {
	return []field{
		&countryField{name: "country", p: &m.Country},
		&textField{name: "court", p: &m.Court, min: 1, max: maxCourt},
		&textField{name: "case", p: &m.Case, min: 1, max: maxCase},
		&timeField{name: "hearing", p: &m.Hearing},
		&namesField{name: "defendants", p: &m.Defendants, max: maxDefendants, maxLen: maxDefendantLen},
		&textField{name: "charges", p: &m.Charges, max: maxCharges, multiline: true, opt: true},
	}
}

// Ack tells a defender that someone acts on an alert. The envelope layer
// signs it; this package only checks what it says.
type Ack struct {
	Ref      routing.ID // the alert's message id
	By       string     // who acts, as a role
	NextStep string     // may be empty
}

func (*Ack) Kind() Kind { return KindAck }

func (m *Ack) Validate() error {
	if m == nil {
		return errNil(KindAck)
	}
	return validate(KindAck, m.fields())
}

func (m *Ack) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&textField{name: "by", p: &m.By, min: 1, max: maxBy},
		&textField{name: "next_step", p: &m.NextStep, max: maxNextStep, multiline: true},
	}
}

// Reply is free text in the thread of a case, in either direction.
type Reply struct {
	Ref  routing.ID // the case's alert id
	Text string
}

func (*Reply) Kind() Kind { return KindReply }

func (m *Reply) Validate() error {
	if m == nil {
		return errNil(KindReply)
	}
	return validate(KindReply, m.fields())
}

func (m *Reply) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&textField{name: "text", p: &m.Text, min: 1, max: maxReplyText, multiline: true},
	}
}

// Receipt tells a defender that a partner's relay has stored a shared alert.
type Receipt struct {
	Ref      routing.ID // the alert's message id
	Partner  string     // the partner's directory id
	StoredAt time.Time
}

func (*Receipt) Kind() Kind { return KindReceipt }

func (m *Receipt) Validate() error {
	if m == nil {
		return errNil(KindReceipt)
	}
	return validate(KindReceipt, m.fields())
}

func (m *Receipt) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&partnerField{name: "partner", p: &m.Partner},
		&timeField{name: "stored_at", p: &m.StoredAt},
	}
}

// Broadcast is a mission's public notice to everyone in a country.
type Broadcast struct {
	Country    string
	Category   BroadcastCategory
	Title      string
	Text       string
	ValidUntil time.Time // optional; the zero time means no end
}

func (*Broadcast) Kind() Kind { return KindBroadcast }

func (m *Broadcast) Validate() error {
	if m == nil {
		return errNil(KindBroadcast)
	}
	return validate(KindBroadcast, m.fields())
}

func (m *Broadcast) fields() []field {
	return []field{
		&countryField{name: "country", p: &m.Country},
		&enumField[BroadcastCategory]{name: "category", p: &m.Category, values: broadcastCategories},
		&textField{name: "title", p: &m.Title, min: 1, max: maxTitle},
		&textField{name: "text", p: &m.Text, min: 1, max: maxBroadcastText, multiline: true},
		&timeField{name: "valid_until", p: &m.ValidUntil, opt: true},
	}
}

// validate checks fields in body order, so the first refusal is the first
// field a reader of the body would reach.
func validate(k Kind, fs []field) error {
	for _, f := range fs {
		if f.optional() && f.empty() {
			continue // left out of the body
		}
		if fe := f.check(); fe != nil {
			fe.Kind = k
			return fe
		}
	}
	return nil
}
