package console

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/keys"
)

// Config is configs/console.yaml: which mission this is, where its key
// and state are, the relay, the pinned root, the console's address and
// the mission's officers.
type Config struct {
	// Mission is the mission's id in the directory; the key must be its.
	Mission string `yaml:"mission"`
	// Key is the mission's key file (beacon keys gen --role mission).
	Key string `yaml:"key"`
	// StateDir holds the encrypted case store and the client's state.
	StateDir string `yaml:"state_dir"`
	// Relays are the relay URLs, tried in turn.
	Relays []string `yaml:"relays"`
	// RootFingerprint pins the directory's root (bcn-fp:…); or RootFile,
	// a file holding it, or the output of `beacon keys show` for the root
	// key, as headquarters hands it over. Exactly one of the two.
	RootFingerprint string `yaml:"root_fingerprint,omitempty"`
	RootFile        string `yaml:"root_file,omitempty"`
	// Directory is a signed directory obtained from headquarters, used
	// until the relay serves a newer one. Optional.
	Directory string `yaml:"directory,omitempty"`
	// Listen is the console's address: loopback only.
	Listen string `yaml:"listen"`
	// Officers are the people who work cases; at least one.
	Officers []Officer `yaml:"officers"`
	// Poll is how often the console looks for changes made by the
	// terminal (beacon mission …) in the shared store.
	Poll time.Duration `yaml:"poll,omitempty"`
}

// An Officer works cases at the mission.
type Officer struct {
	// ID is how the console and the terminal name the officer.
	ID string `yaml:"id" json:"id"`
	// Name is shown to colleagues.
	Name string `yaml:"name" json:"name"`
	// Liaison is what a defender is told when the officer is their
	// liaison or acknowledges their alert: a role, such as "Human rights
	// officer, Embassy of the Netherlands".
	Liaison string `yaml:"liaison" json:"liaison"`
}

// Defaults.
const (
	DefaultListen = "127.0.0.1:8480"
	DefaultPoll   = time.Second
)

var officerID = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var errs config.Errors
	if c.Mission == "" {
		errs.Add("mission", "required: the mission's id in the directory")
	}
	if c.Key == "" {
		errs.Add("key", "required: the mission's key file")
	}
	if c.StateDir == "" {
		errs.Add("state_dir", "required")
	}
	if len(c.Relays) == 0 {
		errs.Add("relays", "at least one relay URL")
	}
	for i, u := range c.Relays {
		pu, err := url.Parse(u)
		if err != nil || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme) || pu.Host == "" {
			errs.Add(fmt.Sprintf("relays[%d]", i), "%q is not a nats://, tls://, ws:// or wss:// URL", u)
		}
	}
	switch {
	case c.RootFingerprint == "" && c.RootFile == "":
		errs.Add("root_fingerprint", "required (or root_file): the root fingerprint headquarters gave you")
	case c.RootFingerprint != "" && c.RootFile != "":
		errs.Add("root_file", "give root_fingerprint or root_file, not both")
	case c.RootFingerprint != "":
		if _, err := keys.ParseFingerprint(c.RootFingerprint); err != nil {
			errs.Add("root_fingerprint", "%v", err)
		}
	}
	if err := checkLoopback(c.Listen); err != nil {
		errs.Add("listen", "%v", err)
	}
	if len(c.Officers) == 0 {
		errs.Add("officers", "at least one officer")
	}
	ids := map[string]bool{}
	for i, o := range c.Officers {
		at := fmt.Sprintf("officers[%d]", i)
		if !officerID.MatchString(o.ID) {
			errs.Add(at+".id", "1-32 of a-z, 0-9, '.', '_' and '-'")
		} else if ids[o.ID] {
			errs.Add(at+".id", "%q listed twice", o.ID)
		}
		ids[o.ID] = true
		if err := checkLine(o.Name, 100); err != nil {
			errs.Add(at+".name", "%v", err)
		}
		if err := checkLine(o.Liaison, 200); err != nil {
			errs.Add(at+".liaison", "%v", err)
		}
	}
	if c.Poll < 0 {
		errs.Add("poll", "must not be negative")
	}
	return errs.Err()
}

