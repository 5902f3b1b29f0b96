package keys_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha3"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hrdbeacon/beacon/keys"
)

func TestIdentitySecretRoundTrip(t *testing.T) {
	id := mustIdentity(t)
	s := id.SecretString()
	if !strings.HasPrefix(s, "BCN-SECRET-ID:") {
		t.Fatalf("SecretString = %q, want prefix BCN-SECRET-ID:", s)
	}
	back, err := keys.ParseIdentity(s)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(id) {
		t.Error("parsed identity is not Equal to the original")
	}
	if !back.Public().Equal(id.Public()) {
		t.Error("parsed identity's public half is not Equal to the original's")
	}
	if back.SecretString() != s {
		t.Error("SecretString of the parsed identity differs")
	}
	if other := mustIdentity(t); other.Equal(id) || other.Public().Equal(id.Public()) {
		t.Error("two generated identities are Equal")
	}
}

func TestPublicIdentityTextRoundTrip(t *testing.T) {
	p := mustIdentity(t).Public()
	s := p.String()
	if !strings.HasPrefix(s, "bcn-id:") {
		t.Fatalf("String = %q, want prefix bcn-id:", s)
	}
	q, err := keys.ParsePublicIdentity(s)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Equal(p) || q.String() != s {
		t.Error("ParsePublicIdentity(p.String()) is not Equal to p")
	}
	text, err := p.MarshalText()
	if err != nil || string(text) != s {
		t.Fatalf("MarshalText = %q, %v; want String()", text, err)
	}
	var u keys.PublicIdentity
	if err := u.UnmarshalText(text); err != nil {
		t.Fatal(err)
	}
	if !u.Equal(p) || !bytes.Equal(u.Bytes(), p.Bytes()) {
		t.Error("UnmarshalText(MarshalText) is not Equal")
	}
	r, err := keys.NewPublicIdentity(p.Bytes())
	if err != nil || !r.Equal(p) {
		t.Fatalf("NewPublicIdentity(Bytes()) = %v, %v", r, err)
	}
	if len(p.Bytes()) != keys.PublicIdentitySize {
		t.Errorf("Bytes() is %d bytes, want %d", len(p.Bytes()), keys.PublicIdentitySize)
	}
	if err := u.UnmarshalText([]byte("bcn-id:AAAA")); !isMalformed(err) {
		t.Errorf("UnmarshalText(garbage) = %v, want ErrMalformedKey", err)
	}
}

// textKinds returns one valid text of every kind of key, by kind name. The
// keys are the fixed ones in testdata, so that which malformed variants
// happen to decode (those whose dropped bits are zero) is the same on every
// run.
func textKinds(t *testing.T) map[string]string {
	id := fixedIdentity(t, "fixed-identity.txt")
	ib, err := keys.ParseInboxKey(readTestdata(t, "fixed-inbox.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"public identity": id.Public().String(),
		"secret identity": id.SecretString(),
		"inbox public":    ib.Public().String(),
		"inbox secret":    ib.SecretString(),
		"fingerprint":     id.Public().Fingerprint().String(),
	}
}

// parsers are every text parser, by the kind it accepts.
var parsers = map[string]func(string) error{
	"public identity": func(s string) error { _, err := keys.ParsePublicIdentity(s); return err },
	"secret identity": func(s string) error { _, err := keys.ParseIdentity(s); return err },
	"inbox public":    func(s string) error { _, err := keys.ParseInboxPublicKey(s); return err },
	"inbox secret":    func(s string) error { _, err := keys.ParseInboxKey(s); return err },
	"fingerprint":     func(s string) error { _, err := keys.ParseFingerprint(s); return err },
}

// parseNoPanic runs a parser and turns a panic into a test failure.
func parseNoPanic(t *testing.T, parse func(string) error, s string) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("panic on %q: %v", s, r)
			err = keys.ErrMalformedKey
		}
	}()
	return parse(s)
}

func TestTextKindsNeverCross(t *testing.T) {
	texts := textKinds(t)
	for pname, parse := range parsers {
		for kind, s := range texts {
			err := parseNoPanic(t, parse, s)
			if kind == pname {
				if err != nil {
					t.Errorf("%s parser refuses a valid %s: %v", pname, kind, err)
				}
				continue
			}
			if !isMalformed(err) {
				t.Errorf("%s parser on a %s text: %v, want ErrMalformedKey", pname, kind, err)
			}
		}
	}
}

