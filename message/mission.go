package message

import (
	"fmt"
	"time"

	"github.com/hrdbeacon/beacon/routing"
)

// The kinds a mission's console writes (and the defender's answer to a
// broadcast): what an officer does on a case becomes one of these, sealed
// and signed by the mission.
const (
	KindMeetingResponse Kind = "meeting_response"
	KindObservation     Kind = "observation"
	KindLiaison         Kind = "liaison"
	KindBroadcastAnswer Kind = "broadcast_answer"
	KindCaseReport      Kind = "case_report"
	KindSharedAlert     Kind = "shared_alert"
)

var (
	_ Message = (*MeetingResponse)(nil)
	_ Message = (*Observation)(nil)
	_ Message = (*Liaison)(nil)
	_ Message = (*BroadcastAnswer)(nil)
	_ Message = (*CaseReport)(nil)
	_ Message = (*SharedAlert)(nil)
)

// Limits of the mission's kinds, in characters.
const (
	// A meeting note says where exactly, or what to bring: a few lines.
	maxMeetingNote = 1000
	// An observer is named by role ("Second Secretary, Embassy of
	// Sweden"), like an ack's by.
	maxObserver = 200
	// A hearing's outcome: adjourned to, verdict, what the observer saw.
	maxOutcome = 2000
	// A case report to headquarters is a cable, not a file.
	maxCaseReportText = 8000
	// A mission's note to partner governments on a shared alert.
	maxShareNote = 1000
)

// MeetingAction is what a [MeetingResponse] does to a meeting.
type MeetingAction string

const (
	// MeetingAccept accepts one of the times the defender proposed.
	MeetingAccept MeetingAction = "accept"
	// MeetingPropose proposes other times (1 to 5).
	MeetingPropose MeetingAction = "propose"
	// MeetingConfirm confirms the time agreed.
	MeetingConfirm MeetingAction = "confirm"
	// MeetingCancel calls the meeting off; it carries no time.
	MeetingCancel MeetingAction = "cancel"
)

var meetingActions = []MeetingAction{MeetingAccept, MeetingPropose, MeetingConfirm, MeetingCancel}

// MeetingResponse is a mission's answer to a [MeetingRequest].
type MeetingResponse struct {
	Ref    routing.ID // the meeting request's message id
	Action MeetingAction
	// Times holds exactly one time for accept and confirm, 1 to 5 for
	// propose, and none for cancel (written as []).
	Times []time.Time
	Note  string // optional
}

func (*MeetingResponse) Kind() Kind { return KindMeetingResponse }

func (m *MeetingResponse) Validate() error {
	if m == nil {
		return errNil(KindMeetingResponse)
	}
	return validate(KindMeetingResponse, m.fields())
}

func (m *MeetingResponse) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&enumField[MeetingAction]{name: "action", p: &m.Action, values: meetingActions},
		&meetingTimesField{timesField: timesField{name: "times", p: &m.Times, max: maxTimes}, action: &m.Action},
		&textField{name: "note", p: &m.Note, max: maxMeetingNote, multiline: true, opt: true},
	}
}

// meetingTimesField is a list of times whose length the action decides.
// The action comes first in the body, so it is known when the times are
// checked, on both Marshal and Unmarshal.
type meetingTimesField struct {
	timesField
	action *MeetingAction
}

func (f *meetingTimesField) check() *FieldError {
	n := len(*f.p)
	switch *f.action {
	case MeetingCancel:
		if n != 0 {
			return bad(f.name, "a cancellation carries no time")
		}
		return nil
	case MeetingAccept, MeetingConfirm:
		if n != 1 {
			return badf(f.name, "%s carries exactly one time", *f.action)
		}
	}
	return f.timesField.check()
}

// ObservationStatus is where a mission's trial observation stands.
type ObservationStatus string

