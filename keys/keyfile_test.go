package keys_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/keys"
)

// Each WriteKeyFile and each LoadKeyFile that gets as far as argon2id costs
// about 0.3 s under -race, so TestKeyFile writes one file and every subtest
// works on a copy of it. Ten argon2id runs in all.

const testPassphrase = "correct horse battery staple"

// writePrivate writes data to dir/name with mode 0600 whatever the umask.
func writePrivate(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// editField rewrites a field of a key file's JSON in place wherever it
// is (in both slots for a slot's field), or adds it at the top after the
// first, so that the rest of the file keeps its one form and only the
// edit is wrong. Editing both slots reaches the one the passphrase opens,
// whichever it is.
func editField(t *testing.T, data []byte, field string, edit func(json.RawMessage) json.RawMessage) []byte {
	t.Helper()
	lines := strings.Split(string(data), "\n")
	found := false
	for i, line := range lines {
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		prefix := indent + `"` + field + `": `
		if v, ok := strings.CutPrefix(line, prefix); ok {
			comma := strings.HasSuffix(v, ",")
			v = strings.TrimSuffix(v, ",")
			line = prefix + string(edit(json.RawMessage(v)))
			if comma {
				line += ","
			}
			lines[i], found = line, true
		}
	}
	if !found {
		lines = append(lines[:2], append([]string{`  "` + field + `": ` + string(edit(nil)) + ","}, lines[2:]...)...)
	}
	return []byte(strings.Join(lines, "\n"))
}

// flipBytesField flips one bit in the middle of a base64 []byte field.
func flipBytesField(t *testing.T, data []byte, field string) []byte {
	return editField(t, data, field, func(v json.RawMessage) json.RawMessage {
		var b []byte
		if err := json.Unmarshal(v, &b); err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x01
		out, _ := json.Marshal(b)
		return out
	})
}

// removeSlot leaves a key file with its first slot only.
func removeSlot(t *testing.T, data []byte) []byte {
	t.Helper()
	var kf map[string]any
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatal(err)
	}
	kf["slots"] = kf["slots"].([]any)[:1]
	out, _ := json.MarshalIndent(kf, "", "  ")
	// MarshalIndent of a map sorts the keys: put them back in order.
	var ordered struct {
		Format    string          `json:"format"`
		KDF       string          `json:"kdf"`
		Time      int             `json:"time"`
		MemoryKiB int             `json:"memory_kib"`
		Threads   int             `json:"threads"`
		Salt      json.RawMessage `json:"salt"`
		Slots     json.RawMessage `json:"slots"`
	}
	json.Unmarshal(out, &ordered)
	out, _ = json.MarshalIndent(ordered, "", "  ")
	return append(out, '\n')
}

func setField(t *testing.T, data []byte, field, value string) []byte {
	return editField(t, data, field, func(json.RawMessage) json.RawMessage { return json.RawMessage(value) })
}

