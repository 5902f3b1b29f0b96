package relay

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
)

// Config is a relay's configuration, as read from YAML by [LoadConfig] or
// built in code. It is a plain struct: [Config.Validate] checks it (and
// [New] calls Validate), [Check] also reads the files it names. Every field
// is documented in configs/relay.yaml.
//
// # Where TLS is required
//
// A listener that binds anything but loopback (127.0.0.0/8, ::1 or
// "localhost") must say how it is protected:
//
//   - listen, the NATS client port: tls.
//   - websocket: tls, or no_tls: true when a proxy in front terminates TLS
//     (no_tls is always an explicit statement, on loopback too).
//   - monitor: monitor_tls with a ca; scrapers present a client
//     certificate signed by it. The metrics count alerts per country and
//     priority, which is not for whoever reaches the port.
//   - cluster.listen: cluster.tls with a ca; nodes authenticate each other
//     with certificates signed by it. Plain routes are not authenticated:
//     anyone who reaches the port could join the cluster.
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
	// Monitor is the address of the HTTP endpoint serving /metrics,
	// /healthz, /varz and /jsz; empty for none.
	Monitor string `yaml:"monitor"`
	// MonitorTLS makes the monitor serve HTTPS to clients holding a
	// certificate signed by its CA. Required off loopback.
	MonitorTLS *MutualTLSConfig `yaml:"monitor_tls"`
	// DataDir holds JetStream's storage and the lock file.
	DataDir string `yaml:"data_dir"`
	// Directory is the signed directory that says who is a mission, a
	// bridge or a partner. Without it every connection is a walk-in
	// defender (a local trial).
	Directory *DirectoryConfig `yaml:"directory"`
	Storage   StorageConfig    `yaml:"storage"`
	Limits    LimitsConfig     `yaml:"limits"`
	// Admission is what a walk-in pays and may take: proof of work, the
	// walk-ins' global budget, per-address limits.
	Admission AdmissionConfig `yaml:"admission"`
	// Operators may inspect and purge the streams (beacon relay purge).
	Operators []OperatorConfig `yaml:"operators,omitempty"`
	Cluster   *ClusterConfig   `yaml:"cluster"`
	Holds     HoldsConfig      `yaml:"holds"`
	Log       LogConfig        `yaml:"log"`
}

// TLSConfig names a certificate and key in PEM files.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// MutualTLSConfig is a certificate and key, and the CA whose certificates
// the other side must present: both ends authenticate.
type MutualTLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
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
	MaxBytes config.ByteSize `yaml:"max_bytes"`
	// MaxMessageSize is the largest message the relay accepts.
	MaxMessageSize config.ByteSize `yaml:"max_message_size"`
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
	// ChannelMessages bounds the messages of one channel (a country and
	// priority) of ALERTS and SHARED: a flood of one channel is refused
	// once it holds this many, and every other channel keeps its room.
	ChannelMessages int `yaml:"channel_messages"`
	// MailboxMessages bounds the messages waiting in one mailbox.
	MailboxMessages int `yaml:"mailbox_messages"`
	// WalkInShare is the fraction of ALERTS and SHARED that walk-ins may
	// fill; the rest stays for the missions of the directory.
	WalkInShare float64 `yaml:"walkin_share"`
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
	// ReservedConnections of those are kept for the missions, partners,
	// bridges and headquarters of the directory: a walk-in is refused once
	// the relay holds MaxConnections − ReservedConnections connections.
	ReservedConnections int `yaml:"reserved_connections"`
	// MaxSubscriptions bounds the subscriptions of one connection.
	MaxSubscriptions int `yaml:"max_subscriptions"`
	// MaxPending bounds the bytes the relay buffers for one connection
	// that does not read; past it the connection is closed.
	MaxPending config.ByteSize `yaml:"max_pending"`
}

