// Package relay is a Beacon relay: an embedded nats-server with JetStream
// that stores only well-formed sealed envelopes, and lets each connection
// read only what is its own.
//
// # Running one
//
//	cfg, err := relay.LoadConfig("configs/relay.yaml") // or relay.DefaultConfig(dir)
//	err = relay.Check(cfg) // optional: reads the directory and TLS files, as a start will
//	r, err := relay.New(cfg, relay.WithLogger(log))
//	err = r.Start(ctx)   // returns once it serves
//	...
//	r.ReloadDirectory()  // on SIGHUP
//	r.Shutdown(ctx)      // drains, then stops
//
// [Config] is a plain struct; [Config.Validate] checks it and [New] calls
// Validate. [Check] makes every check a start makes, without binding a port
// or taking the lock, so it can run beside a running relay. [New] locks the
// data directory (a second relay on it fails with [ErrDataDirLocked]) and
// verifies the signed directory; [Relay.Start]
// starts the server, waits until JetStream answers (seconds in a
// cluster), creates or updates the streams and starts the ingest. The
// server installs no signal handlers; the command does.
//
// # What clients may do
//
// Every connection signs the server's nonce with an NKey. A key the
// directory lists is a mission, partner or bridge; any other key is a
// walk-in defender. Each may publish only under bcn.in.<its mailbox>. and
// subscribe only under bcn.reply.<its mailbox>. — no JetStream API at all.
// Publishes are checked by the ingest (structure, size, freshness, the
// subject against the header, the role, a per-key rate limit) before
// JetStream stores them (a bridge may send many publishes in one frame,
// each checked and answered alone: proto.FrameTarget); reads are
// services the relay performs with direct gets (and, for a bridge's or a
// mission's durable position, a consumer it owns), scoped by the mailbox
// in the subject. Package
// [github.com/hrdbeacon/beacon/relay/proto] has the subjects.
//
// # Held envelopes
//
// A defender may hand over an envelope to release later (hold.<op>
// requests, envelope/SPEC.md "Held envelopes"): a check-in plan, released
// into the alerts of its country when the defender stops checking in, or
// one tier of an urgent alert's escalation, released to the tier (the
// posts' escalation target, headquarters, partner governments) when too
// few institutions covering the country acknowledged the alert by the
// tier's deadline. The relay keeps each in stream HOLDS, unopened: a
// state (the envelope, and the condition in a header), and a JetStream
// message schedule that fires at the deadline into a subject the relay's
// one durable release consumer reads. NATS stores, replicates and fires
// the schedules; Beacon adds no scheduler and no leader election. The
// release publishes the envelope into its channel with the relay's own
// connection (a release is older than the freshness window by design),
// deduplicated by its message id, and only then records the hold as
// released; see holds_state.go for the state machine and holds_release.go
// for the release path. holds.min_checkin_interval bounds plans.
//
// # Admission and abuse
//
// Walk-ins pay for storage only when the relay is under load: a proof of
// work (Argon2id) per envelope whose difficulty follows the demand
// against a global walk-in budget ([AdmissionConfig]); the client side is
// in internal/relayconn. Connection slots are reserved for the directory's
// institutions, walk-in connections are bounded per address, and each
// institution's requests have an ingest subscription of their own. Each
// channel (country and priority) of ALERTS and SHARED, each mailbox and
// each alert's acks has its own bound (JetStream's per-subject limits), so
// a flood of one fills only its own; walk-ins fill at most a share of a
// stream. Missions report alerts they cannot open and the relay deletes one
// once every mission of its country has; operators listed in the config
// inspect and purge (beacon relay purge). Dedup keys name the message's
// bytes, so an id learned by a recipient cannot shadow the sender's
// envelope. SECURITY.md "Admission and abuse" gives the reasons.
//
// # Durability
//
// With storage.sync "always" (the default) every stored message is fsynced
// before JetStream acknowledges it to the sender: an acknowledged alert
// survives kill -9 and a host crash. "interval" survives kill -9 only; use
// it with a 3-node cluster and replicas: 3. Streams refuse new messages
// when full, never dropping stored ones.
//
// # Observability
//
// log/slog lines carry no payload, key, mailbox or message id; the
// server's own lines are redacted. Prometheus metrics on the monitor
// address: received and refused (by reason) publishes, stored and held
// messages per stream, country and priority, connections, stream sizes,
// beacon_build_info and the Go and process collectors. The monitor also
// serves nats-server's /varz, /jsz (never with consumers, whose names hold
// mailboxes) and /healthz, and no endpoint that names clients (/connz and
// the like).
package relay
