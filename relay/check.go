package relay

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/keys"
)

// Check runs every check a start of cfg would make, short of binding its
// ports and locking its data directory, and returns every problem at once
// as [config.Errors]:
//
//   - [Config.Validate];
//   - the directory file is read and verified against the pinned root at
//     the current time: a missing file, a wrong root
//     ([keys.ErrUntrustedRoot]), a tampered file ([keys.ErrBadSignature]),
//     an expired one ([keys.ErrExpired]) or one older than the data
//     directory has already served ([keys.ErrRollback]) are each refused;
//   - every TLS certificate and key is loaded and must match and be valid
//     now, and every CA must hold a certificate;
//   - the data directory, if it exists, is a directory.
//
// Because it binds nothing and takes no lock, Check can run beside the
// relay that uses cfg, to check an edited config or a new directory file
// before a restart or a SIGHUP. What it cannot know is whether a port is
// free when the relay starts.
func Check(cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		// The checks below read the files the fields name; with fields
		// missing or malformed, they would only repeat the same problems.
		return err
	}
	var errs config.Errors
	now := time.Now()
	var seen *keys.DirVersion
	if st, err := os.Stat(cfg.DataDir); err == nil && !st.IsDir() {
		errs.Add("data_dir", "%s is not a directory", cfg.DataDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs.AddErr("data_dir", err)
	} else if seen, err = readServedVersion(cfg.DataDir); err != nil {
		errs.AddErr("data_dir", err)
	}
	if dc := cfg.Directory; dc != nil {
		if _, err := loadDirectory(dc, now, seen); err != nil {
			field := "directory.file"
			if errors.Is(err, keys.ErrUntrustedRoot) {
				field = "directory.root_fingerprint"
			}
			errs.AddErr(field, err)
		}
	}
	if cfg.TLS != nil {
		_, err := loadTLS("tls", cfg.TLS, now)
		errs.AddErr("", err)
	}
	if t := wsTLS(cfg.WebSocket); t != nil {
		_, err := loadTLS("websocket.tls", t, now)
		errs.AddErr("", err)
	}
	if t := cfg.MonitorTLS; t != nil {
		_, err := loadMutualTLS("monitor_tls", t, now)
		errs.AddErr("", err)
	}
	if t := clusterTLS(cfg.Cluster); t != nil {
		_, err := loadMutualTLS("cluster.tls", t, now)
		errs.AddErr("", err)
	}
	return errs.Err()
}

// CheckFile loads the config file at path and runs [Check] on it. Every
// problem is a [config.Error] with the file and the line of its field.
func CheckFile(path string) error {
	c, src, err := loadConfig(path, nil)
	if err != nil {
		return err
	}
	return src.Locate(Check(c))
}

// loadDirectory reads the directory file dc names and verifies it against
// the pinned root at now, and against seen, the newest version already
// served (nil for none).
func loadDirectory(dc *DirectoryConfig, now time.Time, seen *keys.DirVersion) (*keys.Directory, error) {
	fp, err := keys.ParseFingerprint(dc.RootFingerprint)
	if err != nil {
		return nil, err
	}
	data, err := readDirectoryFile(dc.File)
	if err != nil {
		return nil, err
	}
	d, err := keys.VerifyDirectory(data, fp, now, seen)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dc.File, err)
	}
	return d, nil
}

// servedVersionFile is where a data directory records the newest
// directory version it has served, as keys.DirVersion's text.
const servedVersionFile = "directory.version"

// readServedVersion reads the newest directory version the data directory
// has served, or nil if it has served none.
func readServedVersion(dataDir string) (*keys.DirVersion, error) {
	path := filepath.Join(dataDir, servedVersionFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := keys.ParseDirVersion(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s is damaged: %w", path, err)
	}
	return &v, nil
}

// readDirectoryFile reads at most one byte more than a directory may hold:
// VerifyDirectory refuses an oversized file without all of it being read.
func readDirectoryFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, keys.MaxDirectorySize+1))
}
