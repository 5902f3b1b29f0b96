package message

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/routing"
)

// FuzzUnmarshal: no body panics Unmarshal, every refusal wraps ErrInvalid,
// and a body that is accepted is exactly what Marshal writes for it (there is
// one encoding per message: no malleability).
func FuzzUnmarshal(f *testing.F) {
	for _, tc := range examples {
		f.Add([]byte(tc.body.String()))
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"kind":"alert"}`,
		alertBody.String() + " ",
		alertBody.set("summary", `"\u0061"`).String(),
		alertBody.set("summary", `"\ud800"`).String(),
		alertBody.set("summary", "\"\u202e\"").String(),
		alertBody.set("share", `"true"`).String(),
		alertBody.del("priority").String(),
		`{"kind":"alert","kind":"alert"}`,
		meetingBody.set("times", `[["2026-12-01T09:00:00Z"]]`).String(),
		meetingBody.set("times", `["2026-12-01T09:00:00Z","2026-12-01T09:00:00Z"]`).String(),
		observationBody.set("hearing", `"2027-01-15T06:30:00.5Z"`).String(),
		broadcastBody.set("valid_until", `null`).String(),
		"{\"kind\":\"reply\",\"ref\":\"" + refHex + "\",\"text\":\"\xff\"}",
		alertBody.set("summary", "\"a \u2067b\u2069\"").String(),
		alertBody.set("summary", "\"\u2067\u2069\"").String(),
		alertBody.set("details", "\"\u2066a\\n\u2069\"").String(),
		alertBody.set("summary", "\" \u3000\"").String(),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			if m != nil {
				t.Fatalf("Unmarshal returned a message and %v", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted a body whose message does not validate: %v", err)
		}
		out, err := Marshal(m)
		if err != nil {
			t.Fatalf("accepted a body Marshal refuses: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("accepted a non-canonical body:\n in %q\nout %q", b, out)
		}
	})
}

// FuzzMarshalRoundTrip: whatever Marshal accepts, Unmarshal accepts and
// gives back, so Validate and Unmarshal agree on every rule.
func FuzzMarshalRoundTrip(f *testing.F) {
	f.Add("ug", "urgent", "raid", "Office raided", "Details\nhere", "", true, false, int64(1795000000), int64(0), int64(3600))
	f.Add("ke", "high", "travel_ban", "a\u202eb", "\t", "x", false, true, int64(1577836800), int64(999), int64(0))
	f.Add("UG", "", "other", "", "", "Kampala\n", false, false, int64(0), int64(0), int64(-1))
	f.Add("ug", "urgent", "raid", "\u2067x\u2069 y", "\u2066a\n\u2069", " ", true, false, int64(1795000000), int64(0), int64(1))
	f.Add("ug", "urgent", "raid", "a\xff", "\u200d", "\u2069", false, false, int64(1795000000), int64(0), int64(1))
	f.Fuzz(func(t *testing.T, cc, sev, cat, summary, details, location string, share, publicise bool, sec, nsec, gap int64) {
		when := time.Unix(sec, nsec)
		prio := routing.Priority(len(sev)) // 0–3 valid-ish, longer ones invalid
		msgs := []Message{
			&Alert{Country: cc, Priority: prio, Category: Category(cat), Summary: summary,
				Details: details, Location: location, Share: share, Publicise: publicise},
			&MeetingRequest{Country: cc, Purpose: details, Place: Place(sev), SafetyNotes: location,
				Times: []time.Time{when, when.Add(time.Duration(gap))}},
			&ObservationRequest{Country: cc, Court: summary, Case: location, Hearing: when,
				Defendants: []string{summary, location}, Charges: details},
			&Broadcast{Country: cc, Category: BroadcastCategory(cat), Title: summary, Text: details, ValidUntil: when},
			&Receipt{Ref: ref, Partner: location, StoredAt: when},
		}
		for _, m := range msgs {
			b, err := Marshal(m)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("%s: refusal does not wrap ErrInvalid: %v", m.Kind(), err)
				}
				continue
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("%s: Unmarshal refuses what Marshal wrote: %v\n%q", m.Kind(), err, b)
			}
			again, err := Marshal(got)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("%s: second Marshal differs: %v\n%q\n%q", m.Kind(), err, b, again)
			}
			if a, ok := m.(*Alert); ok && !reflect.DeepEqual(got, a) {
				t.Fatalf("alert changed on the way: %#v", got)
			}
		}
	})
}
