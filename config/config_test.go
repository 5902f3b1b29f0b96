package config_test

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/config"
)

type testConf struct {
	Name    string `yaml:"name"`
	Storage struct {
		Retention time.Duration   `yaml:"retention"`
		Size      config.ByteSize `yaml:"size"`
	} `yaml:"storage"`
	Cluster struct {
		Routes []string `yaml:"routes"`
		Peers  []string `yaml:"peers"`
	} `yaml:"cluster"`
}

const goodConf = `name: x
storage:
  retention: 1h

  size: 64MiB
cluster:
  routes:
    - a
    - b
  peers: [p, q]
`

func decodeGood(t *testing.T) (*config.Source, *testConf) {
	t.Helper()
	var c testConf
	chk, err := config.Decode("good.yaml", []byte(goodConf), &c)
	if err != nil {
		t.Fatal(err)
	}
	return chk, &c
}

func TestDecode(t *testing.T) {
	_, c := decodeGood(t)
	if c.Name != "x" || c.Storage.Retention != time.Hour || c.Storage.Size != 64<<20 ||
		strings.Join(c.Cluster.Routes, ",") != "a,b" || strings.Join(c.Cluster.Peers, ",") != "p,q" {
		t.Errorf("decoded %+v", c)
	}
}

func TestSourceLine(t *testing.T) {
	chk, _ := decodeGood(t)
	for _, tc := range []struct {
		path string
		line int
		has  bool
	}{
		{"name", 1, true},
		{"storage", 2, true},
		{"storage.retention", 3, true},
		{"storage.size", 5, true},
		{"cluster.routes", 7, true},
		{"cluster.routes[0]", 8, true},
		{"cluster.routes[1]", 9, true},
		{"cluster.peers[1]", 10, true},
		// Absent fields fall back to their nearest present parent.
		{"storage.missing", 2, false},
		{"storage.size.deeper", 5, false},
		{"cluster.routes[2]", 7, false},
		{"cluster.missing[0]", 6, false},
		{"missing", 0, false},
		{"missing.deeper", 0, false},
	} {
		if got := chk.Line(tc.path); got != tc.line {
			t.Errorf("Line(%q) = %d, want %d", tc.path, got, tc.line)
		}
		if got := chk.Has(tc.path); got != tc.has {
			t.Errorf("Has(%q) = %v, want %v", tc.path, got, tc.has)
		}
	}
}

// TestLocate: problems a Validate method names by field path are given
// the file and the line of their field (or of its nearest present parent).
func TestLocate(t *testing.T) {
	chk, _ := decodeGood(t)
	if err := chk.Locate(nil); err != nil {
		t.Fatalf("Locate(nil) = %v", err)
	}
	var errs config.Errors
	if errs.Err() != nil {
		t.Fatalf("empty Errors.Err() = %v, want nil", errs.Err())
	}
	errs.Add("cluster.routes[1]", "%q is not a route", "b")
	errs.Add("storage.absent", "required")
	errs.Add("top", "required")
	err := chk.Locate(errors.Join(errs.Err(), errors.New("no field")))
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 4 {
		t.Fatalf("Locate = %v; want four config.Errors", err)
	}
	want := []string{
		`good.yaml:9: cluster.routes[1]: "b" is not a route`,
		`good.yaml:2: storage.absent: required`,
		`good.yaml: top: required`,
		`good.yaml: no field`,
	}
	for i, e := range es {
		if e.Error() != want[i] {
			t.Errorf("error %d = %q, want %q", i, e.Error(), want[i])
		}
	}
}

// TestAddErr: a nested config's field errors keep their paths under the
// parent's, and a plain error becomes a problem of the parent field.
func TestAddErr(t *testing.T) {
	var inner config.Errors
	inner.Add("cert", "required")
	inner.Add("[2]", "bad")
	var errs config.Errors
	errs.AddErr("tls", inner)
	errs.AddErr("directory.file", fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF))
	want := []string{"tls.cert: required", "tls[2]: bad", "directory.file: wrapped: unexpected EOF"}
	if len(errs) != len(want) {
		t.Fatalf("errs = %v", errs)
	}
	for i, e := range errs {
		if e.Error() != want[i] {
			t.Errorf("error %d = %q, want %q", i, e.Error(), want[i])
		}
	}
	if !errors.Is(errs.Err(), io.ErrUnexpectedEOF) {
		t.Errorf("errors.Is does not find the wrapped sentinel through Errors")
	}
}

