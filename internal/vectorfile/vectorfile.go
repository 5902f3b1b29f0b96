// Package vectorfile reads the known-answer vector files that the
// envelope and keys tests walk (their format is in each testdata/*/README.md:
// "key: value" header lines, a blank line, the input in base64 lines of at
// most 76 columns), and checks an outcome against the sentinel a vector
// names.
package vectorfile

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A Vector is one vector file.
type Vector struct {
	Name   string // the file name without .txt
	Fields map[string]string
	Input  []byte
}

// ReadDir reads every *.txt vector of dir, each of which must have the
// required fields.
func ReadDir(dir string, required ...string) ([]Vector, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no vectors in %s", dir)
	}
	var vs []Vector
	for _, f := range files {
		v, err := parse(f, required)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		vs = append(vs, v)
	}
	return vs, nil
}

func parse(path string, required []string) (Vector, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Vector{}, err
	}
	v := Vector{Name: strings.TrimSuffix(filepath.Base(path), ".txt"), Fields: map[string]string{}}
	head, body, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return v, errors.New("no blank line after the header")
	}
	for _, line := range strings.Split(string(head), "\n") {
		k, val, ok := strings.Cut(line, ": ")
		if !ok {
			return v, fmt.Errorf("header line %q is not key: value", line)
		}
		if _, dup := v.Fields[k]; dup {
			return v, fmt.Errorf("duplicate field %q", k)
		}
		v.Fields[k] = val
	}
	var b64 strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if len(sc.Text()) > 76 {
			return v, fmt.Errorf("base64 line of %d columns", len(sc.Text()))
		}
		b64.WriteString(sc.Text())
	}
	if v.Input, err = base64.StdEncoding.Strict().DecodeString(b64.String()); err != nil {
		return v, err
	}
	for _, k := range required {
		if v.Fields[k] == "" {
			return v, fmt.Errorf("field %q missing", k)
		}
	}
	return v, nil
}

// Outcome returns "" if err is what a vector expects — nil for "ok", or
// an error wrapping the sentinel named want and none of the others in
// sentinels — and otherwise what is wrong.
func Outcome(err error, want string, sentinels map[string]error) string {
	if want == "ok" {
		if err != nil {
			return fmt.Sprintf("%v, want success", err)
		}
		return ""
	}
	target, ok := sentinels[want]
	if !ok {
		return fmt.Sprintf("unknown sentinel %q", want)
	}
	if !errors.Is(err, target) {
		return fmt.Sprintf("got %v, want %v", err, target)
	}
	for name, s := range sentinels {
		if name != want && errors.Is(err, s) {
			return fmt.Sprintf("%v also wraps %s", err, name)
		}
	}
	return ""
}
