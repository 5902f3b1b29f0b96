package keys

import (
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"rsc.io/qr"
)

// A Fingerprint is the SHA-256 hash of a public identity under a label. It
// names an identity compactly: clients pin the directory's root by it.
type Fingerprint [FingerprintSize]byte

// ParseFingerprint parses the text form, "bcn-fp:" and 64 lower-case hex
// digits.
func ParseFingerprint(s string) (Fingerprint, error) {
	rest, ok := strings.CutPrefix(s, fingerprintPrefix)
	if !ok {
		return Fingerprint{}, fmt.Errorf("%w: a fingerprint starts with %q", ErrMalformedKey, fingerprintPrefix)
	}
	if len(rest) != 2*FingerprintSize || strings.ToLower(rest) != rest {
		return Fingerprint{}, fmt.Errorf("%w: a fingerprint has %d lower-case hex digits after the prefix", ErrMalformedKey, 2*FingerprintSize)
	}
	b, err := hex.DecodeString(rest)
	if err != nil {
		return Fingerprint{}, fmt.Errorf("%w: fingerprint: %v", ErrMalformedKey, err)
	}
	return Fingerprint(b), nil
}

// String returns the text form.
func (f Fingerprint) String() string { return fingerprintPrefix + hex.EncodeToString(f[:]) }

// Short returns the first 16 hex digits, for log lines and redacted forms.
func (f Fingerprint) Short() string { return hex.EncodeToString(f[:8]) }

// Equal reports, in constant time, whether two fingerprints are the same.
func (f Fingerprint) Equal(g Fingerprint) bool { return subtle.ConstantTimeCompare(f[:], g[:]) == 1 }

// MarshalText implements encoding.TextMarshaler.
func (f Fingerprint) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *Fingerprint) UnmarshalText(b []byte) error {
	g, err := ParseFingerprint(string(b))
	if err != nil {
		return err
	}
	*f = g
	return nil
}

// safetyNumberIterations makes a brute-force search for an identity whose
// safety number collides with a given one cost 5,200 SHA-512 calls a try, as
// in Signal's safety numbers.
const safetyNumberIterations = 5200

// SafetyNumber returns the human-comparable code of a public identity: 30
// digits in six groups of five ("12345 67890 ..."). It depends only on the
// public identity, so a mission officer and a defender who meet in person can
// each read theirs aloud and compare it with what their software shows.
func (p *PublicIdentity) SafetyNumber() string {
	h := sha512.New()
	h.Write([]byte(safetyNumberLabel))
	h.Write(p.raw[:])
	sum := h.Sum(nil)
	for range safetyNumberIterations {
		h.Reset()
		h.Write(sum)
		h.Write(p.raw[:])
		sum = h.Sum(sum[:0])
	}
	groups := make([]string, 6)
	for i := range groups {
		// Five bytes (40 bits) reduced mod 100000: the bias is below 2^-23.
		var b [8]byte
		copy(b[3:], sum[5*i:5*i+5])
		groups[i] = fmt.Sprintf("%05d", binary.BigEndian.Uint64(b[:])%100000)
	}
	return strings.Join(groups, " ")
}

// QR returns the fingerprint as a QR code drawn with Unicode half blocks,
// light modules as blocks, for a terminal with a dark background. A phone
// that scans it reads the fingerprint's text form.
func (p *PublicIdentity) QR() (string, error) {
	code, err := qr.Encode(p.Fingerprint().String(), qr.M)
	if err != nil {
		return "", fmt.Errorf("qr: %w", err)
	}
	const quiet = 2
	dark := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		if x < 0 || y < 0 || x >= code.Size || y >= code.Size {
			return false
		}
		return code.Black(x, y)
	}
	n := code.Size + 2*quiet
	var sb strings.Builder
	for y := 0; y < n; y += 2 {
		for x := range n {
			top, bottom := !dark(x, y), y+1 < n && !dark(x, y+1)
			if y+1 >= n {
				bottom = false
			}
			switch {
			case top && bottom:
				sb.WriteString("█")
			case top:
				sb.WriteString("▀")
			case bottom:
				sb.WriteString("▄")
			default:
				sb.WriteString(" ")
			}
		}
		sb.WriteString("\n")
	}
	return sb.String(), nil
}
