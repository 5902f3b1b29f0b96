package message

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func rep(s string, n int) string { return str(strings.Repeat(s, n)) }

// TestUnmarshalRefusesBody covers refusals of the body as a whole: no field
// can be blamed, and the error says what is wrong with the body.
func TestUnmarshalRefusesBody(t *testing.T) {
	valid := alertBody.String()
	tests := []struct {
		name, body, want string
	}{
		{"too large", valid + strings.Repeat(" ", MaxBodySize-len(valid)+1), "message: body is larger than 60000 bytes"},
		// Outside any string, so no field can be blamed (inside one, see
		// TestUnmarshalRefusesField).
		{"invalid UTF-8 between fields", strings.Replace(valid, `,"share"`, ",\xff\"share\"", 1), "message: body is not valid UTF-8"},
		{"invalid UTF-8 alone", "\xff", "message: body is not valid UTF-8"},
		{"empty", "", "message: body is not a JSON object"},
		{"only whitespace", " ", "message: body is not a JSON object"},
		{"list", `[` + valid + `]`, "message: body is not a JSON object"},
		{"null", `null`, "message: body is not a JSON object"},
		{"string", `"alert"`, "message: body is not a JSON object"},
		{"truncated", valid[:len(valid)-1], "message: body is not valid JSON"},
		{"raw tab in a string", alertBody.set("details", "\"a\tb\"").String(), "message: body is not valid JSON"},
		{"single quotes", `{'kind':'alert'}`, "message: body is not valid JSON"},
		{"trailing object", valid + `{}`, "message: body has data after the object"},
		{"trailing newline", valid + "\n", "message: body has data after the object"},
		{"trailing garbage", valid + "x", "message: body has data after the object"},
		{"leading space", " " + valid, "message: body is not in canonical form"},
		{"space after colon", strings.Replace(valid, `"kind":`, `"kind": `, 1), "message: body is not in canonical form"},
		{"fields out of order", alertBody.del("share").set("share", "true").String(), "message: body is not in canonical form"},
		{"kind not first", alertBody.del("kind").set("kind", `"alert"`).String(), "message: body is not in canonical form"},
		{"needless escape", alertBody.set("summary", `"\u0061"`).String(), "message: body is not in canonical form"},
		{"escaped slash", alertBody.set("summary", `"a\/b"`).String(), "message: body is not in canonical form"},
		{"escaped line feed as \\u000a", alertBody.set("details", `"a\u000ab"`).String(), "message: body is not in canonical form"},
		{"escaped key", strings.Replace(valid, `"summary"`, `"summ\u0061ry"`, 1), "message: body is not in canonical form"},
		{"lone surrogate becomes U+FFFD", alertBody.set("summary", `"\ud800"`).String(), "message: body is not in canonical form"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Unmarshal([]byte(tc.body))
			if m != nil {
				t.Errorf("Unmarshal returned a message: %#v", m)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			var fe *FieldError
			if errors.As(err, &fe) {
				t.Fatalf("err = %v, want a body error, not a field error", err)
			}
			if err.Error() != tc.want {
				t.Fatalf("err = %q, want %q", err, tc.want)
			}
		})
	}
}

