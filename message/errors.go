package message

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every refusal of a body or a message, so a caller
// can tell "the sender sent something we will not show" from other failures
// with errors.Is.
var ErrInvalid = errors.New("message: invalid")

// ErrUnknownKind is wrapped (besides [ErrInvalid]) when the kind is not one
// this version knows: the sender may run a newer version, which a client may
// want to say rather than call the body broken.
var ErrUnknownKind = errors.New("message: unknown kind")

// ErrTooLong is wrapped (besides [ErrInvalid]) when text is over its
// field's limit, and ErrLineBreak when a one-line field holds a line break,
// so that a writer's tool can point to a field that takes more (an alert's
// details rather than its summary).
var (
	ErrTooLong   = errors.New("message: text too long")
	ErrLineBreak = errors.New("message: line break in a one-line field")
)

// ErrNoConsent means the defender did not consent to what was asked
// (sharing an alert with partner governments).
var ErrNoConsent = errors.New("message: no consent")

// FieldError is a refusal that names the field at fault, so the person who
// wrote the message can be told what to fix. It wraps [ErrInvalid].
//
// Problem never quotes the refused content: error strings reach logs, and the
// plaintext must not.
type FieldError struct {
	Kind    Kind   // the message's kind, or "" if it is not known yet
	Field   string // the JSON field name; "times[2]" for an element of a list
	Problem string // what is wrong, e.g. "longer than 280 characters"

	also error // a second sentinel: ErrUnknownKind, ErrTooLong, ErrLineBreak
}

func (e *FieldError) Error() string {
	name := e.Field
	if e.Kind != "" {
		name = string(e.Kind) + "." + e.Field
	}
	return "message: " + name + ": " + e.Problem
}

func (e *FieldError) Unwrap() []error {
	if e.also != nil {
		return []error{ErrInvalid, e.also}
	}
	return []error{ErrInvalid}
}

// bad builds a FieldError whose Kind the caller fills in: fields do not know
// which kind they belong to.
func bad(field, problem string) *FieldError {
	return &FieldError{Field: field, Problem: problem}
}

func badf(field, format string, args ...any) *FieldError {
	return bad(field, fmt.Sprintf(format, args...))
}

// bodyError is a refusal of the body as a whole, before any field can be
// blamed: size, encoding, JSON syntax, canonical form.
type bodyError string

func (e bodyError) Error() string { return "message: body " + string(e) }
func (e bodyError) Unwrap() error { return ErrInvalid }

var (
	errTooLarge     = bodyError(fmt.Sprintf("is larger than %d bytes", MaxBodySize))
	errNotUTF8      = bodyError("is not valid UTF-8")
	errSyntax       = bodyError("is not valid JSON")
	errNotObject    = bodyError("is not a JSON object")
	errTrailing     = bodyError("has data after the object")
	errNotCanonical = bodyError("is not in canonical form")
)

func errNil(k Kind) error { return fmt.Errorf("%w: nil %s", ErrInvalid, k) }
