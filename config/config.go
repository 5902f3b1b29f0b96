// Package config reads Beacon's YAML configuration files strictly and
// reports every problem at once, each with its file, line and field, so an
// operator fixes a broken config in one pass.
//
// # Writing a config type
//
// A config is a plain struct with yaml tags and a Validate method. Validate
// knows nothing of files: it names each problem by the dotted path of its
// field, as the YAML spells it ("storage.max_bytes", "cluster.routes[0]"),
// and returns all of them as [Errors]:
//
//	func (c *Config) Validate() error {
//		var errs config.Errors
//		if c.Name == "" {
//			errs.Add("name", "required")
//		}
//		return errs.Err()
//	}
//
// Code that builds a config by hand (tests, embedders) calls Validate
// itself, and a constructor such as relay.New calls it again, so a config
// never runs unchecked.
//
// # Loading a file
//
// [Load] reads a file, decodes it with [Decode] (unknown fields, wrong types,
// more than one document and files over [MaxSize] are errors), lets the
// caller fill in defaults and resolve relative paths, calls Validate, and
// maps each field path to its line in the file:
//
//	src, err := config.Load(path, &c, func() { c.applyDefaults() })
//
// Problems found later, by checks that read other files (a TLS key, a
// signed directory), are located the same way with [Source.Locate].
//
// # Libraries
//
// Decoding is go.yaml.in/yaml/v3; sizes are parsed by
// github.com/dustin/go-humanize. The mapping from a field path to a line is
// written here: yaml's own errors name a line but not the field, and no
// library maps a struct's field path back to a node of the document.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxSize bounds a config file: configs are hand-written and small, and a
// larger file is a mistake (or a device file) rather than a config.
const MaxSize = 1 << 20

// An Error is one problem in a config: the field it concerns and, once
// located in a file, the file and line.
type Error struct {
	File  string // empty until located
	Line  int    // 0 if unknown
	Field string // dotted path, e.g. "storage.retention"; empty for the whole file
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying problem, so that errors.Is finds a
// sentinel such as keys.ErrExpired through the field that carries it.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one config.
type Errors []*Error

// Add records a problem with the field at path.
func (es *Errors) Add(path, format string, args ...any) {
	*es = append(*es, &Error{Field: path, Err: fmt.Errorf(format, args...)})
}

// AddErr records err as a problem with the field at path. Problems that
// err already attributes to fields keep their own paths, under path.
func (es *Errors) AddErr(path string, err error) {
	for _, e := range flatten(err) {
		f := e.Field
		switch {
		case f == "":
			f = path
		case path != "" && !strings.HasPrefix(f, "["):
			f = path + "." + f
		case path != "":
			f = path + f
		}
		*es = append(*es, &Error{File: e.File, Line: e.Line, Field: f, Err: e.Err})
	}
}

// Err returns es as an error, or nil if there are none.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As and errors.Is see each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// flatten lists the problems in err: the *Error values of an Errors or a
// join, in order, and any other error as a problem with no field.
func flatten(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case Errors:
			out = append(out, e...)
		case *Error:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			out = append(out, &Error{Err: err})
		}
	}
	walk(err)
	return out
}

// A Validator is a config that checks itself.
type Validator interface {
	// Validate returns every problem, as [Errors] naming each field.
	Validate() error
}

// Load reads the file at path and parses it with [Parse].
func Load(path string, v Validator, prepare func()) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	return Parse(path, data, v, prepare)
}

// Parse decodes data into v with [Decode], calls prepare (defaults,
// relative paths; it may be nil), then v.Validate, and returns every
// problem, located in file. The Source is nil only when data could not be
// read as YAML at all.
func Parse(file string, data []byte, v Validator, prepare func()) (*Source, error) {
	src, err := Decode(file, data, v)
	if src == nil {
		return nil, err
	}
	if prepare != nil {
		prepare()
	}
	return src, src.Locate(v.Validate())
}

// LoadOrParse is [Parse] of data when it is not nil, else [Load] of file.
func LoadOrParse(file string, data []byte, v Validator, prepare func()) (*Source, error) {
	if data == nil {
		return Load(file, v, prepare)
	}
	return Parse(file, data, v, prepare)
}

// Dir returns the absolute directory of a config file: where the
// relative paths in it start.
func Dir(file string) string {
	base := filepath.Dir(file)
	if abs, err := filepath.Abs(base); err == nil {
		base = abs
	}
	return base
}

