package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrdbeacon/beacon/relay/proto"
)

// streamSpec is one of the streams of DESIGN.md "Subjects and streams".
type streamSpec struct {
	name, subject, description string
	// direct streams are read with direct gets, without consumers.
	direct bool
	// deletable streams let the relay delete what their reader settled.
	deletable bool
}

// oncePerSubject streams keep one message per subject and refuse a
// second: their subjects name the message id (see proto's bridge doc).
var oncePerSubject = map[string]bool{proto.StreamBridged: true, proto.StreamReceipts: true}

var streamSpecs = []streamSpec{
	{proto.StreamAlerts, proto.SubjectAlerts, "alerts from defenders, per country and priority", false, false},
	{proto.StreamMailbox, proto.SubjectMailbox, "replies, acks and receipts, per mailbox", true, true},
	{proto.StreamShared, proto.SubjectShared, "alerts shared with partner governments, for the bridge", false, false},
	{proto.StreamBroadcasts, proto.SubjectBroadcasts, "missions' signed public broadcasts, per country", true, false},
	{proto.StreamAcks, proto.SubjectAcks, "signed acknowledgements, per alert id", false, false},
	{proto.StreamHolds, proto.SubjectHolds, "held envelopes: check-in plans and escalations", false, false},
	{proto.StreamBridged, proto.SubjectBridged, "shared alerts bridges delivered from other networks", false, false},
	{proto.StreamReturn, proto.SubjectReturn, "partners' answers for bridges to carry back", false, false},
	{proto.StreamReceipts, proto.SubjectReceipts, "bridges' signed receipts, per alert and partner", false, false},
}

// streamConfig is the JetStream configuration of spec under the relay's
// storage settings. Every stream refuses new messages when full
// (DiscardNew) rather than dropping stored ones: an acknowledged alert is
// never deleted to make room.
func (r *Relay) streamConfig(spec streamSpec) jetstream.StreamConfig {
	s := r.cfg.Storage
	c := jetstream.StreamConfig{
		Name:        spec.name,
		Description: spec.description,
		Subjects:    []string{spec.subject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      s.Retention,
		MaxBytes:    int64(s.MaxBytes),
		MaxMsgSize:  int32(s.MaxMessageSize),
		Duplicates:  s.DedupWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
		// Clients have no right to the stream API; deny deletes and
		// purges at the stream level too, so a compromised client
		// credential cannot erase what was acknowledged. The mailbox is
		// the exception: the relay deletes a reply once its owner has
		// settled it, so a seized relay holds only unread replies.
		DenyDelete:  !spec.deletable,
		DenyPurge:   true,
		AllowDirect: spec.direct,
	}
	if oncePerSubject[spec.name] {
		c.MaxMsgsPerSubject, c.DiscardNewPerSubject = 1, true
	}
	return c
}

// ensureStreams creates each stream or updates it to the configured
// limits. It is idempotent: starting twice with the same config changes
// nothing.
func (r *Relay) ensureStreams(ctx context.Context) error {
	for _, spec := range streamSpecs {
		if err := r.ensureStream(ctx, spec); err != nil {
			return fmt.Errorf("relay: stream %s: %w", spec.name, err)
		}
	}
	return nil
}

// ensureStream bounds each attempt and retries on a timeout: cluster nodes
// that start together race to create a stream, and the meta leader leaves
// concurrent creates of a new stream unanswered. CreateOrUpdate is
// idempotent, so a retry is safe.
func (r *Relay) ensureStream(ctx context.Context, spec streamSpec) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := r.js.CreateOrUpdateStream(actx, r.streamConfig(spec))
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}
