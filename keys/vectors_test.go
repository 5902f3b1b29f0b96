package keys_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/internal/vectorfile"
	"github.com/hrdbeacon/beacon/keys"
)

// sentinels names the errors the vectors expect (testdata/vectors/README.md).
// The directory's own errors (ErrUntrustedRoot, ErrRollback,
// ErrInvalidDirectory) are the directory tests' business.
var sentinels = map[string]error{
	"ErrMalformedKey":    keys.ErrMalformedKey,
	"ErrWrongPassphrase": keys.ErrWrongPassphrase,
	"ErrKeyFileCorrupt":  keys.ErrKeyFileCorrupt,
	"ErrKeyFileInsecure": keys.ErrKeyFileInsecure,
	"ErrBadSignature":    keys.ErrBadSignature,
	"ErrExpired":         keys.ErrExpired,
}

func readKeyVectors(t *testing.T) []vectorfile.Vector {
	t.Helper()
	vs, err := vectorfile.ReadDir("testdata/vectors", "description", "kind", "expect")
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// checkOutcome fails unless err is nil for "ok" or wraps the named
// sentinel and no other.
func checkOutcome(t *testing.T, what string, err error, want string) {
	t.Helper()
	if problem := vectorfile.Outcome(err, want, sentinels); problem != "" {
		t.Errorf("%s: %s", what, problem)
	}
}

// TestKeyVectors walks testdata/vectors: each input is given to the parser
// its kind names, and the outcome must be exact. What parses must print
// back as the input, byte for byte.
func TestKeyVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range readKeyVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			f := v.Fields
			seen[f["expect"]] = true
			check := func(k, got string) {
				t.Helper()
				if want, ok := f[k]; !ok {
					t.Errorf("field %q missing in a valid vector", k)
				} else if got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			in := string(v.Input)
			var err error
			switch f["kind"] {
			case "public-identity":
				var p *keys.PublicIdentity
				if p, err = keys.ParsePublicIdentity(in); err == nil {
					check("fingerprint", p.Fingerprint().String())
					check("safety-number", p.SafetyNumber())
					roundTrip(t, p.String(), in)
				}
			case "secret-identity":
				var id *keys.Identity
				if id, err = keys.ParseIdentity(in); err == nil {
					check("public", id.Public().String())
					check("fingerprint", id.Public().Fingerprint().String())
					check("safety-number", id.Public().SafetyNumber())
					roundTrip(t, id.SecretString(), in)
				}
			case "inbox-public":
				var k *keys.InboxPublicKey
				if k, err = keys.ParseInboxPublicKey(in); err == nil {
					roundTrip(t, k.String(), in)
				}
			case "inbox-secret":
				var k *keys.InboxKey
				if k, err = keys.ParseInboxKey(in); err == nil {
					check("public", k.Public().String())
					roundTrip(t, k.SecretString(), in)
				}
			case "fingerprint":
				var fp keys.Fingerprint
				if fp, err = keys.ParseFingerprint(in); err == nil {
					roundTrip(t, fp.String(), in)
				}
			case "signed-inbox-key":
				err = verifySignedInboxKey(t, f, v.Input)
			case "key-file":
				err = loadKeyFileVector(t, f, v.Input)
			default:
				t.Fatalf("unknown kind %q", f["kind"])
			}
			checkOutcome(t, f["kind"], err, f["expect"])
		})
	}
	for name := range sentinels {
		if !seen[name] {
			t.Errorf("no vector expects %s", name)
		}
	}
	if !seen["ok"] {
		t.Error("no valid vector")
	}
}

func roundTrip(t *testing.T, got, in string) {
	t.Helper()
	if got != in {
		t.Errorf("parsed, but prints as %q, not as the input", got)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func verifySignedInboxKey(t *testing.T, f map[string]string, sig []byte) error {
	t.Helper()
	owner, err := keys.ParsePublicIdentity(f["owner"])
	if err != nil {
		t.Fatalf("owner: %v", err)
	}
	k, err := keys.ParseInboxPublicKey(f["key"])
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	s := keys.SignedInboxKey{Key: k, Expires: mustTime(t, f["expires"]), Signature: sig}
	return s.Verify(owner, mustTime(t, f["now"]))
}

// loadKeyFileVector writes the vector's file with its mode and loads it
// with its passphrase; for a valid file it checks the whole keyring.
func loadKeyFileVector(t *testing.T, f map[string]string, file []byte) error {
	t.Helper()
	mode, err := strconv.ParseUint(f["mode"], 8, 32)
	if err != nil {
		t.Fatalf("mode: %v", err)
	}
	path := filepath.Join(t.TempDir(), "vector.key")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, os.FileMode(mode)); err != nil {
		t.Fatal(err)
	}
	kr, err := keys.LoadKeyFile(path, []byte(f["passphrase"]))
	if err != nil {
		if kr != nil {
			t.Error("LoadKeyFile returned a keyring with its error")
		}
		return err
	}
	check := func(k, got string) {
		t.Helper()
		if got != f[k] {
			t.Errorf("%s = %q, want %q", k, got, f[k])
		}
	}
	seed, _ := kr.NKey.Seed()
	check("role", string(kr.Role))
	check("identity", kr.Identity.SecretString())
	check("nkey-seed", string(seed))
	check("nkey", kr.NKeyPublic())
	check("created", kr.Created.Format(time.RFC3339))
	check("inboxes", strconv.Itoa(len(kr.Inboxes)))
	duress := ""
	if k := kr.DuressKey(); k != nil {
		duress = base64.StdEncoding.EncodeToString(k)
	}
	check("duress", duress)
	check("decoy", map[bool]string{true: "true"}[kr.Decoy])
	for i, e := range kr.Inboxes {
		check(fmt.Sprintf("inbox-%d", i), e.Key.SecretString()+" "+e.Signed.Expires.Format(time.RFC3339))
		if err := e.Signed.Verify(kr.Identity.Public(), e.Signed.Expires.Add(-time.Second)); err != nil {
			t.Errorf("inbox %d: %v", i, err)
		}
	}
	return nil
}
