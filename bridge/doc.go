// Package bridge carries what a Beacon network shares — alerts sealed to
// partner governments, with the sender's consent — to each partner
// government's own relay, sends the sender a signed receipt once the
// partner's relay has stored it, and carries the partners' acks and
// replies back. It is what `beacon bridge -c configs/bridge.yaml` runs.
//
// # Running one
//
//	cfg, err := bridge.LoadConfig("bridge.yaml")   // or build a Config and Validate it
//	kr, err := keys.LoadKeyFile(cfg.Home.KeyFile, passphrase) // a bridge's keys
//	b, err := bridge.New(cfg, kr, bridge.WithLogger(log))
//	err = b.Start(ctx) // connects, verifies the home directory, starts forwarding
//	...
//	b.Shutdown(ctx)
//
// [Check] (beacon bridge --check) makes every check a start makes short
// of connecting.
//
// # What travels, and where
//
// On the home relay the bridge (a bridge of the home directory) reads
// SHARED, and only SHARED, through one durable consumer per partner
// ([proto.SharedSource]), which the relay filters to the countries the
// directory gives that partner: the sender sealed the envelope to the
// partners the directory lists for its country. The bridge forwards what
// is inside the partner's scope — those countries, narrowed by the
// config, and the configured priorities — and settles the rest without
// forwarding it. An alert sent without consent is never in SHARED.
//
// On the partner's relay the bridge is a bridge of the partner's own
// directory, and delivers each envelope into BRIDGED under its own id
// ([proto.Bridged]); the partner's desk — a partner of that directory,
// with the keys the home directory lists for the partner — reads it for
// its countries ([client.Client.ReceiveBridged]) and decrypts it. Its
// acks and replies go to RETURN on its own relay, and the bridge carries
// them to the sender's mailbox and to the home relay's ACKS (an ack
// token must be signed by a partner of the home directory).
//
// # Delivery guarantees
//
//   - At least once, shown once. An envelope read from SHARED is settled
//     only after the partner's relay stored it and the home relay stored
//     its receipts: a partner that is down, a lost acknowledgement or a
//     bridge killed with SIGKILL leaves it unsettled, and the home relay
//     offers it again. The partner's relay keeps one copy per message id —
//     the subject names the id, BRIDGED keeps one message per subject — so
//     a delivery made again, however much later, is told "stored already"
//     and stored nowhere twice.
//   - Backoff. What the partner's relay does not take is retried after
//     exponentially growing delays with jitter ([Config.Retry], on the
//     injected clock); a success resets it. A refusal about the envelope
//     itself (malformed, stale) drops it, counted; a refusal about the
//     bridge (forbidden: a directory does not list it) keeps it waiting,
//     loudly, for the configuration to be fixed.
//   - Isolation. Each partner has its own connection, its own position on
//     SHARED, its own goroutines and backoff: a slow or dead partner
//     delays no other.
//   - No loops. BRIDGED is a sink: no bridge reads it, and nothing a
//     bridge delivers is stored where a bridge reads, so bridges
//     configured both ways (A→B and B→A) cannot carry an envelope back.
//     Every delivery says how many bridges the envelope has crossed, and
//     a relay refuses more than [proto.MaxHops] (one).
//
// Each partner's forwarder is a pipeline of five goroutines — read a
// batch, deliver it, sign its receipts, store them, settle it — so that
// the round trips to the two relays and the signing overlap; what is
// unsettled at once is bounded by what the home relay lets one reader
// hold. Deliveries and receipts travel in frames ([proto.FrameTarget]):
// many publishes in one message, each still checked, stored and answered
// alone by the relay, so that a catch-up pays a relay's server one trip
// per frame rather than one per envelope.
//
// # Receipts
//
// A receipt ("partner P's relay stored envelope X by time T", package
// bridge/receipt) is signed by the bridge and stored in the sender's
// reply mailbox and in the home relay's RECEIPTS (one per envelope and
// partner), where missions and headquarters read it for the roll-up
// ([client.Client.FetchRollUp]). It travels in the clear: the bridge
// cannot know who sent an envelope sealed to the partners, so it cannot
// seal to them. SECURITY.md says what that shows the home relay.
//
// # Transports
//
// [Transport] is the seam to a partner: [NewNATS] speaks NATS over TCP
// (nats://, tls:// with the partner's CA and the NKey it issued),
// [NewWebSocket] speaks NATS inside a WebSocket (github.com/coder/websocket
// over net/http: ws://, wss://, through the environment's HTTPS proxy)
// for a partner relay reachable only over HTTPS. Package bridgetest fakes
// one for tests of the forwarder.
//
// # Metrics
//
// /metrics on the configured loopback address: per partner, what was
// forwarded, what waits (pending) and the age of the oldest envelope
// held, retries, the last success, receipts, answers carried back, and
// what was dropped by reason (configs/bridge.yaml lists them). Labels are
// partner ids; no mailbox, message id or content reaches a metric or a
// log line.
package bridge
