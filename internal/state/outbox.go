package state

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// An Outbox holds sealed messages waiting for the relay, one file each,
// named by a keyed hash of the caller's key for it: the key (a message id,
// say) is what the relay stores in the clear, so a file named by it would
// tie a seized device to an envelope. Every method must be called inside
// [Dir.Do].
type Outbox struct {
	d   *Dir
	sub string
}

// Outbox returns the outbox in the subdirectory "outbox".
func (d *Dir) Outbox() *Outbox { return &Outbox{d: d, sub: "outbox"} }

func (o *Outbox) name(key string) string {
	m := hmac.New(sha256.New, o.d.nameKey)
	m.Write([]byte(key))
	return o.sub + "/" + hex.EncodeToString(m.Sum(nil)[:16]) + ".enc"
}

// Put stores v under key, replacing what was there, durably.
func (o *Outbox) Put(key string, v []byte) error { return o.d.WriteFile(o.name(key), v, true) }

// Delete removes what is stored under key; a missing key is not an error.
func (o *Outbox) Delete(key string) error { return o.d.Remove(o.name(key)) }

// List returns every stored value, in no particular order.
func (o *Outbox) List() ([][]byte, error) {
	if err := o.d.mustHold(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(o.d.path, o.sub))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".enc") && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := make([][]byte, 0, len(names))
	for _, n := range names {
		b, err := o.d.ReadFile(o.sub+"/"+n, true)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
