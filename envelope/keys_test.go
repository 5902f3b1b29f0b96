package envelope

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hrdbeacon/beacon/keys"
)

// Keys reach Seal and Open from the directory and from the inside of an
// envelope, so every malformed key must be refused with
// keys.ErrMalformedKey before it reaches a primitive that may panic on it
// (ed25519.Verify panics on a 31-byte key).

func wantKeyErr(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	if p := catch(func() { err = f() }); p != nil {
		t.Errorf("%s: panic: %v", what, p)
		return
	}
	if !errors.Is(err, keys.ErrMalformedKey) {
		t.Errorf("%s: got %v, want keys.ErrMalformedKey", what, err)
	}
}

var b64 = base64.RawURLEncoding

func TestMalformedPublicIdentity(t *testing.T) {
	good := newIdentity(t).Public().Bytes()
	for _, n := range []int{0, 31, 32, 33, 64, keys.PublicIdentitySize - 1, keys.PublicIdentitySize + 1} {
		b := bytes.Repeat([]byte{0x42}, n)
		if n > keys.PublicIdentitySize {
			b = append(bytes.Clone(good), 0x42)
		} else if n > 64 {
			b = bytes.Clone(good[:n])
		}
		wantKeyErr(t, fmt.Sprintf("NewPublicIdentity(%d bytes)", n), func() error {
			_, err := keys.NewPublicIdentity(b)
			return err
		})
		wantKeyErr(t, fmt.Sprintf("ParsePublicIdentity(%d bytes)", n), func() error {
			_, err := keys.ParsePublicIdentity("bcn-id:" + b64.EncodeToString(b))
			return err
		})
	}
	const sign, dh, kem = keys.SigningKeySize, keys.DHKeySize, keys.KEMKeySize
	for _, c := range []struct {
		name       string
		start, end int
	}{
		{"the whole identity", 0, keys.PublicIdentitySize},
		{"the signing key", 0, sign},
		{"the DH key", sign, sign + dh},
		{"the KEM key", sign + dh, sign + dh + kem},
		{"the KEM key's ML-KEM part", sign + dh, sign + dh + 1184},
		{"the KEM key's X25519 part", sign + dh + 1184, sign + dh + kem},
	} {
		b := bytes.Clone(good)
		clear(b[c.start:c.end])
		wantKeyErr(t, "NewPublicIdentity with "+c.name+" zeroed", func() error {
			_, err := keys.NewPublicIdentity(b)
			return err
		})
		wantKeyErr(t, "ParsePublicIdentity with "+c.name+" zeroed", func() error {
			_, err := keys.ParsePublicIdentity("bcn-id:" + b64.EncodeToString(b))
			return err
		})
	}
	// Wrong prefixes and encodings.
	text := newIdentity(t).Public().String()
	for _, s := range []string{"", "bcn-id:", text[len("bcn-id:"):], "BCN-ID:" + text[len("bcn-id:"):],
		"bcn-inbox:" + text[len("bcn-id:"):], text + "=", text[:len(text)-1] + "!", text + "A"} {
		wantKeyErr(t, fmt.Sprintf("ParsePublicIdentity(%.20q...)", s), func() error {
			_, err := keys.ParsePublicIdentity(s)
			return err
		})
	}
}

