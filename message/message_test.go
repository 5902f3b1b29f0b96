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

// body is a JSON object written field by field, so a test can change one
// field of a valid body and nothing else.
type body [][2]string // key, raw JSON value

func (b body) String() string {
	var s strings.Builder
	s.WriteByte('{')
	for i, kv := range b {
		if i > 0 {
			s.WriteByte(',')
		}
		s.WriteString(`"` + kv[0] + `":` + kv[1])
	}
	s.WriteByte('}')
	return s.String()
}

// set replaces the value of key, or appends key if it is not there.
func (b body) set(key, raw string) body {
	out := append(body(nil), b...)
	for i := range out {
		if out[i][0] == key {
			out[i][1] = raw
			return out
		}
	}
	return append(out, [2]string{key, raw})
}

func (b body) del(key string) body {
	var out body
	for _, kv := range b {
		if kv[0] != key {
			out = append(out, kv)
		}
	}
	return out
}

// str is s as a JSON string, for test text that needs no escaping.
func str(s string) string { return `"` + s + `"` }

func mustID(s string) routing.ID {
	id, err := routing.ParseID(s)
	if err != nil {
		panic(err)
	}
	return id
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

const refHex = "4f1c2a9e7b3d6c5f8a0b1e2d3c4f5a6b"

var ref = mustID(refHex)

// Known answers: each valid example with its canonical body, written by hand.
var (
	alertBody = body{
		{"kind", `"alert"`},
		{"country", `"ug"`},
		{"priority", `"urgent"`},
		{"category", `"detention"`},
		{"summary", `"Police at our office in Kampala – two colleagues taken"`},
		{"details", `"Six officers came at 16:40.\nThey said \"you are next\" & took <all> laptops.\\"`},
		{"location", `"Kampala Central"`},
		{"share", `true`},
		{"publicise", `false`},
	}
	alert = &Alert{
		Country:   "ug",
		Priority:  routing.Urgent,
		Category:  CategoryDetention,
		Summary:   "Police at our office in Kampala – two colleagues taken",
		Details:   "Six officers came at 16:40.\nThey said \"you are next\" & took <all> laptops.\\",
		Location:  "Kampala Central",
		Share:     true,
		Publicise: false,
	}

	updateBody = body{{"kind", `"update"`}, {"ref", str(refHex)}, {"text", `"They were moved to Nalufenya.\nLawyer denied access."`}}
	update     = &Update{Ref: ref, Text: "They were moved to Nalufenya.\nLawyer denied access."}

	cancelBody = body{{"kind", `"cancel"`}, {"ref", str(refHex)}, {"reason", `"false_alarm"`}, {"text", `"Pressed by mistake."`}}
	cancel     = &Cancel{Ref: ref, Reason: CancelFalseAlarm, Text: "Pressed by mistake."}

	meetingBody = body{
		{"kind", `"meeting_request"`},
		{"country", `"ke"`},
		{"purpose", `"Threats after our report on police killings."`},
		{"times", `["2026-12-01T09:00:00Z","2026-12-02T14:30:00Z"]`},
		{"place", `"neutral"`},
		{"safety_notes", `"I am followed; please do not call my phone."`},
	}
	meeting = &MeetingRequest{
		Country:     "ke",
		Purpose:     "Threats after our report on police killings.",
		Times:       []time.Time{at("2026-12-01T09:00:00Z"), at("2026-12-02T14:30:00Z")},
		Place:       PlaceNeutral,
		SafetyNotes: "I am followed; please do not call my phone.",
	}

	observationBody = body{
		{"kind", `"observation_request"`},
		{"country", `"et"`},
		{"court", `"Federal High Court, Lideta"`},
		{"case", `"Crim. 123/2026"`},
		{"hearing", `"2027-01-15T06:30:00Z"`},
		{"defendants", `["ብርሃኑ ተ.","Sara K."]`},
		{"charges", `"Terrorism (art. 3)"`},
	}
	observation = &ObservationRequest{
		Country:    "et",
		Court:      "Federal High Court, Lideta",
		Case:       "Crim. 123/2026",
		Hearing:    at("2027-01-15T06:30:00Z"),
		Defendants: []string{"ብርሃኑ ተ.", "Sara K."},
		Charges:    "Terrorism (art. 3)",
	}

	ackBody = body{{"kind", `"ack"`}, {"ref", str(refHex)}, {"by", `"Embassy of the Netherlands, human rights officer"`}, {"next_step", `""`}}
	ack     = &Ack{Ref: ref, By: "Embassy of the Netherlands, human rights officer"}

	replyBody = body{{"kind", `"reply"`}, {"ref", str(refHex)}, {"text", `"مرحبا، نحن على علم."`}}
	reply     = &Reply{Ref: ref, Text: "مرحبا، نحن على علم."}

	receiptBody = body{{"kind", `"receipt"`}, {"ref", str(refHex)}, {"partner", `"de-aa"`}, {"stored_at", `"2026-11-28T17:00:00Z"`}}
	receipt     = &Receipt{Ref: ref, Partner: "de-aa", StoredAt: at("2026-11-28T17:00:00Z")}

	broadcastBody = body{
		{"kind", `"broadcast"`},
		{"country", `"zw"`},
		{"category", `"grant"`},
		{"title", `"Small grants for legal aid"`},
		{"text", `"Apply by 31 January."`},
		{"valid_until", `"2027-01-31T23:59:59Z"`},
	}
	broadcast = &Broadcast{
		Country:    "zw",
		Category:   BroadcastGrant,
		Title:      "Small grants for legal aid",
		Text:       "Apply by 31 January.",
		ValidUntil: at("2027-01-31T23:59:59Z"),
	}
)

var examples = []struct {
	name string
	m    Message
	body body
}{
	{"alert", alert, alertBody},
	{"alert without location", &Alert{Country: "ps", Priority: routing.Routine, Category: CategoryOther, Summary: "x", Share: false, Publicise: true},
		body{{"kind", `"alert"`}, {"country", `"ps"`}, {"priority", `"routine"`}, {"category", `"other"`}, {"summary", `"x"`}, {"details", `""`}, {"share", `false`}, {"publicise", `true`}}},
	{"update", update, updateBody},
	{"cancel", cancel, cancelBody},
	{"cancel without text", &Cancel{Ref: ref, Reason: CancelSafe}, cancelBody.set("reason", `"safe"`).del("text")},
	{"meeting_request", meeting, meetingBody},
	{"meeting_request without safety_notes", &MeetingRequest{Country: "ke", Purpose: "p", Times: meeting.Times[:1], Place: PlaceEmbassy},
		body{{"kind", `"meeting_request"`}, {"country", `"ke"`}, {"purpose", `"p"`}, {"times", `["2026-12-01T09:00:00Z"]`}, {"place", `"embassy"`}}},
	{"observation_request", observation, observationBody},
	{"observation_request without defendants or charges", &ObservationRequest{Country: "et", Court: "c", Case: "1", Hearing: observation.Hearing},
		observationBody.set("court", `"c"`).set("case", `"1"`).set("defendants", `[]`).del("charges")},
	{"ack", ack, ackBody},
	{"reply", reply, replyBody},
	{"receipt", receipt, receiptBody},
	{"broadcast", broadcast, broadcastBody},
	{"broadcast without valid_until", &Broadcast{Country: "zw", Category: BroadcastAdvisory, Title: "t", Text: "x"},
		body{{"kind", `"broadcast"`}, {"country", `"zw"`}, {"category", `"advisory"`}, {"title", `"t"`}, {"text", `"x"`}}},
}

func TestRoundTrip(t *testing.T) {
	seen := map[Kind]bool{}
	for _, tc := range examples {
		t.Run(tc.name, func(t *testing.T) {
			seen[tc.m.Kind()] = true
			want := []byte(tc.body.String())
			got, err := Marshal(tc.m)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Marshal:\n got %s\nwant %s", got, want)
			}
			m, err := Unmarshal(got)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(m, tc.m) {
				t.Fatalf("Unmarshal:\n got %#v\nwant %#v", m, tc.m)
			}
			again, err := Marshal(m)
			if err != nil || !bytes.Equal(again, want) {
				t.Fatalf("Marshal again: %s, %v", again, err)
			}
		})
	}
	for _, k := range []Kind{KindAlert, KindUpdate, KindCancel, KindMeetingRequest,
		KindObservationRequest, KindAck, KindReply, KindReceipt, KindBroadcast} {
		if !seen[k] {
			t.Errorf("no example of %s", k)
		}
	}
}

