// Package yamlconf decodes Beacon's YAML configuration files strictly and
// reports every problem at once, each with the file, line and field, so an
// operator fixes a broken config in one pass.
package yamlconf

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxSize bounds a config file: configs are hand-written and small.
const MaxSize = 1 << 20

// An Error is one problem in a config file.
type Error struct {
	File  string
	Line  int    // 0 if unknown
	Field string // dotted path, e.g. "storage.retention"; empty for the file
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// A Checker collects problems found while validating a decoded config.
type Checker struct {
	file  string
	root  *yaml.Node
	errs  Errors
	fatal bool
}

// Fatal reports whether the file could not be read as YAML at all, so that
// there is nothing to validate.
func (c *Checker) Fatal() bool { return c.fatal }

// Decode strictly decodes data into v: unknown fields, wrong types and
// more than one document are errors, all of them reported. The returned
// Checker knows where each field is, for the caller's own validation.
func Decode(file string, data []byte, v any) (*Checker, error) {
	c := &Checker{file: file}
	if len(data) > MaxSize {
		c.errs = append(c.errs, &Error{File: file, Msg: fmt.Sprintf("larger than %d bytes", MaxSize)})
		c.fatal = true
		return c, c.errs
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		c.add(0, "", yamlMessage(err))
		c.fatal = true
		return c, c.errs
	}
	c.root = &root
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	var te *yaml.TypeError
	switch {
	case errors.As(err, &te):
		for _, s := range te.Errors {
			c.addYAML(s)
		}
	case err != nil && err.Error() != "EOF":
		c.add(0, "", yamlMessage(err))
	}
	var extra yaml.Node
	if dec.Decode(&extra) == nil {
		c.add(extra.Line, "", "more than one YAML document")
	}
	if len(c.errs) > 0 {
		return c, c.errs
	}
	return c, nil
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var fieldRE = regexp.MustCompile(`^field (\S+) not found in type .+$`)

// addYAML turns one of yaml's messages into an Error.
func (c *Checker) addYAML(s string) {
	m := lineRE.FindStringSubmatch(s)
	if m == nil {
		c.add(0, "", s)
		return
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[2]
	if f := fieldRE.FindStringSubmatch(msg); f != nil {
		c.add(line, c.pathAt(line, f[1]), "unknown field")
		return
	}
	c.add(line, c.pathAt(line, ""), msg)
}

// pathAt returns the dotted path of the deepest field at line (named key,
// if given), or "".
func (c *Checker) pathAt(line int, key string) string {
	if c.root == nil || len(c.root.Content) == 0 {
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
	return walk(c.root.Content[0], "")
}

func yamlMessage(err error) string { return strings.TrimPrefix(err.Error(), "yaml: ") }

func (c *Checker) add(line int, field, msg string) {
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Field: field, Msg: msg})
}

// Errorf records a problem with the field at the dotted path (sequence
// elements as "routes[2]").
func (c *Checker) Errorf(path, format string, args ...any) {
	for _, e := range c.errs {
		if e.Field == path {
			return // already reported while decoding
		}
	}
	c.add(c.Line(path), path, fmt.Sprintf(format, args...))
}

// Err returns the problems found so far, or nil.
func (c *Checker) Err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}

// Has reports whether the field at path is present in the file.
func (c *Checker) Has(path string) bool { return c.find(path) != nil }

// Line returns the line of the field at path, or of its nearest present
// parent, or 0.
func (c *Checker) Line(path string) int {
	for p := path; p != ""; {
		if n := c.findKey(p); n != nil {
			return n.Line
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// find returns the value node at a dotted path such as "cluster.routes[1]".
func (c *Checker) find(path string) *yaml.Node {
	_, v := c.lookup(path)
	return v
}

// findKey returns the node that names the field at path: its key, or the
// element itself for a sequence element.
func (c *Checker) findKey(path string) *yaml.Node {
	k, _ := c.lookup(path)
	return k
}

func (c *Checker) lookup(path string) (key, value *yaml.Node) {
	if c.root == nil || len(c.root.Content) == 0 {
		return nil, nil
	}
	n := c.root.Content[0]
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
