// Command genvectors writes the known-answer vectors of packages envelope
// and keys, whose formats the READMEs beside them describe:
// envelope/testdata/vectors (envelopes), envelope/testdata/signed (ack
// tokens and public messages) and keys/testdata/vectors (key text forms,
// signed inbox keys, key files). From the module root:
//
//	go run ./envelope/internal/genvectors
//
// It is an independent implementation of envelope/SPEC.md and keys/SPEC.md
// (spec.go, keys.go, signed.go, curves.go): it imports neither
// beacon/envelope nor beacon/keys, only the standard library's primitives,
// golang.org/x/crypto's argon2 and ChaCha20-Poly1305, and math/big, so the
// vectors check the packages against the format and not against
// themselves. Each vector is built the way its failure would
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
	out := flag.String("out", "envelope/testdata/vectors", "directory to write the envelope vectors to")
	signedOut := flag.String("signed-out", "envelope/testdata/signed", "directory to write the ack token and public message vectors to")
	keysOut := flag.String("keys-out", "keys/testdata/vectors", "directory to write the key vectors to")
	flag.Parse()
	log.SetFlags(0)
	for _, set := range []struct {
		dir   string
		files map[string][]byte
	}{{*out, generate()}, {*signedOut, generateSigned()}, {*keysOut, generateKeys()}} {
		if err := write(set.dir, set.files); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("wrote %d vectors to %s\n", len(set.files), set.dir)
	}
}

// write makes dir hold exactly files (and whatever is not a .txt, such as
// the README).
func write(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Remove vectors this version no longer writes, so the directory is
	// exactly the generator's output.
	old, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	for _, f := range old {
		if _, ok := files[filepath.Base(f)]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// generate returns every envelope vector file by name.
func generate() map[string][]byte {
	files := make(map[string][]byte)
	for _, v := range vectors() {
		addFile(files, v.name, v.render())
	}
	return files
}

// generateSigned returns every ack token and public message vector file.
func generateSigned() map[string][]byte {
	files := make(map[string][]byte)
	for _, v := range signedVectors() {
		addFile(files, v.name, v.render())
	}
	return files
}

// generateKeys returns every key vector file.
func generateKeys() map[string][]byte {
	files := make(map[string][]byte)
	for _, v := range keyVectors() {
		addFile(files, v.name, v.render())
	}
	return files
}

func addFile(files map[string][]byte, name string, b []byte) {
	name += ".txt"
	if _, dup := files[name]; dup {
		panic("duplicate vector " + name)
	}
	files[name] = b
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

// stanza returns the index of the stanza the vector's keys open, found
// by this implementation's reader. Only valid vectors have one.
func (v *vector) stanza() int {
	seeds := [][]byte{v.identity.kemSeed()}
	if v.inbox != nil {
		seeds = append(seeds, v.inbox.seed)
	}
	o, err := openIndependently(v.envelope(), v.identity, seeds...)
	if err != nil {
		panic(fmt.Sprintf("%s: a valid vector does not open: %v", v.name, err))
	}
	return o.stanza
}
