package state

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gofrs/flock"
	"github.com/google/renameio/v2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Errors callers branch on.
var (
	// ErrDamaged means a sealed file does not decrypt: it was modified, or
	// it belongs to another identity.
	ErrDamaged = errors.New("state: damaged")
	// ErrNotLocked means a change was attempted outside [Dir.Do].
	ErrNotLocked = errors.New("state: change outside Dir.Do")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("state: closed")
)

// KeySize is the size of the key a Dir is opened with.
const KeySize = 32

// Labels of the keys derived from the key a Dir is opened with.
const (
	sealLabel = "beacon.state.v1/seal"
	nameLabel = "beacon.state.v1/names"
	adPrefix  = "beacon.state.v1/"
)

// A Dir is an open state directory. It is safe for concurrent use.
type Dir struct {
	path    string
	aead    cipherAEAD
	nameKey []byte
	flock   *flock.Flock

	mu     sync.Mutex // held by Do, with the flock
	held   atomic.Bool
	closed atomic.Bool

	logsMu sync.Mutex
	logs   map[string]*Log
}

type cipherAEAD interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
	NonceSize() int
	Overhead() int
}

// Open opens (creating, with mode 0700) the state directory at path. key
// is a secret of [KeySize] bytes that only the party holds, such as
// keys.Identity.DeriveKey("client-state"); everything sealed here is
// sealed under keys derived from it.
func Open(path string, key []byte) (*Dir, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("state: key is %d bytes, want %d", len(key), KeySize)
	}
	if path == "" {
		return nil, errors.New("state: no directory")
	}
	if err := os.MkdirAll(filepath.Join(path, "outbox"), 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	sk, err := hkdf.Key(sha256.New, key, nil, sealLabel, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	nk, err := hkdf.Key(sha256.New, key, nil, nameLabel, 32)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(sk)
	if err != nil {
		return nil, err
	}
	return &Dir{path: path, aead: aead, nameKey: nk, flock: flock.New(filepath.Join(path, "LOCK"), flock.SetPermissions(0o600)),
		logs: map[string]*Log{}}, nil
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// Close closes the logs. The directory may be opened again.
func (d *Dir) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.logsMu.Lock()
	defer d.logsMu.Unlock()
	var errs []error
	for name, l := range d.logs {
		errs = append(errs, l.close())
		delete(d.logs, name)
	}
	errs = append(errs, d.flock.Close())
	return errors.Join(errs...)
}

// Do runs fn holding the directory: no other goroutine of this process and
// no other process changes the state while fn runs. Calls do not nest.
func (d *Dir) Do(fn func() error) error {
	if d.closed.Load() {
		return ErrClosed
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.flock.Lock(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("state: locking %s: %w", d.path, err)
	}
	d.held.Store(true)
	defer func() {
		d.held.Store(false)
		d.flock.Unlock()
	}()
	return fn()
}

func (d *Dir) mustHold() error {
	if d.closed.Load() {
		return ErrClosed
	}
	if !d.held.Load() {
		return ErrNotLocked
	}
	return nil
}

// seal encrypts plain for the file (or log) called name.
func (d *Dir) seal(name string, plain []byte) []byte {
	n := d.aead.NonceSize()
	out := make([]byte, n, n+len(plain)+d.aead.Overhead())
	rand.Read(out)
	return d.aead.Seal(out, out[:n], plain, []byte(adPrefix+name))
}

func (d *Dir) open(name string, sealed []byte) ([]byte, error) {
	n := d.aead.NonceSize()
	if len(sealed) < n+d.aead.Overhead() {
		return nil, fmt.Errorf("%w: %s is too short", ErrDamaged, name)
	}
	pt, err := d.aead.Open(nil, sealed[:n], sealed[n:], []byte(adPrefix+name))
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not decrypt (modified, or from another identity)", ErrDamaged, name)
	}
	return pt, nil
}

// WriteFile replaces the file called name with data, atomically and
// durably; sealed encrypts it. It must be called inside Do.
func (d *Dir) WriteFile(name string, data []byte, sealed bool) error {
	if err := d.mustHold(); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	if sealed {
		data = d.seal(name, data)
	}
	return writeAtomic(filepath.Join(d.path, name), data)
}

// ReadFile returns the contents of the file called name, decrypted if
// sealed; a missing file is an error satisfying errors.Is(err,
// fs.ErrNotExist).
func (d *Dir) ReadFile(name string, sealed bool) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(d.path, name))
	if err != nil || !sealed {
		return b, err
	}
	return d.open(name, b)
}

// Remove removes the file called name; a missing file is not an error.
// It must be called inside Do.
func (d *Dir) Remove(name string) error {
	if err := d.mustHold(); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(d.path, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// checkName refuses names that would leave the directory.
func checkName(name string) error {
	if name == "" || name != filepath.Clean(name) || filepath.IsAbs(name) || strings.HasPrefix(name, "..") || name == "LOCK" {
		return fmt.Errorf("state: bad file name %q", name)
	}
	return nil
}

// writeAtomic replaces path with data: a temporary file, fsynced, renamed
// over path, and the directory fsynced so that the rename itself survives
// a power cut.
func writeAtomic(path string, data []byte) error {
	// The temporary file goes beside path: renameio would otherwise probe
	// $TMPDIR on every write.
	if err := renameio.WriteFile(path, data, 0o600, renameio.WithTempDir(filepath.Dir(path))); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("state: syncing %s: %w", dir, err)
	}
	return nil
}