// TestMarshalNormalisesTimes: a time in any zone, with any fraction, is
// written as the UTC second it falls in, and the caller's value is kept.
func TestMarshalNormalisesTimes(t *testing.T) {
	kampala := time.FixedZone("EAT", 3*3600)
	hearing := time.Date(2027, 1, 15, 9, 30, 0, 999_999_999, kampala)
	m := &ObservationRequest{Country: "ug", Court: "c", Case: "1", Hearing: hearing}
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"hearing":"2027-01-15T06:30:00Z"`)) {
		t.Errorf("Marshal = %s", b)
	}
	if m.Hearing != hearing {
		t.Errorf("Marshal changed its argument: %v", m.Hearing)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if h := got.(*ObservationRequest).Hearing; !h.Equal(time.Date(2027, 1, 15, 6, 30, 0, 0, time.UTC)) || h.Location() != time.UTC {
		t.Errorf("Unmarshal: hearing = %v", h)
	}
}

// TestLargestFits: every kind filled to every limit with the widest
// characters still marshals, fits MaxBodySize and round-trips, so Marshal
// can never write a body Unmarshal refuses for its size.
func TestLargestFits(t *testing.T) {
	w := func(n int) string { return strings.Repeat("😀", n) } // 4 bytes each
	e := func(n int) string { return strings.Repeat(`"`, n) } // 2 bytes each, escaped
	var times []time.Time
	for i := range maxTimes {
		times = append(times, at("2099-12-31T23:59:59Z").Add(-time.Duration(i)*time.Second))
	}
	var names []string
	for range maxDefendants {
		names = append(names, w(maxDefendantLen))
	}
	msgs := []Message{
		&Alert{Country: "ug", Priority: routing.Urgent, Category: CategoryTravelBan, Summary: w(maxSummary),
			Details: w(maxDetails), Location: w(maxLocation), Share: true, Publicise: true},
		&Alert{Country: "ug", Priority: routing.Urgent, Category: CategoryTravelBan, Summary: e(maxSummary),
			Details: e(maxDetails), Location: e(maxLocation), Share: true, Publicise: true},
		&Update{Ref: ref, Text: w(maxUpdateText)},
		&Cancel{Ref: ref, Reason: CancelOther, Text: w(maxCancelText)},
		&MeetingRequest{Country: "ug", Purpose: w(maxPurpose), Times: times, Place: PlaceOffice, SafetyNotes: w(maxSafetyNotes)},
		&ObservationRequest{Country: "ug", Court: w(maxCourt), Case: w(maxCase), Hearing: times[0], Defendants: names, Charges: w(maxCharges)},
		&Ack{Ref: ref, By: w(maxBy), NextStep: w(maxNextStep)},
		&Reply{Ref: ref, Text: w(maxReplyText)},
		&Receipt{Ref: ref, Partner: strings.Repeat("a", maxPartner), StoredAt: times[0]},
		&Broadcast{Country: "ug", Category: BroadcastTraining, Title: w(maxTitle), Text: w(maxBroadcastText), ValidUntil: times[0]},
	}
	for _, m := range msgs {
		b, err := Marshal(m)
		if err != nil {
			t.Fatalf("%s: Marshal: %v", m.Kind(), err)
		}
		if len(b) > MaxBodySize {
			t.Fatalf("%s: %d bytes, more than MaxBodySize", m.Kind(), len(b))
		}
		got, err := Unmarshal(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: Unmarshal: %v", m.Kind(), err)
		}
		t.Logf("largest %s: %d bytes", m.Kind(), len(b))
	}
}

