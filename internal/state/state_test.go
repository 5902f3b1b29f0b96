package state

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hrdbeacon/beacon/routing"
)

func testKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

func open(t *testing.T, path string, key []byte) *Dir {
	t.Helper()
	d, err := Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func do(t *testing.T, d *Dir, fn func() error) {
	t.Helper()
	if err := d.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// readAll syncs l and returns every record it has, reloading from scratch.
func readAll(t *testing.T, d *Dir, l *Log) []string {
	t.Helper()
	var out []string
	do(t, d, func() error {
		return l.Sync(func() { out = nil }, func(rec []byte) error { out = append(out, string(rec)); return nil })
	})
	return out
}

func TestChangesOutsideDoAreRefused(t *testing.T) {
	d := open(t, t.TempDir(), testKey(t))
	l, _ := d.Log("x")
	if err := l.Sync(func() {}, func([]byte) error { return nil }); !errors.Is(err, ErrNotLocked) {
		t.Errorf("Sync outside Do: %v", err)
	}
	if err := d.WriteFile("f", []byte("x"), true); !errors.Is(err, ErrNotLocked) {
		t.Errorf("WriteFile outside Do: %v", err)
	}
	if _, err := d.Outbox().List(); !errors.Is(err, ErrNotLocked) {
		t.Errorf("List outside Do: %v", err)
	}
}

func TestLogAppendAndCatchUp(t *testing.T) {
	path, key := t.TempDir(), testKey(t)
	a, b := open(t, path, key), open(t, path, key) // two processes
	la, _ := a.Log("cases")
	lb, _ := b.Log("cases")
	var seenB []string
	syncB := func() {
		do(t, b, func() error {
			return lb.Sync(func() { seenB = nil }, func(r []byte) error { seenB = append(seenB, string(r)); return nil })
		})
	}
	syncB()
	do(t, a, func() error {
		if err := la.Sync(func() {}, func([]byte) error { return nil }); err != nil {
			return err
		}
		return la.Append(true, []byte("one"), []byte("two"))
	})
	syncB()
	do(t, b, func() error { return lb.Append(false, []byte("three")) })
	do(t, a, func() error {
		var got []string
		err := la.Sync(func() { t.Error("reset without a rewrite") }, func(r []byte) error { got = append(got, string(r)); return nil })
		if fmt.Sprint(got) != "[three]" {
			t.Errorf("a caught up with %v, want [three]", got)
		}
		return err
	})
	if fmt.Sprint(seenB) != "[one two]" {
		t.Errorf("b saw %v", seenB)
	}
	// A rewrite by one process makes the other reload from scratch.
	do(t, a, func() error { return la.Rewrite([][]byte{[]byte("compacted")}) })
	reset := false
	do(t, b, func() error {
		return lb.Sync(func() { reset = true; seenB = nil }, func(r []byte) error { seenB = append(seenB, string(r)); return nil })
	})
	if !reset || fmt.Sprint(seenB) != "[compacted]" {
		t.Errorf("after a rewrite b has %v (reset %v)", seenB, reset)
	}
}

// TestLogTornTail: a crash mid-append leaves a partial record; it is cut
// off and the records written after it survive the next read.
func TestLogTornTail(t *testing.T) {
	path, key := t.TempDir(), testKey(t)
	d := open(t, path, key)
	l, _ := d.Log("cases")
	readAll(t, d, l)
	do(t, d, func() error { return l.Append(true, []byte("before")) })
	d.Close()
	for _, junk := range [][]byte{{0xde, 0xad, 0xbe, 0xef, 1, 2, 3}, append([]byte{0, 0, 0, 200}, make([]byte, 10)...), {0, 0}} {
		f, err := os.OpenFile(filepath.Join(path, "cases.log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(junk)
		f.Close()
		d2 := open(t, path, key)
		l2, _ := d2.Log("cases")
		got := readAll(t, d2, l2)
		do(t, d2, func() error { return l2.Append(true, []byte(fmt.Sprintf("after %d", len(junk)))) })
		d2.Close()
		d3 := open(t, path, key)
		l3, _ := d3.Log("cases")
		if again := readAll(t, d3, l3); len(again) != len(got)+1 || again[0] != "before" || l3.Damaged() != 0 {
			t.Fatalf("after a torn tail of %d bytes: %q then %q (damaged %d)", len(junk), got, again, l3.Damaged())
		}
		d3.Close()
	}
}

// TestLogDamagedRecordIsSkipped: a complete record that does not decrypt
// is counted and skipped; the others are kept.
func TestLogDamagedRecordIsSkipped(t *testing.T) {
	path, key := t.TempDir(), testKey(t)
	d := open(t, path, key)
	l, _ := d.Log("cases")
	readAll(t, d, l)
	do(t, d, func() error { return l.Append(true, []byte("a"), []byte("b"), []byte("c")) })
	d.Close()
	p := filepath.Join(path, "cases.log")
	b, _ := os.ReadFile(p)
	rec := len(b) / 3
	b[rec+rec/2] ^= 1 // inside the second record's ciphertext
	os.WriteFile(p, b, 0o600)
	d2 := open(t, path, key)
	l2, _ := d2.Log("cases")
	if got := readAll(t, d2, l2); fmt.Sprint(got) != "[a c]" || l2.Damaged() != 1 {
		t.Fatalf("got %v, damaged %d; want [a c], 1", got, l2.Damaged())
	}
}

// TestSealedAtRest: nothing written in the clear, and a file moved to
// another name does not open.
func TestSealedAtRest(t *testing.T) {
	path, key := t.TempDir(), testKey(t)
	d := open(t, path, key)
	secret := []byte("Arrested at the airport, Entebbe")
	l, _ := d.Log("cases")
	readAll(t, d, l)
	do(t, d, func() error {
		if err := l.Append(true, secret); err != nil {
			return err
		}
		if err := d.Outbox().Put("id-1", secret); err != nil {
			return err
		}
		return d.WriteFile("config", secret, true)
	})
	filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
		if e.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, secret[:10]) || strings.Contains(p, "id-1") {
				t.Errorf("%s holds plaintext or the key in its name", p)
			}
		}
		return nil
	})
	os.Rename(filepath.Join(path, "config"), filepath.Join(path, "other"))
	if _, err := d.ReadFile("other", true); !errors.Is(err, ErrDamaged) {
		t.Errorf("a renamed file opened: %v", err)
	}
	other := open(t, path, testKey(t))
	if _, err := other.ReadFile("other", true); !errors.Is(err, ErrDamaged) {
		t.Errorf("another key opened it: %v", err)
	}
}