// caseSwapPrefix swaps the case of the prefix (everything up to ':').
func caseSwapPrefix(s string) string {
	i := strings.IndexByte(s, ':')
	p := s[:i]
	if p == strings.ToUpper(p) {
		p = strings.ToLower(p)
	} else {
		p = strings.ToUpper(p)
	}
	return p + s[i:]
}

// nonCanonical changes the last base64 character so that the bits past the
// end of the data are nonzero; ok is false when the encoding has no such
// bits (the data length is a multiple of 3).
func nonCanonical(s string, dataLen int) (string, bool) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var padBits int
	switch dataLen % 3 {
	case 0:
		return "", false
	case 1:
		padBits = 4
	case 2:
		padBits = 2
	}
	last := strings.IndexByte(alphabet, s[len(s)-1])
	if last&(1<<padBits-1) != 0 {
		panic("input is not canonical")
	}
	return s[:len(s)-1] + string(alphabet[last|1]), true
}

func TestMalformedTexts(t *testing.T) {
	texts := textKinds(t)
	dataLen := map[string]int{
		"public identity": keys.PublicIdentitySize,
		"secret identity": 96,
		"inbox public":    keys.KEMKeySize,
		"inbox secret":    keys.KEMSeedSize,
	}
	for kind, valid := range texts {
		parse := parsers[kind]
		prefix := valid[:strings.IndexByte(valid, ':')+1]
		payload := valid[len(prefix):]
		cases := map[string]string{
			"empty":             "",
			"prefix only":       prefix,
			"no prefix":         payload,
			"one char short":    valid[:len(valid)-1],
			"one char long":     valid + "A",
			"prefix case swap":  caseSwapPrefix(valid),
			"padding appended":  valid + "=",
			"padding replacing": valid[:len(valid)-1] + "=",
			"plus":              valid[:len(valid)-1] + "+",
			"slash":             valid[:len(valid)-1] + "/",
			"space":             valid[:len(valid)-1] + " ",
			"bang in middle":    valid[:len(valid)/2] + "!" + valid[len(valid)/2+1:],
			"leading space":     " " + valid,
			"trailing newline":  valid + "\n",
			"non-ascii":         valid[:len(valid)-2] + "é",
			// The base64 decoder skips CR and LF; a text of the right length
			// with line breaks in place of characters decodes short.
			"last char LF":    valid[:len(valid)-1] + "\n",
			"last 3 chars LF": valid[:len(valid)-3] + "\n\n\n",
			"last 4 chars LF": valid[:len(valid)-4] + "\n\n\n\n",
			"CRLF in middle":  valid[:len(valid)/2] + "\r\n" + valid[len(valid)/2+2:],
		}
		if kind == "fingerprint" {
			cases["upper-case hex"] = prefix + strings.ToUpper(payload)
			cases["non-hex"] = prefix + "g" + payload[1:]
		} else if nc, ok := nonCanonical(valid, dataLen[kind]); ok {
			cases["non-canonical base64"] = nc
		}
		for name, s := range cases {
			t.Run(kind+"/"+name, func(t *testing.T) {
				if err := parseNoPanic(t, parse, s); !isMalformed(err) {
					t.Errorf("%s parser on %q: %v, want ErrMalformedKey", kind, s, err)
				}
			})
		}
	}
}

