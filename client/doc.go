// Package client is the Go library defenders' tools, the mission console
// and the bridge use to talk to a Beacon relay.
//
// # Opening
//
//	c, err := client.Open(client.Config{
//		URLs:     []string{"nats://relay.example:4222", "wss://relay.example/"},
//		Keyring:  kr,          // from keys.LoadKeyFile
//		Root:     rootFP,      // pinned at setup
//		StateDir: dir,         // encrypted outbox, seen-set, cases
//	})
//	defer c.Close()
//
// Open returns at once and connects in the background, reconnecting
// forever with jittered backoff; [Client.WaitConnected] waits for it. The
// directory comes from the relay ([Client.RefreshDirectory]) and is
// verified against the pinned root; an older serial than one already seen
// is refused, even after the held version expires.
//
// # Defenders
//
// [Client.SendAlert], [Client.SendUpdate], [Client.Cancel],
// [Client.RequestMeeting] and [Client.RequestObservation] seal the message
// once to every mission covering the country (and, for an alert with
// consent to share, a second envelope to the partner governments) and
// deliver it. If the relay cannot take it now, the sealed envelope goes to
// the encrypted outbox and is delivered when the relay is back — the
// result says Queued, which is not a failure. A message the relay refuses
// for good stays in the outbox, marked refused with the reason
// ([Client.Outbox]). [Client.ReadMailbox] reads the mailbox into the case
// threads: acks, replies and receipts, accepted only when an institution
// in the directory signed them; [Client.Cases] shows them.
//
// # Check-ins, escalation and duress
//
// [Client.ArmCheckIn] hands the relay a message sealed to the missions of
// a country, released if the defender does not [Client.CheckIn] within
// every + grace; each check-in shows the next value of a hash chain whose
// seed only this device holds, so the relay cannot check in by itself.
// [Client.Disarm] ends the plan, [Client.ReleasePlan] releases it now
// (beacon panic), [Client.PlanStatus] asks the relay about it. An urgent
// alert (and, where the directory says so, a high one) carries its
// escalation: [Client.SendAlert] seals it to each tier of the directory's
// plan and hands the tiers over first. [Client.Holds] lists what this
// device handed over. A keyring opened with a duress passphrase is a
// decoy; [Client.DuressRelease] releases the plan armed under its duress
// key.
//
// # Missions
//
// [Client.ReceiveAlerts] reads what defenders sent to the mission's
// countries — released check-ins among them — and hands each message to
// the mission's own [Handler]; escalations released to a mission or
// headquarters arrive in its mailbox ([Client.ReceiveMailbox]), in the
// case of the alert they escalate;
// [Client.Acknowledge] and [Client.Reply] answer in the case thread,
// signed, and [Client.Broadcast] publishes to everyone in a country. A
// mission's store keeps each case's [Addressee], so [Client.AnswerTo]
// answers after a restart; [Client.SendAckTokens] tells the relay,
// [Client.NotifyPeers] tells the other missions of a country (at their
// mailboxes), [Client.ShareAlert] re-seals an alert to partners and
// [Client.ReportCase] sends headquarters a case report. [Client.Report]
// reads the relay's report metadata (package client/report computes the
// figures). Package client/console is the mission's case store, console
// and terminal mode built on these.
//
// # Delivery guarantees: the two-phase receive
//
// Every received message is opened and authenticated, dropped if its id is
// in the persistent seen-set, and otherwise handed to a [Handler], which
// keeps it in its own store. Only once the handler returned nil — and so
// what it wrote is durable — is the id added to the seen-set (fsynced)
// and the message settled with the relay. A handler that fails leaves the
// message pending at the relay and unseen: it is offered again later. A
// crash at any point delivers the message again rather than losing it,
// and the seen-set (with a handler idempotent on the message id) makes it
// show once. The relay's dedup on the message id makes a resend of a
// queued message after a lost reply store it once.
//
// # A relay that lies
//
// The relay is trusted for neither integrity nor availability, and
// nothing it sends can cost a client more than a bound decided before the
// work is done (the limits are named constants beside their reasons, in
// receive.go, news.go and package internal/relayconn):
//
//   - A receive takes one batch, bounded in count and bytes, and opens at
//     most maxOpenWork KEM decapsulations of it, counted from each
//     envelope's clear header; the rest is [Batch.Deferred]: unopened,
//     unsettled, and the mailbox cursor stays before it.
//   - A mailbox message signed by someone the directory held does not name
//     — perhaps a mission only a newer directory lists, served by a relay
//     that chose an older one — is [Batch.HeldBack]: not handed over, not
//     marked seen, not settled, so an honest relay keeps it. The receive
//     refreshes the directory once (at most every minute) and tries again;
//     a newer directory rewinds the mailbox so held messages are offered
//     again. A message is held for at most holdUnknownSigner (7 days)
//     after it was written, and not at all once a current directory issued
//     after it was written still does not name its signer; at most
//     maxHeldBack at once. Otherwise it is dropped as unverified.
//   - A directory the relay serves that fails to verify, has expired or is
//     older than one seen is a *[RelayDirectoryError]: the client keeps
//     what it holds, and says so in [Client.Status] and with
//     [EventDirectoryRefused]. It is a security event, not a retry.
//   - Broadcasts ([Client.ReadNews]) are verified, expired ones left out,
//     copies collapsed (the same message, or the same mission's same text
//     signed again), and at most [MaxBulletinsPerMission] shown per
//     mission and country.
//   - Every loop on the relay backs off on the client's clock: the outbox
//     round after a failure, and [Client.FollowMailbox] after a fetch that
//     fails or brings nothing new.
//
// # Without a current directory
//
// A directory expires (on the client's clock, also while it runs), and
// then [Client.Directory] returns a *[DirectoryExpiredError] naming its
// serial and expiry. The client seals nothing to it: an expired directory
// may still list a key headquarters has since revoked. A message written
// then is queued unsealed ([Sent.AwaitingDirectory]), kept in the outbox
// encrypted under the state key like everything there, and sealed to the
// missions of the first current directory the relay gives, then sent. If
// that directory has no mission for its country, it is refused for good,
// locally, and says so.
//
// # Long-running clients
//
// [Client.FollowMailbox] shows replies as they arrive. The client's
// background round sends what is queued whenever it (re)connects — first,
// before the directory refresh — and while something waits it retries
// the connection at least every second, so a queued alert leaves within a
// second of the relay coming back. [Config.OnEvent] tells a program (the
// console, `beacon watch`) what the round does: [EventSent] ("stored at the
// relay", which is not "read": only a mission's ack says that, see
// [Case.Acknowledged]), [EventRefused], connection and directory events.
//
// # State on the device
//
// Everything the client keeps is in package internal/state, encrypted
// under a key derived from the identity; several processes (a defender's
// `beacon watch` and a `beacon alert` in another shell) may use one state
// directory at once.
package client