const (
	// ObservationAssigned: an observer is assigned (told to the other
	// missions covering the country, so not every post sends someone).
	ObservationAssigned ObservationStatus = "assigned"
	// ObservationConfirmed: the mission confirms to the defender that
	// someone will attend.
	ObservationConfirmed ObservationStatus = "confirmed"
	// ObservationOutcome records what happened at the hearing.
	ObservationOutcome ObservationStatus = "outcome"
	// ObservationWithdrawn: the observer will not attend after all.
	ObservationWithdrawn ObservationStatus = "withdrawn"
)

var observationStatuses = []ObservationStatus{ObservationAssigned, ObservationConfirmed, ObservationOutcome, ObservationWithdrawn}

// Observation is a mission's notice about a trial observation: to the
// defender who asked, and to the other missions covering the country.
type Observation struct {
	Ref      routing.ID // the observation request's message id
	Status   ObservationStatus
	Observer string    // who attends, as a role; one line
	Hearing  time.Time // the hearing it concerns
	// Text is what happened, required for an outcome and optional
	// otherwise.
	Text string
}

func (*Observation) Kind() Kind { return KindObservation }

func (m *Observation) Validate() error {
	if m == nil {
		return errNil(KindObservation)
	}
	return validate(KindObservation, m.fields())
}

func (m *Observation) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&enumField[ObservationStatus]{name: "status", p: &m.Status, values: observationStatuses},
		&textField{name: "observer", p: &m.Observer, min: 1, max: maxObserver},
		&timeField{name: "hearing", p: &m.Hearing},
		&outcomeTextField{textField: textField{name: "text", p: &m.Text, max: maxOutcome, multiline: true, opt: true}, status: &m.Status},
	}
}

// outcomeTextField is optional text that an outcome must have.
type outcomeTextField struct {
	textField
	status *ObservationStatus
}

// optional is false for an outcome, so Validate checks an empty text
// and Unmarshal refuses a body without one.
func (f *outcomeTextField) optional() bool { return *f.status != ObservationOutcome }

func (f *outcomeTextField) check() *FieldError {
	if *f.status == ObservationOutcome && *f.p == "" {
		return bad(f.name, "empty; an outcome says what happened")
	}
	return f.textField.check()
}

// Liaison tells a defender which officer of the mission is their liaison
// on a case; a new one when the case is reassigned.
type Liaison struct {
	Ref     routing.ID // the case
	Officer string     // as the mission's console config names the officer to defenders; one line
}

func (*Liaison) Kind() Kind { return KindLiaison }

func (m *Liaison) Validate() error {
	if m == nil {
		return errNil(KindLiaison)
	}
	return validate(KindLiaison, m.fields())
}

func (m *Liaison) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&textField{name: "officer", p: &m.Officer, min: 1, max: maxBy},
	}
}

// AnswerIntent is what a defender wants from a broadcast.
type AnswerIntent string

const (
	AnswerApply AnswerIntent = "apply"
	AnswerAsk   AnswerIntent = "ask"
)

var answerIntents = []AnswerIntent{AnswerApply, AnswerAsk}

// BroadcastAnswer is a defender's answer to a mission's [Broadcast]
// ("apply", "ask about this"). It opens a case at the mission, threaded to
// the broadcast.
type BroadcastAnswer struct {
	Ref     routing.ID // the broadcast's message id
	Country string
	Intent  AnswerIntent
	Text    string
}

func (*BroadcastAnswer) Kind() Kind { return KindBroadcastAnswer }

func (m *BroadcastAnswer) Validate() error {
	if m == nil {
		return errNil(KindBroadcastAnswer)
	}
	return validate(KindBroadcastAnswer, m.fields())
}

func (m *BroadcastAnswer) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&countryField{name: "country", p: &m.Country},
		&enumField[AnswerIntent]{name: "intent", p: &m.Intent, values: answerIntents},
		&textField{name: "text", p: &m.Text, min: 1, max: maxReplyText, multiline: true},
	}
}

// CaseStatus is where a case stands at a mission.
type CaseStatus string

const (
	CaseNew          CaseStatus = "new"
	CaseAcknowledged CaseStatus = "acknowledged"
	CaseInProgress   CaseStatus = "in_progress"
	CaseResolved     CaseStatus = "resolved"
)

