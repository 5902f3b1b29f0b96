// Package keys holds Beacon's identities, the key files they live in, and
// the signed directory that says which missions, partners, bridges and
// relays exist.
//
// # Identities
//
// Every party has an [Identity]: an Ed25519 signing key (for what an
// institution writes: acks, receipts, broadcasts, the directory), an X25519
// key (for a defender's deniable authenticator) and an X-Wing KEM key
// (crypto/hpke MLKEM768X25519, post-quantum hybrid) that envelopes are
// sealed to. Its public half is a [PublicIdentity]. Generate one with
// [GenerateIdentity]; missions also hold rotating [InboxKey]s, listed in the
// directory as [SignedInboxKey]s, so that destroying an old inbox key bounds
// what a seized mission key can decrypt.
//
// Text forms carry a prefix so one kind of key can never be parsed as
// another:
//
//	bcn-id:…            public identity      (ParsePublicIdentity)
//	BCN-SECRET-ID:…     secret identity      (ParseIdentity)
//	bcn-inbox:…         inbox public key     (ParseInboxPublicKey)
//	BCN-SECRET-INBOX:…  inbox secret key     (ParseInboxKey)
//	bcn-fp:…            fingerprint          (ParseFingerprint)
//
// Secret keys print redacted with %v and %s; their text form is only
// available through SecretString, so a secret cannot reach a log by
// accident. Every Equal is constant-time. Parsers check lengths and refuse
// all-zero components, and curve points that are off the curve,
// non-canonical or of small order, before any primitive sees the bytes;
// [PublicIdentity.Verify] refuses what either Go's crypto/ed25519 or
// libsodium would.
//
// # Verifying a key in person
//
// [PublicIdentity.SafetyNumber] is a 30-digit code in groups of five,
// derived only from the public identity; [PublicIdentity.QR] draws the
// fingerprint as a QR code in a terminal.
//
// # Key files
//
// A [Keyring] (identity, the NKey the party connects to the relay with, and
// any inbox keys) is stored by [WriteKeyFile] encrypted with argon2id
// (t=3, 64 MiB, p=4: RFC 9106's second recommended option, stored in the
// file) and XChaCha20-Poly1305, written 0600 through a temporary file and a
// rename. [LoadKeyFile] refuses a symlink or a file readable by group or
// others ([ErrKeyFileInsecure]), tells a wrong passphrase
// ([ErrWrongPassphrase]) from a modified file ([ErrKeyFileCorrupt]), and
// returns the whole keyring or nothing. A key file has exactly one form,
// the one WriteKeyFile writes: an edited file is refused.
//
// # Duress
//
// A key file has two slots. [WriteDuressKeyFile] puts in the second a
// decoy ([NewDecoy]: a harmless identity of its own) that a second,
// duress passphrase opens; [WriteKeyFile] fills it with random bytes that
// look the same. [LoadKeyFile] runs argon2id once, whichever passphrase
// it is given, and compares the result with both slots, so neither the
// file nor the time an unlock takes says whether a duress passphrase
// exists. A decoy comes back with [Keyring.Decoy] set; it shares with the
// owner's keyring only the [Keyring.DuressKey], from which the client
// derives what releases the owner's check-in plan.
//
// # The directory
//
// A [Roster] is YAML written by headquarters. [SignDirectory] signs it with
// the offline root key; the signed file is the roster YAML followed by one
// comment line holding the signature, so it stays readable and is still
// valid YAML. [VerifyDirectory] checks it against the root fingerprint a
// client pinned at setup and refuses, each with its own error, a foreign
// root ([ErrUntrustedRoot]), a bad signature ([ErrBadSignature]), an expired
// version ([ErrExpired]) and a serial older than one already seen
// ([ErrRollback]). Each version names the hash of the previous one.
//
// # Specification
//
// SPEC.md in this directory specifies every byte of the keys, their text
// forms, the signature rule, signed inbox keys and key files, with what a
// reader must refuse; testdata/vectors holds its known-answer vectors.
package keys