// ClusterConfig joins this relay to a NATS cluster.
type ClusterConfig struct {
	Name   string   `yaml:"name"`
	Listen string   `yaml:"listen"`
	Routes []string `yaml:"routes"`
	// TLS authenticates the nodes to each other. Required off loopback.
	TLS *MutualTLSConfig `yaml:"tls"`
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
	c.Holds.applyDefaults()
	c.applyAbuseDefaults()
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

// LoadConfig reads a relay config file: strict decoding, defaults, paths
// made absolute (they may start with "~/" for the user's home, or be
// relative to the file), then [Config.Validate]. It reports every problem
// at once, each as a [config.Error] with its file, line and field.
func LoadConfig(path string) (*Config, error) {
	c, _, err := loadConfig(path, nil)
	return c, err
}

// ParseConfig is LoadConfig on bytes already read; file names them in
// errors, and relative paths in the config are taken relative to it.
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

// resolvePaths makes the paths in c absolute: "~/" is the user's home,
// anything else relative is taken relative to base.
func (c *Config) resolvePaths(base string) {
	paths := []*string{&c.DataDir}
	if c.Directory != nil {
		paths = append(paths, &c.Directory.File)
	}
	for _, t := range []*TLSConfig{c.TLS, wsTLS(c.WebSocket)} {
		if t != nil {
			paths = append(paths, &t.Cert, &t.Key)
		}
	}
	for _, t := range []*MutualTLSConfig{c.MonitorTLS, clusterTLS(c.Cluster)} {
		if t != nil {
			paths = append(paths, &t.Cert, &t.Key, &t.CA)
		}
	}
	config.ResolvePaths(base, paths...)
}

func wsTLS(w *WebSocketConfig) *TLSConfig {
	if w == nil {
		return nil
	}
	return w.TLS
}

func clusterTLS(cl *ClusterConfig) *MutualTLSConfig {
	if cl == nil {
		return nil
	}
	return cl.TLS
}

// Validate checks every field of c and returns all problems at once, as
// [config.Errors] naming each field by its path in the YAML
// ("storage.max_bytes", "cluster.routes[1]"). It reads no file: [Check]
// does that too.
func (c *Config) Validate() error {
	var errs config.Errors
	if c.ServerName == "" {
		errs.Add("server_name", "required")
	}
	if checkAddr(&errs, "listen", c.Listen, true) && c.TLS == nil && !isLoopback(c.Listen) {
		errs.Add("listen", "%s is not loopback: set tls (cert and key), clients' traffic must not cross a network in the clear", c.Listen)
	}
	if c.DataDir == "" {
		errs.Add("data_dir", "required")
	}
	checkTLS(&errs, "tls", c.TLS)
	if w := c.WebSocket; w != nil {
		checkAddr(&errs, "websocket.listen", w.Listen, true)
		checkTLS(&errs, "websocket.tls", w.TLS)
		switch {
		case w.TLS == nil && !w.NoTLS:
			errs.Add("websocket", "needs tls (cert and key), or no_tls: true behind a proxy that terminates TLS")
		case w.TLS != nil && w.NoTLS:
			errs.Add("websocket.no_tls", "cannot be set together with tls")
		}
	}
	if c.Monitor != "" {
		if checkAddr(&errs, "monitor", c.Monitor, false) && c.MonitorTLS == nil && !isLoopback(c.Monitor) {
			errs.Add("monitor", "%s is not loopback: set monitor_tls (cert, key and the ca of the scrapers' client certificates)", c.Monitor)
		}
	} else if c.MonitorTLS != nil {
		errs.Add("monitor_tls", "set without a monitor address")
	}
	checkMutualTLS(&errs, "monitor_tls", c.MonitorTLS)
	if d := c.Directory; d != nil {
		if d.File == "" {
			errs.Add("directory.file", "required")
		}
		if d.RootFingerprint == "" {
			errs.Add("directory.root_fingerprint", "required")
		} else if _, err := keys.ParseFingerprint(d.RootFingerprint); err != nil {
			errs.Add("directory.root_fingerprint", "%v", err)
		}
	}
	s := c.Storage
	if s.Sync != SyncAlways && s.Sync != SyncInterval {
		errs.Add("storage.sync", "%q is not always or interval", s.Sync)
	}
	if s.SyncInterval < 0 {
		errs.Add("storage.sync_interval", "must be positive")
	}
	if s.Retention < time.Hour {
		errs.Add("storage.retention", "must be at least 1h (got %s)", s.Retention)
	}
	if s.MaxBytes < 1<<20 {
		errs.Add("storage.max_bytes", "must be at least 1MiB")
	}
	if s.MaxMessageSize < envelope.MaxSize {
		errs.Add("storage.max_message_size", "must be at least %d bytes, the largest envelope", envelope.MaxSize)
	} else if s.MaxMessageSize > 8<<20 {
		errs.Add("storage.max_message_size", "must be at most 8MiB")
	}
	if s.DedupWindow < time.Minute || s.DedupWindow > s.Retention {
		errs.Add("storage.dedup_window", "must be between 1m and the retention")
	}
	if s.RedeliverAfter < time.Second || s.RedeliverAfter > time.Hour {
		errs.Add("storage.redeliver_after", "must be between 1s and 1h")
	}
	if s.Replicas != 1 && s.Replicas != 3 {
		errs.Add("storage.replicas", "must be 1 or 3")
	}
	if s.Replicas == 3 && c.Cluster == nil {
		errs.Add("storage.replicas", "3 replicas need a cluster section")
	}
	l := c.Limits
	for _, r := range []struct {
		field string
		rate  float64
		burst int
	}{{"publish", l.PublishRate, l.PublishBurst}, {"institution_publish", l.InstitutionPublishRate, l.InstitutionPublishBurst},
		{"service", l.ServiceRate, l.ServiceBurst}} {
		if r.rate < 0 {
			errs.Add("limits."+r.field+"_rate", "must be positive")
		}
		if r.burst < 1 {
			errs.Add("limits."+r.field+"_burst", "must be at least 1")
		}
	}
	if l.MaxConnections < 1 {
		errs.Add("limits.max_connections", "must be at least 1")
	}
	c.validateAbuse(&errs)
	if cl := c.Cluster; cl != nil {
		if cl.Name == "" {
			errs.Add("cluster.name", "required")
		}
		if checkAddr(&errs, "cluster.listen", cl.Listen, true) && cl.TLS == nil && !isLoopback(cl.Listen) {
			errs.Add("cluster.listen", "%s is not loopback: set cluster.tls (cert, key and the ca that signs every node's certificate); plain routes let anyone who reaches the port join", cl.Listen)
		}
		checkMutualTLS(&errs, "cluster.tls", cl.TLS)
		for i, r := range cl.Routes {
			if u, err := url.Parse(r); err != nil || u.Scheme != "nats" || u.Host == "" {
				errs.Add(fmt.Sprintf("cluster.routes[%d]", i), "%q is not a nats://host:port URL", r)
			}
		}
	}
	c.Holds.validate(&errs, s.Retention)
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		errs.Add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs.Add("log.format", "%q is not text or json", c.Log.Format)
	}
	return errs.Err()
}