func TestOutbox(t *testing.T) {
	d := open(t, t.TempDir(), testKey(t))
	o := d.Outbox()
	do(t, d, func() error {
		for _, k := range []string{"a", "b", "c"} {
			if err := o.Put(k, []byte("v"+k)); err != nil {
				return err
			}
		}
		if err := o.Put("b", []byte("vb2")); err != nil {
			return err
		}
		if err := o.Delete("a"); err != nil {
			return err
		}
		if err := o.Delete("never"); err != nil {
			return err
		}
		vs, err := o.List()
		got := map[string]bool{}
		for _, v := range vs {
			got[string(v)] = true
		}
		if len(vs) != 2 || !got["vb2"] || !got["vc"] {
			t.Errorf("List = %q", vs)
		}
		return err
	})
}

func TestSeen(t *testing.T) {
	path, key := t.TempDir(), testKey(t)
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	d := open(t, path, key)
	s, _ := d.Seen("seen", 24*time.Hour, clock)
	ids := []routing.ID{routing.NewID(), routing.NewID()}
	do(t, d, func() error {
		if err := s.Sync(); err != nil {
			return err
		}
		return s.Add(ids...)
	})
	// Another process sees them after its Sync.
	d2 := open(t, path, key)
	s2, _ := d2.Seen("seen", 24*time.Hour, clock)
	do(t, d2, s2.Sync)
	if !s2.Has(ids[0]) || !s2.Has(ids[1]) || s2.Has(routing.NewID()) {
		t.Fatal("a second process does not see what the first added")
	}
	clock.Advance(25 * time.Hour)
	d3 := open(t, path, key)
	s3, _ := d3.Seen("seen", 24*time.Hour, clock)
	do(t, d3, s3.Sync)
	if s3.Has(ids[0]) || s3.Len() != 0 {
		t.Fatal("an id outlived its retention")
	}
}

// TestSeenCompacts: a log of mostly dead records is rewritten to the live
// ones, and the live ones survive it.
func TestSeenCompacts(t *testing.T) {
	path, key := t.TempDir(), testKey(t)
	clock := clockwork.NewFakeClock()
	d := open(t, path, key)
	s, _ := d.Seen("seen", time.Hour, clock)
	do(t, d, func() error {
		if err := s.Sync(); err != nil {
			return err
		}
		dead := make([]routing.ID, 3000)
		for i := range dead {
			dead[i] = routing.NewID()
		}
		return s.Add(dead...)
	})
	clock.Advance(2 * time.Hour)
	before, _ := os.Stat(filepath.Join(path, "seen.log"))
	live := routing.NewID()
	do(t, d, func() error {
		if err := s.Sync(); err != nil { // 3000 dead records: compacts
			return err
		}
		return s.Add(live)
	})
	after, _ := os.Stat(filepath.Join(path, "seen.log"))
	if after.Size() >= before.Size()/100 {
		t.Fatalf("seen.log %d bytes after compaction, %d before", after.Size(), before.Size())
	}
	d2 := open(t, path, key)
	s2, _ := d2.Seen("seen", time.Hour, clock)
	do(t, d2, s2.Sync)
	if !s2.Has(live) || s2.Len() != 1 {
		t.Fatalf("after compaction: has live %v, %d ids", s2.Has(live), s2.Len())
	}
}

// TestDoExcludesOtherProcesses: two opens of one directory (two open file
// descriptions, as two processes have) never run Do at once.
func TestDoExcludesOtherProcesses(t *testing.T) {
	path, key := t.TempDir(), testKey(t)
	a, b := open(t, path, key), open(t, path, key)
	var mu sync.Mutex
	inside := 0
	var wg sync.WaitGroup
	for _, d := range []*Dir{a, b, a, b} {
		wg.Go(func() {
			for range 50 {
				d.Do(func() error {
					mu.Lock()
					inside++
					n := inside
					mu.Unlock()
					if n != 1 {
						t.Errorf("%d holders at once", n)
					}
					mu.Lock()
					inside--
					mu.Unlock()
					return nil
				})
			}
		})
	}
	wg.Wait()
}

func TestBadNames(t *testing.T) {
	d := open(t, t.TempDir(), testKey(t))
	for _, n := range []string{"", "../x", "/etc/passwd", "a/../../b", "LOCK"} {
		if err := d.Do(func() error { return d.WriteFile(n, nil, false) }); err == nil {
			t.Errorf("WriteFile(%q) accepted", n)
		}
	}
}
