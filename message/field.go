package message

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hrdbeacon/beacon/country"
	"github.com/hrdbeacon/beacon/routing"
)

// field is one JSON field of a kind, bound to the Go field it fills. Every
// method that returns a *FieldError leaves its Kind for the caller to set.
type field interface {
	key() string
	// optional fields are left out of the body when empty, and refused when
	// present but empty, so each message has one encoding.
	optional() bool
	empty() bool
	// decode converts a JSON value of the right type; check judges it.
	decode(raw json.RawMessage) *FieldError
	check() *FieldError
	// encode appends the canonical JSON value of a checked field.
	encode(b []byte) []byte
}

// textField is free text that people write and read.
type textField struct {
	name      string
	p         *string
	min, max  int // characters; min is 0 or 1
	multiline bool
	opt       bool
}

func (f *textField) key() string    { return f.name }
func (f *textField) optional() bool { return f.opt }
func (f *textField) empty() bool    { return *f.p == "" }

func (f *textField) decode(raw json.RawMessage) *FieldError {
	s, fe := decodeString(f.name, raw)
	*f.p = s
	return fe
}

func (f *textField) check() *FieldError {
	return checkText(f.name, *f.p, f.min, f.max, f.multiline)
}

func (f *textField) encode(b []byte) []byte { return appendString(b, *f.p) }

// checkText applies the rules for text shown to people. Characters are
// counted as runes so limits do not penalise non-Latin scripts.
func checkText(name, s string, min, max int, multiline bool) *FieldError {
	if !utf8.ValidString(s) {
		// encoding/json would turn these bytes into U+FFFD on the way out:
		// the reader would see something other than what was written.
		return bad(name, "not valid UTF-8")
	}
	if s == "" {
		if min > 0 {
			return bad(name, "empty")
		}
		return nil
	}
	n := 0
	for _, r := range s {
		n++
		if problem := refusedRune(r, multiline); problem != "" {
			return bad(name, problem)
		}
	}
	if n > max {
		return badf(name, "longer than %d characters", max)
	}
	return nil
}

// refusedRune says why r may not appear in text, or "".
//
// Control characters can rewrite a terminal or a log line. Bidirectional
// controls reorder what an officer sees (a "Trojan Source" attack: the text
// read differs from the text stored), and invisible characters hide words or
// make two different strings look the same. Tab and CR are refused too:
// line breaks are "\n" only, so text has one form.
//
// The zero-width non-joiner and joiner (U+200C, U+200D) are allowed: Persian,
// Kurdish and several Indic scripts cannot be spelled correctly without
// them, and they do not reorder text. The implicit bidi marks (U+061C,
// U+200E, U+200F) are refused with the other bidi controls; phone keyboards
// insert them in mixed right-to-left text, so clients remove them with
// [StripBidiMarks] before marshalling and tell the writer.
func refusedRune(r rune, multiline bool) string {
	switch {
	case r == '\n':
		if multiline {
			return ""
		}
		return "contains a line break"
	case r < 0x20, r == 0x7f, 0x80 <= r && r <= 0x9f:
		return fmt.Sprintf("contains control character U+%04X", r)
	case r == 0x061c, r == 0x200e, r == 0x200f,
		0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069:
		return fmt.Sprintf("contains bidirectional control U+%04X", r)
	case r == 0x200b, // zero-width space
		r == 0x2028, r == 0x2029, // line and paragraph separators
		r == 0xfeff, // zero-width no-break space (BOM)
		// Beyond the list Beacon requires, with the same power to hide text:
		0x2060 <= r && r <= 0x2064,   // word joiner, invisible operators
		0x206a <= r && r <= 0x206f,   // deprecated format controls
		0xfff9 <= r && r <= 0xfffb,   // interlinear annotation: hides text
		0xe0000 <= r && r <= 0xe007f: // tag characters: invisible ASCII
		return fmt.Sprintf("contains invisible formatting character U+%04X", r)
	}
	return ""
}

// enumField is one of a fixed set of values.
type enumField[T ~string] struct {
	name   string
	p      *T
	values []T
}

func (f *enumField[T]) key() string    { return f.name }
func (f *enumField[T]) optional() bool { return false }
func (f *enumField[T]) empty() bool    { return *f.p == "" }

func (f *enumField[T]) decode(raw json.RawMessage) *FieldError {
	s, fe := decodeString(f.name, raw)
	*f.p = T(s)
	return fe
}

func (f *enumField[T]) check() *FieldError {
	switch {
	case *f.p == "":
		return bad(f.name, "empty")
	case !slices.Contains(f.values, *f.p):
		return bad(f.name, "unknown value")
	}
	return nil
}

func (f *enumField[T]) encode(b []byte) []byte { return appendString(b, string(*f.p)) }

// countryField is a country code that [country.Known] accepts, so that no
// layer accepts a country another refuses.
type countryField struct {
	name string
	p    *string
}

func (f *countryField) key() string    { return f.name }
func (f *countryField) optional() bool { return false }
func (f *countryField) empty() bool    { return *f.p == "" }

