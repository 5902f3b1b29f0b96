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

var (
	checkInBody = body{
		{"kind", `"checkin"`},
		{"country", `"ug"`},
		{"priority", `"urgent"`},
		{"text", `"I have not checked in: I may be detained.\nCall my lawyer."`},
		{"armed", `"2026-11-28T17:00:00Z"`},
		{"every", `"6h0m0s"`},
		{"grace", `"30m0s"`},
	}
	checkIn = &CheckIn{Country: "ug", Priority: routing.Urgent, Text: "I have not checked in: I may be detained.\nCall my lawyer.",
		Armed: at("2026-11-28T17:00:00Z"), Every: 6 * time.Hour, Grace: 30 * time.Minute}

	escalationBody = append(body{{"kind", `"escalation"`}, {"ref", str(refHex)}, {"tier", `"headquarters"`}}, alertBody[1:]...).set("exercise", "true")
	escalation     = &Escalation{Ref: ref, Tier: TierHeadquarters, Alert: func() Alert { a := *alert; a.Exercise = true; return a }()}
)

// TestHeldKindsRoundTrip: the kinds released from holds, and a drill
// alert, have one body each, written by hand here.
func TestHeldKindsRoundTrip(t *testing.T) {
	drill := *alert
	drill.Exercise = true
	for _, c := range []struct {
		m    Message
		body body
	}{
		{checkIn, checkInBody},
		{func() Message { c := *checkIn; c.Exercise, c.Grace = true, 0; return &c }(), checkInBody.set("grace", `"0s"`).set("exercise", "true")},
		{escalation, escalationBody},
		{&drill, alertBody.set("exercise", "true")},
		{alert, alertBody},
	} {
		want := []byte(c.body.String())
		got, err := Marshal(c.m)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Marshal %s:\n got %s %v\nwant %s", c.m.Kind(), got, err, want)
		}
		m, err := Unmarshal(want)
		if err != nil || !reflect.DeepEqual(m, c.m) {
			t.Fatalf("Unmarshal %s: %#v %v", c.m.Kind(), m, err)
		}
		if IsExercise(m) != strings.Contains(string(want), `"exercise":true`) {
			t.Errorf("%s: IsExercise %v", c.m.Kind(), IsExercise(m))
		}
	}
}

func TestHeldKindsRefused(t *testing.T) {
	for _, c := range []struct {
		what  string
		b     body
		field string
	}{
		{"exercise false: a second spelling of no flag", alertBody.set("exercise", "false"), "exercise"},
		{"exercise as a string", alertBody.set("exercise", `"true"`), "exercise"},
		{"every in minutes, not Go's form", checkInBody.set("every", `"360m"`), "every"},
		{"every of zero", checkInBody.set("every", `"0s"`), "every"},
		{"every with a fraction of a second", checkInBody.set("every", `"1.5s"`), "every"},
		{"every of two years", checkInBody.set("every", `"17520h0m0s"`), "every"},
		{"a negative grace", checkInBody.set("grace", `"-1s"`), "grace"},
		{"grace as a number", checkInBody.set("grace", `1800`), "grace"},
		{"a check-in without text", checkInBody.set("text", `""`), "text"},
		{"a check-in without armed", checkInBody.del("armed"), "armed"},
		{"an unknown tier", escalationBody.set("tier", `"embassy"`), "tier"},
		{"an escalation without its alert's summary", escalationBody.del("summary"), "summary"},
		{"an escalation without ref", escalationBody.del("ref"), "ref"},
	} {
		_, err := Unmarshal([]byte(c.b.String()))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want a refusal of %s", c.what, err, c.field)
		}
	}
	if _, err := Marshal(&CheckIn{Country: "ug", Priority: routing.Urgent, Text: "x", Armed: at("2026-11-28T17:00:00Z"), Every: 1500 * time.Millisecond}); err == nil {
		t.Error("Marshal wrote an interval that is not a whole number of seconds")
	}
}

func TestLargestEscalationFits(t *testing.T) {
	w := func(n int) string { return strings.Repeat("😀", n) }
	m := &Escalation{Ref: ref, Tier: TierPartners, Alert: Alert{Country: "ug", Priority: routing.Urgent, Category: CategoryTravelBan,
		Summary: w(maxSummary), Details: w(maxDetails), Location: w(maxLocation), Share: true, Publicise: true, Exercise: true}}
	b, err := Marshal(m)
	if err != nil || len(b) > MaxBodySize {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	c := &CheckIn{Country: "ug", Priority: routing.Urgent, Text: w(maxCheckInText), Armed: at("2099-12-31T23:59:59Z"), Every: maxPlanDuration, Grace: maxPlanDuration, Exercise: true}
	if b, err := Marshal(c); err != nil || len(b) > MaxBodySize {
		t.Fatalf("check-in: %d bytes, %v", len(b), err)
	}
}
