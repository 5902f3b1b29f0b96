package message

import "encoding/hex"

// ID is a message id as the envelope layer assigns it: 128 random bits. A
// body refers to an earlier message (the alert a reply belongs to) by its ID,
// written as 32 lower-case hex characters. The zero ID is never a message's
// id, so it is refused wherever an ID is expected.
type ID [16]byte

// ParseID parses the 32 lower-case hex characters of a non-zero ID. Upper
// case is refused so each ID has one text form.
func ParseID(s string) (ID, error) {
	id, problem := parseID(s)
	if problem == "" && id.IsZero() {
		problem = "all zero"
	}
	if problem != "" {
		return ID{}, bad("id", problem)
	}
	return id, nil
}

func parseID(s string) (ID, string) {
	var id ID
	if len(s) != 2*len(id) {
		return ID{}, "not 32 lower-case hex characters"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ID{}, "not 32 lower-case hex characters"
		}
	}
	hex.Decode(id[:], []byte(s)) // cannot fail: checked above
	return id, ""
}

// String returns the 32 lower-case hex characters of id.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID, that is, unset.
func (id ID) IsZero() bool { return id == ID{} }