func (f *countryField) decode(raw json.RawMessage) *FieldError {
	s, fe := decodeString(f.name, raw)
	*f.p = s
	return fe
}

func (f *countryField) check() *FieldError {
	switch {
	case *f.p == "":
		return bad(f.name, "empty")
	case !country.Known(*f.p):
		return bad(f.name, "unknown country code")
	}
	return nil
}

func (f *countryField) encode(b []byte) []byte { return appendString(b, *f.p) }

// partnerField is a directory id: 1 to 64 of [a-z0-9-], not starting with a
// hyphen, so it is safe in configs, logs and subjects.
type partnerField struct {
	name string
	p    *string
}

func (f *partnerField) key() string    { return f.name }
func (f *partnerField) optional() bool { return false }
func (f *partnerField) empty() bool    { return *f.p == "" }

func (f *partnerField) decode(raw json.RawMessage) *FieldError {
	s, fe := decodeString(f.name, raw)
	*f.p = s
	return fe
}

func (f *partnerField) check() *FieldError {
	s := *f.p
	switch {
	case s == "":
		return bad(f.name, "empty")
	case len(s) > maxPartner:
		return badf(f.name, "longer than %d characters", maxPartner)
	case s[0] == '-':
		return bad(f.name, "starts with a hyphen")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return bad(f.name, "not a directory id (a-z, 0-9 and hyphens)")
		}
	}
	return nil
}

func (f *partnerField) encode(b []byte) []byte { return appendString(b, *f.p) }

// boolField is a yes or no that must be stated: absence is refused rather
// than read as false, since these are consents.
type boolField struct {
	name string
	p    *bool
}

func (f *boolField) key() string        { return f.name }
func (f *boolField) optional() bool     { return false }
func (f *boolField) empty() bool        { return false }
func (f *boolField) check() *FieldError { return nil }

func (f *boolField) decode(raw json.RawMessage) *FieldError {
	switch string(raw) {
	case "true":
		*f.p = true
	case "false":
		*f.p = false
	case "null":
		return bad(f.name, "null")
	default:
		return bad(f.name, "not true or false")
	}
	return nil
}

