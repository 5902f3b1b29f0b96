package bridge

import (
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/country"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// Config is a bridge's configuration, as read from YAML by [LoadConfig] or
// built in code. It is a plain struct: [Config.Validate] checks it, [New]
// calls Validate, and [Check] also reads the files it names. Every field
// is documented in configs/bridge.yaml.
type Config struct {
	// Home is the relay of the network whose shared alerts the bridge
	// carries, and the bridge's keys there.
	Home HomeConfig `yaml:"home"`
	// Partners are the partner governments' relays, at least one.
	Partners []PartnerConfig `yaml:"partners"`
	// Metrics is the loopback address serving /metrics (Prometheus);
	// empty for none.
	Metrics string `yaml:"metrics"`
	// Batch is the most envelopes the bridge reads and forwards at once,
	// per partner.
	Batch int `yaml:"batch"`
	// Wait is how long one read of SHARED waits for something to arrive.
	Wait time.Duration `yaml:"wait"`
	// Timeout bounds one delivery to a partner's relay (and one publish to
	// the home relay): past it the batch is retried.
	Timeout time.Duration `yaml:"timeout"`
	// Retry spaces out the retries while a relay is unreachable.
	Retry RetryConfig `yaml:"retry"`
	// DirectoryRefresh is how often the home directory is fetched again.
	DirectoryRefresh time.Duration `yaml:"directory_refresh"`
	Log              LogConfig     `yaml:"log"`
}

// HomeConfig is the sending network's side.
type HomeConfig struct {
	// URLs of the home relay: nats://, tls://, ws:// or wss://.
	URLs []string `yaml:"urls"`
	// KeyFile is the bridge's key file (beacon keys gen --role bridge):
	// the identity that signs receipts and the NKey the home directory
	// lists for the bridge.
	KeyFile string `yaml:"key_file"`
	// RootFingerprint pins the root key of the home directory.
	RootFingerprint string `yaml:"root_fingerprint"`
	// Directory is an optional copy of the signed home directory, used
	// until the relay's is fetched and by --check.
	Directory string `yaml:"directory"`
	// CA, if set, is the PEM file of the CA that signs the home relay's
	// certificate (tls:// and wss:// URLs).
	CA string `yaml:"ca"`
}

// PartnerConfig is one partner government's relay.
type PartnerConfig struct {
	// ID is the partner's id in the home directory.
	ID string `yaml:"id"`
	// URLs of the partner's relay: nats:// or tls:// (the NATS
	// transport), ws:// or wss:// (the WebSocket transport, for relays
	// reachable only over HTTPS). One scheme family per partner.
	URLs []string `yaml:"urls"`
	// NKeyFile, if set, is the NKey seed the partner issued this bridge
	// (mode 0600); otherwise the bridge connects with its own NKey, which
	// the partner's directory then lists.
	NKeyFile string `yaml:"nkey_file"`
	// BridgeID is the bridge's id in the partner's directory; default:
	// its id in the home directory.
	BridgeID string `yaml:"bridge_id"`
	// Countries narrows the countries the home directory gives the
	// partner; empty means all of them.
	Countries []string `yaml:"countries"`
	// Priorities are the priorities forwarded; default all three. The
	// sender consented to sharing either way.
	Priorities []string `yaml:"priorities"`
	// CA, if set, is the PEM file of the CA that signs the partner relay's
	// certificate.
	CA string `yaml:"ca"`
}

// RetryConfig is the exponential backoff, with jitter, between retries.
type RetryConfig struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// LogConfig sets logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Defaults.
const (
	defaultBatch            = 256
	defaultWait             = 30 * time.Second
	defaultTimeout          = 10 * time.Second
	defaultRetryMin         = 250 * time.Millisecond
	defaultRetryMax         = 30 * time.Second
	defaultDirectoryRefresh = 5 * time.Minute
	// maxWait is the relay's longest long-poll.
	maxWait = proto.MaxFetchWait * time.Millisecond
)

func (c *Config) applyDefaults() {
	set := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Batch == 0 {
		c.Batch = defaultBatch
	}
	set(&c.Wait, defaultWait)
	set(&c.Timeout, defaultTimeout)
	set(&c.Retry.Min, defaultRetryMin)
	set(&c.Retry.Max, defaultRetryMax)
	set(&c.DirectoryRefresh, defaultDirectoryRefresh)
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	for i := range c.Partners {
		if len(c.Partners[i].Priorities) == 0 {
			c.Partners[i].Priorities = []string{"urgent", "high", "routine"}
		}
	}
}

// LoadConfig reads a bridge config file: strict decoding, defaults, paths
// made absolute ("~/" is the user's home, anything else relative is
// relative to the file), then [Config.Validate]. Every problem is a
// [config.Error] with its file, line and field.
func LoadConfig(path string) (*Config, error) {
	c, _, err := loadConfig(path, nil)
	return c, err
}

// ParseConfig is LoadConfig on bytes already read.
func ParseConfig(file string, data []byte) (*Config, error) {
	c, _, err := loadConfig(file, data)
	return c, err
}

func loadConfig(file string, data []byte) (*Config, *config.Source, error) {
	var c Config
	src, err := config.LoadOrParse(file, data, &c, func() {
		c.applyDefaults()
		c.resolvePaths(config.Dir(file))
	})
	if err != nil {
		return nil, src, err
	}
	return &c, src, nil
}

func (c *Config) resolvePaths(base string) {
	paths := []*string{&c.Home.KeyFile, &c.Home.Directory, &c.Home.CA}
	for i := range c.Partners {
		paths = append(paths, &c.Partners[i].NKeyFile, &c.Partners[i].CA)
	}
	config.ResolvePaths(base, paths...)
}

// Validate checks every field and reports every problem at once, as
// [config.Errors] naming each field by its path.
func (c *Config) Validate() error {
	var errs config.Errors
	checkURLs(&errs, "home.urls", c.Home.URLs)
	if c.Home.KeyFile == "" {
		errs.Add("home.key_file", "required: the bridge's key file (beacon keys gen --role bridge)")
	}
	if c.Home.RootFingerprint == "" {
		errs.Add("home.root_fingerprint", "required: bcn-fp:<64 hex digits>, the home directory's root, from headquarters")
	} else if _, err := keys.ParseFingerprint(c.Home.RootFingerprint); err != nil {
		errs.AddErr("home.root_fingerprint", err)
	}
	if len(c.Partners) == 0 {
		errs.Add("partners", "at least one")
	}
	ids := map[string]bool{}
	for i, p := range c.Partners {
		f := func(name string) string { return "partners[" + itoa(i) + "]." + name }
		if !proto.ValidID(p.ID) {
			errs.Add(f("id"), "%q is not a directory id (1–64 of a-z, 0-9 and -)", p.ID)
		} else if ids[p.ID] {
			errs.Add(f("id"), "%q is listed twice", p.ID)
		}
		ids[p.ID] = true
		if checkURLs(&errs, f("urls"), p.URLs) {
			if ws, nats := countSchemes(p.URLs); ws > 0 && nats > 0 {
				errs.Add(f("urls"), "mixes ws(s):// and nats:// or tls:// URLs: one transport per partner")
			}
		}
		if p.BridgeID != "" && !proto.ValidID(p.BridgeID) {
			errs.Add(f("bridge_id"), "%q is not a directory id", p.BridgeID)
		}
		for j, cc := range p.Countries {
			if !country.Known(cc) {
				errs.Add(f("countries")+"["+itoa(j)+"]", "%q is not a lower-case ISO 3166-1 alpha-2 code", cc)
			} else if slices.Index(p.Countries, cc) != j {
				errs.Add(f("countries")+"["+itoa(j)+"]", "%q listed twice", cc)
			}
		}
		for j, pr := range p.Priorities {
			if _, err := routing.ParsePriority(pr); err != nil {
				errs.Add(f("priorities")+"["+itoa(j)+"]", "%q is not urgent, high or routine", pr)
			} else if slices.Index(p.Priorities, pr) != j {
				errs.Add(f("priorities")+"["+itoa(j)+"]", "%q listed twice", pr)
			}
		}
	}
	if c.Metrics != "" {
		if host, port, err := net.SplitHostPort(c.Metrics); err != nil || port == "" {
			errs.Add("metrics", "%q is not host:port", c.Metrics)
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			// The metrics name partners and count what is shared with
			// each; put a proxy with authentication in front to publish them.
			errs.Add("metrics", "%s is not loopback: the bridge serves metrics on loopback only", c.Metrics)
		}
	}
	if c.Batch < 1 || c.Batch > proto.MaxFetch {
		errs.Add("batch", "%d: want 1–%d", c.Batch, proto.MaxFetch)
	}
	if c.Wait <= 0 || c.Wait > maxWait {
		errs.Add("wait", "%s: want more than 0 and at most %s", c.Wait, maxWait)
	}
	if c.Timeout <= 0 {
		errs.Add("timeout", "must be positive")
	}
	if c.Retry.Min <= 0 || c.Retry.Max < c.Retry.Min {
		errs.Add("retry", "min must be positive and max at least min")
	}
	if c.DirectoryRefresh < time.Minute {
		errs.Add("directory_refresh", "%s: at least 1m", c.DirectoryRefresh)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		errs.Add("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs.Add("log.format", "%q: want text or json", c.Log.Format)
	}
	return errs.Err()
}

// checkURLs checks a list of relay URLs; it reports whether they are all
// well formed.
func checkURLs(errs *config.Errors, field string, urls []string) bool {
	if len(urls) == 0 {
		errs.Add(field, "at least one relay URL")
		return false
	}
	ok := true
	for i, u := range urls {
		pu, err := url.Parse(u)
		if err != nil || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme) || pu.Host == "" || pu.User != nil {
			errs.Add(field+"["+itoa(i)+"]", "%q is not a nats://, tls://, ws:// or wss:// URL without credentials", u)
			ok = false
		}
	}
	return ok
}

func countSchemes(urls []string) (ws, nats int) {
	for _, u := range urls {
		if strings.HasPrefix(u, "ws://") || strings.HasPrefix(u, "wss://") {
			ws++
		} else {
			nats++
		}
	}
	return ws, nats
}

func itoa(i int) string { return strconv.Itoa(i) }

// priorities returns the parsed priorities of p (validated).
func (p *PartnerConfig) priorities() []routing.Priority {
	var out []routing.Priority
	for _, s := range p.Priorities {
		if pr, err := routing.ParsePriority(s); err == nil {
			out = append(out, pr)
		}
	}
	return out
}

// websocket reports whether the partner is reached over WebSocket.
func (p *PartnerConfig) websocket() bool {
	ws, _ := countSchemes(p.URLs)
	return ws > 0
}

// NewLogger builds the slog logger a config asks for, writing to w.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	o := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
