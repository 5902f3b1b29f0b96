package relay

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/yamlconf"
	"github.com/hrdbeacon/beacon/keys"
)

// Config is a relay's configuration, as read from YAML by [LoadConfig].
// Every field is documented in configs/relay.yaml.
type Config struct {
	// ServerName names this node; unique within a cluster.
	ServerName string `yaml:"server_name"`
	// Listen is the NATS client address. Port 0 picks a free port.
	Listen string `yaml:"listen"`
	// TLS, when set, makes the client port require TLS.
	TLS *TLSConfig `yaml:"tls"`
	// WebSocket is an optional second listener speaking NATS over
	// WebSocket, for clients that can only get HTTPS through.
	WebSocket *WebSocketConfig `yaml:"websocket"`
	// Monitor is the address of the HTTP endpoint serving /metrics and
	// /healthz; empty for none.
	Monitor string `yaml:"monitor"`
	// DataDir holds JetStream's storage and the lock file.
	DataDir string `yaml:"data_dir"`
	// Directory is the signed directory that says who is a mission, a
	// bridge or a partner. Without it every connection is a walk-in
	// defender (a local trial).
	Directory *DirectoryConfig `yaml:"directory"`
	Storage   StorageConfig    `yaml:"storage"`
	Limits    LimitsConfig     `yaml:"limits"`
	Cluster   *ClusterConfig   `yaml:"cluster"`
	Log       LogConfig        `yaml:"log"`
}

// TLSConfig names a certificate and key in PEM files.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// WebSocketConfig configures the WebSocket listener.
type WebSocketConfig struct {
	Listen string     `yaml:"listen"`
	TLS    *TLSConfig `yaml:"tls"`
	// NoTLS allows plain ws:// — only for loopback, or behind a proxy that
	// terminates TLS. It must be said explicitly.
	NoTLS bool `yaml:"no_tls"`
}

// DirectoryConfig locates the signed directory and pins its root.
type DirectoryConfig struct {
	File            string `yaml:"file"`
	RootFingerprint string `yaml:"root_fingerprint"`
}

// SyncPolicy is when JetStream fsyncs what it stores.
type SyncPolicy string

const (
	// SyncAlways fsyncs every write before the publisher is acknowledged:
	// an acknowledged alert survives kill -9 and a crash of the host.
	SyncAlways SyncPolicy = "always"
	// SyncInterval writes every message to the OS before acknowledging it
	// (it survives kill -9 of the relay) but fsyncs only every
	// sync_interval: a crash of the host can lose what was acknowledged
	// in the last interval. Use it with an R3 cluster, where a message is
	// acknowledged only once a quorum of nodes holds it.
	SyncInterval SyncPolicy = "interval"
)

// StorageConfig sets the streams' limits.
type StorageConfig struct {
	Sync         SyncPolicy    `yaml:"sync"`
	SyncInterval time.Duration `yaml:"sync_interval"`
	// Retention is each stream's MaxAge: how long the relay keeps what it
	// stores. It bounds what a seized relay holds.
	Retention time.Duration `yaml:"retention"`
	// MaxBytes is each stream's size limit. A full stream refuses new
	// messages (the publisher is told); it never drops stored ones.
	MaxBytes yamlconf.ByteSize `yaml:"max_bytes"`
	// MaxMessageSize is the largest message the relay accepts.
	MaxMessageSize yamlconf.ByteSize `yaml:"max_message_size"`
	// DedupWindow is how long message ids are remembered to drop
	// duplicates; it is also the freshness window: an envelope created
	// longer ago than this is refused as stale.
	DedupWindow time.Duration `yaml:"dedup_window"`
	// Replicas is the stream replication factor: 1, or 3 in a cluster.
	Replicas int `yaml:"replicas"`
	// RedeliverAfter is how long an alert fetched by a mission and not
	// settled waits before the relay offers it again: a mission that
	// crashed between fetching and keeping an alert gets it back after
	// this.
	RedeliverAfter time.Duration `yaml:"redeliver_after"`
}

// LimitsConfig sets per-connection limits.
type LimitsConfig struct {
	// PublishRate is the sustained publishes per second one walk-in
	// defender's connection key may make; PublishBurst the burst above it.
	PublishRate  float64 `yaml:"publish_rate"`
	PublishBurst int     `yaml:"publish_burst"`
	// InstitutionPublishRate and InstitutionPublishBurst are the same for
	// the missions, partners and bridges of the directory, which answer
	// many defenders.
	InstitutionPublishRate  float64 `yaml:"institution_publish_rate"`
	InstitutionPublishBurst int     `yaml:"institution_publish_burst"`
	// ServiceRate and ServiceBurst limit each key's service requests:
	// fetches, acks, news, the directory.
	ServiceRate  float64 `yaml:"service_rate"`
	ServiceBurst int     `yaml:"service_burst"`
	// MaxConnections bounds concurrent client connections.
	MaxConnections int `yaml:"max_connections"`
}