// TestUnmarshalRefusesField covers every refusal a field can be blamed for.
// Each case changes one thing in a valid body.
func TestUnmarshalRefusesField(t *testing.T) {
	longRef := str(refHex + "0")
	tests := []struct {
		name    string
		body    string
		kind    Kind
		field   string
		problem string // checked when not empty
	}{
		// Duplicates and nesting, caught before decoding.
		{"duplicate key", strings.Replace(alertBody.String(), `"share":true`, `"share":true,"share":false`, 1), KindAlert, "share", "duplicate key"},
		{"duplicate kind", `{"kind":"alert","kind":"update"}`, "", "kind", "duplicate key"},
		{"duplicate before kind", `{"summary":"a","summary":"b","kind":"alert"}`, KindAlert, "summary", "duplicate key"},
		{"duplicate key of unknown kind", `{"kind":"x","a":1,"a":2}`, "", "a", "duplicate key"},
		{"duplicate inside a value", alertBody.set("summary", `{"a":1,"a":2}`).String(), KindAlert, "summary", "contains a duplicate key"},
		{"duplicate escaped differently", strings.Replace(alertBody.String(), `"share":true`, `"share":true,"sh\u0061re":true`, 1), KindAlert, "share", "duplicate key"},
		{"nested too deeply", meetingBody.set("times", `[["2026-12-01T09:00:00Z"]]`).String(), KindMeetingRequest, "times", "nested too deeply"},
		{"deep nesting in an unknown field", alertBody.set("x", strings.Repeat("[", 5000)+strings.Repeat("]", 5000)).String(), KindAlert, "x", "nested too deeply"},

		// Kind.
		{"kind missing", alertBody.del("kind").String(), "", "kind", "missing"},
		{"kind null", alertBody.set("kind", `null`).String(), "", "kind", "null"},
		{"kind not a string", alertBody.set("kind", `1`).String(), "", "kind", "not a string"},
		{"unknown kind", alertBody.set("kind", `"alarm"`).String(), "", "kind", "unknown kind"},
		{"kind in upper case", alertBody.set("kind", `"Alert"`).String(), "", "kind", "unknown kind"},
		{"kind empty", alertBody.set("kind", `""`).String(), "", "kind", "unknown kind"},

		// Unknown fields.
		{"unknown field", alertBody.set("colour", `"red"`).String(), KindAlert, "colour", "unknown field"},
		{"field in other case", alertBody.set("Summary", `"a"`).String(), KindAlert, "Summary", "unknown field"},
		{"field of another kind", updateBody.set("summary", `"a"`).String(), KindUpdate, "summary", "unknown field"},
		{"unknown field with odd name", alertBody.set("a\u202eb", `1`).String(), KindAlert, "(unprintable)", "unknown field"},
		{"unknown empty key", alertBody.set("", `1`).String(), KindAlert, "(unprintable)", "unknown field"},

		// Missing fields: never read as zero.
		{"missing priority", alertBody.del("priority").String(), KindAlert, "priority", "missing"},
		{"missing share", alertBody.del("share").String(), KindAlert, "share", "missing"},
		{"missing publicise", alertBody.del("publicise").String(), KindAlert, "publicise", "missing"},
		{"missing details", alertBody.del("details").String(), KindAlert, "details", "missing"},
		{"missing ref", updateBody.del("ref").String(), KindUpdate, "ref", "missing"},
		{"missing reason", cancelBody.del("reason").String(), KindCancel, "reason", "missing"},
		{"missing times", meetingBody.del("times").String(), KindMeetingRequest, "times", "missing"},
		{"missing defendants", observationBody.del("defendants").String(), KindObservationRequest, "defendants", "missing"},
		{"missing hearing", observationBody.del("hearing").String(), KindObservationRequest, "hearing", "missing"},
		{"missing next_step", ackBody.del("next_step").String(), KindAck, "next_step", "missing"},
		{"missing stored_at", receiptBody.del("stored_at").String(), KindReceipt, "stored_at", "missing"},
		{"missing partner", receiptBody.del("partner").String(), KindReceipt, "partner", "missing"},
		{"missing title", broadcastBody.del("title").String(), KindBroadcast, "title", "missing"},
		{"missing text", replyBody.del("text").String(), KindReply, "text", "missing"},
		{"empty object", `{}`, "", "kind", "missing"},

		// Wrong types.
		{"number for text", alertBody.set("summary", `42`).String(), KindAlert, "summary", "not a string"},
		{"object for text", alertBody.set("summary", `{}`).String(), KindAlert, "summary", "not a string"},
		{"list for country", alertBody.set("country", `["ug"]`).String(), KindAlert, "country", "not a string"},
		{"string for bool", alertBody.set("share", `"true"`).String(), KindAlert, "share", "not true or false"},
		{"number for bool", alertBody.set("publicise", `0`).String(), KindAlert, "publicise", "not true or false"},
		{"string for list", meetingBody.set("times", `"2026-12-01T09:00:00Z"`).String(), KindMeetingRequest, "times", "not a list"},
		{"object for list", observationBody.set("defendants", `{}`).String(), KindObservationRequest, "defendants", "not a list"},
		{"number in list", observationBody.set("defendants", `["a",7]`).String(), KindObservationRequest, "defendants[1]", "not a string"},
		{"number for time", receiptBody.set("stored_at", `1764349200`).String(), KindReceipt, "stored_at", "not a string"},
		{"number for ref", updateBody.set("ref", `1`).String(), KindUpdate, "ref", "not a string"},
		{"huge number", alertBody.set("summary", `1e999`).String(), KindAlert, "summary", "not a string"},

		// Null where a value is required, and for optional fields too.
		{"null text", alertBody.set("summary", `null`).String(), KindAlert, "summary", "null"},
		{"null bool", alertBody.set("share", `null`).String(), KindAlert, "share", "null"},
		{"null list", observationBody.set("defendants", `null`).String(), KindObservationRequest, "defendants", "null"},
		{"null in list", meetingBody.set("times", `[null]`).String(), KindMeetingRequest, "times[0]", "null"},
		{"null enum", cancelBody.set("reason", `null`).String(), KindCancel, "reason", "null"},
		{"null ref", ackBody.set("ref", `null`).String(), KindAck, "ref", "null"},
		{"null optional text", alertBody.set("location", `null`).String(), KindAlert, "location", "null"},
		{"null optional time", broadcastBody.set("valid_until", `null`).String(), KindBroadcast, "valid_until", "null"},

		// Optional fields are left out, not sent empty.
		{"empty location", alertBody.set("location", `""`).String(), KindAlert, "location", "empty; leave the field out instead"},
		{"empty cancel text", cancelBody.set("text", `""`).String(), KindCancel, "text", ""},
		{"empty safety_notes", meetingBody.set("safety_notes", `""`).String(), KindMeetingRequest, "safety_notes", ""},
		{"empty charges", observationBody.set("charges", `""`).String(), KindObservationRequest, "charges", ""},

		// Enums.
		{"unknown priority", alertBody.set("priority", `"critical"`).String(), KindAlert, "priority", "unknown value"},
		{"empty priority", alertBody.set("priority", `""`).String(), KindAlert, "priority", "empty"},
		{"category in upper case", alertBody.set("category", `"Raid"`).String(), KindAlert, "category", "unknown value"},
		{"broadcast category in alert", alertBody.set("category", `"grant"`).String(), KindAlert, "category", "unknown value"},
		{"alert category in broadcast", broadcastBody.set("category", `"raid"`).String(), KindBroadcast, "category", "unknown value"},
		{"unknown reason", cancelBody.set("reason", `"resolved"`).String(), KindCancel, "reason", "unknown value"},
		{"unknown place", meetingBody.set("place", `"home"`).String(), KindMeetingRequest, "place", "unknown value"},
		{"enum with space", alertBody.set("priority", `"urgent "`).String(), KindAlert, "priority", "unknown value"},

		// Countries.
		{"unassigned country", alertBody.set("country", `"zz"`).String(), KindAlert, "country", "unknown country code"},
		{"country in upper case", alertBody.set("country", `"UG"`).String(), KindAlert, "country", "unknown country code"},
		{"alpha-3 country", meetingBody.set("country", `"uga"`).String(), KindMeetingRequest, "country", "unknown country code"},
		{"empty country", observationBody.set("country", `""`).String(), KindObservationRequest, "country", "empty"},
		{"broadcast country", broadcastBody.set("country", `"eu"`).String(), KindBroadcast, "country", "unknown country code"},

		// Lengths, counted in characters: 281 two-byte characters are 562
		// bytes, so a byte count would also refuse 141.
		{"summary too long", alertBody.set("summary", rep("é", maxSummary+1)).String(), KindAlert, "summary", "longer than 280 characters"},
		{"details too long", alertBody.set("details", rep("a", maxDetails+1)).String(), KindAlert, "details", "longer than 8000 characters"},
		{"location too long", alertBody.set("location", rep("a", maxLocation+1)).String(), KindAlert, "location", "longer than 120 characters"},
		{"update text too long", updateBody.set("text", rep("a", maxUpdateText+1)).String(), KindUpdate, "text", "longer than 4000 characters"},
		{"cancel text too long", cancelBody.set("text", rep("a", maxCancelText+1)).String(), KindCancel, "text", "longer than 1000 characters"},
		{"purpose too long", meetingBody.set("purpose", rep("a", maxPurpose+1)).String(), KindMeetingRequest, "purpose", ""},
		{"safety_notes too long", meetingBody.set("safety_notes", rep("a", maxSafetyNotes+1)).String(), KindMeetingRequest, "safety_notes", ""},
		{"too many times", meetingBody.set("times", `["2026-12-01T09:00:00Z","2026-12-01T10:00:00Z","2026-12-01T11:00:00Z","2026-12-01T12:00:00Z","2026-12-01T13:00:00Z","2026-12-01T14:00:00Z"]`).String(), KindMeetingRequest, "times", "more than 5 entries"},
		{"court too long", observationBody.set("court", rep("a", maxCourt+1)).String(), KindObservationRequest, "court", ""},
		{"case too long", observationBody.set("case", rep("a", maxCase+1)).String(), KindObservationRequest, "case", ""},
		{"too many defendants", observationBody.set("defendants", "["+strings.TrimSuffix(strings.Repeat(`"a",`, maxDefendants+1), ",")+"]").String(), KindObservationRequest, "defendants", "more than 20 entries"},
		{"defendant name too long", observationBody.set("defendants", `["a",`+rep("b", maxDefendantLen+1)+`]`).String(), KindObservationRequest, "defendants[1]", "longer than 120 characters"},
		{"charges too long", observationBody.set("charges", rep("a", maxCharges+1)).String(), KindObservationRequest, "charges", ""},
		{"by too long", ackBody.set("by", rep("a", maxBy+1)).String(), KindAck, "by", ""},
		{"next_step too long", ackBody.set("next_step", rep("a", maxNextStep+1)).String(), KindAck, "next_step", ""},
		{"reply text too long", replyBody.set("text", rep("a", maxReplyText+1)).String(), KindReply, "text", ""},
		{"partner too long", receiptBody.set("partner", rep("a", maxPartner+1)).String(), KindReceipt, "partner", "longer than 64 characters"},
		{"title too long", broadcastBody.set("title", rep("a", maxTitle+1)).String(), KindBroadcast, "title", ""},
		{"broadcast text too long", broadcastBody.set("text", rep("a", maxBroadcastText+1)).String(), KindBroadcast, "text", ""},

		// Empty required text and lists.
		{"empty summary", alertBody.set("summary", `""`).String(), KindAlert, "summary", "empty"},
		{"empty update text", updateBody.set("text", `""`).String(), KindUpdate, "text", "empty"},
		{"empty purpose", meetingBody.set("purpose", `""`).String(), KindMeetingRequest, "purpose", "empty"},
		{"no times", meetingBody.set("times", `[]`).String(), KindMeetingRequest, "times", "empty"},
		{"empty court", observationBody.set("court", `""`).String(), KindObservationRequest, "court", "empty"},
		{"empty defendant", observationBody.set("defendants", `[""]`).String(), KindObservationRequest, "defendants[0]", "empty"},

		// Text that shows nothing is as empty as "", required or not.
		{"summary of spaces", alertBody.set("summary", `"   "`).String(), KindAlert, "summary", "only whitespace"},
		{"summary of ideographic spaces", alertBody.set("summary", "\"\u3000\u00a0\"").String(), KindAlert, "summary", "only whitespace"},
		{"summary of a joiner", alertBody.set("summary", "\"\u200d\"").String(), KindAlert, "summary", "only whitespace or invisible characters"},
		{"summary of Hangul fillers", alertBody.set("summary", "\"\u3164 \u115f\"").String(), KindAlert, "summary", "only whitespace or invisible characters"},
		{"summary of a blank Braille pattern", alertBody.set("summary", "\"\u2800\"").String(), KindAlert, "summary", "only whitespace or invisible characters"},
		{"summary of a variation selector", alertBody.set("summary", "\"\ufe0f\"").String(), KindAlert, "summary", "only whitespace or invisible characters"},
		{"isolated space", alertBody.set("summary", "\"\u2067 \u2069\"").String(), KindAlert, "summary", "only whitespace or invisible characters"},
		{"details of blank lines", alertBody.set("details", `"\n \n"`).String(), KindAlert, "details", "only whitespace"},
		{"location of spaces", alertBody.set("location", `" "`).String(), KindAlert, "location", "only whitespace"},
		{"defendant of spaces", observationBody.set("defendants", `["a"," "]`).String(), KindObservationRequest, "defendants[1]", "only whitespace"},
		{"update of spaces", updateBody.set("text", `"\n"`).String(), KindUpdate, "text", "only whitespace"},
		{"title of spaces", broadcastBody.set("title", `" "`).String(), KindBroadcast, "title", "only whitespace"},
		{"long blank summary", alertBody.set("summary", rep(" ", maxSummary+1)).String(), KindAlert, "summary", "only whitespace"},
		{"empty by", ackBody.set("by", `""`).String(), KindAck, "by", "empty"},
		{"empty reply", replyBody.set("text", `""`).String(), KindReply, "text", "empty"},
		{"empty partner", receiptBody.set("partner", `""`).String(), KindReceipt, "partner", "empty"},
		{"empty title", broadcastBody.set("title", `""`).String(), KindBroadcast, "title", "empty"},

		// Line breaks in one-line fields.
		{"line break in summary", alertBody.set("summary", `"a\nb"`).String(), KindAlert, "summary", "contains a line break"},
		{"line break in location", alertBody.set("location", `"a\n"`).String(), KindAlert, "location", "contains a line break"},
		{"line break in court", observationBody.set("court", `"a\nb"`).String(), KindObservationRequest, "court", "contains a line break"},
		{"line break in case", observationBody.set("case", `"\nb"`).String(), KindObservationRequest, "case", "contains a line break"},
		{"line break in defendant", observationBody.set("defendants", `["a\nb"]`).String(), KindObservationRequest, "defendants[0]", "contains a line break"},
		{"line break in by", ackBody.set("by", `"a\nb"`).String(), KindAck, "by", "contains a line break"},
		{"line break in title", broadcastBody.set("title", `"a\nb"`).String(), KindBroadcast, "title", "contains a line break"},

		// Control characters, escaped (JSON refuses them raw) or raw.
		{"tab", alertBody.set("details", `"a\tb"`).String(), KindAlert, "details", "contains control character U+0009"},
		{"carriage return", alertBody.set("details", `"a\r\nb"`).String(), KindAlert, "details", "contains control character U+000D"},
		{"NUL", alertBody.set("summary", `"a\u0000"`).String(), KindAlert, "summary", "contains control character U+0000"},
		{"escape", replyBody.set("text", `"\u001b[2J"`).String(), KindReply, "text", "contains control character U+001B"},
		{"DEL", updateBody.set("text", "\"a\x7f\"").String(), KindUpdate, "text", "contains control character U+007F"},
		{"C1 NEL", broadcastBody.set("text", "\"a\u0085b\"").String(), KindBroadcast, "text", "contains control character U+0085"},
		{"C1 CSI", ackBody.set("next_step", `"\u009b"`).String(), KindAck, "next_step", "contains control character U+009B"},
		{"C1 last", ackBody.set("by", "\"\u009f\"").String(), KindAck, "by", "contains control character U+009F"},

		// Bidirectional controls.
		{"RLO", alertBody.set("summary", "\"file\u202egpj.exe\"").String(), KindAlert, "summary", "contains bidirectional control U+202E"},
		{"LRE", alertBody.set("details", "\"\u202a\"").String(), KindAlert, "details", "contains bidirectional control U+202A"},
		{"ALM", replyBody.set("text", "\"\u061c\"").String(), KindReply, "text", "contains bidirectional control U+061C"},
		{"LRM", replyBody.set("text", "\"\u200e\"").String(), KindReply, "text", "contains bidirectional control U+200E"},
		{"RLM", observationBody.set("defendants", "[\"a\u200f\"]").String(), KindObservationRequest, "defendants[0]", "contains bidirectional control U+200F"},
		{"RLE", alertBody.set("summary", "\"a\u202bb\u202c\"").String(), KindAlert, "summary", "contains bidirectional control U+202B"},
		{"LRO inside an isolate", alertBody.set("summary", "\"a\u2067\u202db\u2069\"").String(), KindAlert, "summary", "contains bidirectional control U+202D"},

		// Isolates, which only balanced ones pass.
		{"LRI alone", broadcastBody.set("title", "\"\u2066\"").String(), KindBroadcast, "title", "contains bidirectional control U+2066 not closed by U+2069 on its line"},
		{"PDI alone", broadcastBody.set("title", `"\u2069"`).String(), KindBroadcast, "title", "contains bidirectional control U+2069 with no isolate to close"},
		{"RLI not closed", alertBody.set("summary", "\"\u2067abc\"").String(), KindAlert, "summary", "contains bidirectional control U+2067 not closed by U+2069 on its line"},
		{"PDI before its opener", alertBody.set("summary", "\"\u2069abc\u2066\"").String(), KindAlert, "summary", "contains bidirectional control U+2069 with no isolate to close"},
		{"inner isolate not closed", alertBody.set("summary", "\"\u2066a\u2067b\u2069\"").String(), KindAlert, "summary", "contains bidirectional control U+2066 not closed by U+2069 on its line"},
		{"isolate across lines", alertBody.set("details", "\"a \u2068b\\nc\u2069\"").String(), KindAlert, "details", "contains bidirectional control U+2068 not closed by U+2069 on its line"},
		{"empty isolate", replyBody.set("text", "\"ab\u2066\u2069c\"").String(), KindReply, "text", "contains an empty bidirectional isolate (U+2066 then U+2069)"},
		{"isolates too deep", alertBody.set("summary", str(strings.Repeat("\u2066a", 5)+strings.Repeat("\u2069", 5))).String(), KindAlert, "summary", "contains bidirectional isolates nested more than 4 deep"},

		// Invalid UTF-8 in a string, named as Validate names it.
		{"invalid UTF-8", alertBody.set("summary", "\"a\xffb\"").String(), KindAlert, "summary", "not valid UTF-8"},
		{"overlong UTF-8", alertBody.set("summary", "\"\xc0\xaf\"").String(), KindAlert, "summary", "not valid UTF-8"},
		{"invalid UTF-8 in a list", observationBody.set("defendants", "[\"a\",\"b\xed\xa0\x80\"]").String(), KindObservationRequest, "defendants[1]", "not valid UTF-8"},
		{"invalid UTF-8 in the kind", alertBody.set("kind", "\"alert\xff\"").String(), "", "kind", "not valid UTF-8"},
		{"invalid UTF-8 in a key", alertBody.set("summ\xffary", `"a"`).String(), KindAlert, "(unprintable)", "unknown field"},

		// Invisible formatting.
		{"zero-width space", alertBody.set("location", "\"Kam\u200bpala\"").String(), KindAlert, "location", "contains invisible formatting character U+200B"},
		{"line separator", alertBody.set("details", "\"a\u2028b\"").String(), KindAlert, "details", "contains invisible formatting character U+2028"},
		{"paragraph separator", alertBody.set("details", `"a\u2029b"`).String(), KindAlert, "details", "contains invisible formatting character U+2029"},
		{"byte order mark", cancelBody.set("text", "\"\ufeffa\"").String(), KindCancel, "text", "contains invisible formatting character U+FEFF"},
		{"word joiner", meetingBody.set("purpose", "\"a\u2060\"").String(), KindMeetingRequest, "purpose", "contains invisible formatting character U+2060"},
		{"tag character", meetingBody.set("safety_notes", "\"a\U000E0041\"").String(), KindMeetingRequest, "safety_notes", "contains invisible formatting character U+E0041"},

		// Times.
		{"zero time", observationBody.set("hearing", `"0001-01-01T00:00:00Z"`).String(), KindObservationRequest, "hearing", "zero time"},
		{"zero optional time", broadcastBody.set("valid_until", `"0001-01-01T00:00:00Z"`).String(), KindBroadcast, "valid_until", "zero time"},
		{"before 2020", receiptBody.set("stored_at", `"2019-12-31T23:59:59Z"`).String(), KindReceipt, "stored_at", "before 2020-01-01"},
		{"2100", receiptBody.set("stored_at", `"2100-01-01T00:00:00Z"`).String(), KindReceipt, "stored_at", "not before 2100-01-01"},
		{"far future", broadcastBody.set("valid_until", `"9999-12-31T23:59:59Z"`).String(), KindBroadcast, "valid_until", "not before 2100-01-01"},
		{"offset", observationBody.set("hearing", `"2027-01-15T09:30:00+03:00"`).String(), KindObservationRequest, "hearing", "not a time of the form 2006-01-02T15:04:05Z"},
		{"fraction", observationBody.set("hearing", `"2027-01-15T06:30:00.5Z"`).String(), KindObservationRequest, "hearing", ""},
		{"zero fraction", observationBody.set("hearing", `"2027-01-15T06:30:00.000Z"`).String(), KindObservationRequest, "hearing", ""},
		{"date only", observationBody.set("hearing", `"2027-01-15"`).String(), KindObservationRequest, "hearing", ""},
		{"lower-case t and z", observationBody.set("hearing", `"2027-01-15t06:30:00z"`).String(), KindObservationRequest, "hearing", ""},
		{"no zone", observationBody.set("hearing", `"2027-01-15T06:30:00"`).String(), KindObservationRequest, "hearing", ""},
		{"impossible date", observationBody.set("hearing", `"2027-02-30T06:30:00Z"`).String(), KindObservationRequest, "hearing", ""},
		{"leap second", observationBody.set("hearing", `"2026-12-31T23:59:60Z"`).String(), KindObservationRequest, "hearing", ""},
		{"bad time in list", meetingBody.set("times", `["2026-12-01T09:00:00Z","tomorrow"]`).String(), KindMeetingRequest, "times[1]", ""},
		{"old time in list", meetingBody.set("times", `["2026-12-01T09:00:00Z","2019-12-01T09:00:00Z"]`).String(), KindMeetingRequest, "times[1]", "before 2020-01-01"},
		{"repeated time", meetingBody.set("times", `["2026-12-01T09:00:00Z","2026-12-02T09:00:00Z","2026-12-01T09:00:00Z"]`).String(), KindMeetingRequest, "times[2]", "same time as times[0]"},

		// References.
		{"ref in upper case", updateBody.set("ref", str(strings.ToUpper(refHex))).String(), KindUpdate, "ref", "not 32 lower-case hex characters"},
		{"ref too short", cancelBody.set("ref", str(refHex[:31])).String(), KindCancel, "ref", "not 32 lower-case hex characters"},
		{"ref too long", ackBody.set("ref", longRef).String(), KindAck, "ref", "not 32 lower-case hex characters"},
		{"ref not hex", replyBody.set("ref", str(refHex[:31]+"g")).String(), KindReply, "ref", "not 32 lower-case hex characters"},
		{"ref all zero", receiptBody.set("ref", rep("0", 32)).String(), KindReceipt, "ref", "all zero"},

		// Directory ids.
		{"partner starts with hyphen", receiptBody.set("partner", `"-nl"`).String(), KindReceipt, "partner", "starts with a hyphen"},
		{"partner in upper case", receiptBody.set("partner", `"NL-mfa"`).String(), KindReceipt, "partner", "not a directory id (a-z, 0-9 and hyphens)"},
		{"partner with underscore", receiptBody.set("partner", `"nl_mfa"`).String(), KindReceipt, "partner", ""},
		{"partner with non-ASCII", receiptBody.set("partner", `"dé"`).String(), KindReceipt, "partner", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Unmarshal([]byte(tc.body))
			if m != nil {
				t.Errorf("Unmarshal returned a message: %#v", m)
			}
			assertField(t, err, tc.kind, tc.field)
			var fe *FieldError
			errors.As(err, &fe)
			if tc.problem != "" && fe.Problem != tc.problem {
				t.Fatalf("problem = %q, want %q", fe.Problem, tc.problem)
			}
			if want := fmt.Sprintf("%s: %s", tc.field, fe.Problem); !strings.HasSuffix(err.Error(), want) {
				t.Fatalf("err = %q, does not end in %q", err, want)
			}
		})
	}
}