var caseStatuses = []CaseStatus{CaseNew, CaseAcknowledged, CaseInProgress, CaseResolved}

// CaseReport is a mission's encrypted report of a case to its
// headquarters (the one [keys.Directory.HeadquartersOf] names).
type CaseReport struct {
	Ref      routing.ID // the case
	Mission  string     // the reporting mission's directory id
	Country  string
	Priority routing.Priority
	Status   CaseStatus
	Title    string // one line
	Text     string
}

func (*CaseReport) Kind() Kind { return KindCaseReport }

func (m *CaseReport) Validate() error {
	if m == nil {
		return errNil(KindCaseReport)
	}
	return validate(KindCaseReport, m.fields())
}

func (m *CaseReport) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&partnerField{name: "mission", p: &m.Mission},
		&countryField{name: "country", p: &m.Country},
		&priorityField{name: "priority", p: &m.Priority},
		&enumField[CaseStatus]{name: "status", p: &m.Status, values: caseStatuses},
		&textField{name: "title", p: &m.Title, min: 1, max: maxSummary},
		&textField{name: "text", p: &m.Text, min: 1, max: maxCaseReportText, multiline: true},
	}
}

// SharedAlert is a mission's re-share of a defender's alert to partner
// governments, signed by the mission and sealed to the partners: the
// defender's own (deniable) authenticator is never forwarded. A mission
// sends one only for an alert whose defender consented to sharing.
type SharedAlert struct {
	Ref       routing.ID // the defender's alert
	Mission   string     // the sharing mission's directory id
	Country   string
	Priority  routing.Priority
	Category  Category
	Summary   string
	Details   string
	Location  string // optional
	Publicise bool   // the defender's consent to publicity, carried on
	Note      string // optional: the mission's word to the partners
}

func (*SharedAlert) Kind() Kind { return KindSharedAlert }

func (m *SharedAlert) Validate() error {
	if m == nil {
		return errNil(KindSharedAlert)
	}
	return validate(KindSharedAlert, m.fields())
}

func (m *SharedAlert) fields() []field {
	return []field{
		&idField{name: "ref", p: &m.Ref},
		&partnerField{name: "mission", p: &m.Mission},
		&countryField{name: "country", p: &m.Country},
		&priorityField{name: "priority", p: &m.Priority},
		&enumField[Category]{name: "category", p: &m.Category, values: categories},
		&textField{name: "summary", p: &m.Summary, min: 1, max: maxSummary},
		&textField{name: "details", p: &m.Details, max: maxDetails, multiline: true},
		&textField{name: "location", p: &m.Location, max: maxLocation, opt: true},
		&boolField{name: "publicise", p: &m.Publicise},
		&textField{name: "note", p: &m.Note, max: maxShareNote, multiline: true, opt: true},
	}
}

// ShareFrom builds the re-share of alert a (message id ref) by mission,
// or refuses if the defender did not consent to sharing.
func ShareFrom(ref routing.ID, a *Alert, mission, note string) (*SharedAlert, error) {
	if a == nil || !a.Share {
		return nil, fmt.Errorf("%w: the defender did not consent to sharing this alert", ErrNoConsent)
	}
	return &SharedAlert{Ref: ref, Mission: mission, Country: a.Country, Priority: a.Priority, Category: a.Category,
		Summary: a.Summary, Details: a.Details, Location: a.Location, Publicise: a.Publicise, Note: note}, nil
}

// newMissionSchema returns an empty message of one of this file's kinds.
func newMissionSchema(k Kind) schema {
	switch k {
	case KindMeetingResponse:
		return new(MeetingResponse)
	case KindObservation:
		return new(Observation)
	case KindLiaison:
		return new(Liaison)
	case KindBroadcastAnswer:
		return new(BroadcastAnswer)
	case KindCaseReport:
		return new(CaseReport)
	case KindSharedAlert:
		return new(SharedAlert)
	}
	return nil
}
