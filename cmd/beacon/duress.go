package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
)

// Duress. A defender may set a second passphrase (beacon init --duress,
// or beacon duress later). Given instead of the passphrase, it opens a
// decoy: a harmless identity with an empty inbox, which every command
// then uses as if it were the defender's; and, without a word, it
// releases the defender's armed check-in plan to the missions. Unlocking
// with it costs what unlocking with the passphrase costs (one argon2id
// run, keys/duress.go). SECURITY.md says what it does not hide.

// duressFlags are init's: whether to set a duress passphrase, and where
// to read it for scripts.
type duressFlags struct {
	Duress               bool   `help:"Also set a duress passphrase: given instead of the passphrase, it shows an empty decoy and silently releases your armed check-in plan."`
	DuressPassphraseFile string `name:"duress-passphrase-file" help:"Read the duress passphrase from this file (first line)." placeholder:"FILE"`
}

var errNoDuressPassphrase = errors.New("no duress passphrase: not a terminal, and neither --duress-passphrase-file nor BEACON_DURESS_PASSPHRASE is set")

// duressPassphrase asks for the duress passphrase if one is to be set,
// and refuses one equal to pw.
func (d *duressFlags) duressPassphrase(e *env, pw []byte) ([]byte, error) {
	if !d.Duress {
		return nil, nil
	}
	dpw, err := readSecret(e, d.DuressPassphraseFile, "BEACON_DURESS_PASSPHRASE", "Duress passphrase (not your passphrase)", true)
	if errors.Is(err, errNoPassphrase) {
		err = withHint(errNoDuressPassphrase, "for scripts, set BEACON_DURESS_PASSPHRASE or pass --duress-passphrase-file FILE")
	}
	if err != nil {
		return nil, err
	}
	if bytes.Equal(dpw, pw) {
		return nil, withHint(keys.ErrSamePassphrase, "choose a second passphrase you could give up under pressure")
	}
	return dpw, nil
}

// writeKey writes the key file, with a decoy when a duress passphrase is
// given.
func writeKey(path string, kr *keys.Keyring, pw, dpw []byte, overwrite bool) error {
	if dpw == nil {
		return keys.WriteKeyFile(path, kr, pw, overwrite)
	}
	decoy, err := keys.NewDecoy(kr)
	if err != nil {
		return err
	}
	return keys.WriteDuressKeyFile(path, kr, pw, decoy, dpw, overwrite)
}

// readSecret reads a passphrase from file, then the environment variable
// env, then a prompt on the terminal with echo off (twice with confirm).
func readSecret(e *env, file, envName, prompt string, confirm bool) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		line, _, _ := bytes.Cut(b, []byte("\n"))
		return bytes.TrimSuffix(line, []byte("\r")), nil
	}
	if s := e.getenv(envName); s != "" {
		return []byte(s), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, errNoPassphrase
	}
	defer tty.Close()
	fmt.Fprintf(tty, "%s: ", prompt)
	pw, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	if confirm {
		fmt.Fprintf(tty, "Again, to confirm: ")
		again, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("the two passphrases differ")
		}
	}
	return pw, nil
}

// stateDirFor is where kr's state lives: home/state, or for a decoy a
// directory of its own outside home, named by the decoy's identity and
// nothing else, so a decoy finds the same (empty, or what it did) state
// each time and never touches the defender's.
func stateDirFor(home string, kr *keys.Keyring) string {
	if !kr.Decoy {
		return filepath.Join(home, "state")
	}
	h := sha256.Sum256(kr.Identity.DeriveKey("decoy-state"))
	dir := filepath.Join(os.TempDir(), "beacon-"+hex.EncodeToString(h[:8]))
	// The directory the device holds is public: the decoy shows the same.
	for _, name := range []string{"directory.yaml", "directory.version"} {
		if b, err := os.ReadFile(filepath.Join(home, "state", name)); err == nil {
			if os.MkdirAll(dir, 0o700) == nil {
				if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
					os.WriteFile(filepath.Join(dir, name), b, 0o600)
				}
			}
		}
	}
	return dir
}

// duressRelease releases the armed plan from a decoy, saying nothing: it
// gives the relay the command's timeout, as the command then does, and a
// relay out of reach leaves the plan armed (the next duress unlock tries
// again).
func (f *clientFlags) duressRelease(c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), max(f.Timeout, 5*time.Second))
	defer cancel()
	if c.WaitConnected(ctx) == nil {
		c.DuressRelease(ctx)
	}
}

type duressCmd struct {
	passphraseFlags
	DuressPassphraseFile string `name:"duress-passphrase-file" help:"Read the duress passphrase from this file (first line)." placeholder:"FILE"`
}

// Run sets (or replaces) the duress passphrase of this device's key file.
func (c *duressCmd) Run(e *env) error {
	home, err := beaconHome(e)
	if err != nil {
		return err
	}
	if key, err := hasKey(home); err != nil || !key {
		if err == nil {
			err = withHint(errNotInitialised, "run: beacon init --relay URL --root-fp FP --duress")
		}
		return err
	}
	path := filepath.Join(home, "key")
	pw, err := c.passphrase(e, path, false)
	if err != nil {
		return err
	}
	kr, err := c.loadWith(path, pw)
	if err != nil {
		return err
	}
	if kr.Decoy {
		// What a decoy would write over would be the defender's keyring.
		return errors.New("the key file cannot be changed now; try again later")
	}
	d := duressFlags{Duress: true, DuressPassphraseFile: c.DuressPassphraseFile}
	dpw, err := d.duressPassphrase(e, pw)
	if err != nil {
		return err
	}
	if err := writeKey(path, kr, pw, dpw, true); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "duress passphrase set. Given instead of your passphrase, it shows an empty inbox and releases your armed check-in plan to the missions without a word.")
	fmt.Fprintln(e.stdout, "note: it releases only a plan armed from now on: if one is armed, disarm it and arm it again (beacon checkin disarm, beacon checkin arm).")
	return nil
}

// loadWith opens a key file with a passphrase already read.
func (p *passphraseFlags) loadWith(path string, pw []byte) (*keys.Keyring, error) {
	kr, err := keys.LoadKeyFile(path, pw)
	if errors.Is(err, keys.ErrWrongPassphrase) {
		return nil, withHint(err, "check the passphrase (BEACON_PASSPHRASE or --passphrase-file if you use one)")
	}
	return kr, err
}
