// Package console is the mission's side of Beacon: the cases a post
// receives, what its officers do about them, and the web console and
// terminal mode that show them.
//
//	beacon console -c configs/console.yaml       # the web console, on this workstation
//	beacon mission inbox -c configs/console.yaml # the same cases in the terminal
//
// # Pieces
//
// An [Office] is what both modes act through: the mission's [Store] of
// cases, its client (its keys and its one relay connection) and its
// [Config]. [Open] builds one from a config and the unlocked keyring. A
// [Console] serves an Office on loopback: [New], [Console.Start],
// [Console.URL] (the address to open, with the session token),
// [Console.Shutdown].
//
// What an officer does is a method of the Office, and each sends what it
// must before it records that it did:
//
//   - [Office.Acknowledge]: a signed ack to the defender naming who acts
//     (the officer's liaison name) and the next step, and an ack token
//     to the relay for every defender message of the case, so escalation
//     stops and the report counts the case.
//   - [Office.Reply], and [Office.Assign] (the defender is told who their
//     liaison is; a case can be reassigned when an officer leaves).
//   - [Office.Note]: an internal note, written to the store and nowhere
//     else.
//   - [Office.Meeting]: accept one of the times the defender proposed,
//     propose others, confirm, cancel.
//   - [Office.Observe]: a trial observer assigned, confirmed to the
//     defender, the outcome; every notice also goes to the other missions
//     covering the country (to their mailboxes), so no hearing is left
//     unattended and not every post sends someone.
//   - [Office.Share]: re-seal the alert to the partner governments
//     covering its country, signed by the mission; refused
//     ([message.ErrNoConsent]) unless the defender consented.
//   - [Office.Report]: an encrypted case report to the mission's
//     headquarters. [Office.SetState] resolves or reopens,
//     [Office.Broadcast] publishes a signed notice to a country.
//
// # The store
//
// A [Store] is one sealed log ("cases") on package internal/state, in
// state_dir/cases, encrypted under a key derived from the mission's
// identity. Its records are events: a message received (kept whole, as
// its canonical body, with the sender's identity and reply mailbox, so
// the mission can answer after a restart), an officer's action (with the
// body of what it sent), a broadcast sent. The cases are the log
// replayed; a record applies once (by message id, by action id), so a
// redelivered message or a retried append changes nothing.
//
// Nothing is settled before the store has it: the receive loops use the
// client's two-phase receive ([client.Client.ReceiveAlerts] and
// ReceiveMailbox) with [Store.Keep] as the handler, which appends the
// message durably (fsynced) and is idempotent on its id. Only then does
// the client add the id to its seen-set and settle it with the relay. A
// console killed at any point loses nothing and, after a restart, shows
// nothing twice (TestConsoleKilledLosesNothing).
//
// # The terminal and a running console
//
// `beacon mission …` opens the same state directory as a running console.
// internal/state supports several processes on one directory: every
// change runs inside state.Dir.Do (the process's mutex and the
// directory's flock) after the log has caught up with Sync, so each
// process sees the others' records and appends after them. The console
// catches up every `poll` (1s by default) and pushes what changed to the
// open pages (TestTerminalAndConsoleShareTheStore).
//
// # The web console
//
// The console listens on loopback only (the config refuses anything
// else) and serves everything under /s/<token>/, where the token is 32
// random bytes printed at start, as a notebook server does; a request
// without it gets nothing. The token is in the path, not a cookie, so no
// other site or local port can make the browser send it, and the pages
// send no Referer. Every state-changing request and the WebSocket must
// carry the console's own Origin; actions are JSON (a cross-site form
// cannot send that type); the Host must be the console's own address (a
// DNS rebinding page is refused). The page has a strict
// Content-Security-Policy: script, style and connections from the console
// itself only, no inline script or style, no framing. Every asset is
// embedded (go:embed), so it works with no internet. New cases and
// changes are pushed over a WebSocket (github.com/coder/websocket); the
// page shows when it has lost the console or the console has lost the
// relay (TestHTTPSecurity, TestBrowser).
//
// # What leaves the mission
//
// Acks, replies, liaison names, meeting and observation notices go sealed
// to the defender (and observation notices to the other posts of the
// country); re-shares sealed to partners; case reports sealed to
// headquarters; ack tokens and broadcasts in the clear, signed, by
// design. Internal notes are in none of them: no code path puts a note in
// a message, and TestNotesNeverLeaveTheMission checks, after every action
// that sends, that no recipient's plaintext and no file of the relay holds
// a byte of the note.
package console
