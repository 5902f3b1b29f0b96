package keys

import "errors"

// Sentinel errors. Functions wrap them with %w and a detail naming what is
// wrong; callers branch with errors.Is.
var (
	// ErrMalformedKey means a key's text or binary form is not a valid key
	// of the kind asked for: wrong prefix, wrong length, bad encoding, or a
	// degenerate value such as all zeros.
	ErrMalformedKey = errors.New("malformed key")

	// ErrWrongPassphrase means the passphrase does not open the key file.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrKeyFileCorrupt means the key file was modified or damaged: the
	// passphrase is right but the encrypted contents do not authenticate,
	// or the file is not a key file at all.
	ErrKeyFileCorrupt = errors.New("key file is corrupt or was modified")
	// ErrKeyFileInsecure means the key file is readable by group or others,
	// or is not a regular file (a symlink, a device).
	ErrKeyFileInsecure = errors.New("key file is not private")

	// ErrBadSignature means a directory's signature does not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrUntrustedRoot means a directory is signed by a root other than the
	// pinned one.
	ErrUntrustedRoot = errors.New("directory is not signed by the pinned root")
	// ErrExpired means a directory (or an inbox key) is past its expiry time.
	ErrExpired = errors.New("expired")
	// ErrRollback means a directory's serial is older than one already seen,
	// or equal to it with different contents.
	ErrRollback = errors.New("directory serial is older than one already seen")
	// ErrInvalidDirectory means a roster or directory is malformed: a bad
	// field, a duplicate id, an unknown country.
	ErrInvalidDirectory = errors.New("invalid directory")
)