func TestNewPublicIdentityRefuses(t *testing.T) {
	raw := mustIdentity(t).Public().Bytes()
	for _, n := range []int{0, 31, 32, 33, 64, keys.PublicIdentitySize - 1, keys.PublicIdentitySize + 1} {
		b := make([]byte, n)
		copy(b, raw)
		if _, err := keys.NewPublicIdentity(b); !isMalformed(err) {
			t.Errorf("%d bytes: %v, want ErrMalformedKey", n, err)
		}
	}
	const sig, dh, kemX = 0, keys.SigningKeySize, keys.SigningKeySize + keys.DHKeySize + 1184
	for _, c := range []struct {
		name       string
		start, end int
	}{
		{"signing key", sig, sig + keys.SigningKeySize},
		{"DH key", dh, dh + keys.DHKeySize},
		{"KEM key", dh + keys.DHKeySize, keys.PublicIdentitySize},
		{"KEM X25519 part", kemX, keys.PublicIdentitySize},
		{"everything", 0, keys.PublicIdentitySize},
	} {
		b := bytes.Clone(raw)
		clear(b[c.start:c.end])
		if _, err := keys.NewPublicIdentity(b); !isMalformed(err) {
			t.Errorf("all-zero %s: %v, want ErrMalformedKey", c.name, err)
		}
	}
}

// TestPublicIdentityLayout pins the binary layout the package doc and
// labels.go describe: Ed25519 key, X25519 key, then the X-Wing key whose last
// 32 bytes are its X25519 part (so the all-zero check of that part checks the
// right bytes).
func TestPublicIdentityLayout(t *testing.T) {
	id := mustIdentity(t)
	secret, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(id.SecretString(), "BCN-SECRET-ID:"))
	if err != nil || len(secret) != 96 {
		t.Fatalf("secret payload: %d bytes, %v", len(secret), err)
	}
	raw := id.Public().Bytes()
	if want := ed25519.NewKeyFromSeed(secret[:32]).Public().(ed25519.PublicKey); !bytes.Equal(raw[:32], want) {
		t.Error("bytes 0–32 are not the Ed25519 public key of the secret's first 32 bytes")
	}
	dh, err := ecdh.X25519().NewPrivateKey(secret[32:64])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw[32:64], dh.PublicKey().Bytes()) {
		t.Error("bytes 32–64 are not the X25519 public key of the secret's second 32 bytes")
	}
	if !bytes.Equal(raw[64:], id.Public().KEMKey().Bytes()) {
		t.Error("bytes 64– are not the KEM key")
	}
	// X-Wing expands its 32-byte seed with SHAKE256 to 96 bytes; the last 32
	// are the X25519 scalar.
	expanded := sha3.SumSHAKE256(secret[64:96], 96)
	xw, err := ecdh.X25519().NewPrivateKey(expanded[64:96])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw[64+1184:], xw.PublicKey().Bytes()) {
		t.Error("the KEM key's last 32 bytes are not X-Wing's X25519 public key")
	}
}

// secretForms are the ways a secret could appear in formatted output.
func secretForms(text string) []string {
	payload := text[strings.IndexByte(text, ':')+1:]
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	return []string{text, payload, hex.EncodeToString(raw), fmt.Sprint(raw), fmt.Sprintf("%#v", raw)[:40],
		strings.Trim(fmt.Sprint(raw[:8]), "[]")}
}

func assertNoSecret(t *testing.T, what, out string, forms []string) {
	t.Helper()
	for _, f := range forms {
		if strings.Contains(out, f) {
			t.Errorf("%s leaks the secret (%.24q…) in: %.200q", what, f, out)
		}
	}
}

func TestSecretsRedactedInFormat(t *testing.T) {
	id := mustIdentity(t)
	ib := mustInbox(t)
	idForms, ibForms := secretForms(id.SecretString()), secretForms(ib.SecretString())

	out := fmt.Sprintf("%v %s %+v %#v %q %x %X", id, id, id, id, id, id, id)
	assertNoSecret(t, "Identity", out, idForms)
	if !strings.Contains(fmt.Sprint(id), id.Public().Fingerprint().Short()) {
		t.Errorf("Identity.String() = %q, want it to name the fingerprint", id)
	}
	out = fmt.Sprintf("%v %s %+v %#v %q %x %X", ib, ib, ib, ib, ib, ib, ib)
	assertNoSecret(t, "InboxKey", out, ibForms)

	kr, err := keys.NewKeyring(keys.RoleMission)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kr.NKey.Seed()
	if err != nil {
		t.Fatal(err)
	}
	forms := append(secretForms(kr.Identity.SecretString()), secretForms(kr.Inboxes[0].Key.SecretString())...)
	forms = append(forms, string(seed), fmt.Sprint(seed)[:40])
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		assertNoSecret(t, "Keyring "+verb, fmt.Sprintf(verb, kr), forms)
		assertNoSecret(t, "Keyring value "+verb, fmt.Sprintf(verb, *kr), forms)
		assertNoSecret(t, "[]InboxEntry "+verb, fmt.Sprintf(verb, kr.Inboxes), forms)
	}
}

