package message

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/routing"
)

// TestMissionKindsRoundTrip: each of the console's kinds has one body,
// which Unmarshal reads back to the same value.
func TestMissionKindsRoundTrip(t *testing.T) {
	t1, t2 := at("2027-01-15T09:00:00Z"), at("2027-01-16T09:00:00Z")
	for _, tc := range []struct {
		m    Message
		body string
	}{
		{&MeetingResponse{Ref: ref, Action: MeetingAccept, Times: []time.Time{t1}},
			`{"kind":"meeting_response","ref":"` + refHex + `","action":"accept","times":["2027-01-15T09:00:00Z"]}`},
		{&MeetingResponse{Ref: ref, Action: MeetingPropose, Times: []time.Time{t1, t2}, Note: "side entrance"},
			`{"kind":"meeting_response","ref":"` + refHex + `","action":"propose","times":["2027-01-15T09:00:00Z","2027-01-16T09:00:00Z"],"note":"side entrance"}`},
		{&MeetingResponse{Ref: ref, Action: MeetingCancel},
			`{"kind":"meeting_response","ref":"` + refHex + `","action":"cancel","times":[]}`},
		{&Observation{Ref: ref, Status: ObservationAssigned, Observer: "Second Secretary", Hearing: t1},
			`{"kind":"observation","ref":"` + refHex + `","status":"assigned","observer":"Second Secretary","hearing":"2027-01-15T09:00:00Z"}`},
		{&Observation{Ref: ref, Status: ObservationOutcome, Observer: "Second Secretary", Hearing: t1, Text: "Adjourned to March"},
			`{"kind":"observation","ref":"` + refHex + `","status":"outcome","observer":"Second Secretary","hearing":"2027-01-15T09:00:00Z","text":"Adjourned to March"}`},
		{&Liaison{Ref: ref, Officer: "A. de Vries, human rights officer"},
			`{"kind":"liaison","ref":"` + refHex + `","officer":"A. de Vries, human rights officer"}`},
		{&BroadcastAnswer{Ref: ref, Country: "ug", Intent: AnswerApply, Text: "Our group would like to apply."},
			`{"kind":"broadcast_answer","ref":"` + refHex + `","country":"ug","intent":"apply","text":"Our group would like to apply."}`},
		{&CaseReport{Ref: ref, Mission: "nl-kampala", Country: "ug", Priority: routing.Urgent, Status: CaseAcknowledged, Title: "Raid", Text: "Officer on site."},
			`{"kind":"case_report","ref":"` + refHex + `","mission":"nl-kampala","country":"ug","priority":"urgent","status":"acknowledged","title":"Raid","text":"Officer on site."}`},
		{&SharedAlert{Ref: ref, Mission: "nl-kampala", Country: "ug", Priority: routing.High, Category: CategoryRaid, Summary: "Office raided", Details: "", Publicise: false},
			`{"kind":"shared_alert","ref":"` + refHex + `","mission":"nl-kampala","country":"ug","priority":"high","category":"raid","summary":"Office raided","details":"","publicise":false}`},
	} {
		b, err := Marshal(tc.m)
		if err != nil {
			t.Fatalf("%s: Marshal: %v", tc.m.Kind(), err)
		}
		if string(b) != tc.body {
			t.Fatalf("%s: Marshal:\n got %s\nwant %s", tc.m.Kind(), b, tc.body)
		}
		got, err := Unmarshal(b)
		if err != nil || !reflect.DeepEqual(got, tc.m) {
			t.Fatalf("%s: Unmarshal = %#v, %v", tc.m.Kind(), got, err)
		}
		if again, _ := Marshal(got); !bytes.Equal(again, b) {
			t.Fatalf("%s: not canonical", tc.m.Kind())
		}
	}
}

// TestMissionKindsRefuse: the rules that tie one field to another hold on
// both sides, with the field named.
func TestMissionKindsRefuse(t *testing.T) {
	t1, t2 := at("2027-01-15T09:00:00Z"), at("2027-01-16T09:00:00Z")
	for _, tc := range []struct {
		m     Message
		field string
	}{
		{&MeetingResponse{Ref: ref, Action: MeetingAccept, Times: []time.Time{t1, t2}}, "meeting_response.times"},
		{&MeetingResponse{Ref: ref, Action: MeetingConfirm}, "meeting_response.times"},
		{&MeetingResponse{Ref: ref, Action: MeetingCancel, Times: []time.Time{t1}}, "meeting_response.times"},
		{&MeetingResponse{Ref: ref, Action: MeetingPropose}, "meeting_response.times"},
		{&MeetingResponse{Ref: ref, Action: "maybe", Times: []time.Time{t1}}, "meeting_response.action"},
		{&Observation{Ref: ref, Status: ObservationOutcome, Observer: "x", Hearing: t1}, "observation.text"},
		{&Observation{Ref: ref, Status: ObservationAssigned, Observer: "a\nb", Hearing: t1}, "observation.observer"},
		{&Liaison{Ref: ref, Officer: ""}, "liaison.officer"},
		{&BroadcastAnswer{Ref: ref, Country: "UG", Intent: AnswerAsk, Text: "x"}, "broadcast_answer.country"},
		{&CaseReport{Ref: ref, Mission: "NL", Country: "ug", Priority: routing.Urgent, Status: CaseNew, Title: "t", Text: "x"}, "case_report.mission"},
		{&SharedAlert{Ref: ref, Mission: "nl", Country: "ug", Priority: routing.High, Category: CategoryRaid, Summary: strings.Repeat("x", maxSummary+1)}, "shared_alert.summary"},
	} {
		_, err := Marshal(tc.m)
		var fe *FieldError
		if !errors.As(err, &fe) || string(fe.Kind)+"."+fe.Field != tc.field || !errors.Is(err, ErrInvalid) {
			t.Errorf("Marshal(%#v) = %v, want a refusal of %s", tc.m, err, tc.field)
		}
	}
	// Bodies a hand could write: an outcome with no text, an accept with
	// two times.
	for body, field := range map[string]string{
		`{"kind":"observation","ref":"` + refHex + `","status":"outcome","observer":"x","hearing":"2027-01-15T09:00:00Z"}`:             "text",
		`{"kind":"observation","ref":"` + refHex + `","status":"assigned","observer":"x","hearing":"2027-01-15T09:00:00Z","text":""}`:  "text",
		`{"kind":"meeting_response","ref":"` + refHex + `","action":"accept","times":["2027-01-15T09:00:00Z","2027-01-16T09:00:00Z"]}`: "times",
		`{"kind":"meeting_response","ref":"` + refHex + `","action":"cancel"}`:                                                         "times",
		`{"kind":"broadcast_answer","ref":"` + refHex + `","country":"ug","intent":"apply","text":"x","extra":1}`:                      "extra",
	} {
		_, err := Unmarshal([]byte(body))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("Unmarshal(%s) = %v, want a refusal of %s", body, err, field)
		}
	}
}

func TestShareFromNeedsConsent(t *testing.T) {
	a := &Alert{Country: "ug", Priority: routing.Urgent, Category: CategoryRaid, Summary: "s", Share: false}
	if _, err := ShareFrom(ref, a, "nl-kampala", ""); !errors.Is(err, ErrNoConsent) {
		t.Fatalf("ShareFrom without consent = %v", err)
	}
	a.Share, a.Publicise = true, true
	s, err := ShareFrom(ref, a, "nl-kampala", "")
	if err != nil || s.Summary != "s" || !s.Publicise || s.Ref != ref {
		t.Fatalf("ShareFrom = %+v, %v", s, err)
	}
}
