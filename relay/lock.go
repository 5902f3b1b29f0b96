package relay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gofrs/flock"
)

// ErrDataDirLocked means another relay process holds the data directory.
var ErrDataDirLocked = errors.New("data directory is in use by another relay")

// dirLock is an exclusive lock (flock(2), through gofrs/flock) on
// <data_dir>/LOCK. nats-server does not lock its store directory: a second
// server on the same directory would start and corrupt the first one's
// streams. The kernel drops the lock when its process dies, so a crashed
// relay never leaves a stale lock. The file holds the holder's pid, for
// the error a second relay prints.
type dirLock struct {
	fl   *flock.Flock
	path string
}

func lockDataDir(dir string) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, "LOCK")
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if !ok {
		msg := dir
		if holder, _ := os.ReadFile(path); len(strings.TrimSpace(string(holder))) > 0 {
			msg += " (pid " + strings.TrimSpace(string(holder)) + ")"
		}
		return nil, fmt.Errorf("%w: %s", ErrDataDirLocked, msg)
	}
	// The pid is a courtesy for the operator; the lock does not depend on it.
	os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	return &dirLock{fl: fl, path: path}, nil
}

// release empties the pid and unlocks. It is safe to call more than once.
func (l *dirLock) release() error {
	if l == nil || l.fl == nil {
		return nil
	}
	os.Truncate(l.path, 0)
	err := l.fl.Unlock()
	l.fl = nil
	if err != nil {
		return fmt.Errorf("relay: unlocking %s: %w", l.path, err)
	}
	return nil
}