// TestSecretsRedactedWithAnyVerb: a secret must not reach a log line through
// a numeric verb either (log.Printf("%d", id) is a typo away from %s). fmt
// only consults String for %v %s %q %x %X; any other verb prints the struct,
// secret bytes included, unless the type implements fmt.Formatter.
func TestSecretsRedactedWithAnyVerb(t *testing.T) {
	id := mustIdentity(t)
	ib := mustInbox(t)
	for _, verb := range []string{"%d", "%o", "%b", "%c", "%U", "%e", "%t"} {
		// A variable format keeps vet from refusing the deliberate misuse.
		format := verb
		if out := fmt.Sprintf(format, id); !strings.Contains(out, "redacted") {
			t.Errorf("Identity %s prints %.80q…, not the redacted form", verb, out)
		}
		if out := fmt.Sprintf(format, ib); !strings.Contains(out, "redacted") {
			t.Errorf("InboxKey %s prints %.80q…, not the redacted form", verb, out)
		}
	}
}

// Low-order X25519 points (libsodium's blocklist, with and without the
// ignored top bit). All-zero is refused at parse; the rest parse, and the
// exchange must refuse them rather than return an all-zero secret.
var lowOrderPoints = []string{
	"0100000000000000000000000000000000000000000000000000000000000000",
	"0100000000000000000000000000000000000000000000000000000000000080",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000080",
}

func withDH(t *testing.T, p *keys.PublicIdentity, dh []byte) (*keys.PublicIdentity, error) {
	t.Helper()
	raw := bytes.Clone(p.Bytes())
	copy(raw[keys.SigningKeySize:], dh)
	return keys.NewPublicIdentity(raw)
}

func TestSharedSecret(t *testing.T) {
	a, b := mustIdentity(t), mustIdentity(t)
	ab, err := a.SharedSecret(b.Public())
	if err != nil {
		t.Fatal(err)
	}
	ba, err := b.SharedSecret(a.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ab, ba) || len(ab) != 32 {
		t.Fatalf("A·B = %x, B·A = %x", ab, ba)
	}
	c := mustIdentity(t)
	if ac, _ := a.SharedSecret(c.Public()); bytes.Equal(ac, ab) {
		t.Error("A·C equals A·B")
	}

	t.Run("cached result is stable", func(t *testing.T) {
		for range 3 {
			if again, err := a.SharedSecret(b.Public()); err != nil || !bytes.Equal(again, ba) {
				t.Fatalf("repeat = %x, %v; want %x", again, err, ba)
			}
		}
	})

	// A caller that scribbles on the returned slice (wipes it after use, say)
	// must not change what the next caller gets: the cache must hand out
	// copies.
	t.Run("returned slice does not alias the cache", func(t *testing.T) {
		x, y := mustIdentity(t), mustIdentity(t)
		want, err := y.SharedSecret(x.Public())
		if err != nil {
			t.Fatal(err)
		}
		s, _ := x.SharedSecret(y.Public())
		clear(s)
		again, err := x.SharedSecret(y.Public())
		if err != nil || !bytes.Equal(again, want) {
			t.Errorf("after the caller wiped its copy, SharedSecret = %x, %v; want %x", again, err, want)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		id := mustIdentity(t)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				s, err := id.SharedSecret(b.Public())
				if err != nil || len(s) != 32 {
					t.Errorf("SharedSecret = %x, %v", s, err)
				}
			})
		}
		wg.Wait()
	})

	t.Run("low-order points", func(t *testing.T) {
		for _, h := range lowOrderPoints {
			pt, _ := hex.DecodeString(h)
			p, err := withDH(t, b.Public(), pt)
			if err != nil {
				if !isMalformed(err) {
					t.Errorf("%s: parse error %v, want ErrMalformedKey", h, err)
				}
				continue
			}
			for range 2 { // the second call must not find a cached result
				s, err := func() (s []byte, err error) {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("%s: panic: %v", h, r)
						}
					}()
					return a.SharedSecret(p)
				}()
				if !isMalformed(err) || s != nil {
					t.Errorf("%s: SharedSecret = %x, %v; want nil, ErrMalformedKey", h, s, err)
				}
			}
		}
		if again, err := a.SharedSecret(b.Public()); err != nil || !bytes.Equal(again, ba) {
			t.Errorf("after refusing low-order points, A·B = %x, %v", again, err)
		}
	})

	t.Run("all-zero DH key refused at parse", func(t *testing.T) {
		if _, err := withDH(t, b.Public(), make([]byte, 32)); !isMalformed(err) {
			t.Errorf("all-zero DH key: %v, want ErrMalformedKey", err)
		}
	})
}