// TestMarshalRefuses: Marshal validates, with the same field names as
// Unmarshal, including rules that only a Go value can break.
func TestMarshalRefuses(t *testing.T) {
	type embedded struct{ *Alert } // promotes fields(), but is not ours
	var tests = []struct {
		name  string
		m     Message
		kind  Kind
		field string
	}{
		{"zero alert", &Alert{}, KindAlert, "country"},
		{"invalid UTF-8", &Alert{Country: "ug", Priority: routing.High, Category: CategoryRaid, Summary: "a\xffb"}, KindAlert, "summary"},
		{"zero ref", &Update{Text: "x"}, KindUpdate, "ref"},
		{"zero time", &Receipt{Ref: ref, Partner: "p"}, KindReceipt, "stored_at"},
		{"no times", &MeetingRequest{Country: "ke", Purpose: "p", Place: PlaceOffice}, KindMeetingRequest, "times"},
		{"times equal once truncated", &MeetingRequest{Country: "ke", Purpose: "p", Place: PlaceOffice,
			Times: []time.Time{at("2026-12-01T09:00:00Z"), at("2026-12-01T09:00:00Z").Add(time.Millisecond)}}, KindMeetingRequest, "times[1]"},
		{"times equal in other zones", &MeetingRequest{Country: "ke", Purpose: "p", Place: PlaceOffice,
			Times: []time.Time{at("2026-12-01T09:00:00Z"), at("2026-12-01T12:00:00+03:00")}}, KindMeetingRequest, "times[1]"},
		{"time rounds down to 2019", &Receipt{Ref: ref, Partner: "p", StoredAt: at("2019-12-31T23:59:59Z").Add(time.Second - 1)}, KindReceipt, "stored_at"},
		{"alert category in broadcast", &Broadcast{Country: "zw", Category: BroadcastCategory(CategoryRaid), Title: "t", Text: "x"}, KindBroadcast, "category"},
		{"empty defendant", &ObservationRequest{Country: "et", Court: "c", Case: "1", Hearing: observation.Hearing, Defendants: []string{"a", ""}}, KindObservationRequest, "defendants[1]"},
		{"foreign type", embedded{alert}, "", "kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Marshal(tc.m)
			if b != nil {
				t.Errorf("Marshal returned a body: %s", b)
			}
			assertField(t, err, tc.kind, tc.field)
		})
	}
	for _, m := range []Message{nil, (*Alert)(nil), (*Broadcast)(nil)} {
		if _, err := Marshal(m); !errors.Is(err, ErrInvalid) {
			t.Errorf("Marshal(%#v) = %v, want ErrInvalid", m, err)
		}
	}
	if _, err := Marshal(embedded{alert}); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("Marshal(foreign type) = %v, want ErrUnknownKind", err)
	}
}

