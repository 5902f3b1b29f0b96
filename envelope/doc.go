// Package envelope is Beacon's wire format: one message, encrypted once,
// readable by 1 to [MaxRecipients] recipients, authenticated by its sender,
// with nothing in the clear but a small routing header.
//
// # Sealing and opening
//
// For most uses, call [Seal] and [Open]:
//
//	h := envelope.NewHeader("ug", routing.Urgent)
//	env, err := envelope.Seal(h, body, me, envelope.Deniable,
//		envelope.ToInbox(mission.Identity, inbox))
//	...
//	o, err := envelope.Open(env, missionID, missionInboxKeys...)
//	// o.Sender, o.Body, o.Header
//
// A random content key encrypts the padded plaintext once
// (ChaCha20-Poly1305); it is wrapped to each recipient in a stanza with HPKE
// (X-Wing, HKDF-SHA256, ChaCha20-Poly1305), and a header MAC under the
// content key makes the ciphertext commit to its key. The sender's identity
// travels inside the ciphertext (sealed sender).
//
// # Authentication
//
// A defender seals with [Deniable]: a MAC for each recipient, keyed from a
// static-static X25519 exchange, so the recipient knows who wrote it but
// holds no proof a third party would accept. An institution seals with
// [Signed]: an Ed25519 signature that [VerifySigned] checks for anyone.
// Both cover the routing header, every stanza, the sender and the body, so
// an envelope cannot be re-addressed, moved to another country's channel,
// or have its body swapped by a co-recipient.
//
// # What the relay sees
//
// [Parse] reads the routing header without any key: version, message id,
// creation time, country, priority, optional reply mailbox, and the sizes
// (recipient count and padded size class). It checks the structure exactly,
// cheapest check first; it is what the relay runs on every publish.
//
// # Errors
//
// Every failure wraps one sentinel ([ErrTruncated], [ErrMalformed],
// [ErrUnsupportedVersion], [ErrTooLarge], [ErrTooManyRecipients],
// [ErrNotForMe], [ErrTampered], [ErrBadAuthentication]) so callers can
// branch with errors.Is. Open checks freshness of nothing: replay
// protection is the receiver's seen-set of message ids.
//
// SPEC.md in this directory describes every byte, ack tokens and public
// messages included; keys/SPEC.md describes the keys.
package envelope
