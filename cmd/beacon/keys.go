package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/keys"
)

type keysCmd struct {
	Gen  keysGenCmd  `cmd:"" help:"Generate a new identity in an encrypted key file."`
	Show keysShowCmd `cmd:"" help:"Show a key file's public identity, fingerprint and safety number."`
}

type keysGenCmd struct {
	Out   string `required:"" help:"Key file to write (mode 0600)." placeholder:"FILE"`
	Role  string `default:"defender" enum:"defender,mission,partner,bridge,headquarters,relay,root" help:"What the key is for: ${enum}."`
	Force bool   `help:"Replace an existing key file (its old key is lost)."`
	passphraseFlags
}

func (c *keysGenCmd) Run(e *env) error {
	role, err := keys.ParseRole(c.Role)
	if err != nil {
		return err
	}
	pw, err := c.passphrase(e, c.Out, true)
	if err != nil {
		return err
	}
	kr, err := keys.NewKeyring(role)
	if err != nil {
		return err
	}
	// A key's directory is private to its owner, like the key itself.
	if err := os.MkdirAll(filepath.Dir(c.Out), 0o700); err != nil {
		return err
	}
	if err := keys.WriteKeyFile(c.Out, kr, pw, c.Force); err != nil {
		return err
	}
	pub := kr.Identity.Public()
	fmt.Fprintf(e.stdout, "wrote %s key to %s\nfingerprint:   %s\nsafety number: %s\n", role, c.Out, pub.Fingerprint(), pub.SafetyNumber())
	return nil
}

type keysShowCmd struct {
	File string `arg:"" help:"Key file."`
	QR   bool   `name:"qr" help:"Also draw the fingerprint as a QR code."`
	// Only the fingerprint: what a relay config's root_fingerprint and
	// beacon init --root-fp take, without cutting it out of the YAML.
	FingerprintOnly bool `name:"fingerprint" help:"Print only the fingerprint (bcn-fp:…), as root_fingerprint and --root-fp take it."`
	passphraseFlags
}

// publicView is what keys show prints: YAML, so a mission's output can be
// pasted into the roster.
type publicView struct {
	Role         keys.Role             `yaml:"role"`
	Identity     *keys.PublicIdentity  `yaml:"identity"`
	Fingerprint  keys.Fingerprint      `yaml:"fingerprint"`
	SafetyNumber string                `yaml:"safety_number"`
	NKey         string                `yaml:"nkey"`
	InboxKeys    []keys.SignedInboxKey `yaml:"inbox_keys,omitempty"`
	Created      time.Time             `yaml:"created"`
}

func (c *keysShowCmd) Run(e *env) error {
	kr, err := c.loadKeyring(e, c.File)
	if err != nil {
		return err
	}
	pub := kr.Identity.Public()
	if c.FingerprintOnly {
		fmt.Fprintln(e.stdout, pub.Fingerprint())
		return nil
	}
	v := publicView{Role: kr.Role, Identity: pub, Fingerprint: pub.Fingerprint(), SafetyNumber: pub.SafetyNumber(),
		NKey: kr.NKeyPublic(), Created: kr.Created}
	for _, in := range kr.Inboxes {
		v.InboxKeys = append(v.InboxKeys, in.Signed)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	e.stdout.Write(out)
	if c.QR {
		q, err := pub.QR()
		if err != nil {
			return err
		}
		fmt.Fprint(e.stdout, q)
	}
	return nil
}