// checkAddr reports whether addr is a usable host:port.
func checkAddr(errs *config.Errors, field, addr string, required bool) bool {
	if addr == "" {
		if required {
			errs.Add(field, "required (host:port)")
		}
		return false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		errs.Add(field, "%q is not host:port", addr)
		return false
	}
	ok := true
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		errs.Add(field, "port %q is not 0–65535", port)
		ok = false
	}
	if host == "" {
		errs.Add(field, "give the host explicitly (127.0.0.1 for loopback, 0.0.0.0 for every interface)")
		ok = false
	}
	return ok
}

// isLoopback reports whether a validated host:port binds loopback only.
// A host name other than localhost is taken as not loopback: what it
// resolves to is not the config's to promise.
func isLoopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkTLS(errs *config.Errors, field string, t *TLSConfig) {
	if t == nil {
		return
	}
	if t.Cert == "" {
		errs.Add(field+".cert", "required")
	}
	if t.Key == "" {
		errs.Add(field+".key", "required")
	}
}

func checkMutualTLS(errs *config.Errors, field string, t *MutualTLSConfig) {
	if t == nil {
		return
	}
	checkTLS(errs, field, &TLSConfig{Cert: t.Cert, Key: t.Key})
	if t.CA == "" {
		errs.Add(field+".ca", "required: the CA that signs the other side's certificates")
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
