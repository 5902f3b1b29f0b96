package console

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jonboulle/clockwork"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
)

// ErrWrongMission means the key is not the key of the config's mission
// in the directory.
var ErrWrongMission = errors.New("the key is not this mission's in the directory")

// Open opens the mission's office from cfg with its unlocked keyring:
// the client (state under state_dir/client) and the case store
// (state_dir/cases, sealed under a key derived from the identity). It
// does not wait for the relay.
func Open(cfg *Config, kr *keys.Keyring, log *slog.Logger, clock clockwork.Clock) (*Office, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if kr.Role != keys.RoleMission && kr.Role != keys.RolePartner {
		return nil, fmt.Errorf("console: the key is a %s key, not a mission's or a partner government's", kr.Role)
	}
	fp, err := cfg.Root()
	if err != nil {
		return nil, err
	}
	var dir []byte
	if cfg.Directory != "" {
		if dir, err = os.ReadFile(cfg.Directory); err != nil {
			return nil, err
		}
	}
	cl, err := client.Open(client.Config{URLs: cfg.Relays, Keyring: kr, Root: fp, StateDir: filepath.Join(cfg.StateDir, "client"),
		Directory: dir, Logger: log, Clock: clock})
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(filepath.Join(cfg.StateDir, "cases"), kr.Identity.DeriveKey("console-cases"))
	if err != nil {
		cl.Close()
		return nil, err
	}
	o := &Office{Store: st, Client: cl, Config: cfg, Clock: clock, Log: log, Flag: FlagsOf, Partner: kr.Role == keys.RolePartner}
	if err := o.CheckMission(); err != nil && !errors.Is(err, client.ErrNoDirectory) {
		o.Close()
		return nil, err
	}
	return o, nil
}

// CheckMission checks that the config's mission is in the directory
// with this keyring's identity.
func (o *Office) CheckMission() error {
	d, err := o.Client.Directory()
	if err != nil {
		return err
	}
	for _, m := range d.Institutions() {
		if m.ID == o.Config.Mission && (m.Role == keys.RoleMission || o.Partner && m.Role == keys.RolePartner) {
			if !m.Identity.Equal(o.Client.Identity()) {
				return fmt.Errorf("%w: %s has another identity in directory serial %d", ErrWrongMission, m.ID, d.Serial)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: no mission %q in directory serial %d", ErrWrongMission, o.Config.Mission, d.Serial)
}

// Close closes the client and the store.
func (o *Office) Close() {
	o.Client.Close()
	o.Store.Close()
}
