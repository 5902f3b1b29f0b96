package envelope

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/keys"
)

// A testVector is one file of testdata/vectors (see the README there).
type testVector struct {
	name   string
	fields map[string]string
	env    []byte
}

func readVectors(t testing.TB) []testVector {
	return readVectorDir(t, "testdata/vectors", "description", "expect", "parse", "identity")
}

// readVectorDir reads every vector file of dir, each of which must have
// the required fields.
func readVectorDir(t testing.TB, dir string, required ...string) []testVector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in %s: %v", dir, err)
	}
	var vs []testVector
	for _, f := range files {
		v, err := parseVector(f, required)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vs = append(vs, v)
	}
	return vs
}

func parseVector(path string, required []string) (testVector, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return testVector{}, err
	}
	v := testVector{name: strings.TrimSuffix(filepath.Base(path), ".txt"), fields: map[string]string{}}
	head, body, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return v, fmt.Errorf("no blank line after the header")
	}
	for _, line := range strings.Split(string(head), "\n") {
		k, val, ok := strings.Cut(line, ": ")
		if !ok {
			return v, fmt.Errorf("header line %q is not key: value", line)
		}
		if _, dup := v.fields[k]; dup {
			return v, fmt.Errorf("duplicate field %q", k)
		}
		v.fields[k] = val
	}
	var b64 strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if len(sc.Text()) > 76 {
			return v, fmt.Errorf("base64 line of %d columns", len(sc.Text()))
		}
		b64.WriteString(sc.Text())
	}
	v.env, err = base64.StdEncoding.Strict().DecodeString(b64.String())
	if err != nil {
		return v, err
	}
	for _, k := range required {
		if v.fields[k] == "" {
			return v, fmt.Errorf("field %q missing", k)
		}
	}
	return v, nil
}

// checkOutcome checks an error against "ok" or a sentinel's name.
func checkOutcome(t *testing.T, what string, err error, want string) {
	t.Helper()
	if want == "ok" {
		if err != nil {
			t.Errorf("%s: %v, want success", what, err)
		}
		return
	}
	s, ok := sentinels[want]
	if !ok {
		t.Fatalf("%s: unknown sentinel %q", what, want)
	}
	wantErr(t, what, err, s)
}

// TestVectors opens every known-answer vector and checks the exact outcome:
// the sentinel, or for a valid envelope its sender, mode, body and header.
func TestVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range readVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			f := v.fields
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
			if p := catch(func() { _, perr = Parse(v.env) }); p != nil {
				t.Fatalf("Parse panicked: %v", p)
			}
			checkOutcome(t, "Parse", perr, f["parse"])

			o, err := open(t, v.env, id, inboxes...)
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
				if err := VerifySigned(v.env, o.Sender, o.Body, o.Signature); err != nil {
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