func TestVerify(t *testing.T) {
	id := mustIdentity(t)
	msg := []byte("beacon test message")
	sig := id.Sign(msg)
	if !id.Public().Verify(msg, sig) {
		t.Fatal("a valid signature does not verify")
	}
	if id.Public().Verify([]byte("other message"), sig) {
		t.Error("a signature verifies for another message")
	}
	if mustIdentity(t).Public().Verify(msg, sig) {
		t.Error("a signature verifies under another identity")
	}
	for _, n := range []int{0, 1, 63, 65, 128} {
		bad := make([]byte, n)
		copy(bad, sig)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%d-byte signature: panic: %v", n, r)
				}
			}()
			if id.Public().Verify(msg, bad) {
				t.Errorf("%d-byte signature verifies", n)
			}
		}()
	}
	if id.Public().Verify(msg, nil) {
		t.Error("nil signature verifies")
	}
	for i := range 8 {
		bad := bytes.Clone(sig)
		bad[i*8] ^= 1 << i
		if id.Public().Verify(msg, bad) {
			t.Errorf("signature with byte %d flipped verifies", i*8)
		}
	}
}

// FuzzParsePublicIdentity: parsing never panics, and whatever parses has
// exactly one text form, the input (no malleable encodings).
func FuzzParsePublicIdentity(f *testing.F) {
	id, err := keys.GenerateIdentity()
	if err != nil {
		f.Fatal(err)
	}
	s := id.Public().String()
	f.Add(s)
	f.Add(s[:len(s)-1])
	f.Add(s + "=")
	f.Add(s[:len(s)-1] + "\n")
	f.Add(strings.ToUpper(s[:7]) + s[7:])
	f.Add("bcn-id:")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := keys.ParsePublicIdentity(s)
		if err != nil {
			if !isMalformed(err) {
				t.Fatalf("error %v is not ErrMalformedKey", err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("parsed %q but String() is %q", s, p.String())
		}
		q, err := keys.NewPublicIdentity(p.Bytes())
		if err != nil || !q.Equal(p) {
			t.Fatalf("NewPublicIdentity(Bytes()) = %v", err)
		}
	})
}

// FuzzParseSecretKeys: the secret parsers never panic, and what parses
// prints back byte for byte.
func FuzzParseSecretKeys(f *testing.F) {
	id, err := keys.GenerateIdentity()
	if err != nil {
		f.Fatal(err)
	}
	ib, err := keys.GenerateInboxKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(id.SecretString())
	f.Add(ib.SecretString())
	f.Add(id.SecretString()[:100])
	f.Add("BCN-SECRET-INBOX:")
	f.Fuzz(func(t *testing.T, s string) {
		if id, err := keys.ParseIdentity(s); err == nil && id.SecretString() != s {
			t.Fatalf("ParseIdentity(%q) prints as %q", s, id.SecretString())
		} else if err != nil && !isMalformed(err) {
			t.Fatalf("ParseIdentity: %v is not ErrMalformedKey", err)
		}
		if k, err := keys.ParseInboxKey(s); err == nil && k.SecretString() != s {
			t.Fatalf("ParseInboxKey(%q) prints as %q", s, k.SecretString())
		} else if err != nil && !isMalformed(err) {
			t.Fatalf("ParseInboxKey: %v is not ErrMalformedKey", err)
		}
	})
}