func TestFieldErrorText(t *testing.T) {
	m := *alert
	m.Summary = strings.Repeat("a", 281)
	_, err := Marshal(&m)
	if got, want := err.Error(), "message: alert.summary: longer than 280 characters"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_, err = Unmarshal([]byte(alertBody.set("summary", `"`+strings.Repeat("a", 281)+`"`).String()))
	if got, want := err.Error(), "message: alert.summary: longer than 280 characters"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestRefIsAnID: a body's ref takes exactly the ids routing.ParseID takes.
func TestRefIsAnID(t *testing.T) {
	for _, s := range []string{
		"", strings.ToUpper(refHex), refHex[:31], refHex + "0", "0x" + refHex[2:],
		strings.Repeat("0", 32), refHex[:31] + "g", refHex[:30] + " 1",
	} {
		body := `{"kind":"update","ref":"` + s + `","text":"x"}`
		_, err := Unmarshal([]byte(body))
		var fe *FieldError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != "ref" {
			t.Errorf("ref %q: %v, want a FieldError on ref", s, err)
		}
		if _, perr := routing.ParseID(s); perr == nil {
			t.Errorf("routing.ParseID(%q) accepted what a body refuses", s)
		}
	}
}

// assertField checks err is a refusal naming kind.field.
func assertField(t *testing.T, err error, kind Kind, field string) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want a *FieldError", err)
	}
	if fe.Kind != kind || fe.Field != field {
		t.Fatalf("err = %v, want field %s.%s", err, kind, field)
	}
}