// ResolvePaths makes each non-empty path absolute: "~/" is the user's
// home, anything else relative is taken relative to base.
func ResolvePaths(base string, paths ...*string) {
	home, _ := os.UserHomeDir()
	for _, p := range paths {
		if rest, ok := strings.CutPrefix(*p, "~/"); ok && home != "" {
			*p = filepath.Join(home, rest)
		}
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
}

// A Source is a decoded config file: it knows the line of each field.
type Source struct {
	file string
	root *yaml.Node
	errs Errors // found while decoding
}

// Decode strictly decodes data into v: unknown fields, wrong types and more
// than one document are errors, all of them reported (see
// [Source.Locate]). When data is not YAML at all, or larger than [MaxSize],
// the Source is nil and the error says why.
func Decode(file string, data []byte, v any) (*Source, error) {
	s := &Source{file: file}
	if len(data) > MaxSize {
		return nil, Errors{{File: file, Err: fmt.Errorf("larger than %d bytes", MaxSize)}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{{File: file, Err: errors.New(yamlMessage(err))}}
	}
	s.root = &root
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	var te *yaml.TypeError
	switch {
	case errors.As(err, &te):
		for _, msg := range te.Errors {
			s.addYAML(msg)
		}
	case err != nil && !errors.Is(err, io.EOF):
		s.errs = append(s.errs, &Error{File: file, Err: errors.New(yamlMessage(err))})
	}
	var extra yaml.Node
	if dec.Decode(&extra) == nil {
		s.errs = append(s.errs, &Error{File: file, Line: extra.Line, Err: errors.New("more than one YAML document")})
	}
	return s, s.errs.Err()
}

var (
	lineRE  = regexp.MustCompile(`^line (\d+): (.*)$`)
	fieldRE = regexp.MustCompile(`^field (\S+) not found in type .+$`)
)

// addYAML records one of yaml's type errors, with the field at its line.
func (s *Source) addYAML(msg string) {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		s.errs = append(s.errs, &Error{File: s.file, Err: errors.New(msg)})
		return
	}
	line, _ := strconv.Atoi(m[1])
	e := &Error{File: s.file, Line: line, Field: s.pathAt(line, ""), Err: errors.New(m[2])}
	if f := fieldRE.FindStringSubmatch(m[2]); f != nil {
		e.Field, e.Err = s.pathAt(line, f[1]), errors.New("unknown field")
	}
	s.errs = append(s.errs, e)
}

// Locate returns the problems found while decoding followed by those in err
// (an [Errors], a join of them, or any error), each with the file and the
// line of its field; a field already reported while decoding is not
// reported again. It returns nil if there are none.
func (s *Source) Locate(err error) error {
	out := append(Errors(nil), s.errs...)
	decoded := map[string]bool{}
	for _, e := range s.errs {
		if e.Field != "" {
			decoded[e.Field] = true
		}
	}
	for _, e := range flatten(err) {
		if e.Field != "" && decoded[e.Field] {
			continue
		}
		le := *e
		if le.File == "" {
			le.File = s.file
			le.Line = s.Line(e.Field)
		}
		out = append(out, &le)
	}
	return out.Err()
}

// File is the name the Source was decoded from.
func (s *Source) File() string { return s.file }

// Has reports whether the field at path is present in the file.
func (s *Source) Has(path string) bool {
	_, v := s.lookup(path)
	return v != nil
}

// Line returns the line of the field at path, or of its nearest present
// parent, or 0.
func (s *Source) Line(path string) int {
	for p := path; p != ""; {
		if k, _ := s.lookup(p); k != nil {
			return k.Line
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// pathAt returns the dotted path of the deepest field at line (named key,
// if given), or "".
func (s *Source) pathAt(line int, key string) string {
	if s.root == nil || len(s.root.Content) == 0 {
		return ""
	}
	var walk func(n *yaml.Node, path string) string
	walk = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if deeper := walk(v, p); deeper != "" {
					return deeper
				}
				if k.Line == line && (key == "" || k.Value == key) {
					return p
				}
			}
		case yaml.SequenceNode:
			for i, e := range n.Content {
				if deeper := walk(e, fmt.Sprintf("%s[%d]", path, i)); deeper != "" {
					return deeper
				}
			}
		}
		return ""
	}
	return walk(s.root.Content[0], "")
}

// lookup returns the node that names the field at path (its key, or the
// element itself for a sequence element) and its value.
func (s *Source) lookup(path string) (key, value *yaml.Node) {
	if s.root == nil || len(s.root.Content) == 0 {
		return nil, nil
	}
	n := s.root.Content[0]
	for _, part := range strings.Split(path, ".") {
		name, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			name = part[:i]
			idx, _ = strconv.Atoi(part[i+1 : len(part)-1])
		}
		if key, n = mapEntry(n, name); n == nil {
			return nil, nil
		}
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return nil, nil
			}
			n = n.Content[idx]
			key = n
		}
	}
	return key, n
}

func mapEntry(n *yaml.Node, name string) (key, value *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

func yamlMessage(err error) string { return strings.TrimPrefix(err.Error(), "yaml: ") }
