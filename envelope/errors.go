package envelope

import "errors"

// Errors that Parse and Open return, wrapped with a detail. Callers branch
// with errors.Is; the relay counts refusals by these reasons.
var (
	// ErrTruncated: the input ends before the envelope does.
	ErrTruncated = errors.New("envelope: truncated")
	// ErrMalformed: a field has a value the format does not allow, or there
	// are bytes after the end of the envelope.
	ErrMalformed = errors.New("envelope: malformed")
	// ErrUnsupportedVersion: the version byte is not [Version].
	ErrUnsupportedVersion = errors.New("envelope: unsupported version")
	// ErrTooLarge: longer than [MaxSize], or a body longer than [MaxBodySize].
	ErrTooLarge = errors.New("envelope: too large")
	// ErrTooManyRecipients: more than [MaxRecipients], or none.
	ErrTooManyRecipients = errors.New("envelope: recipient count out of range")
	// ErrNotForMe: no stanza opens with the keys given.
	ErrNotForMe = errors.New("envelope: not addressed to this key")
	// ErrTampered: the header MAC or the payload does not authenticate under
	// the content key: the envelope was modified after sealing.
	ErrTampered = errors.New("envelope: tampered")
	// ErrBadAuthentication: the payload decrypts but the sender's
	// authenticator does not verify for the sender it names.
	ErrBadAuthentication = errors.New("envelope: sender authentication failed")
)
