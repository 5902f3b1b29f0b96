package message

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
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
	var iso isolates
	visible, spaces := false, true
	for _, r := range s {
		n++
		if problem := refusedRune(r, multiline); problem != "" {
			fe := bad(name, problem)
			if r == '\n' {
				fe.also = ErrLineBreak
			}
			return fe
		}
		if problem := iso.next(r); problem != "" {
			return bad(name, problem)
		}
		switch {
		case visible:
		case !blank(r):
			visible = true
		case !unicode.IsSpace(r):
			spaces = false
		}
	}
	if problem := iso.end(); problem != "" {
		return bad(name, problem)
	}
	switch {
	case visible:
	case spaces:
		// A summary of spaces is an empty alert that looks sent.
		return bad(name, "only whitespace")
	default:
		return bad(name, "only whitespace or invisible characters")
	}
	if n > max {
		return &FieldError{Field: name, Problem: fmt.Sprintf("longer than %d characters", max), also: ErrTooLong}
	}
	return nil
}

// blank reports whether r shows nothing on its own: white space, format
// characters (the joiners and isolates checkText allows), the
// default-ignorable fillers (Hangul fillers, U+034F) and variation
// selectors, and the blank Braille pattern that messengers' "empty name"
// tricks use. Text of nothing else reads as empty.
func blank(r rune) bool {
	return unicode.IsSpace(r) || r == 0x2800 ||
		unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// The bidirectional isolates: left-to-right, right-to-left and
// first-strong isolate, each closed by the pop directional isolate.
const (
	lri = 0x2066
	rli = 0x2067
	fsi = 0x2068
	pdi = 0x2069
)

// maxIsolateDepth bounds how deeply isolates nest. A name in another script
// needs one level and a quoted name inside it a second; the Unicode
// bidirectional algorithm stops honouring isolates past depth 125, and
// renderers are least alike near that edge.
const maxIsolateDepth = 4

// isolates checks that the bidirectional isolates in one text are balanced:
// each opened and closed on the same line, properly nested, and not empty.
// An isolate keeps the direction of its content from leaking into the text
// around it, which is what mixed-script names need, and, balanced, it
// cannot reorder anything outside itself. Unbalanced, it can (the "Trojan
// Source" attack), and a line break ends every open isolate in some
// renderers and not in others.
type isolates struct {
	open     []rune // the openers not yet closed, innermost last
	justOpen bool   // the last rune opened an isolate
}

func (iso *isolates) next(r rune) string {
	was := iso.justOpen
	iso.justOpen = false
	switch r {
	case lri, rli, fsi:
		if len(iso.open) == maxIsolateDepth {
			return fmt.Sprintf("contains bidirectional isolates nested more than %d deep", maxIsolateDepth)
		}
		iso.open = append(iso.open, r)
		iso.justOpen = true
	case pdi:
		switch {
		case len(iso.open) == 0:
			return "contains bidirectional control U+2069 with no isolate to close"
		case was:
			return fmt.Sprintf("contains an empty bidirectional isolate (U+%04X then U+2069)", iso.open[len(iso.open)-1])
		}
		iso.open = iso.open[:len(iso.open)-1]
	case '\n':
		return iso.end()
	}
	return ""
}

// end reports an isolate still open at the end of a line or of the text.
func (iso *isolates) end() string {
	if len(iso.open) > 0 {
		return fmt.Sprintf("contains bidirectional control U+%04X not closed by U+2069 on its line", iso.open[len(iso.open)-1])
	}
	return ""
}

// refusedRune says why r may not appear in text, or "".
//
// Control characters can rewrite a terminal or a log line. Bidirectional
// embeddings and overrides reorder what an officer sees (a "Trojan Source"
// attack: the text read differs from the text stored), and invisible
// characters hide words or make two different strings look the same. The
// isolates (U+2066 to U+2069) pass here; [isolates] accepts them only
// balanced. Tab and CR are refused too:
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
		0x202a <= r && r <= 0x202e:
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
	case !utf8.Valid(raw):
		// Before encoding/json, which would turn the bad bytes into U+FFFD;
		// named here as Validate names it in a Go value.
		return "", bad(name, "not valid UTF-8")
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
// [Marshal] refuses, and reports whether it removed any. It changes nothing
// else: embeddings, overrides, unbalanced isolates and invalid UTF-8 are
// left for Marshal to refuse, not silently changed.
func StripBidiMarks(s string) (string, bool) {
	var b []byte
	for i := 0; i < len(s); {
		// An invalid byte decodes as (RuneError, 1) and is copied as is.
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == 0x061c || r == 0x200e || r == 0x200f {
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[:i]...)
			}
		} else if b != nil {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	if b == nil {
		return s, false
	}
	return string(b), true
}
