package envelope

import (
	"bytes"
	"crypto/sha256"
	"math/bits"
	"testing"

	"github.com/hrdbeacon/beacon/internal/vectorfile"
	"github.com/hrdbeacon/beacon/keys"
)

// fuzzKeys are the reader's keys of the vectors, so that the vectors seed
// FuzzOpen with envelopes that reach every check.
func fuzzKeys(t testing.TB, vs []vectorfile.Vector) (*keys.Identity, *keys.InboxKey) {
	var id *keys.Identity
	var inbox *keys.InboxKey
	for _, v := range vs {
		var err error
		switch v.Name {
		case "ok-deniable-1":
			id, err = keys.ParseIdentity(v.Fields["identity"])
		case "ok-inbox":
			inbox, err = keys.ParseInboxKey(v.Fields["inbox"])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if id == nil || inbox == nil {
		t.Fatal("vectors ok-deniable-1 and ok-inbox are missing")
	}
	return id, inbox
}

// vectorSeeds returns the vectors' envelopes. They are the same in every
// process, which FuzzOpen needs: its fuzzing workers rebuild the set of
// seeds that open.
func vectorSeeds(vs []vectorfile.Vector) [][]byte {
	var seeds [][]byte
	for _, v := range vs {
		seeds = append(seeds, v.Input)
	}
	return seeds
}

// fuzzSeeds returns the vectors' envelopes and fresh ones sealed to id.
func fuzzSeeds(t testing.TB, vs []vectorfile.Vector, id *keys.Identity) [][]byte {
	seeds := vectorSeeds(vs)
	a := newIdentity(t)
	h := testHeader()
	h.ReplyTo = testMailbox("fuzz")
	seeds = append(seeds,
		mustSeal(t, testHeader(), []byte("x"), a, Deniable, To(id.Public())),
		mustSeal(t, h, []byte("signed, with a mailbox"), a, Signed, To(a.Public()), To(id.Public())),
		mustSeal(t, testHeader(), make([]byte, 3000), a, Deniable, To(a.Public()), To(id.Public()), To(a.Public())),
	)
	return seeds
}

// FuzzParse: Parse never panics, refuses with exactly one sentinel, and
// what it accepts is in canonical form: the header rebuilt from Info is the
// input's, byte for byte, and the length is exactly what Info implies. So
// there is no second encoding of any header a relay accepts.
func FuzzParse(f *testing.F) {
	vs := readVectors(f)
	id, _ := fuzzKeys(f, vs)
	for _, s := range fuzzSeeds(f, vs, id) {
		f.Add(s)
	}
	f.Add([]byte("BCN"))
	f.Add([]byte("BCN\x01\x00\x01ug"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := Parse(b)
		if err != nil {
			if names := sentinelNames(err); len(names) != 1 {
				t.Fatalf("error %v wraps sentinels %v", err, names)
			}
			return
		}
		class := bits.TrailingZeros(uint(info.PaddedSize))
		if info.PaddedSize != 1<<class || class < minSizeClass || class > maxSizeClass {
			t.Fatalf("PaddedSize %d", info.PaddedSize)
		}
		if info.Recipients < 1 || info.Recipients > MaxRecipients {
			t.Fatalf("Recipients %d", info.Recipients)
		}
		h := info.Header
		if err := h.validate(); err != nil {
			t.Fatalf("Parse accepted a header Seal refuses: %v", err)
		}
		hdr := h.appendHeader(nil, class, info.Recipients)
		if len(hdr) != info.HeaderSize || !bytes.Equal(hdr, b[:info.HeaderSize]) {
			t.Fatalf("header re-serialises as\n%x\nthe input has\n%x", hdr, b[:min(len(b), info.HeaderSize)])
		}
		if n := info.HeaderSize + info.Recipients*StanzaSize + headerMACSize + info.PaddedSize + tagSize; n != len(b) {
			t.Fatalf("Info implies %d bytes, the input has %d", n, len(b))
		}
	})
}

// FuzzOpen: Open never panics and refuses with exactly one sentinel. It
// can only succeed on an envelope someone sealed: every success must be a
// seed that opened before fuzzing began, unchanged.
func FuzzOpen(f *testing.F) {
	vs := readVectors(f)
	id, inbox := fuzzKeys(f, vs)
	valid := map[[32]byte]bool{}
	for _, s := range vectorSeeds(vs) {
		f.Add(s)
		var err error
		if catch(func() { _, err = Open(s, id, inbox) }) == nil && err == nil {
			valid[sha256.Sum256(s)] = true
		}
	}
	if len(valid) < 5 {
		f.Fatalf("only %d seeds open", len(valid))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var o *Opened
		var err error
		if p := catch(func() { o, err = Open(b, id, inbox) }); p != nil {
			t.Fatalf("Open panicked: %v", p)
		}
		if err != nil {
			if o != nil {
				t.Fatal("Open returned a result with an error")
			}
			if names := sentinelNames(err); len(names) != 1 {
				t.Fatalf("error %v wraps sentinels %v", err, names)
			}
			return
		}
		if !valid[sha256.Sum256(b)] {
			t.Fatalf("Open accepted an input that is not a sealed envelope")
		}
		if o.Sender == nil || len(o.Body) > MaxBodySize || o.Stanza < 0 || o.Stanza >= o.Recipients {
			t.Fatalf("inconsistent result %+v", o)
		}
	})
}