// Persian needs the zero-width non-joiner to be spelled correctly; a
// defender writing in Persian must not be refused.
func TestPersianZWNJAccepted(t *testing.T) {
	a := &Alert{Country: "ir", Priority: routing.Urgent, Category: CategoryDetention,
		Summary: "می‌خواهند مرا بازداشت کنند", Details: "", Share: false, Publicise: false}
	b, err := Marshal(a)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if got.(*Alert).Summary != a.Summary {
		t.Fatalf("summary changed: %q", got.(*Alert).Summary)
	}
}

func TestStripBidiMarks(t *testing.T) {
	in := "\u200fسلام\u200e ok\u061c"
	out, changed := StripBidiMarks(in)
	if out != "سلام ok" || !changed {
		t.Fatalf("StripBidiMarks(%q) = %q, %v", in, out, changed)
	}
	if out, changed := StripBidiMarks("plain \u202e \u2067x\u2069"); out != "plain \u202e \u2067x\u2069" || changed {
		t.Fatalf("overrides and isolates must be left for Marshal to judge, got %q %v", out, changed)
	}
	// Invalid UTF-8 is kept byte for byte, for Marshal to refuse: it must
	// not come out as U+FFFD, valid text that says something else.
	if out, changed := StripBidiMarks("a\xff\u200fb"); out != "a\xffb" || !changed {
		t.Fatalf("StripBidiMarks with invalid UTF-8 = %q, %v", out, changed)
	}
	if out, changed := StripBidiMarks("a\xffb"); out != "a\xffb" || changed {
		t.Fatalf("StripBidiMarks changed invalid UTF-8 it had no mark to remove from: %q, %v", out, changed)
	}
}

// TestValidateAgreesWithUnmarshal: for text a person might get wrong, a Go
// value and the body holding the same text are refused with the same
// error, so a writer is told exactly what a reader would refuse.
func TestValidateAgreesWithUnmarshal(t *testing.T) {
	for _, s := range []string{
		"a\xffb", "\xc0\xaf", "   ", "\u200d", "a\nb", strings.Repeat("é", maxSummary+1),
		"\u2066a", "a\u2069", "\u2066\u2069", "x\u202ey", "\u200f",
	} {
		a := *alert
		a.Summary = s
		verr := a.Validate()
		_, uerr := Unmarshal([]byte(alertBody.set("summary", string(appendString(nil, s))).String()))
		if verr == nil || uerr == nil || verr.Error() != uerr.Error() {
			t.Errorf("summary %q: Validate says %v, Unmarshal says %v", s, verr, uerr)
		}
	}
}

// TestTextSentinels: a writer's tool can tell "too long" and "line break in
// a one-line field" from other refusals, and only those.
func TestTextSentinels(t *testing.T) {
	tests := []struct {
		summary  string
		long, lf bool
	}{
		{strings.Repeat("a", maxSummary+1), true, false},
		{"first line\nsecond line", false, true},
		{"tab\there", false, false},
		{"   ", false, false},
		{"x\u202e", false, false},
	}
	for _, tc := range tests {
		a := *alert
		a.Summary = tc.summary
		err := a.Validate()
		if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrTooLong) != tc.long || errors.Is(err, ErrLineBreak) != tc.lf {
			t.Errorf("summary %q: %v; want ErrTooLong %v, ErrLineBreak %v", tc.summary, err, tc.long, tc.lf)
		}
	}
	d := *alert
	d.Details = "line\nbreaks are fine here"
	if err := d.Validate(); err != nil {
		t.Errorf("multi-line details refused: %v", err)
	}
}
