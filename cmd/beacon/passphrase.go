package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/hrdbeacon/beacon/keys"
)

// passphraseFlags are shared by every command that opens or writes a key
// file. The passphrase comes from --passphrase-file, then BEACON_PASSPHRASE,
// then a prompt on the terminal with echo off. It is never a flag value:
// flags show up in ps and shell history.
type passphraseFlags struct {
	PassphraseFile string `name:"passphrase-file" help:"Read the key file passphrase from this file (first line)." placeholder:"FILE"`
}

var errNoPassphrase = errors.New("no passphrase: not a terminal, and neither --passphrase-file nor BEACON_PASSPHRASE is set")

// passphrase returns the passphrase for the key file at path. With confirm
// (a new key file) a prompt asks twice.
func (p *passphraseFlags) passphrase(e *env, path string, confirm bool) ([]byte, error) {
	pw, err := readSecret(e, p.PassphraseFile, "BEACON_PASSPHRASE", "Passphrase for "+path, confirm)
	if errors.Is(err, errNoPassphrase) {
		return nil, withHint(errNoPassphrase, "for scripts, set BEACON_PASSPHRASE or pass --passphrase-file FILE")
	}
	return pw, err
}

// loadKeyring opens a key file, with hints for the usual mistakes.
func (p *passphraseFlags) loadKeyring(e *env, path string) (*keys.Keyring, error) {
	pw, err := p.passphrase(e, path, false)
	if err != nil {
		return nil, err
	}
	kr, err := keys.LoadKeyFile(path, pw)
	switch {
	case errors.Is(err, keys.ErrWrongPassphrase):
		return nil, withHint(err, "check the passphrase (BEACON_PASSPHRASE or --passphrase-file if you use one)")
	case errors.Is(err, keys.ErrKeyFileInsecure):
		return nil, withHint(err, "a key file must be readable by its owner only: chmod 600 %s", path)
	case err != nil:
		return nil, err
	}
	return kr, nil
}

var errNotConfirmed = errors.New("not confirmed; nothing was changed")

// confirm asks for a "yes" before something that cannot be undone, when a
// person is at the keyboard (stdin is a terminal). A script has no one to
// ask: the flag that asked for it is the consent, and the statement the
// caller printed before it the record.
func confirm(e *env, question string) error {
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return confirmOn(e.stdin, e.stderr, question)
}

func confirmOn(in io.Reader, out io.Writer, question string) error {
	fmt.Fprint(out, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		return errNotConfirmed
	}
	if strings.TrimSpace(line) != "yes" {
		return errNotConfirmed
	}
	return nil
}
