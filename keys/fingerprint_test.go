package keys_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"rsc.io/qr"

	"github.com/hrdbeacon/beacon/keys"
)

func TestFingerprintText(t *testing.T) {
	p := mustIdentity(t).Public()
	fp := p.Fingerprint()
	s := fp.String()
	if !regexp.MustCompile(`^bcn-fp:[0-9a-f]{64}$`).MatchString(s) {
		t.Fatalf("String = %q, want bcn-fp: and 64 lower-case hex digits", s)
	}
	back, err := keys.ParseFingerprint(s)
	if err != nil || !back.Equal(fp) || back != fp {
		t.Fatalf("ParseFingerprint(String()) = %v, %v", back, err)
	}
	text, err := fp.MarshalText()
	if err != nil || string(text) != s {
		t.Fatalf("MarshalText = %q, %v", text, err)
	}
	var u keys.Fingerprint
	if err := u.UnmarshalText(text); err != nil || !u.Equal(fp) {
		t.Fatalf("UnmarshalText = %v, %v", u, err)
	}
	if p.Fingerprint() != fp {
		t.Error("Fingerprint is not deterministic")
	}
	payload := strings.TrimPrefix(s, "bcn-fp:")
	for name, bad := range map[string]string{
		"upper-case hex":    "bcn-fp:" + strings.ToUpper(payload),
		"one upper digit":   "bcn-fp:" + strings.ToUpper(payload[:1]) + "A" + payload[2:],
		"63 digits":         s[:len(s)-1],
		"65 digits":         s + "0",
		"66 digits":         s + "00",
		"non-hex":           s[:len(s)-1] + "g",
		"upper-case prefix": "BCN-FP:" + payload,
		"no prefix":         payload,
		"empty":             "",
	} {
		if _, err := keys.ParseFingerprint(bad); !isMalformed(err) {
			t.Errorf("%s: %v, want ErrMalformedKey", name, err)
		}
		if err := u.UnmarshalText([]byte(bad)); !isMalformed(err) {
			t.Errorf("UnmarshalText %s: %v, want ErrMalformedKey", name, err)
		}
	}

	other := mustIdentity(t).Public().Fingerprint()
	if other.Equal(fp) || other == fp {
		t.Error("two identities have the same fingerprint")
	}
	short := fp.Short()
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(short) || !strings.HasPrefix(payload, short) {
		t.Errorf("Short = %q, want the first 16 hex digits of %q", short, payload)
	}
}

var safetyNumberRE = regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){5}$`)

func TestSafetyNumber(t *testing.T) {
	p := mustIdentity(t).Public()
	sn := p.SafetyNumber()
	if !safetyNumberRE.MatchString(sn) {
		t.Fatalf("SafetyNumber = %q, want six groups of five digits", sn)
	}
	if again := p.SafetyNumber(); again != sn {
		t.Errorf("SafetyNumber is not stable: %q then %q", sn, again)
	}
	q, err := keys.ParsePublicIdentity(p.String())
	if err != nil {
		t.Fatal(err)
	}
	if q.SafetyNumber() != sn {
		t.Error("SafetyNumber changes across a text round trip")
	}
	if other := mustIdentity(t).Public().SafetyNumber(); other == sn {
		t.Errorf("two identities share the safety number %q", sn)
	}
}

// TestGoldenFixedIdentity pins every derivation from a fixed secret:
// public key layout, fingerprint and safety number. A change to any label,
// hash or layout breaks it; regenerate only for a deliberate format change
// (-update) and say so in the change.
func TestGoldenFixedIdentity(t *testing.T) {
	id := fixedIdentity(t, "fixed-identity.txt")
	p := id.Public()
	golden(t, "fixed-identity.pub", p.String())
	golden(t, "fixed-identity.fingerprint", p.Fingerprint().String())
	golden(t, "fixed-identity.safety-number", p.SafetyNumber())
	if !safetyNumberRE.MatchString(p.SafetyNumber()) {
		t.Errorf("golden safety number %q is not six groups of five digits", p.SafetyNumber())
	}
	ib, err := keys.ParseInboxKey(readTestdata(t, "fixed-inbox.txt"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "fixed-inbox.pub", ib.Public().String())
}

// TestQR draws the fingerprint and reads the drawing back, module by module,
// against the QR code of the fingerprint's text form.
func TestQR(t *testing.T) {
	p := mustIdentity(t).Public()
	out, err := p.QR()
	if err != nil {
		t.Fatal(err)
	}
	if out == "" || !strings.HasSuffix(out, "\n") {
		t.Fatalf("QR = %q", out)
	}
	code, err := qr.Encode(p.Fingerprint().String(), qr.M)
	if err != nil {
		t.Fatal(err)
	}
	const quiet = 2
	n := code.Size + 2*quiet
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if want := (n + 1) / 2; len(lines) != want {
		t.Fatalf("%d lines, want ceil((%d+4)/2) = %d", len(lines), code.Size, want)
	}
	// light reports whether the module at (x, y) is drawn light: the
	// renderer draws light modules as blocks for a dark terminal.
	light := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		return x < 0 || y < 0 || x >= code.Size || y >= code.Size || !code.Black(x, y)
	}
	for row, line := range lines {
		if c := utf8.RuneCountInString(line); c != n {
			t.Fatalf("line %d has %d runes, want %d", row, c, n)
		}
		for x, r := range []rune(line) {
			top, bottom := false, false
			switch r {
			case '█':
				top, bottom = true, true
			case '▀':
				top = true
			case '▄':
				bottom = true
			case ' ':
			default:
				t.Fatalf("line %d has %q, want only █ ▀ ▄ and space", row, r)
			}
			y := 2 * row
			if top != light(x, y) {
				t.Fatalf("module (%d,%d) drawn light=%v, want %v", x, y, top, light(x, y))
			}
			if y+1 < n && bottom != light(x, y+1) {
				t.Fatalf("module (%d,%d) drawn light=%v, want %v", x, y+1, bottom, light(x, y+1))
			}
			if y+1 >= n && bottom {
				t.Fatalf("line %d draws a module below the code", row)
			}
		}
	}
	if other, _ := mustIdentity(t).Public().QR(); other == out {
		t.Error("two identities draw the same QR code")
	}
}
