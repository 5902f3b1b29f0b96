package envelope

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/internal/vectorfile"
	"github.com/hrdbeacon/beacon/keys"
)

func readVectors(t testing.TB) []vectorfile.Vector {
	return readVectorDir(t, "testdata/vectors", "description", "expect", "parse", "identity")
}

// readVectorDir reads every vector file of dir, each of which must have
// the required fields.
func readVectorDir(t testing.TB, dir string, required ...string) []vectorfile.Vector {
	t.Helper()
	vs, err := vectorfile.ReadDir(dir, required...)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// checkOutcome checks an error against "ok" or a sentinel's name.
func checkOutcome(t *testing.T, what string, err error, want string) {
	t.Helper()
	if problem := vectorfile.Outcome(err, want, sentinels); problem != "" {
		t.Errorf("%s: %s", what, problem)
	}
}

// TestVectors opens every known-answer vector and checks the exact outcome:
// the sentinel, or for a valid envelope its sender, mode, body and header.
func TestVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range readVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			f := v.Fields
			seen[f["expect"]] = true
			id, err := keys.ParseIdentity(f["identity"])
			if err != nil {
				t.Fatalf("identity: %v", err)
			}
			var inboxes []*keys.InboxKey
			if s, ok := f["inbox"]; ok {
				k, err := keys.ParseInboxKey(s)
				if err != nil {
					t.Fatalf("inbox: %v", err)
				}
				inboxes = append(inboxes, k)
			}

			var perr error
			if p := catch(func() { _, perr = Parse(v.Input) }); p != nil {
				t.Fatalf("Parse panicked: %v", p)
			}
			checkOutcome(t, "Parse", perr, f["parse"])

			o, err := open(t, v.Input, id, inboxes...)
			checkOutcome(t, "Open", err, f["expect"])
			if f["expect"] != "ok" {
				if o != nil {
					t.Errorf("Open returned a result with its error")
				}
				return
			}
			if o == nil {
				return
			}
			checkField := func(k, got string) {
				if want, ok := f[k]; !ok {
					t.Errorf("field %q missing in a valid vector", k)
				} else if got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			body := sha256.Sum256(o.Body)
			checkField("sender", o.Sender.String())
			checkField("auth", o.Auth.String())
			checkField("body-sha256", hex.EncodeToString(body[:]))
			checkField("stanza", strconv.Itoa(o.Stanza))
			checkField("recipients", strconv.Itoa(o.Recipients))
			checkField("country", o.Country)
			checkField("priority", o.Priority.String())
			checkField("id", o.ID.String())
			checkField("created", o.Created.Format(time.RFC3339Nano))
			if _, ok := f["reply-to"]; ok || !o.ReplyTo.IsZero() {
				checkField("reply-to", o.ReplyTo.String())
			}
			if o.Auth == Signed {
				if err := VerifySigned(v.Input, o.Sender, o.Body, o.Signature); err != nil {
					t.Errorf("VerifySigned: %v", err)
				}
			}
		})
	}
	// Every outcome has a vector.
	for name := range sentinels {
		if !seen[name] {
			t.Errorf("no vector expects %s", name)
		}
	}
	if !seen["ok"] {
		t.Error("no valid vector")
	}
}
