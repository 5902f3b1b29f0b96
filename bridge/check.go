package bridge

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/keys"
)

// Check runs every check a start of cfg would make short of connecting,
// and returns every problem at once as [config.Errors]:
//
//   - [Config.Validate];
//   - the keyring (the key file, already opened by the caller) is a
//     bridge's;
//   - every partner's NKey file is a user seed only its owner can read,
//     and every CA file holds a certificate;
//   - the home directory file, if given, verifies against the pinned root
//     now, lists this bridge with its identity and NKey, and lists every
//     configured partner (covering the countries the config narrows to).
//
// It binds nothing and connects nowhere, so it can run beside the bridge
// that uses cfg. What it cannot know is whether the relays are reachable
// and whether the partners' directories list the bridge.
func Check(cfg *Config, kr *keys.Keyring) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	var errs config.Errors
	if kr == nil || kr.Role != keys.RoleBridge {
		role := keys.Role("none")
		if kr != nil {
			role = kr.Role
		}
		errs.Add("home.key_file", "a %s key, not a bridge's (beacon keys gen --role bridge)", role)
	}
	if _, err := loadCA(cfg.Home.CA); err != nil {
		errs.AddErr("home.ca", err)
	}
	for i, p := range cfg.Partners {
		f := fmt.Sprintf("partners[%d].", i)
		if p.NKeyFile != "" {
			if _, err := LoadNKey(p.NKeyFile); err != nil {
				errs.AddErr(f+"nkey_file", err)
			}
		}
		if _, err := loadCA(p.CA); err != nil {
			errs.AddErr(f+"ca", err)
		}
	}
	if cfg.Home.Directory != "" && kr != nil {
		root, _ := keys.ParseFingerprint(cfg.Home.RootFingerprint)
		data, err := os.ReadFile(cfg.Home.Directory)
		var d *keys.Directory
		if err == nil {
			d, err = keys.VerifyDirectory(data, root, time.Now(), nil)
		}
		switch {
		case errors.Is(err, keys.ErrUntrustedRoot):
			errs.AddErr("home.root_fingerprint", fmt.Errorf("%s: %w", cfg.Home.Directory, err))
		case err != nil:
			errs.AddErr("home.directory", err)
		default:
			if _, err := selfIn(d, kr); err != nil {
				errs.AddErr("home.key_file", err)
			}
			errs.AddErr("", checkPartners(d, cfg))
		}
	}
	return errs.Err()
}

// CheckFile loads the config file at path, opens its key file with load
// (which asks for the passphrase) and runs [Check]; every problem is
// located at its line, the key file's included.
func CheckFile(path string, load func(keyFile string) (*keys.Keyring, error)) error {
	cfg, src, err := loadConfig(path, nil)
	if err != nil {
		return err
	}
	kr, err := load(cfg.Home.KeyFile)
	if err != nil {
		var errs config.Errors
		errs.AddErr("home.key_file", err)
		return src.Locate(errs.Err())
	}
	return src.Locate(Check(cfg, kr))
}