// ClusterConfig joins this relay to a NATS cluster.
type ClusterConfig struct {
	Name   string   `yaml:"name"`
	Listen string   `yaml:"listen"`
	Routes []string `yaml:"routes"`
}

// LogConfig sets logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Defaults.
const (
	DefaultListen         = "127.0.0.1:4222"
	defaultRetention      = 30 * 24 * time.Hour
	defaultMaxBytes       = 1 << 30
	defaultDedupWindow    = 24 * time.Hour
	defaultPublishRate    = 20
	defaultPublishBurst   = 100
	defaultInstRate       = 500
	defaultInstBurst      = 2000
	defaultServiceRate    = 200
	defaultServiceBurst   = 1000
	defaultMaxConnections = 10000
	defaultSyncInterval   = time.Second
	defaultRedeliverAfter = 30 * time.Second

	// maxClockSkew is how far in the future an envelope's created time may
	// be: senders' clocks drift.
	maxClockSkew = 10 * time.Minute
)

// DefaultConfig is the configuration of "beacon relay" without a config
// file: a local trial on loopback, data under dataDir, no directory.
func DefaultConfig(dataDir string) *Config {
	c := &Config{ServerName: "beacon-local", Listen: DefaultListen, DataDir: dataDir,
		WebSocket: &WebSocketConfig{Listen: "127.0.0.1:4223", NoTLS: true}}
	c.applyDefaults()
	return c
}

// DefaultDataDir is where "beacon relay" keeps its data without a config:
// $XDG_STATE_HOME/beacon/relay, or ~/.local/state/beacon/relay.
func DefaultDataDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "beacon", "relay"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "state", "beacon", "relay"), nil
}

func (c *Config) applyDefaults() {
	s, l := &c.Storage, &c.Limits
	setDefault(&s.Sync, SyncAlways)
	setDefault(&s.SyncInterval, defaultSyncInterval)
	setDefault(&s.Retention, defaultRetention)
	setDefault(&s.MaxBytes, defaultMaxBytes)
	setDefault(&s.MaxMessageSize, envelope.MaxSize)
	setDefault(&s.DedupWindow, defaultDedupWindow)
	setDefault(&s.Replicas, 1)
	setDefault(&s.RedeliverAfter, defaultRedeliverAfter)
	setDefault(&l.PublishRate, defaultPublishRate)
	setDefault(&l.PublishBurst, defaultPublishBurst)
	setDefault(&l.InstitutionPublishRate, defaultInstRate)
	setDefault(&l.InstitutionPublishBurst, defaultInstBurst)
	setDefault(&l.ServiceRate, defaultServiceRate)
	setDefault(&l.ServiceBurst, defaultServiceBurst)
	setDefault(&l.MaxConnections, defaultMaxConnections)
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "text")
}

// setDefault sets *p to v if the config left it at its zero value.
func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// LoadConfig reads and validates a relay config file. Paths in it may
// start with "~/" (the user's home) or be relative to the file. It reports every
// problem at once, each with its line and field.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, data)
}

