package keys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFileAtomic: the file gets exactly the mode asked for, whatever
// the umask; without overwrite an existing file is refused and left as it
// was; no temporary file is left behind either way.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFileAtomic(path, []byte("one"), 0o640, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("two"), 0o600, false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("no-overwrite write over an existing file = %v, want fs.ErrExist", err)
	}
	assertFile(t, path, "one", 0o640)
	if err := WriteFileAtomic(path, []byte("three"), 0o600, true); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, "three", 0o600)
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o600, true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("write into a missing directory = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only f: %v", len(entries), entries)
	}
}

func assertFile(t *testing.T, path, want string, perm fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Errorf("%s = %q, %v; want %q", path, b, err, want)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != perm {
		t.Errorf("%s mode %v, want %v", path, st.Mode().Perm(), perm)
	}
}
