//go:build unix

package keys

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// openNoFollow opens path for reading without following a symlink. With
// O_NONBLOCK a FIFO planted at the path does not hang the open; the
// caller's regular-file check then refuses it.
func openNoFollow(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s: %w: it is a symbolic link; use the real path", path, ErrKeyFileInsecure)
	}
	return f, err
}
