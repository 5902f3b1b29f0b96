package relay

import (
	"fmt"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// AdmissionConfig is what a walk-in defender pays and may take. Missions,
// partners, bridges and headquarters of the directory never pay it.
// SECURITY.md "Admission and abuse" explains the choices.
type AdmissionConfig struct {
	// Rate and Burst are the walk-in envelopes per second the relay
	// stores, all walk-ins together however many keys they use.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// BytesPerSecond and BytesBurst are the same budget in bytes.
	BytesPerSecond config.ByteSize `yaml:"bytes_per_second"`
	BytesBurst     config.ByteSize `yaml:"bytes_burst"`
	// MinBits and MaxBits bound the proof-of-work difficulty: leading
	// zero bits of an Argon2id hash, so each bit doubles a sender's work.
	// The relay starts at MinBits (0: no proof while quiet), raises the
	// difficulty while walk-ins ask for more than the budget, and lowers
	// it while they use less than a quarter of it.
	MinBits int `yaml:"min_bits"`
	MaxBits int `yaml:"max_bits"`
	// StampBits is the SHA-256 stamp every proof carries, so that checking
	// a bogus proof costs its sender more than the relay.
	StampBits int `yaml:"stamp_bits"`
	// MemoryKiB and Passes are Argon2id's cost of one try.
	MemoryKiB int `yaml:"memory_kib"`
	Passes    int `yaml:"passes"`
	// ChallengeLifetime is how long a challenge may be used.
	ChallengeLifetime time.Duration `yaml:"challenge_lifetime"`
	// AdjustEvery is how often the difficulty follows the load.
	AdjustEvery time.Duration `yaml:"adjust_every"`
	// PerAddressConnections bounds the walk-in connections from one
	// address (an IPv4 address, an IPv6 /64) at once; 0 for no limit.
	// Defenders behind one carrier NAT share it: keep it generous.
	PerAddressConnections int `yaml:"per_address_connections"`
	// PerAddressConnectRate and PerAddressConnectBurst bound the walk-in
	// connections one address opens per second.
	PerAddressConnectRate  float64 `yaml:"per_address_connect_rate"`
	PerAddressConnectBurst int     `yaml:"per_address_connect_burst"`
}

// OperatorConfig is an operator's connection key: it may inspect and
// purge the streams, and nothing else (no publish, no read).
type OperatorConfig struct {
	Name string `yaml:"name"`
	// NKey is the operator's public user NKey (U...); the seed stays with
	// the operator (beacon relay purge --key).
	NKey string `yaml:"nkey"`
}

// Defaults of admission and quotas.
const (
	defaultAdmissionRate      = 50
	defaultAdmissionBurst     = 200
	defaultAdmissionBytes     = 2 << 20
	defaultAdmissionBytesB    = 16 << 20
	defaultMaxBits            = 14
	defaultStampBits          = 16
	defaultMemoryKiB          = 64
	defaultPasses             = 1
	defaultChallengeLifetime  = 2 * time.Minute
	defaultAdjustEvery        = time.Second
	defaultPerAddressConns    = 256
	defaultPerAddressRate     = 20
	defaultPerAddressBurst    = 100
	defaultReservedConns      = 1000
	defaultMaxSubscriptions   = 512
	defaultMaxPending         = 32 << 20
	defaultChannelMessages    = 1000
	defaultMailboxMessages    = 256
	defaultWalkInShare        = 0.9
	maxAdmissionBitsAllowed   = proto.MaxProofBits
	minPendingOverFetchBuffer = 2 * envelope.MaxSize
)

func (c *Config) applyAbuseDefaults() {
	a, l, s := &c.Admission, &c.Limits, &c.Storage
	setDefault(&a.Rate, defaultAdmissionRate)
	setDefault(&a.Burst, defaultAdmissionBurst)
	setDefault(&a.BytesPerSecond, defaultAdmissionBytes)
	setDefault(&a.BytesBurst, defaultAdmissionBytesB)
	setDefault(&a.MaxBits, defaultMaxBits)
	setDefault(&a.StampBits, defaultStampBits)
	setDefault(&a.MemoryKiB, defaultMemoryKiB)
	setDefault(&a.Passes, defaultPasses)
	setDefault(&a.ChallengeLifetime, defaultChallengeLifetime)
	setDefault(&a.AdjustEvery, defaultAdjustEvery)
	setDefault(&a.PerAddressConnections, defaultPerAddressConns)
	setDefault(&a.PerAddressConnectRate, defaultPerAddressRate)
	setDefault(&a.PerAddressConnectBurst, defaultPerAddressBurst)
	setDefault(&l.ReservedConnections, min(defaultReservedConns, l.MaxConnections/10))
	setDefault(&l.MaxSubscriptions, defaultMaxSubscriptions)
	setDefault(&l.MaxPending, defaultMaxPending)
	setDefault(&s.ChannelMessages, defaultChannelMessages)
	setDefault(&s.MailboxMessages, defaultMailboxMessages)
	setDefault(&s.WalkInShare, defaultWalkInShare)
}

func (c *Config) validateAbuse(errs *config.Errors) {
	a, l, s := c.Admission, c.Limits, c.Storage
	if a.Rate <= 0 {
		errs.Add("admission.rate", "must be positive")
	}
	if a.Burst < 1 {
		errs.Add("admission.burst", "must be at least 1")
	}
	if a.BytesPerSecond < 1 {
		errs.Add("admission.bytes_per_second", "must be positive")
	}
	if a.BytesBurst < s.MaxMessageSize {
		errs.Add("admission.bytes_burst", "must be at least storage.max_message_size (%s), or the largest envelope could never pass", s.MaxMessageSize)
	}
	if a.MinBits < 0 || a.MinBits > a.MaxBits {
		errs.Add("admission.min_bits", "must be between 0 and max_bits")
	}
	if a.MaxBits < 0 || a.MaxBits > maxAdmissionBitsAllowed {
		errs.Add("admission.max_bits", "must be between 0 and %d (clients refuse more)", maxAdmissionBitsAllowed)
	}
	if a.StampBits < 0 || a.StampBits > proto.MaxStampBits {
		errs.Add("admission.stamp_bits", "must be between 0 and %d", proto.MaxStampBits)
	}
	if a.MemoryKiB < 8 || a.MemoryKiB > proto.MaxProofMemoryKiB {
		errs.Add("admission.memory_kib", "must be between 8 and %d (clients refuse more)", proto.MaxProofMemoryKiB)
	}
	if a.Passes < 1 || a.Passes > proto.MaxProofPasses {
		errs.Add("admission.passes", "must be between 1 and %d", proto.MaxProofPasses)
	}
	if a.ChallengeLifetime < 10*time.Second || a.ChallengeLifetime > time.Hour {
		errs.Add("admission.challenge_lifetime", "must be between 10s and 1h")
	}
	if a.AdjustEvery < 100*time.Millisecond || a.AdjustEvery > time.Minute {
		errs.Add("admission.adjust_every", "must be between 100ms and 1m")
	}
	if a.PerAddressConnections < 0 {
		errs.Add("admission.per_address_connections", "must be 0 (no limit) or more")
	}
	if a.PerAddressConnectRate <= 0 {
		errs.Add("admission.per_address_connect_rate", "must be positive")
	}
	if a.PerAddressConnectBurst < 1 {
		errs.Add("admission.per_address_connect_burst", "must be at least 1")
	}
	if l.ReservedConnections < 0 || l.ReservedConnections >= l.MaxConnections {
		errs.Add("limits.reserved_connections", "must be between 0 and max_connections − 1")
	}
	if l.MaxSubscriptions < 16 {
		errs.Add("limits.max_subscriptions", "must be at least 16: a client holds one per fetch in flight")
	}
	if min := config.ByteSize(proto.MaxFetchBytes + minPendingOverFetchBuffer); l.MaxPending < min {
		errs.Add("limits.max_pending", "must be at least %s: a fetch answers with up to %s at once", min, config.ByteSize(proto.MaxFetchBytes))
	}
	if s.ChannelMessages < 1 {
		errs.Add("storage.channel_messages", "must be at least 1")
	}
	if s.MailboxMessages < 1 {
		errs.Add("storage.mailbox_messages", "must be at least 1")
	}
	if s.WalkInShare <= 0 || s.WalkInShare > 1 {
		errs.Add("storage.walkin_share", "must be more than 0 and at most 1")
	}
	names := map[string]bool{}
	for i, o := range c.Operators {
		f := fmt.Sprintf("operators[%d]", i)
		if o.Name == "" {
			errs.Add(f+".name", "required")
		} else if names[o.Name] {
			errs.Add(f+".name", "%q is listed twice", o.Name)
		}
		names[o.Name] = true
		if !nkeys.IsValidPublicUserKey(o.NKey) {
			errs.Add(f+".nkey", "not a public user NKey (U...)")
		}
	}
}