func TestMalformedInboxKey(t *testing.T) {
	good := newInbox(t).Public().Bytes()
	for _, n := range []int{0, 31, 32, 33, keys.KEMKeySize - 1, keys.KEMKeySize + 1} {
		b := bytes.Repeat([]byte{0x42}, n)
		if n > keys.KEMKeySize {
			b = append(bytes.Clone(good), 0x42)
		} else if n > 33 {
			b = bytes.Clone(good[:n])
		}
		wantKeyErr(t, fmt.Sprintf("NewInboxPublicKey(%d bytes)", n), func() error {
			_, err := keys.NewInboxPublicKey(b)
			return err
		})
		wantKeyErr(t, fmt.Sprintf("ParseInboxPublicKey(%d bytes)", n), func() error {
			_, err := keys.ParseInboxPublicKey("bcn-inbox:" + b64.EncodeToString(b))
			return err
		})
	}
	for _, c := range []struct {
		name       string
		start, end int
	}{
		{"the whole key", 0, keys.KEMKeySize},
		{"the ML-KEM part", 0, 1184},
		{"the X25519 part", 1184, keys.KEMKeySize},
	} {
		b := bytes.Clone(good)
		clear(b[c.start:c.end])
		wantKeyErr(t, "NewInboxPublicKey with "+c.name+" zeroed", func() error {
			_, err := keys.NewInboxPublicKey(b)
			return err
		})
	}
}

func TestMalformedSecretKeys(t *testing.T) {
	for _, n := range []int{0, 31, 32, 33, 95, 97} {
		wantKeyErr(t, fmt.Sprintf("ParseIdentity(%d bytes)", n), func() error {
			_, err := keys.ParseIdentity("BCN-SECRET-ID:" + b64.EncodeToString(make([]byte, n)))
			return err
		})
	}
	for _, n := range []int{0, 31, 33, 64} {
		wantKeyErr(t, fmt.Sprintf("ParseInboxKey(%d bytes)", n), func() error {
			_, err := keys.ParseInboxKey("BCN-SECRET-INBOX:" + b64.EncodeToString(make([]byte, n)))
			return err
		})
	}
	// A public text is not a secret one, nor the other way round.
	id := newIdentity(t)
	// The base64 decoder skips newlines, so a text of the right length
	// with line breaks in it decodes to a short key: refused, not a panic.
	inbox := newInbox(t)
	for _, s := range []string{id.SecretString(), id.Public().String(), inbox.SecretString(), inbox.Public().String()} {
		// Cut the encoding to a whole number of 4-character groups, so
		// that it decodes, and make up the length with line breaks.
		cut := (len(s) - strings.Index(s, ":") - 1) % 4
		if cut == 0 {
			cut = 4
		}
		broken := s[:len(s)-cut] + "\r\n\n\n"[:cut]
		wantKeyErr(t, fmt.Sprintf("%.16s... with line breaks", s), func() error {
			var err error
			switch {
			case s == id.SecretString():
				_, err = keys.ParseIdentity(broken)
			case s == id.Public().String():
				_, err = keys.ParsePublicIdentity(broken)
			case s == inbox.SecretString():
				_, err = keys.ParseInboxKey(broken)
			default:
				_, err = keys.ParseInboxPublicKey(broken)
			}
			return err
		})
	}
	wantKeyErr(t, "ParseIdentity(public text)", func() error {
		_, err := keys.ParseIdentity(id.Public().String())
		return err
	})
	wantKeyErr(t, "ParsePublicIdentity(secret text)", func() error {
		_, err := keys.ParsePublicIdentity(id.SecretString())
		return err
	})
	// The secret text round-trips to the same keys.
	back, err := keys.ParseIdentity(id.SecretString())
	if err != nil || !back.Equal(id) || !back.Public().Equal(id.Public()) {
		t.Errorf("ParseIdentity(SecretString()) = %v, %v", back, err)
	}
}

// A key that would break a primitive (a low-order X25519 point gives an
// all-zero DH result) is refused when it is parsed, so Seal never sees it.
func TestSealToDegenerateKey(t *testing.T) {
	b := bytes.Clone(newIdentity(t).Public().Bytes())
	copy(b[keys.SigningKeySize:], append([]byte{1}, make([]byte, 31)...)) // u = 1 has order 4
	if _, err := keys.NewPublicIdentity(b); !errors.Is(err, keys.ErrMalformedKey) {
		t.Errorf("NewPublicIdentity(low-order DH): %v, want keys.ErrMalformedKey", err)
	}
}