func TestUnknownKind(t *testing.T) {
	_, err := Unmarshal([]byte(`{"kind":"check_in","plan":1}`))
	if !errors.Is(err, ErrUnknownKind) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrUnknownKind and ErrInvalid", err)
	}
	if got, want := err.Error(), "message: kind: unknown kind"; got != want {
		t.Fatalf("err = %q, want %q", got, want)
	}
	_, err = Unmarshal([]byte(alertBody.del("summary").String()))
	if errors.Is(err, ErrUnknownKind) {
		t.Fatalf("a missing field is not an unknown kind: %v", err)
	}
}

// TestUnmarshalAcceptsLimits: text exactly at its limit, in characters wider
// than a byte, is accepted, as is text each rule lets through.
func TestUnmarshalAcceptsLimits(t *testing.T) {
	bodies := []body{
		alertBody.set("summary", rep("é", maxSummary)),
		alertBody.set("location", rep("😀", maxLocation)),
		alertBody.set("details", `"line one\nline two\n\n\"quoted\" <b> & \\ 'single' ✓ نص עברית"`),
		updateBody.set("text", `"فارسی و English"`), // mixed scripts need no bidi controls
		// Balanced isolates around names in another script, nested, and
		// on several lines of multi-line text.
		alertBody.set("summary", "\"Lawyer \u2067محمد رضا\u2069 taken\""),
		alertBody.set("summary", "\"\u2068\u05e9\u05dc\u05d5\u05dd\u2069, \u2066Kampala\u2069\""),
		alertBody.set("summary", str(strings.Repeat("\u2066a", maxIsolateDepth)+strings.Repeat("\u2069", maxIsolateDepth))),
		alertBody.set("details", "\"one \u2067دو\u2069\\nthree \u2066\u2067four\u2069 five\u2069\""),
		observationBody.set("defendants", "[\"\u2067علی\u2069\"]"),
		// Text with something visible besides spaces.
		alertBody.set("summary", "\" a \""),
		alertBody.set("summary", "\"\u00a0x\u3000\""),
		meetingBody.set("times", `["2020-01-01T00:00:00Z","2099-12-31T23:59:59Z","2026-12-01T09:00:00Z","2026-12-01T09:00:01Z","2026-12-01T09:00:02Z"]`),
		observationBody.set("defendants", "["+strings.TrimSuffix(strings.Repeat(`"a",`, maxDefendants), ",")+"]"),
		receiptBody.set("partner", `"0-a"`),
		receiptBody.set("partner", rep("z", maxPartner)),
	}
	for _, b := range bodies {
		if _, err := Unmarshal([]byte(b.String())); err != nil {
			t.Errorf("Unmarshal(%.80s…) = %v", b, err)
		}
	}
}
