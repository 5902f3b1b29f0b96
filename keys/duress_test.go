package keys

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const (
	realPass   = "correct horse battery staple"
	duressPass = "the flowers are for my aunt"
)

func slotsOf(t *testing.T, path string) keyFileV2 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kf keyFileV2
	if err := json.Unmarshal(b, &kf); err != nil {
		t.Fatal(err)
	}
	return kf
}

// TestDuressKeyFile: one file, two passphrases. The owner's opens the
// keyring; the duress passphrase opens a decoy that shares only the
// duress key; each unlock, and a wrong passphrase, costs exactly one
// argon2id run; and the file is shaped like one without a duress
// passphrase.
func TestDuressKeyFile(t *testing.T) {
	kr, err := NewKeyring(RoleDefender)
	if err != nil {
		t.Fatal(err)
	}
	decoy, err := NewDecoy(kr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := WriteDuressKeyFile(path, kr, []byte(realPass), decoy, []byte(duressPass), false); err != nil {
		t.Fatal(err)
	}
	load := func(pass string) (*Keyring, error) {
		t.Helper()
		before := argonRuns.Load()
		got, err := LoadKeyFile(path, []byte(pass))
		if n := argonRuns.Load() - before; n != 1 {
			t.Errorf("unlocking with %q ran argon2id %d times, want 1", pass, n)
		}
		return got, err
	}
	got, err := load(realPass)
	if err != nil || got.Decoy || !got.Identity.Equal(kr.Identity) || !bytes.Equal(got.DuressKey(), kr.DuressKey()) || len(got.DuressKey()) != DuressKeySize {
		t.Fatalf("the passphrase opened %v (decoy %v), %v", got, got != nil && got.Decoy, err)
	}
	d, err := load(duressPass)
	if err != nil || !d.Decoy || d.Role != RoleDefender || !d.Identity.Equal(decoy.Identity) || d.Identity.Equal(kr.Identity) ||
		d.NKeyPublic() == kr.NKeyPublic() || !d.Created.Equal(got.Created) || !bytes.Equal(d.DuressKey(), kr.DuressKey()) {
		t.Fatalf("the duress passphrase opened %v, %v", d, err)
	}
	if _, err := load("neither of the two"); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("a wrong passphrase: %v", err)
	}

	// Shaped like a file without a duress passphrase: two slots of one
	// size, either of which may be the owner's.
	plain := filepath.Join(dir, "plain")
	kr2, _ := NewKeyring(RoleDefender)
	if err := WriteKeyFile(plain, kr2, []byte(realPass), false); err != nil {
		t.Fatal(err)
	}
	a, b := slotsOf(t, path), slotsOf(t, plain)
	if len(a.Slots) != 2 || len(b.Slots) != 2 || len(a.Slots[0].Ciphertext) != len(a.Slots[1].Ciphertext) ||
		len(a.Slots[0].Ciphertext) != len(b.Slots[0].Ciphertext) || len(b.Slots[0].Ciphertext) != len(b.Slots[1].Ciphertext) {
		t.Errorf("slot sizes differ: with duress %d/%d, without %d/%d", len(a.Slots[0].Ciphertext), len(a.Slots[1].Ciphertext),
			len(b.Slots[0].Ciphertext), len(b.Slots[1].Ciphertext))
	}
	if fa, _ := os.ReadFile(path); len(fa) != func() int { fb, _ := os.ReadFile(plain); return len(fb) }() {
		t.Error("a key file with a duress passphrase is not the size of one without")
	}
}

func TestDuressKeyFileRefusals(t *testing.T) {
	kr, _ := NewKeyring(RoleDefender)
	decoy, _ := NewDecoy(kr)
	path := filepath.Join(t.TempDir(), "key")
	if err := WriteDuressKeyFile(path, kr, []byte(realPass), decoy, []byte(realPass), false); !errors.Is(err, ErrSamePassphrase) {
		t.Errorf("the same passphrase twice: %v", err)
	}
	other, _ := NewKeyring(RoleDefender)
	if err := WriteDuressKeyFile(path, other, []byte(realPass), decoy, []byte(duressPass), false); err == nil {
		t.Error("a decoy of another keyring accepted")
	}
	if err := WriteKeyFile(path, decoy, []byte(realPass), false); err == nil {
		t.Error("a decoy written as a keyring of its own")
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a refused write left a file")
	}

	// A file whose two slots open with one passphrase was not written by
	// Beacon.
	if err := WriteKeyFile(path, kr, []byte(realPass), false); err != nil {
		t.Fatal(err)
	}
	kf := slotsOf(t, path)
	_, check := deriveKeyFile([]byte(realPass), kf.Salt, kf.Time, kf.MemoryKiB, kf.Threads)
	kf.Slots[0].Check, kf.Slots[1].Check = check, check
	out, _ := kf.marshal()
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(path, []byte(realPass)); !errors.Is(err, ErrKeyFileCorrupt) {
		t.Errorf("both slots with one check value: %v", err)
	}
}
