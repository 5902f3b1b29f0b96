//go:build !unix

package keys

import (
	"fmt"
	"io/fs"
	"os"
)

// openNoFollow opens path for reading, refusing a symlink. Where there is
// no O_NOFOLLOW (a browser build, which keeps its keys behind the client's
// state seam, not in files), the check is a Lstat before the open.
func openNoFollow(path string) (*os.File, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s: %w: it is a symbolic link; use the real path", path, ErrKeyFileInsecure)
	}
	return os.Open(path)
}