func (f *boolField) encode(b []byte) []byte {
	if *f.p {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// priorityField is a priority, written by name.
type priorityField struct {
	name string
	p    *routing.Priority
}

func (f *priorityField) key() string    { return f.name }
func (f *priorityField) optional() bool { return false }
func (f *priorityField) empty() bool    { return *f.p == 0 }

func (f *priorityField) decode(raw json.RawMessage) *FieldError {
	s, fe := decodeString(f.name, raw)
	switch {
	case fe != nil:
		return fe
	case s == "":
		return bad(f.name, "empty")
	}
	p, err := routing.ParsePriority(s)
	if err != nil {
		return bad(f.name, "unknown value")
	}
	*f.p = p
	return nil
}

func (f *priorityField) check() *FieldError {
	switch {
	case *f.p == 0:
		return bad(f.name, "empty")
	case !f.p.Valid():
		return bad(f.name, "unknown value")
	}
	return nil
}

func (f *priorityField) encode(b []byte) []byte { return appendString(b, f.p.String()) }

// idField refers to an earlier message.
type idField struct {
	name string
	p    *routing.ID
}

func (f *idField) key() string    { return f.name }
func (f *idField) optional() bool { return false }
func (f *idField) empty() bool    { return f.p.IsZero() }

func (f *idField) decode(raw json.RawMessage) *FieldError {
	s, fe := decodeString(f.name, raw)
	if fe != nil {
		return fe
	}
	id, err := routing.ParseID(s)
	if err != nil {
		if len(s) == 2*routing.IDSize && strings.Trim(s, "0") == "" {
			return bad(f.name, "all zero")
		}
		return bad(f.name, "not 32 lower-case hex characters")
	}
	*f.p = id
	return nil
}

func (f *idField) check() *FieldError {
	if f.p.IsZero() {
		return bad(f.name, "all zero")
	}
	return nil
}

func (f *idField) encode(b []byte) []byte { return appendString(b, f.p.String()) }

// timeField is an instant, written in UTC to the second.
type timeField struct {
	name string
	p    *time.Time
	opt  bool
}

func (f *timeField) key() string    { return f.name }
func (f *timeField) optional() bool { return f.opt }
func (f *timeField) empty() bool    { return f.p.IsZero() }

func (f *timeField) decode(raw json.RawMessage) *FieldError {
	t, fe := decodeTime(f.name, raw)
	*f.p = t
	return fe
}

func (f *timeField) check() *FieldError { return checkTime(f.name, *f.p) }

func (f *timeField) encode(b []byte) []byte { return appendTime(b, *f.p) }

// timesField is a list of distinct instants.
type timesField struct {
	name string
	p    *[]time.Time
	max  int // the list holds at least one
}

func (f *timesField) key() string    { return f.name }
func (f *timesField) optional() bool { return false }
func (f *timesField) empty() bool    { return len(*f.p) == 0 }

func (f *timesField) decode(raw json.RawMessage) *FieldError {
	items, fe := decodeList(f.name, raw)
	if fe != nil {
		return fe
	}
	var ts []time.Time
	for i, item := range items {
		t, fe := decodeTime(fmt.Sprintf("%s[%d]", f.name, i), item)
		if fe != nil {
			return fe
		}
		ts = append(ts, t)
	}
	*f.p = ts
	return nil
}

func (f *timesField) check() *FieldError {
	ts := *f.p
	switch {
	case len(ts) == 0:
		return bad(f.name, "empty")
	case len(ts) > f.max:
		return badf(f.name, "more than %d entries", f.max)
	}
	for i, t := range ts {
		name := fmt.Sprintf("%s[%d]", f.name, i)
		if fe := checkTime(name, t); fe != nil {
			return fe
		}
		// Compared as encoded: two times a nanosecond apart become one.
		for j := range i {
			if normalTime(ts[j]).Equal(normalTime(t)) {
				return badf(name, "same time as %s[%d]", f.name, j)
			}
		}
	}
	return nil
}

func (f *timesField) encode(b []byte) []byte {
	b = append(b, '[')
	for i, t := range *f.p {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTime(b, t)
	}
	return append(b, ']')
}

// namesField is a list of one-line names; an empty list is allowed and is
// written as [] (never null, so the field is always there).
type namesField struct {
	name   string
	p      *[]string
	max    int // entries
	maxLen int // characters per entry
}

func (f *namesField) key() string    { return f.name }
func (f *namesField) optional() bool { return false }
func (f *namesField) empty() bool    { return len(*f.p) == 0 }

func (f *namesField) decode(raw json.RawMessage) *FieldError {
	items, fe := decodeList(f.name, raw)
	if fe != nil {
		return fe
	}
	var names []string
	for i, item := range items {
		s, fe := decodeString(fmt.Sprintf("%s[%d]", f.name, i), item)
		if fe != nil {
			return fe
		}
		names = append(names, s)
	}
	*f.p = names
	return nil
}

func (f *namesField) check() *FieldError {
	if len(*f.p) > f.max {
		return badf(f.name, "more than %d entries", f.max)
	}
	for i, s := range *f.p {
		if fe := checkText(fmt.Sprintf("%s[%d]", f.name, i), s, 1, f.maxLen, false); fe != nil {
			return fe
		}
	}
	return nil
}

func (f *namesField) encode(b []byte) []byte {
	b = append(b, '[')
	for i, s := range *f.p {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// normalTime is t as a body holds it.
func normalTime(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

func checkTime(name string, t time.Time) *FieldError {
	if t.IsZero() {
		return bad(name, "zero time")
	}
	switch t = normalTime(t); {
	case t.Before(minTime):
		return bad(name, "before 2020-01-01")
	case !t.Before(endTime):
		return bad(name, "not before 2100-01-01")
	}
	return nil
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = normalTime(t).AppendFormat(b, timeLayout)
	return append(b, '"')
}

// JSON value decoding. The raw values come from a body that has passed the
// structural scan, so they are well-formed JSON; what is left is their type.

func decodeString(name string, raw json.RawMessage) (string, *FieldError) {
	switch {
	case string(raw) == "null":
		return "", bad(name, "null")
	case len(raw) == 0 || raw[0] != '"':
		return "", bad(name, "not a string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", bad(name, "not a string")
	}
	return s, nil
}

func decodeList(name string, raw json.RawMessage) ([]json.RawMessage, *FieldError) {
	switch {
	case string(raw) == "null":
		return nil, bad(name, "null")
	case len(raw) == 0 || raw[0] != '[':
		return nil, bad(name, "not a list")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, bad(name, "not a list")
	}
	return items, nil
}

func decodeTime(name string, raw json.RawMessage) (time.Time, *FieldError) {
	s, fe := decodeString(name, raw)
	if fe != nil {
		return time.Time{}, fe
	}
	// time.Parse also takes a fractional second the layout does not show;
	// formatting back catches that and anything else non-canonical, and
	// names the field rather than failing the canonical-form check later.
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		return time.Time{}, bad(name, "not a time of the form 2006-01-02T15:04:05Z")
	}
	if t.IsZero() {
		// Caught here so an optional time cannot pass as absent.
		return time.Time{}, bad(name, "zero time")
	}
	return t, nil
}

// StripBidiMarks removes the implicit bidirectional marks U+061C, U+200E
// and U+200F, which keyboards insert in mixed right-to-left text and which
// [Marshal] refuses, and reports whether it removed any. It leaves the
// explicit overrides and isolates alone: text containing those is refused,
// not silently changed.
func StripBidiMarks(s string) (string, bool) {
	out := strings.Map(func(r rune) rune {
		if r == 0x061c || r == 0x200e || r == 0x200f {
			return -1
		}
		return r
	}, s)
	return out, len(out) != len(s)
}
