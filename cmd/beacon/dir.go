package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/keys"
)

type dirCmd struct {
	Add    dirAddCmd    `cmd:"" help:"Add a mission, partner or bridge to a roster, from its 'beacon keys show' output."`
	Remove dirRemoveCmd `cmd:"" help:"Remove a mission, partner, bridge or relay from a roster."`
	Sign   dirSignCmd   `cmd:"" help:"Sign a roster with the offline root key."`
	Verify dirVerifyCmd `cmd:"" help:"Verify a signed directory against the root fingerprint."`
}

// expiryWarning is how close to its expiry a newly signed directory earns
// a warning: clients refuse it once expired, and a day is about the least
// it takes to hand a new one to every relay.
const expiryWarning = 24 * time.Hour

type dirSignCmd struct {
	Roster   string        `arg:"" help:"Roster YAML (see configs/roster.yaml)." predictor:"file"`
	Root     string        `required:"" help:"Root key file." placeholder:"KEY" predictor:"file"`
	Out      string        `required:"" help:"Signed directory to write." placeholder:"FILE" predictor:"file"`
	Previous string        `help:"The previous signed directory: its hash is chained in and the serial follows it." placeholder:"FILE" predictor:"file"`
	Serial   uint64        `help:"Serial number (default: the roster's, else the previous one's plus one, else 1)."`
	ValidFor time.Duration `name:"valid-for" default:"2160h" help:"How long clients trust this version when the roster sets no expiry."`
	passphraseFlags
}

func (c *dirSignCmd) Run(e *env) error {
	data, err := os.ReadFile(c.Roster)
	if err != nil {
		return err
	}
	r, err := keys.ParseRoster(data)
	if err != nil {
		return err
	}
	if c.Previous != "" {
		prev, err := os.ReadFile(c.Previous)
		if err != nil {
			return err
		}
		pr, err := keys.ParseRoster(stripSignature(prev))
		if err != nil {
			return fmt.Errorf("previous directory: %w", err)
		}
		r.Previous = keys.HashString(sha256.Sum256(prev))
		if r.Serial <= pr.Serial {
			r.Serial = pr.Serial + 1
		}
	}
	if c.Serial != 0 {
		r.Serial = c.Serial
	}
	if r.Serial == 0 {
		r.Serial = 1
	}
	if r.Issued.IsZero() {
		r.Issued = time.Now()
	}
	if r.Expires.IsZero() {
		r.Expires = r.Issued.Add(c.ValidFor)
	}
	kr, err := c.loadKeyring(e, c.Root)
	if err != nil {
		return err
	}
	if kr.Role != keys.RoleRoot {
		return withHint(fmt.Errorf("%s is a %s key, not a root key", c.Root, kr.Role), "generate one with: beacon keys gen --role root --out root.key")
	}
	signed, err := keys.SignDirectory(r, kr.Identity)
	if err != nil {
		return err
	}
	if err := keys.WriteFileAtomic(c.Out, signed, 0o644, true); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "signed directory serial %d (%d missions), valid until %s\nroot fingerprint: %s\n",
		r.Serial, len(r.Missions), r.Expires.UTC().Format(time.RFC3339), kr.Identity.Public().Fingerprint())
	switch left := time.Until(r.Expires); {
	case left <= 0:
		fmt.Fprintf(e.stderr, "warning: this directory expired at %s: clients and relays will refuse it\n",
			r.Expires.UTC().Format(time.RFC3339))
	case left < expiryWarning:
		fmt.Fprintf(e.stderr, "warning: this directory expires in %s: sign the next one before then\n", left.Round(time.Minute))
	}
	return nil
}

// stripSignature returns the roster part of a signed directory file.
func stripSignature(b []byte) []byte {
	if i := strings.LastIndex(string(b), "\n# beacon-directory-signature: "); i >= 0 {
		return b[:i+1]
	}
	return b
}

type dirVerifyCmd struct {
	File   string `arg:"" help:"Signed directory."`
	RootFP string `name:"root-fp" required:"" help:"The root fingerprint you trust (bcn-fp:…)." placeholder:"FP"`
}

func (c *dirVerifyCmd) Run(e *env) error {
	fp, err := keys.ParseFingerprint(c.RootFP)
	if err != nil {
		return withHint(err, "the root fingerprint is printed by 'beacon dir sign' and 'beacon keys show ROOT.key'")
	}
	data, err := os.ReadFile(c.File)
	if err != nil {
		return err
	}
	d, err := keys.VerifyDirectory(data, fp, time.Now(), nil)
	if err != nil {
		if errors.Is(err, keys.ErrUntrustedRoot) {
			return withHint(err, "check the fingerprint with headquarters, in person or over a channel you trust")
		}
		return err
	}
	fmt.Fprintf(e.stdout, "ok: directory serial %d, issued %s, expires %s\n", d.Serial,
		d.Issued.Format(time.RFC3339), d.Expires.Format(time.RFC3339))
	fmt.Fprintf(e.stdout, "%d missions, %d partners, %d bridges, %d relays; countries covered: %s\n",
		len(d.Missions), len(d.Partners), len(d.Bridges), len(d.Relays), strings.Join(d.Countries(), " "))
	return nil
}
