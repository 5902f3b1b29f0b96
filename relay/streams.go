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
	// deletable streams let the relay delete single messages: what a
	// mailbox's owner settled, the junk of ALERTS once every mission of
	// its country reported it.
	deletable bool
	// purgeable streams can be purged by an operator (beacon relay purge).
	purgeable bool
	// perSubject bounds the messages of one subject (a channel, a
	// mailbox, an alert's acks); 0 for no bound. A subject at its bound
	// refuses new messages (DiscardNewPerSubject) and leaves every other
	// subject its room: a flood of one country or one priority fills
	// only its own channel.
	perSubject func(StorageConfig) int64
	// keepNewest: a subject at its bound drops its oldest message for a
	// new one instead of refusing it (BROADCASTS: a country's news is its
	// newest broadcasts, and only missions, signing, can write there).
	keepNewest bool
	// schedules: the stream holds message schedules (HOLDS).
	schedules bool
	// notices, when set, is where JetStream republishes the headers of
	// each message the stream stores: how the relay learns of a stored
	// message without a consumer reading it back, which would keep the
	// stream's freshly written blocks in memory (see [mailboxTail]).
	notices string
}

func channelQuota(s StorageConfig) int64 { return int64(s.ChannelMessages) }
func mailboxQuota(s StorageConfig) int64 { return int64(s.MailboxMessages) }
func ackQuota(StorageConfig) int64       { return maxAcksPerAlert }
func junkQuota(StorageConfig) int64      { return maxJunkReports }

// onceQuota is for streams that keep one message per subject and refuse
// a second: their subjects name the message id (see proto's bridge doc).
func onceQuota(StorageConfig) int64 { return 1 }

// newsQuota keeps a country's newest broadcasts, as many as one news
// request returns: a news read of one country starts at its oldest kept
// broadcast, so it always reaches the newest.
func newsQuota(StorageConfig) int64 { return proto.MaxNews }

const (
	// maxAcksPerAlert bounds the ack tokens stored for one alert: every
	// mission and partner of a country acknowledging it a few times.
	maxAcksPerAlert = 256
	// maxJunkReports bounds the junk reports kept for one stored message:
	// one per mission covering its country.
	maxJunkReports = 256
	// StoredHeaderBytes is the room a stored message has for headers beyond
	// the envelope: JetStream counts headers and data together against a
	// stream's MaxMsgSize (nats-server stream.go), and the relay adds
	// Nats-Msg-Id with a digest (~90 bytes), held envelopes their schedule
	// headers (~200 bytes). The ingest checks the envelope's own size
	// against storage.max_message_size first, so JetStream never refuses
	// a message for the headers the relay added.
	StoredHeaderBytes = 4 << 10
)

var streamSpecs = []streamSpec{
	{name: proto.StreamAlerts, subject: proto.SubjectAlerts, description: "alerts from defenders, per country and priority",
		direct: true, deletable: true, purgeable: true, perSubject: channelQuota},
	{name: proto.StreamMailbox, subject: proto.SubjectMailbox, description: "replies, acks and receipts, per mailbox",
		direct: true, deletable: true, purgeable: true, perSubject: mailboxQuota, notices: proto.MailboxNotices},
	{name: proto.StreamShared, subject: proto.SubjectShared, description: "alerts shared with partner governments, for the bridge",
		direct: true, purgeable: true, perSubject: channelQuota},
	{name: proto.StreamBroadcasts, subject: proto.SubjectBroadcasts, description: "missions' signed public broadcasts, per country",
		direct: true, purgeable: true, perSubject: newsQuota, keepNewest: true},
	{name: proto.StreamAcks, subject: proto.SubjectAcks, description: "signed acknowledgements, per alert id",
		direct: true, perSubject: ackQuota}, // an escalation's release reads its acks
	{name: proto.StreamHolds, subject: proto.SubjectHolds, description: "held envelopes: check-in plans and escalations",
		direct: true, deletable: true, schedules: true},
	{name: proto.StreamJunk, subject: proto.SubjectJunk, description: "missions' reports of stored alerts they cannot open",
		perSubject: junkQuota}, // read through the stream leader: a report just stored is seen
	{name: proto.StreamBridged, subject: proto.SubjectBridged, description: "shared alerts bridges delivered from other networks",
		perSubject: onceQuota},
	{name: proto.StreamReturn, subject: proto.SubjectReturn, description: "partners' answers for bridges to carry back"},
	{name: proto.StreamReceipts, subject: proto.SubjectReceipts, description: "bridges' signed receipts, per alert and partner",
		perSubject: onceQuota},
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
		MaxMsgSize:  int32(s.MaxMessageSize) + StoredHeaderBytes,
		Duplicates:  s.DedupWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
		// Clients have no right to the stream API; deny deletes and
		// purges at the stream level too where the relay itself never
		// needs them, so a compromised credential cannot erase what was
		// acknowledged. The relay deletes a settled mailbox reply (a
		// seized relay holds only unread ones) and junk every mission of
		// a country reported; operators purge in an emergency.
		DenyDelete:  !spec.deletable,
		DenyPurge:   !spec.purgeable,
		AllowDirect: spec.direct,
	}
	if spec.perSubject != nil {
		c.MaxMsgsPerSubject = spec.perSubject(s)
		c.DiscardNewPerSubject = !spec.keepNewest
	}
	if spec.schedules {
		holdsStreamConfig(&c)
	}
	if spec.notices != "" {
		// Headers only: a wake-up needs the subject, not the body.
		c.RePublish = &jetstream.RePublish{Source: spec.subject, Destination: spec.notices, HeadersOnly: true}
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