func loadFails(t *testing.T, path, pass string, target error) error {
	t.Helper()
	kr, err := keys.LoadKeyFile(path, []byte(pass))
	if kr != nil {
		t.Errorf("LoadKeyFile returned a keyring with error %v", err)
	}
	wantErr(t, err, target)
	return err
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestKeyFile(t *testing.T) {
	kr, err := keys.NewKeyring(keys.RoleMission)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.AddInbox(kr.Created.Add(365 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A creation time with a fraction and an offset is written in the one
	// form a reader accepts: UTC, whole seconds.
	created := kr.Created
	kr.Created = created.Add(700 * time.Millisecond).In(time.FixedZone("EAT", 3*3600))
	dir := t.TempDir()
	path := filepath.Join(dir, "mission.key")
	if err := keys.WriteKeyFile(path, kr, []byte(testPassphrase), false); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// copyAs puts the key file, possibly edited, in a fresh directory.
	copyAs := func(t *testing.T, b []byte) string { return writePrivate(t, t.TempDir(), "copy.key", b) }

	t.Run("round trip", func(t *testing.T) {
		got, err := keys.LoadKeyFile(path, []byte(testPassphrase))
		if err != nil {
			t.Fatal(err)
		}
		if got.Role != keys.RoleMission {
			t.Errorf("Role = %q", got.Role)
		}
		if !got.Identity.Equal(kr.Identity) || !got.Identity.Public().Equal(kr.Identity.Public()) {
			t.Error("identity differs")
		}
		if got.NKeyPublic() != kr.NKeyPublic() || !strings.HasPrefix(got.NKeyPublic(), "U") {
			t.Errorf("NKey public = %q, want %q", got.NKeyPublic(), kr.NKeyPublic())
		}
		gotSeed, _ := got.NKey.Seed()
		wantSeed, _ := kr.NKey.Seed()
		if !bytes.Equal(gotSeed, wantSeed) {
			t.Error("NKey seed differs")
		}
		if !got.Created.Equal(created) || got.Created.Location() != time.UTC {
			t.Errorf("Created = %v, want %v", got.Created, created)
		}
		if len(got.Inboxes) != 2 {
			t.Fatalf("%d inbox keys, want 2", len(got.Inboxes))
		}
		for i, e := range got.Inboxes {
			w := kr.Inboxes[i]
			if !e.Key.Equal(w.Key) || !e.Signed.Key.Equal(w.Signed.Key) || !e.Signed.Key.Equal(e.Key.Public()) ||
				!e.Signed.Expires.Equal(w.Signed.Expires) || !bytes.Equal(e.Signed.Signature, w.Signed.Signature) {
				t.Errorf("inbox %d differs", i)
			}
			if err := e.Signed.Verify(got.Identity.Public(), kr.Created); err != nil {
				t.Errorf("inbox %d: %v", i, err)
			}
		}
		if ks := got.InboxKeys(); len(ks) != 2 || !ks[1].Equal(kr.Inboxes[1].Key) {
			t.Error("InboxKeys() does not list the inbox keys in order")
		}
	})

	t.Run("mode 0600 and no temporary files", func(t *testing.T) {
		st, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != 0o600 {
			t.Errorf("mode = %v, want -rw-------", st.Mode())
		}
		if names := dirNames(t, dir); len(names) != 1 || names[0] != "mission.key" {
			t.Errorf("directory holds %q, want only mission.key", names)
		}
	})

	t.Run("format and parameters", func(t *testing.T) {
		var kf struct {
			Format    string `json:"format"`
			KDF       string `json:"kdf"`
			Time      int    `json:"time"`
			MemoryKiB int    `json:"memory_kib"`
			Threads   int    `json:"threads"`
			Salt      []byte `json:"salt"`
			Slots     []struct {
				Check, Nonce, Ciphertext []byte
			} `json:"slots"`
		}
		if err := json.Unmarshal(data, &kf); err != nil {
			t.Fatal(err)
		}
		if kf.Format != "beacon-key-file-v2" || kf.KDF != "argon2id" || kf.Time != 3 || kf.MemoryKiB != 64<<10 || kf.Threads != 4 {
			t.Errorf("parameters %+v, want argon2id t=3 m=65536 p=4 (package doc)", kf)
		}
		if len(kf.Salt) != 16 || len(kf.Slots) != 2 {
			t.Fatalf("salt %d bytes, %d slots; want 16, 2", len(kf.Salt), len(kf.Slots))
		}
		// Without a duress passphrase the second slot is random bytes,
		// as long as the first.
		for i, sl := range kf.Slots {
			if len(sl.Nonce) != 24 || len(sl.Check) != 32 || len(sl.Ciphertext) != len(kf.Slots[0].Ciphertext) || (len(sl.Ciphertext)-16)%512 != 0 {
				t.Errorf("slot %d: nonce %d, check %d, ciphertext %d bytes; want 24, 32, one multiple of 512 plus 16", i, len(sl.Nonce), len(sl.Check), len(sl.Ciphertext))
			}
		}
	})

	t.Run("no secret in the file", func(t *testing.T) {
		seed, _ := kr.NKey.Seed()
		secrets := map[string]string{
			"passphrase":    testPassphrase,
			"NKey seed":     string(seed),
			"NKey seed b64": base64.StdEncoding.EncodeToString(seed)[:24],
		}
		for name, text := range map[string]string{"identity": kr.Identity.SecretString(), "inbox": kr.Inboxes[0].Key.SecretString()} {
			secrets[name] = text
			payload := text[strings.IndexByte(text, ':')+1:]
			secrets[name+" payload"] = payload
			raw, _ := base64.RawURLEncoding.DecodeString(payload)
			secrets[name+" std base64"] = base64.StdEncoding.EncodeToString(raw)[:24]
		}
		for name, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("the key file contains the %s", name)
			}
		}
	})

	t.Run("wrong passphrase", func(t *testing.T) {
		loadFails(t, path, testPassphrase+"!", keys.ErrWrongPassphrase)
	})

	t.Run("modified ciphertext is corrupt", func(t *testing.T) {
		// Every slot's: they are in a random order, so the one the
		// passphrase opens may be either.
		loadFails(t, copyAs(t, flipBytesField(t, data, "ciphertext")), testPassphrase, keys.ErrKeyFileCorrupt)
	})

	t.Run("modified nonce is corrupt", func(t *testing.T) {
		loadFails(t, copyAs(t, flipBytesField(t, data, "nonce")), testPassphrase, keys.ErrKeyFileCorrupt)
	})

	// The salt feeds argon2id, so a changed salt derives another key and
	// check value: it is indistinguishable from a wrong passphrase.
	t.Run("modified salt reads as wrong passphrase", func(t *testing.T) {
		loadFails(t, copyAs(t, flipBytesField(t, data, "salt")), testPassphrase, keys.ErrWrongPassphrase)
	})

	t.Run("not a key file", func(t *testing.T) {
		for name, b := range map[string][]byte{
			"empty":                  {},
			"not JSON":               []byte("BCN-SECRET-ID:abc\n"),
			"JSON array":             []byte("[]"),
			"truncated":              data[:len(data)/2],
			"one byte short":         data[:len(bytes.TrimSpace(data))-1],
			"unknown field":          setField(t, data, "comment", `"hello"`),
			"memory below default":   setField(t, data, "memory_kib", "65535"),
			"memory above max":       setField(t, data, "memory_kib", "4194305"),
			"time below default":     setField(t, data, "time", "2"),
			"time above max":         setField(t, data, "time", "65"),
			"no threads":             setField(t, data, "threads", "0"),
			"threads above max":      setField(t, data, "threads", "65"),
			"other format":           setField(t, data, "format", `"beacon-key-file-v3"`),
			"v1 format, two slots":   setField(t, data, "format", `"beacon-key-file-v1"`),
			"one slot":               removeSlot(t, data),
			"other kdf":              setField(t, data, "kdf", `"scrypt"`),
			"short nonce":            setField(t, data, "nonce", `"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="`),
			"empty ciphertext":       setField(t, data, "ciphertext", `""`),
			"short salt":             setField(t, data, "salt", `"AAAAAAAAAAAAAAAAAAAA"`),
			"two JSON values":        append(bytes.Clone(data), data...),
			"trailing garbage":       append(bytes.Clone(data), "x\n"...),
			"ciphertext not base64":  setField(t, data, "ciphertext", `"!!!!"`),
			"memory not a number":    setField(t, data, "memory_kib", `"65536"`),
			"memory overflows int32": setField(t, data, "memory_kib", "4294967296"),
		} {
			t.Run(name, func(t *testing.T) {
				loadFails(t, copyAs(t, b), testPassphrase, keys.ErrKeyFileCorrupt)
			})
		}
	})

	// A stray closing bracket after the JSON object is a modification too,
	// and json.Decoder.More reports false before '}' and ']'.
	t.Run("trailing bracket is corrupt", func(t *testing.T) {
		loadFails(t, copyAs(t, append(bytes.Clone(data), "}\n"...)), testPassphrase, keys.ErrKeyFileCorrupt)
	})

	t.Run("larger than MaxKeyFileSize", func(t *testing.T) {
		big := append(bytes.Clone(data), bytes.Repeat([]byte(" "), keys.MaxKeyFileSize)...)
		loadFails(t, copyAs(t, big), testPassphrase, keys.ErrKeyFileCorrupt)
	})

	t.Run("readable by group or others", func(t *testing.T) {
		for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o601, 0o610} {
			p := copyAs(t, data)
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			err := loadFails(t, p, testPassphrase, keys.ErrKeyFileInsecure)
			if err != nil && !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("mode %04o: error %q does not say chmod 600", mode, err)
			}
		}
	})

	t.Run("symlink", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "link.key")
		if err := os.Symlink(path, link); err != nil {
			t.Fatal(err)
		}
		loadFails(t, link, testPassphrase, keys.ErrKeyFileInsecure)
	})

	t.Run("directory", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "dir.key")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		loadFails(t, d, testPassphrase, keys.ErrKeyFileInsecure)
	})

	// A FIFO planted at the key file's path must be refused, not block the
	// process forever in open(2) waiting for a writer.
	t.Run("FIFO", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "fifo.key")
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Skip("mkfifo:", err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := keys.LoadKeyFile(p, []byte(testPassphrase))
			done <- err
		}()
		select {
		case err := <-done:
			wantErr(t, err, keys.ErrKeyFileInsecure)
		case <-time.After(2 * time.Second):
			t.Error("LoadKeyFile blocks on a FIFO (open without O_NONBLOCK)")
			// Unblock the reader so the goroutine ends with the test.
			if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			<-done
		}
	})

	t.Run("missing file", func(t *testing.T) {
		loadFails(t, filepath.Join(t.TempDir(), "none.key"), testPassphrase, fs.ErrNotExist)
	})

	t.Run("no overwrite", func(t *testing.T) {
		p := copyAs(t, data)
		other, err := keys.NewKeyring(keys.RoleDefender)
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.WriteKeyFile(p, other, []byte(testPassphrase), false); err == nil {
			t.Fatal("WriteKeyFile replaced an existing file without overwrite")
		}
		if now, _ := os.ReadFile(p); !bytes.Equal(now, data) {
			t.Error("the existing file changed")
		}
		if names := dirNames(t, filepath.Dir(p)); len(names) != 1 {
			t.Errorf("directory holds %q after a refused write, want only the key file", names)
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		p := copyAs(t, data)
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		other, err := keys.NewKeyring(keys.RoleDefender)
		if err != nil {
			t.Fatal(err)
		}
		const pass2 = "another long passphrase"
		if err := keys.WriteKeyFile(p, other, []byte(pass2), true); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Lstat(p); err != nil || st.Mode() != 0o600 {
			t.Errorf("replaced file: %v, %v; want mode 0600", st.Mode(), err)
		}
		got, err := keys.LoadKeyFile(p, []byte(pass2))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Identity.Equal(other.Identity) || got.Role != keys.RoleDefender || len(got.Inboxes) != 0 {
			t.Error("the replaced file does not hold the new keyring")
		}
		if names := dirNames(t, filepath.Dir(p)); len(names) != 1 {
			t.Errorf("directory holds %q, want only the key file", names)
		}
	})

	t.Run("short passphrase", func(t *testing.T) {
		d := t.TempDir()
		// Nine characters, eighteen bytes: the limit counts characters.
		for _, pass := range []string{"", "123456789", "ééééééééé"} {
			if err := keys.WriteKeyFile(filepath.Join(d, "short.key"), kr, []byte(pass), false); err == nil {
				t.Errorf("passphrase %q accepted", pass)
			}
		}
		if names := dirNames(t, d); len(names) != 0 {
			t.Errorf("a refused write left %q", names)
		}
	})
}

// TestKeyringEncodingsHoldNoSecret: a keyring that reaches a JSON or YAML
// encoder (a debug dump, an API response by mistake) must not carry a secret.
func TestKeyringEncodingsHoldNoSecret(t *testing.T) {
	kr, err := keys.NewKeyring(keys.RoleMission)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kr.NKey.Seed()
	forms := append(secretForms(kr.Identity.SecretString()), secretForms(kr.Inboxes[0].Key.SecretString())...)
	forms = append(forms, string(seed), base64.StdEncoding.EncodeToString(seed)[:24])
	if out, err := json.Marshal(kr); err == nil {
		assertNoSecret(t, "json.Marshal(Keyring)", string(out), forms)
	}
	out, err := func() (out []byte, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = errors.New("panic")
			}
		}()
		return yaml.Marshal(kr)
	}()
	if err == nil {
		assertNoSecret(t, "yaml.Marshal(Keyring)", string(out), forms)
	}
}
