package proto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A Reply answers a publish on an ingest subject: either where the message
// was stored (JetStream's own acknowledgement, which has this shape), or
// why it was refused.
type Reply struct {
	Stream    string `json:"stream,omitempty"`
	Seq       uint64 `json:"seq,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Error     *Error `json:"error,omitempty"`
}

// A SvcReply answers settle and pending requests, and refusals of any
// service request.
type SvcReply struct {
	Count uint64 `json:"count"`
	Error *Error `json:"error,omitempty"`
}

// An Error is a refusal: a stable code to branch on and a description for
// people.
type Error struct {
	Code        Code   `json:"code"`
	Description string `json:"description"`
	// JSErrCode is JetStream's own error code, on a refusal JetStream sent
	// the publisher directly; 0 on the relay's own refusals.
	JSErrCode int `json:"err_code,omitempty"`
	// Challenge comes with CodeAdmission: what to solve before sending
	// the same publish again.
	Challenge *Challenge `json:"challenge,omitempty"`
}

// UnmarshalJSON reads a relay refusal, or the error JetStream puts in an
// acknowledgement it sends the sender directly. JetStream's numeric
// codes are mapped by its err_code: a message over the stream's size
// limit is CodeTooLarge (permanent: sending it again cannot succeed), a
// stream or subject at its limit CodeFull, anything else CodeUnavailable.
func (e *Error) UnmarshalJSON(b []byte) error {
	var w struct {
		Code        json.RawMessage `json:"code"`
		ErrCode     int             `json:"err_code"`
		Description string          `json:"description"`
		Challenge   *Challenge      `json:"challenge"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = Error{Description: w.Description, Challenge: w.Challenge, JSErrCode: w.ErrCode}
	if len(w.Code) > 0 && w.Code[0] == '"' {
		return json.Unmarshal(w.Code, &e.Code)
	}
	switch {
	case w.ErrCode == jsMessageTooLarge:
		e.Code = CodeTooLarge
	case w.ErrCode == jsErrStoreFailed && strings.Contains(w.Description, "maximum"):
		e.Code = CodeFull // "maximum bytes/messages (per subject) exceeded"
	default:
		e.Code = CodeUnavailable
	}
	return nil
}

// JetStream's err_code values the relay's senders may see.
const (
	jsMessageTooLarge = 10054 // JSStreamMessageExceedsMaximumErr; 10077 is in bridge.go
)

func (e *Error) Error() string { return fmt.Sprintf("relay refused: %s: %s", e.Code, e.Description) }

// Code is a refusal reason. The relay counts refusals by code.
type Code string

// UnmarshalJSON takes a code, or the number JetStream puts in the error of
// an acknowledgement it sends the sender directly (a full stream, a
// storage failure): those are all CodeUnavailable, worth retrying.
func (c *Code) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] != '"' {
		*c = CodeUnavailable
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*c = Code(s)
	return nil
}

// Refusal codes.
const (
	CodeMalformed   Code = "malformed"    // not a well-formed envelope
	CodeTooLarge    Code = "too_large"    // over the size limit
	CodeVersion     Code = "version"      // unsupported envelope version
	CodeMismatch    Code = "mismatch"     // subject does not match the header
	CodeStale       Code = "stale"        // created time outside the freshness window
	CodeForbidden   Code = "forbidden"    // this role may not publish there
	CodeRateLimited Code = "rate_limited" // over the connection's rate limit
	CodeBadTarget   Code = "bad_target"   // no such stream subject
	CodeBadSig      Code = "bad_signature"
	CodeUnavailable Code = "unavailable" // storage failed; try again
	CodeBadRequest  Code = "bad_request" // a service request the relay cannot parse
	CodeBadReply    Code = "bad_reply"   // the reply subject is not the sender's reply prefix (never answered)
)

// Codes lists every refusal code, for metrics.
var Codes = []Code{CodeMalformed, CodeTooLarge, CodeVersion, CodeMismatch, CodeStale, CodeForbidden,
	CodeRateLimited, CodeBadTarget, CodeBadSig, CodeUnavailable, CodeBadRequest, CodeBadReply, CodeAdmission, CodeFull,
	CodeNoHold, CodeChain, CodeLate, CodeConflict, CodeNoTier, CodeHoldFull}

// Retryable reports whether a refusal with this code may succeed later:
// the relay was busy, its storage failed or is full, or it asks for a
// proof of work first (which [github.com/hrdbeacon/beacon/internal/relayconn]
// solves). Every other refusal is permanent for that message.
func (c Code) Retryable() bool {
	return c == CodeRateLimited || c == CodeUnavailable || c == CodeFull || c == CodeAdmission
}

// ErrBadReply is returned for a reply the relay could not have sent.
var ErrBadReply = errors.New("proto: malformed relay reply")

// ParseReply decodes a relay's reply to a publish; a refusal is returned
// as *Error.
func ParseReply(b []byte) (*Reply, error) {
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReply, err)
	}
	if r.Error != nil {
		return &r, r.Error
	}
	if r.Stream == "" || r.Seq == 0 {
		return nil, fmt.Errorf("%w: no stream or sequence", ErrBadReply)
	}
	return &r, nil
}

// ParseSvcReply decodes the answer to a settle or pending request, or a
// service refusal (returned as *Error).
func ParseSvcReply(b []byte) (*SvcReply, error) {
	var r SvcReply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReply, err)
	}
	if r.Error != nil {
		return &r, r.Error
	}
	return &r, nil
}