// TestLocateAfterDecodeErrors: a field that failed to decode is not
// reported again by validation.
func TestLocateAfterDecodeErrors(t *testing.T) {
	var c testConf
	src, err := config.Decode("f.yaml", []byte("name: x\nstorage:\n  retention: soon\n"), &c)
	if src == nil || err == nil {
		t.Fatalf("Decode = %v, %v; want a Source and an error", src, err)
	}
	var v config.Errors
	v.Add("storage.retention", "must be at least 1h")
	v.Add("name", "too short")
	var es config.Errors
	if !errors.As(src.Locate(v), &es) || len(es) != 2 {
		t.Fatalf("Locate = %v; want two errors", src.Locate(v))
	}
	if es[0].Field != "storage.retention" || !strings.Contains(es[0].Error(), "soon") || es[1].Field != "name" {
		t.Errorf("Locate = %v; want the decode error for retention, then name", es)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    config.Error
		want string
	}{
		{config.Error{File: "r.yaml", Line: 3, Field: "storage.retention", Err: errors.New("too short")}, "r.yaml:3: storage.retention: too short"},
		{config.Error{File: "r.yaml", Field: "server_name", Err: errors.New("required")}, "r.yaml: server_name: required"},
		{config.Error{File: "r.yaml", Line: 7, Err: errors.New("more than one YAML document")}, "r.yaml:7: more than one YAML document"},
		{config.Error{File: "r.yaml", Err: errors.New("larger than 1 bytes")}, "r.yaml: larger than 1 bytes"},
		{config.Error{Field: "listen", Err: errors.New("required")}, "listen: required"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	a := &config.Error{File: "r.yaml", Line: 1, Field: "a", Err: errors.New("x")}
	b := &config.Error{File: "r.yaml", Line: 2, Field: "b", Err: errors.New("y")}
	var err error = config.Errors{a, b}
	if got, want := err.Error(), "r.yaml:1: a: x\nr.yaml:2: b: y"; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("loading: %w", err)
	var one *config.Error
	if !errors.As(wrapped, &one) || one != a {
		t.Errorf("errors.As(*Error) = %v, want the first error", one)
	}
	var all config.Errors
	if !errors.As(wrapped, &all) || len(all) != 2 {
		t.Errorf("errors.As(Errors) = %v", all)
	}
}

// TestDecodeErrors: problems found while decoding carry the dotted path of
// the field and its line, and are all reported.
func TestDecodeErrors(t *testing.T) {
	const data = `name: x
colour: red
storage:
  retention: soon
  size: lots
  shape: round
cluster:
  routes: not-a-list
`
	var c testConf
	src, err := config.Decode("bad.yaml", []byte(data), &c)
	if src == nil {
		t.Fatalf("Decode = %v with no Source; type errors are not fatal", err)
	}
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("Decode = %v; want config.Errors", err)
	}
	want := []struct {
		field string
		line  int
		text  string
	}{
		{"colour", 2, "unknown field"},
		{"storage.retention", 4, "soon"},
		{"storage.size", 5, "lots"},
		{"storage.shape", 6, "unknown field"},
		{"cluster.routes", 8, "not-a-list"},
	}
	got := map[string]*config.Error{}
	for _, e := range es {
		got[fmt.Sprintf("%s@%d", e.Field, e.Line)] = e
	}
	for _, w := range want {
		k := fmt.Sprintf("%s@%d", w.field, w.line)
		e := got[k]
		if e == nil {
			t.Errorf("missing: field %q at line %d", w.field, w.line)
			continue
		}
		delete(got, k)
		if !strings.Contains(e.Error(), w.text) {
			t.Errorf("%q does not say %q", e.Error(), w.text)
		}
	}
	for _, e := range got {
		t.Errorf("unexpected: field %q at line %d: %v", e.Field, e.Line, e)
	}
	if t.Failed() {
		t.Logf("all errors:\n%v", err)
	}
}

func TestDecodeDocuments(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		line       int
		text       string
	}{
		{"two documents", "name: a\n---\nname: b\n", 2, "more than one YAML document"},
		{"syntax", "name: a\nstorage: [\n", 0, "did not find expected"},
		{"too large", strings.Repeat("#", config.MaxSize+1), 0, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c testConf
			_, err := config.Decode("f.yaml", []byte(tc.data), &c)
			var es config.Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Fatalf("Decode = %v; want one error", err)
			}
			if es[0].File != "f.yaml" || !strings.Contains(es[0].Err.Error(), tc.text) {
				t.Errorf("error %+v; want file f.yaml and %q", es[0], tc.text)
			}
			if tc.line != 0 && es[0].Line != tc.line {
				t.Errorf("line %d, want %d", es[0].Line, tc.line)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		var c testConf
		chk, err := config.Decode("f.yaml", nil, &c)
		if err != nil {
			t.Fatalf("empty file: %v (missing fields are the caller's to report)", err)
		}
		if chk.Line("name") != 0 || chk.Has("name") {
			t.Errorf("empty file has a name field")
		}
	})
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want config.ByteSize
	}{
		{"0", 0},
		{"1024", 1024},
		{"512B", 512},
		{"512KiB", 512 << 10},
		{"64MiB", 64 << 20},
		{"1GiB", 1 << 30},
		{"2TiB", 2 << 40},
		{"1KB", 1000},
		{"1kB", 1000},
		{"1kib", 1 << 10},
		{"5MB", 5e6},
		{"1GB", 1e9},
		{"3TB", 3e12},
		{" 64 MiB ", 64 << 20},
		{"1.5GiB", 3 << 29},
		{"0.5KiB", 512},
		{"9223372036854775807", math.MaxInt64},
		{"8388607TiB", 8388607 << 40},
	} {
		got, err := config.ParseByteSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"", "lots", "-1", "-1KiB", "1 GiB extra", "KiB", "0x10", "1e3", "1,000",
		"1.5B", "0.1KiB", "1.", ".5KiB", "1iB", "1 2",
		"9223372036854775808", // overflows int64
		"8388608TiB",          // 2^63
		"9999999999999999TB",
		"99999999999999999999GiB",
	} {
		if got, err := config.ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "not a size") {
			t.Errorf("ParseByteSize(%q): %v does not say it is not a size", in, err)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   config.ByteSize
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1000"},
		{1536, "1536"},
		{1 << 10, "1KiB"},
		{3 << 20, "3MiB"},
		{1 << 30, "1GiB"},
		{5 << 40, "5TiB"},
		{1<<30 + 1<<20, "1025MiB"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		if back, err := config.ParseByteSize(tc.in.String()); err != nil || back != tc.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in.String(), back, err, tc.in)
		}
		// Through YAML and back.
		b, err := yaml.Marshal(struct{ S config.ByteSize }{tc.in})
		if err != nil {
			t.Fatal(err)
		}
		var back struct{ S config.ByteSize }
		if err := yaml.Unmarshal(b, &back); err != nil || back.S != tc.in {
			t.Errorf("YAML %q read back as %d, %v; want %d", b, back.S, err, tc.in)
		}
	}
}

func TestResolvePaths(t *testing.T) {
	t.Setenv("HOME", "/home/officer")
	home, rel, abs, empty := "~/keys/mission.key", "state", "/etc/beacon/directory.yaml", ""
	config.ResolvePaths("/srv/beacon", &home, &rel, &abs, &empty)
	for _, c := range []struct{ got, want string }{
		{home, "/home/officer/keys/mission.key"}, {rel, "/srv/beacon/state"},
		{abs, "/etc/beacon/directory.yaml"}, {empty, ""},
	} {
		if c.got != c.want {
			t.Errorf("resolved %q, want %q", c.got, c.want)
		}
	}
}