// checkLine checks a one-line name shown to people.
func checkLine(s string, max int) error {
	if s == "" || len([]rune(s)) > max {
		return fmt.Errorf("1-%d characters", max)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
		return errors.New("control or formatting characters are not allowed")
	}
	return nil
}

// checkLoopback refuses an address that is not loopback with a port: the
// console holds the mission's keys and is served to this workstation
// only.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("%q is not host:port", addr)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: the console serves this workstation only (127.0.0.1 or ::1)", host)
	}
	return nil
}

// Officer returns the officer with id, or nil.
func (c *Config) Officer(id string) *Officer {
	for i := range c.Officers {
		if c.Officers[i].ID == id {
			return &c.Officers[i]
		}
	}
	return nil
}

// LoadConfig reads and validates a console config; relative paths are
// taken relative to the file, ~/ is the home directory.
func LoadConfig(path string) (*Config, error) {
	c, _, err := loadConfig(path)
	return c, err
}

func loadConfig(path string) (*Config, *config.Source, error) {
	var c Config
	src, err := config.Load(path, &c, func() {
		if c.Listen == "" {
			c.Listen = DefaultListen
		}
		if c.Poll == 0 {
			c.Poll = DefaultPoll
		}
		config.ResolvePaths(config.Dir(path), &c.Key, &c.StateDir, &c.RootFile, &c.Directory)
	})
	if err != nil {
		return nil, src, err
	}
	return &c, src, nil
}

// Root returns the pinned root fingerprint, read from RootFile if that is
// how it is given.
func (c *Config) Root() (keys.Fingerprint, error) {
	if c.RootFile == "" {
		return keys.ParseFingerprint(c.RootFingerprint)
	}
	b, err := os.ReadFile(c.RootFile)
	if err != nil {
		return keys.Fingerprint{}, err
	}
	s := strings.TrimSpace(string(b))
	if fp, err := keys.ParseFingerprint(s); err == nil {
		return fp, nil
	}
	// The output of beacon keys show: a "fingerprint:" line.
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "fingerprint:"); ok {
			return keys.ParseFingerprint(strings.TrimSpace(v))
		}
	}
	return keys.Fingerprint{}, fmt.Errorf("%s holds no root fingerprint (bcn-fp:…, or the output of beacon keys show)", c.RootFile)
}

// CheckFile runs every check a start would make short of the passphrase
// and the relay: the config, the root fingerprint, the key file (present,
// mode 0600), the directory file (verifies against the root, names this
// mission), and that the state directory can be created. Problems are
// located at their lines.
func CheckFile(path string) error {
	c, src, err := loadConfig(path)
	if err != nil {
		return err
	}
	return src.Locate(Check(c, time.Now()))
}

// Check is CheckFile on a config already loaded.
func Check(c *Config, now time.Time) error {
	if err := c.Validate(); err != nil {
		return err
	}
	var errs config.Errors
	fp, err := c.Root()
	if err != nil {
		field := "root_fingerprint"
		if c.RootFile != "" {
			field = "root_file"
		}
		errs.AddErr(field, err)
	}
	if st, err := os.Stat(c.Key); err != nil {
		errs.AddErr("key", err)
	} else if st.Mode().Perm()&0o077 != 0 {
		errs.Add("key", "%s is readable by others (mode %o); chmod 600 it", c.Key, st.Mode().Perm())
	}
	if st, err := os.Stat(c.StateDir); err == nil && !st.IsDir() {
		errs.Add("state_dir", "%s is not a directory", c.StateDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs.AddErr("state_dir", err)
	}
	if c.Directory != "" && err == nil {
		b, rerr := os.ReadFile(c.Directory)
		if rerr != nil {
			errs.AddErr("directory", rerr)
		} else if d, verr := keys.VerifyDirectory(b, fp, now, nil); verr != nil {
			errs.AddErr("directory", fmt.Errorf("%s: %w", c.Directory, verr))
		} else if !slices.ContainsFunc(d.Missions, func(m keys.Mission) bool { return m.ID == c.Mission }) {
			errs.Add("mission", "%q is not a mission in %s", c.Mission, c.Directory)
		}
	}
	return errs.Err()
}