// ParseConfig is LoadConfig on bytes already read; file names them in
// errors. Relative paths in the config are taken relative to the file.
func ParseConfig(file string, data []byte) (*Config, error) {
	var c Config
	chk, err := yamlconf.Decode(file, data, &c)
	if chk.Fatal() {
		return nil, err
	}
	c.applyDefaults()
	c.validate(chk)
	if err := chk.Err(); err != nil {
		return nil, err
	}
	base := filepath.Dir(file)
	home, _ := os.UserHomeDir()
	rel := func(p *string) {
		if rest, ok := strings.CutPrefix(*p, "~/"); ok && home != "" {
			*p = filepath.Join(home, rest)
		}
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	rel(&c.DataDir)
	if c.Directory != nil {
		rel(&c.Directory.File)
	}
	for _, t := range []*TLSConfig{c.TLS, wsTLS(c.WebSocket)} {
		if t != nil {
			rel(&t.Cert)
			rel(&t.Key)
		}
	}
	return &c, nil
}

func wsTLS(w *WebSocketConfig) *TLSConfig {
	if w == nil {
		return nil
	}
	return w.TLS
}

func (c *Config) validate(chk *yamlconf.Checker) {
	if c.ServerName == "" {
		chk.Errorf("server_name", "required")
	}
	checkAddr(chk, "listen", c.Listen, true)
	if c.DataDir == "" {
		chk.Errorf("data_dir", "required")
	}
	checkTLS(chk, "tls", c.TLS)
	if w := c.WebSocket; w != nil {
		checkAddr(chk, "websocket.listen", w.Listen, true)
		checkTLS(chk, "websocket.tls", w.TLS)
		switch {
		case w.TLS == nil && !w.NoTLS:
			chk.Errorf("websocket", "needs tls (cert and key), or no_tls: true behind a proxy that terminates TLS")
		case w.TLS != nil && w.NoTLS:
			chk.Errorf("websocket.no_tls", "cannot be set together with tls")
		}
	}
	if c.Monitor != "" {
		checkAddr(chk, "monitor", c.Monitor, false)
	}
	if d := c.Directory; d != nil {
		if d.File == "" {
			chk.Errorf("directory.file", "required")
		}
		if d.RootFingerprint == "" {
			chk.Errorf("directory.root_fingerprint", "required")
		} else if _, err := keys.ParseFingerprint(d.RootFingerprint); err != nil {
			chk.Errorf("directory.root_fingerprint", "%v", err)
		}
	}
	s := c.Storage
	if s.Sync != SyncAlways && s.Sync != SyncInterval {
		chk.Errorf("storage.sync", "%q is not always or interval", s.Sync)
	}
	if s.SyncInterval < 0 {
		chk.Errorf("storage.sync_interval", "must be positive")
	}
	if s.Retention < time.Hour {
		chk.Errorf("storage.retention", "must be at least 1h (got %s)", s.Retention)
	}
	if s.MaxBytes < 1<<20 {
		chk.Errorf("storage.max_bytes", "must be at least 1MiB")
	}
	if s.MaxMessageSize < envelope.MaxSize {
		chk.Errorf("storage.max_message_size", "must be at least %d bytes, the largest envelope", envelope.MaxSize)
	} else if s.MaxMessageSize > 8<<20 {
		chk.Errorf("storage.max_message_size", "must be at most 8MiB")
	}
	if s.DedupWindow < time.Minute || s.DedupWindow > s.Retention {
		chk.Errorf("storage.dedup_window", "must be between 1m and the retention")
	}
	if s.RedeliverAfter < time.Second || s.RedeliverAfter > time.Hour {
		chk.Errorf("storage.redeliver_after", "must be between 1s and 1h")
	}
	if s.Replicas != 1 && s.Replicas != 3 {
		chk.Errorf("storage.replicas", "must be 1 or 3")
	}
	if s.Replicas == 3 && c.Cluster == nil {
		chk.Errorf("storage.replicas", "3 replicas need a cluster section")
	}
	l := c.Limits
	for _, r := range []struct {
		field string
		rate  float64
		burst int
	}{{"publish", l.PublishRate, l.PublishBurst}, {"institution_publish", l.InstitutionPublishRate, l.InstitutionPublishBurst},
		{"service", l.ServiceRate, l.ServiceBurst}} {
		if r.rate < 0 {
			chk.Errorf("limits."+r.field+"_rate", "must be positive")
		}
		if r.burst < 1 {
			chk.Errorf("limits."+r.field+"_burst", "must be at least 1")
		}
	}
	if l.MaxConnections < 1 {
		chk.Errorf("limits.max_connections", "must be at least 1")
	}
	if cl := c.Cluster; cl != nil {
		if cl.Name == "" {
			chk.Errorf("cluster.name", "required")
		}
		checkAddr(chk, "cluster.listen", cl.Listen, true)
		for i, r := range cl.Routes {
			if u, err := url.Parse(r); err != nil || u.Scheme != "nats" || u.Host == "" {
				chk.Errorf(fmt.Sprintf("cluster.routes[%d]", i), "%q is not a nats://host:port URL", r)
			}
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		chk.Errorf("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		chk.Errorf("log.format", "%q is not text or json", c.Log.Format)
	}
}

func checkAddr(chk *yamlconf.Checker, field, addr string, required bool) {
	if addr == "" {
		if required {
			chk.Errorf(field, "required (host:port)")
		}
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		chk.Errorf(field, "%q is not host:port", addr)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		chk.Errorf(field, "port %q is not 0–65535", port)
	}
	if host == "" {
		chk.Errorf(field, "give the host explicitly (127.0.0.1 for loopback, 0.0.0.0 for every interface)")
	}
}

func checkTLS(chk *yamlconf.Checker, field string, t *TLSConfig) {
	if t == nil {
		return
	}
	if t.Cert == "" {
		chk.Errorf(field+".cert", "required")
	}
	if t.Key == "" {
		chk.Errorf(field+".key", "required")
	}
}

// splitAddr splits a validated host:port; port 0 becomes NATS's "random".
func splitAddr(addr string) (string, int) {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	if p == 0 {
		p = -1
	}
	return host, p
}
