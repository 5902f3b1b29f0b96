package envelope

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/keys"
)

// TestSignedVectors walks testdata/signed: every ack token and public
// message is parsed, then verified with the vector's signer, and each step
// must give the exact outcome.
func TestSignedVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range readVectorDir(t, "testdata/signed", "description", "kind", "expect", "parse", "signer") {
		t.Run(v.Name, func(t *testing.T) {
			f := v.Fields
			seen[f["kind"]+" "+f["expect"]] = true
			signer, err := keys.ParsePublicIdentity(f["signer"])
			if err != nil {
				t.Fatalf("signer: %v", err)
			}
			check := func(k, got string) {
				t.Helper()
				if want, ok := f[k]; !ok {
					t.Errorf("field %q missing in a valid vector", k)
				} else if got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			var perr, verr error
			switch f["kind"] {
			case "ack":
				var a AckToken
				if p := catch(func() { a, perr = ParseAck(v.Input) }); p != nil {
					t.Fatalf("ParseAck panicked: %v", p)
				}
				checkOutcome(t, "ParseAck", perr, f["parse"])
				if perr != nil {
					verr = perr
					break
				}
				verr = a.Verify(signer)
				if f["expect"] == "ok" && verr == nil {
					check("alert", a.Alert.String())
					check("created", a.Created.Format(time.RFC3339Nano))
					check("signer-fingerprint", a.Signer.String())
				}
			case "public":
				var p Public
				if pn := catch(func() { p, perr = ParsePublic(v.Input) }); pn != nil {
					t.Fatalf("ParsePublic panicked: %v", pn)
				}
				checkOutcome(t, "ParsePublic", perr, f["parse"])
				if perr != nil {
					verr = perr
					break
				}
				verr = p.Verify(signer)
				if f["expect"] == "ok" && verr == nil {
					sum := sha256.Sum256(p.Body)
					check("id", p.ID.String())
					check("country", p.Country)
					check("created", p.Created.Format(time.RFC3339Nano))
					check("signer-fingerprint", p.Signer.String())
					check("body-sha256", hex.EncodeToString(sum[:]))
				}
			default:
				t.Fatalf("unknown kind %q", f["kind"])
			}
			checkOutcome(t, "Verify", verr, f["expect"])
		})
	}
	// Every outcome either parser can give has a vector of each kind.
	for _, kind := range []string{"ack", "public"} {
		for _, want := range []string{"ok", "ErrTruncated", "ErrMalformed", "ErrUnsupportedVersion", "ErrBadAuthentication"} {
			if !seen[kind+" "+want] {
				t.Errorf("no %s vector expects %s", kind, want)
			}
		}
	}
	if !seen["public ErrTooLarge"] {
		t.Error("no public vector expects ErrTooLarge")
	}
}
