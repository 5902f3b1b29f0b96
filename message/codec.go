package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
)

// Marshal validates m and returns its canonical body. It never returns a
// body that [Unmarshal] would refuse.
//
// Times are written in UTC, truncated to the second; m itself is not
// changed.
func Marshal(m Message) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil Message", ErrInvalid)
	}
	s, ok := schemaOf(m)
	if !ok {
		return nil, &FieldError{Field: "kind", Problem: "unknown kind", also: ErrUnknownKind}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b := encode(s)
	if len(b) > MaxBodySize {
		// Unreachable while the limits in limits.go fit MaxBodySize (a test
		// says so); kept so a future limit cannot break the promise.
		return nil, errTooLarge
	}
	return b, nil
}

// Unmarshal decodes and validates a body. It accepts only the exact bytes
// [Marshal] would produce for the result, so a message has one encoding.
//
// A refusal wraps [ErrInvalid]. Where a field is at fault it is a
// *[FieldError] naming it; an unknown kind also wraps [ErrUnknownKind].
func Unmarshal(b []byte) (Message, error) {
	// Cheapest checks first.
	if len(b) > MaxBodySize {
		return nil, errTooLarge
	}
	// Invalid UTF-8 is refused, but once the structure is known, so that
	// the refusal names the field holding it, as Validate does for a Go
	// value: decodeString checks each string before encoding/json could
	// turn bad bytes into U+FFFD. A body whose structure cannot be read is
	// refused for its encoding, the first thing wrong with it.
	valid := utf8.Valid(b)
	keys, err := scan(b)
	if err != nil {
		if !valid {
			return nil, errNotUTF8
		}
		return nil, err
	}
	// After scan the keys are unique, so a map loses nothing. Matching keys
	// by hand, not through a struct, also refuses "Summary" for "summary",
	// which encoding/json would accept.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, errSyntax
	}

	k, fe := decodeKind(raw)
	if fe != nil {
		return nil, fe
	}
	m := newSchema(k)
	fields := m.fields()

	// Unknown keys first, in body order: a misspelt field then reads as
	// misspelt rather than as a missing one.
	for _, key := range keys {
		if key != "kind" && !slices.ContainsFunc(fields, func(f field) bool { return f.key() == key }) {
			return nil, &FieldError{Kind: k, Field: keyName(key), Problem: "unknown field"}
		}
	}
	for _, f := range fields {
		if fe := decodeField(f, raw); fe != nil {
			fe.Kind = k
			return nil, fe
		}
	}
	if !valid {
		// Every string was checked above; kept so that bytes outside them
		// could never be accepted as U+FFFD.
		return nil, errNotUTF8
	}
	// Last, so that a mistake a person made is reported by field name
	// above, and only an encoding difference is reported here.
	if !bytes.Equal(encode(m), b) {
		return nil, errNotCanonical
	}
	return m, nil
}

func decodeKind(raw map[string]json.RawMessage) (Kind, *FieldError) {
	v, ok := raw["kind"]
	if !ok {
		return "", bad("kind", "missing")
	}
	s, fe := decodeString("kind", v)
	if fe != nil {
		return "", fe
	}
	if newSchema(Kind(s)) == nil {
		return "", &FieldError{Field: "kind", Problem: "unknown kind", also: ErrUnknownKind}
	}
	return Kind(s), nil
}

func decodeField(f field, raw map[string]json.RawMessage) *FieldError {
	v, ok := raw[f.key()]
	if !ok {
		if f.optional() {
			return nil
		}
		// Never read as the zero value: an alert without "priority" is not
		// a routine alert, and one without "share" has not said no.
		return bad(f.key(), "missing")
	}
	if fe := f.decode(v); fe != nil {
		return fe
	}
	if f.optional() && f.empty() {
		return bad(f.key(), "empty; leave the field out instead")
	}
	return f.check()
}

// encode writes the canonical form: no whitespace, "kind" first, then the
// fields in the order of the kind's schema, optional fields left out when
// empty.
func encode(m schema) []byte {
	b := make([]byte, 0, 512)
	b = append(b, `{"kind":`...)
	b = appendString(b, string(m.Kind()))
	for _, f := range m.fields() {
		if f.optional() && f.empty() {
			continue
		}
		b = append(b, ',')
		b = appendString(b, f.key())
		b = append(b, ':')
		b = f.encode(b)
	}
	return append(b, '}')
}

// appendString writes s as a JSON string with the least escaping JSON
// allows: '"', '\\' and control characters (of which checked text holds
// only "\n"). Everything else, "<", ">", "&" and non-ASCII included, is
// written as is, so the canonical form is simple to reproduce in any
// language.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// scan walks the body's tokens once, before anything is decoded, because
// encoding/json silently keeps the last of duplicate keys: a body could
// show one value to a checker and another to a reader. It also bounds
// nesting, refuses anything but one object, and returns the top-level keys
// in order.
//
// A duplicate or too-deep value is reported as a FieldError on the top-level
// field that holds it; the scan goes on to the end so that a syntax error
// still wins and the kind is known for the report.
func scan(b []byte) (keys []string, err error) {
	var kind string
	var kinds int // a kind stated twice names no kind in the error
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // no field is a number; do not fail on 1e999 before saying so
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errNotObject
		}
		return nil, errSyntax
	}
	if tok != json.Delim('{') {
		return nil, errNotObject
	}
	type frame struct {
		seen    map[string]bool // keys of an object; nil for a list
		wantKey bool
	}
	stack := []frame{{seen: map[string]bool{}, wantKey: true}}
	var first *FieldError
	fail := func(field, problem string) {
		if first == nil {
			first = bad(field, problem)
		}
	}
	var topKey string
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err != nil {
			return nil, errSyntax
		}
		top := &stack[len(stack)-1]
		switch {
		case tok == json.Delim('}') || tok == json.Delim(']'):
			stack = stack[:len(stack)-1]
		case top.seen != nil && top.wantKey:
			key := tok.(string) // the decoder allows nothing else here
			if len(stack) == 1 {
				topKey = key
				keys = append(keys, key)
				if top.seen[key] {
					fail(keyName(key), "duplicate key")
				}
			} else if top.seen[key] {
				fail(keyName(topKey), "contains a duplicate key")
			}
			top.seen[key] = true
			top.wantKey = false
			continue
		case tok == json.Delim('{') || tok == json.Delim('['):
			if len(stack) >= maxDepth {
				fail(keyName(topKey), "nested too deeply")
			}
			f := frame{wantKey: true}
			if tok == json.Delim('{') {
				f.seen = map[string]bool{}
			}
			stack = append(stack, f)
			continue
		default:
			if s, ok := tok.(string); ok && len(stack) == 1 && topKey == "kind" {
				kind, kinds = s, kinds+1
			}
		}
		// A value has ended; an enclosing object expects a key next.
		if n := len(stack); n > 0 && stack[n-1].seen != nil {
			stack[n-1].wantKey = true
		}
	}
	if dec.InputOffset() != int64(len(b)) {
		return nil, errTrailing
	}
	if first != nil {
		if kinds == 1 && newSchema(Kind(kind)) != nil {
			first.Kind = Kind(kind)
		}
		return nil, first
	}
	return keys, nil
}

// keyName is how an error names a key the sender chose: as is if it looks
// like a field name, otherwise a placeholder, so that an error message
// cannot carry control characters or content into a log.
func keyName(key string) string {
	if key == "" || len(key) > 64 {
		return "(unprintable)"
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "(unprintable)"
		}
	}
	return key
}
