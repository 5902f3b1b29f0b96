package relay

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/config"
)

// HoldsConfig sets the limits of held envelopes (see configs/relay.yaml).
type HoldsConfig struct {
	// MinCheckInInterval is the shortest check-in interval a plan may
	// have: each check-in is a write the relay makes, and a plan that
	// must be fed every few seconds is a flood, not a dead man's switch.
	MinCheckInInterval time.Duration `yaml:"min_checkin_interval"`
}

const defaultMinCheckInInterval = 5 * time.Minute

func (h *HoldsConfig) applyDefaults() {
	setDefault(&h.MinCheckInInterval, defaultMinCheckInInterval)
}

func (h *HoldsConfig) validate(errs *config.Errors, retention time.Duration) {
	if h.MinCheckInInterval < time.Second || h.MinCheckInInterval >= retention {
		errs.Add("holds.min_checkin_interval", "must be at least 1s and less than storage.retention")
	}
}

// holdsStreamConfig makes c the configuration of stream HOLDS. Message
// schedules need roll-ups, which need the purge permission, and a stream
// that discards old messages: JetStream refuses schedules with discard
// new. So that a full stream never drops a held envelope, HOLDS has no
// size limit of its own; the relay refuses new holds once the stream
// holds storage.max_bytes (proto.CodeHoldFull), and MaxAge (the retention)
// applies as to every stream: no plan is armed with a deadline beyond it.
func holdsStreamConfig(c *jetstream.StreamConfig) {
	c.AllowMsgSchedules = true
	c.AllowRollup = true
	c.DenyPurge = false
	c.Discard = jetstream.DiscardOld
	c.MaxBytes = -1
}
