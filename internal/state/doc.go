// Package state is the durable state of a Beacon party on its own device:
// a defender's client, a mission's console, a bridge. Everything in it is
// encrypted at rest under a key derived from the party's identity, so a
// seized device without the passphrase shows file sizes and nothing else,
// and every file's name is bound to its contents, so files cannot be
// swapped for one another.
//
// # File layout
//
//	<dir>/LOCK              an advisory lock (flock) held while a process changes the state
//	<dir>/<name>.log        sealed append-only logs ([Log]): the seen-set, case threads
//	<dir>/outbox/<h>.enc    sealed messages waiting for the relay ([Outbox]), one per file,
//	                        named by a keyed hash so that a name reveals nothing
//	<dir>/<name>            whole files written atomically ([Dir.WriteFile]): the signed
//	                        directory (public), the directory version (public)
//
// A log is a sequence of records, each
//
//	length (4 bytes, big-endian) || nonce (24) || XChaCha20-Poly1305(record, ad = name)
//
// # Crash guarantees
//
//   - A call that returned nil with durable set (every [Log.Append] with
//     durable, [Seen.Add], [Outbox.Put], [Dir.WriteFile]) has reached the
//     disk: it was fsynced, and for a new or renamed file so was its
//     directory. It survives kill -9 and a power cut.
//   - A whole file is replaced atomically: after a crash it holds the old
//     contents or the new, never a mix (github.com/google/renameio, then an
//     fsync of the directory, which renameio does not do).
//   - A crash while appending leaves at most one torn record at the end of
//     a log. It is cut off the next time the log is read under the lock, so
//     the next record starts on a record boundary; every record before it
//     is kept. A complete record that does not decrypt (the file was
//     modified) is skipped and counted ([Log.Damaged]); the records after
//     it are kept.
//   - Whoever holds the files can drop or reorder records, or roll a file
//     back to an older copy; nobody without the key can forge or read one.
//
// # Several processes
//
// A defender may run `beacon watch` while sending an alert from another
// shell; a mission officer may use the terminal while the console runs.
// Each process opens the same directory. Every change, and every read that
// must see the others' changes, runs inside [Dir.Do], which holds the
// process's mutex and the directory's flock; inside it, [Log.Sync] and
// [Seen.Sync] first catch up with what other processes appended (or
// reload, if one compacted the log). Nothing is held between calls, so no
// process can lock another out for longer than one operation.
//
// # Why these libraries
//
// File locking is github.com/gofrs/flock and atomic replacement
// github.com/google/renameio/v2; the encryption is golang.org/x/crypto's
// XChaCha20-Poly1305 with keys from HKDF-SHA256. Nothing here is a
// primitive of its own.
package state
