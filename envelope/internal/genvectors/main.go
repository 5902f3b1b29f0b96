// Command genvectors writes the known-answer vectors of package envelope,
// envelope/testdata/vectors/*.txt, whose format the README there describes.
//
//	go run ./envelope/internal/genvectors -out envelope/testdata/vectors
//
// It is an independent implementation of the envelope format (spec.go): it
// imports neither beacon/envelope nor beacon/keys, only the standard
// library's primitives, so the vectors check the package against the format
// and not against itself. Each vector is built the way its failure would
// arise: a header field a sender wrote, a plaintext a sender or
// co-recipient re-encrypted with the real content key (so that it reaches
// the check it is for), or bytes changed on the path.
//
// The output is deterministic: keys come from their names and every random
// choice from a stream seeded by the vector's name, so running the command
// again rewrites the same bytes, and its test checks that the files in the
// tree are exactly what it writes.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	out := flag.String("out", "envelope/testdata/vectors", "directory to write the vectors to")
	flag.Parse()
	log.SetFlags(0)
	files := generate()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	// Remove vectors this version no longer writes, so the directory is
	// exactly the generator's output.
	old, _ := filepath.Glob(filepath.Join(*out, "*.txt"))
	for _, f := range old {
		if _, ok := files[filepath.Base(f)]; !ok {
			if err := os.Remove(f); err != nil {
				log.Fatal(err)
			}
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(*out, name), files[name], 0o644); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("wrote %d vectors to %s\n", len(names), *out)
}

// generate returns every vector file by name.
func generate() map[string][]byte {
	files := make(map[string][]byte)
	for _, v := range vectors() {
		name := v.name + ".txt"
		if _, dup := files[name]; dup {
			panic("duplicate vector " + name)
		}
		files[name] = v.render()
	}
	return files
}

// envelope builds the vector's envelope.
func (v *vector) envelope() []byte {
	p := seal(v.msg, newRand(v.name), v.header)
	if v.edit != nil {
		v.edit(p)
	}
	env := p.bytes()
	if v.after != nil {
		env = v.after(env)
	}
	return env
}

func (v *vector) render() []byte {
	env := v.envelope()
	var b bytes.Buffer
	field := func(k, val string) { fmt.Fprintf(&b, "%s: %s\n", k, val) }
	field("description", v.description)
	field("expect", v.expect)
	field("parse", v.parse)
	field("identity", v.identity.secretText())
	if v.inbox != nil {
		field("inbox", v.inbox.secretText())
	}
	if v.expect == "ok" {
		m := v.msg
		field("sender", m.from.publicText())
		field("auth", map[byte]string{authDeniable: "deniable", authSigned: "signed"}[m.auth])
		sum := sha256.Sum256(m.body)
		field("body-sha256", hex.EncodeToString(sum[:]))
		field("stanza", fmt.Sprint(v.stanza()))
		field("recipients", fmt.Sprint(len(m.to)))
		field("country", m.country)
		field("priority", map[byte]string{1: "urgent", 2: "high", 3: "routine"}[m.priority])
		field("id", hex.EncodeToString(m.id))
		field("created", m.created.UTC().Format(time.RFC3339Nano))
		if m.replyTo != nil {
			field("reply-to", hex.EncodeToString(m.replyTo))
		}
	}
	b.WriteString("\n")
	text := base64.StdEncoding.EncodeToString(env)
	for len(text) > 76 {
		b.WriteString(text[:76] + "\n")
		text = text[76:]
	}
	b.WriteString(text + "\n")
	if strings.Count(v.description, "\n") > 0 {
		panic("multi-line description in " + v.name)
	}
	return b.Bytes()
}

// stanza returns the index of the first stanza the vector's keys open.
func (v *vector) stanza() int {
	for i, r := range v.msg.to {
		if bytes.Equal(r.kem, v.identity.kemPublic()) || v.inbox != nil && bytes.Equal(r.kem, v.inbox.pub) {
			return i
		}
	}
	panic("no stanza for the vector's identity in " + v.name)
}
