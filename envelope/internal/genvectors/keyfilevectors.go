package main

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// The key file vectors. Each LoadKeyFile that reaches argon2id costs a
// third of a second under the race detector, so only the vectors that must
// reach it do: those that refuse the file's structure stop before.

// keyFilePassphrase has a non-ASCII letter, so that the vectors pin down
// that the passphrase is its UTF-8 bytes, not normalised.
const keyFilePassphrase = "grüne Tür, Kampala, 18:00"

var (
	keyFileCreated = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	missionInbox2  = newInboxKey("mission/2025-12")
)

func missionKeyring() *keyring {
	return &keyring{
		role:     "mission",
		id:       mission,
		nkeySeed: nkeySeed(nkeyPrefixUser, derive("nkey/mission", 32)),
		inboxes: []keyringInbox{
			{key: missionInbox, expires: inboxExpires, signature: mission.signInboxKey(missionInbox.pub, inboxExpires)},
			{key: missionInbox2, expires: inboxExpires.AddDate(0, 6, 0), signature: mission.signInboxKey(missionInbox2.pub, inboxExpires.AddDate(0, 6, 0))},
		},
		created: keyFileCreated,
	}
}

func defenderKeyring() *keyring {
	return &keyring{role: "defender", id: defender, nkeySeed: nkeySeed(nkeyPrefixUser, derive("nkey/defender", 32)), created: keyFileCreated}
}

// newKeyFile returns a key file with the default parameters, its salt
// shared by the vectors (one argon2id run for all) and its nonce its own.
func newKeyFile(name string) *keyFile {
	return &keyFile{format: "beacon-key-file-v1", kdf: "argon2id", time: 3, memoryKiB: 64 << 10, threads: 4,
		salt: derive("key-file/salt", 16), nonce: derive("key-file/nonce/"+name, 24)}
}

func sealedKeyFile(name string, plaintext []byte) *keyFile {
	kf := newKeyFile(name)
	kf.seal(keyFilePassphrase, plaintext)
	return kf
}

func keyFileVectors() []*keyVector {
	var vs []*keyVector
	kv := func(name, expect, desc, mode, passphrase string, file []byte, kr *keyring) {
		v := &keyVector{name: name, kind: "key-file", expect: expect, description: desc, input: file}
		v.field("passphrase", passphrase)
		v.field("mode", mode)
		if kr != nil {
			v.field("role", kr.role)
			v.field("identity", kr.id.secretText())
			v.field("nkey-seed", kr.nkeySeed)
			v.field("nkey", nkeyPublic(nkeyPrefixUser, nkeySeedBytes(kr.nkeySeed)))
			v.field("created", kr.created.Format(time.RFC3339))
			v.field("inboxes", fmt.Sprint(len(kr.inboxes)))
			for i, e := range kr.inboxes {
				v.field(fmt.Sprintf("inbox-%d", i), e.key.secretText()+" "+e.expires.Format(time.RFC3339))
			}
			if kr.duress != nil {
				v.field("duress", std.EncodeToString(kr.duress))
			}
			if kr.decoy {
				v.field("decoy", "true")
			}
		}
		vs = append(vs, v)
	}
	corrupt := func(name, desc string, file []byte) {
		kv(name, "ErrKeyFileCorrupt", desc, "0600", keyFilePassphrase, file, nil)
	}

	mk := missionKeyring()
	base := sealedKeyFile("ok-key-file-mission", mk.text())
	kv("ok-key-file-mission", "ok", "a mission's keyring with two inbox keys", "0600", keyFilePassphrase, base.text(), mk)
	dk := defenderKeyring()
	kv("ok-key-file-defender", "ok", "a defender's keyring: no inbox keys, so no inboxes field", "0600", keyFilePassphrase,
		sealedKeyFile("ok-key-file-defender", dk.text()).text(), dk)
	strong := newKeyFile("ok-key-file-other-parameters")
	strong.time, strong.threads, strong.salt = 4, 2, derive("key-file/salt-32", 32)
	strong.seal(keyFilePassphrase, dk.text())
	kv("ok-key-file-other-parameters", "ok", "t = 4, p = 2 and a 32-byte salt: stronger than the defaults and in range", "0600",
		keyFilePassphrase, strong.text(), dk)

	// The passphrase.
	kv("key-file-wrong-passphrase", "ErrWrongPassphrase", "the passphrase with ! appended", "0600", keyFilePassphrase+"!", base.text(), nil)
	kv("key-file-passphrase-decomposed", "ErrWrongPassphrase",
		"the passphrase with ü as u and a combining diaeresis (NFD): passphrases are bytes, not normalised", "0600",
		strings.ReplaceAll(keyFilePassphrase, "ü", "u\u0308"), base.text(), nil)

	// The file's permissions, refused before a byte is read.
	for _, mode := range []string{"0644", "0640", "0604"} {
		kv("key-file-mode-"+mode, "ErrKeyFileInsecure", "mode "+mode+": readable by group or others", mode, keyFilePassphrase, base.text(), nil)
	}

	// The file's form, refused before argon2id.
	text := string(base.text())
	lines := strings.Split(text, "\n")
	edit := func(f func(kf *keyFile)) []byte {
		c := *base
		f(&c)
		return c.text()
	}
	corrupt("key-file-not-json", "a secret identity's text, not JSON", []byte(mission.secretText()+"\n"))
	corrupt("key-file-empty", "an empty file", nil)
	corrupt("key-file-unknown-field", `an extra "comment" field`,
		[]byte(strings.Join(append(lines[:2:2], append([]string{`  "comment": "mission key",`}, lines[2:]...)...), "\n")))
	corrupt("key-file-field-order", "format and kdf swapped", []byte(strings.Join(append([]string{lines[0], lines[2], lines[1]}, lines[3:]...), "\n")))
	corrupt("key-file-crlf", "CR LF line ends", []byte(strings.ReplaceAll(text, "\n", "\r\n")))
	corrupt("key-file-no-final-newline", "the final newline missing", []byte(strings.TrimSuffix(text, "\n")))
	corrupt("key-file-two-final-newlines", "a blank line at the end", []byte(text+"\n"))
	corrupt("key-file-tab-indent", "indented with tabs", []byte(strings.ReplaceAll(text, "\n  ", "\n\t")))
	corrupt("key-file-field-name-case", `"Format" for "format": a lenient JSON decoder would take it`,
		[]byte(strings.Replace(text, `"format"`, `"Format"`, 1)))
	corrupt("key-file-duplicate-field", `"time" twice, 3 then 4`,
		[]byte(strings.Replace(text, "  \"time\": 3,\n", "  \"time\": 3,\n  \"time\": 4,\n", 1)))
	corrupt("key-file-memory-string", `"memory_kib" as a string`, []byte(strings.Replace(text, `"memory_kib": 65536`, `"memory_kib": "65536"`, 1)))
	saltB64 := std.EncodeToString(base.salt)
	lax := []byte(saltB64)
	lax[21] = b64std[strings.IndexByte(b64std, lax[21])|1] // a spare bit of the last character
	corrupt("key-file-salt-trailing-bits", "a spare bit of the salt's base64 set: lax decoders read the same salt",
		[]byte(strings.Replace(text, saltB64, string(lax), 1)))
	corrupt("key-file-format-v2", "a version 1 layout labelled beacon-key-file-v2", edit(func(kf *keyFile) { kf.format = "beacon-key-file-v2" }))
	corrupt("key-file-format-v3", "format beacon-key-file-v3", edit(func(kf *keyFile) { kf.format = "beacon-key-file-v3" }))
	corrupt("key-file-kdf-scrypt", "kdf scrypt", edit(func(kf *keyFile) { kf.kdf = "scrypt" }))
	corrupt("key-file-time-2", "t = 2, below the default", edit(func(kf *keyFile) { kf.time = 2 }))
	corrupt("key-file-time-17", "t = 17, above the limit of 16", edit(func(kf *keyFile) { kf.time = 17 }))
	corrupt("key-file-memory-65535", "m = 65535 KiB, below the default", edit(func(kf *keyFile) { kf.memoryKiB = 65535 }))
	corrupt("key-file-memory-1048577", "m = 1048577 KiB, above the 1 GiB limit", edit(func(kf *keyFile) { kf.memoryKiB = 1<<20 + 1 }))
	corrupt("key-file-threads-0", "p = 0", edit(func(kf *keyFile) { kf.threads = 0 }))
	corrupt("key-file-threads-65", "p = 65, above the limit of 64", edit(func(kf *keyFile) { kf.threads = 65 }))
	corrupt("key-file-salt-15", "a 15-byte salt", edit(func(kf *keyFile) { kf.salt = kf.salt[:15] }))
	corrupt("key-file-salt-65", "a 65-byte salt", edit(func(kf *keyFile) { kf.salt = derive("key-file/salt-65", 65) }))
	corrupt("key-file-check-31", "a 31-byte check value", edit(func(kf *keyFile) { kf.check = kf.check[:31] }))
	corrupt("key-file-nonce-23", "a 23-byte nonce", edit(func(kf *keyFile) { kf.nonce = kf.nonce[:23] }))
	corrupt("key-file-ciphertext-15", "a 15-byte ciphertext, shorter than a tag", edit(func(kf *keyFile) { kf.ciphertext = kf.ciphertext[:15] }))
	big := edit(func(kf *keyFile) {
		// Just over the limit: a ciphertext that brings the file to more
		// than 65,536 bytes.
		n := (maxKeyFileSize - (len(kf.text()) - len(std.EncodeToString(kf.ciphertext)))) * 3 / 4
		kf.ciphertext = derive("key-file/big", n+3)
	})
	if len(big) <= maxKeyFileSize || len(big) > maxKeyFileSize+8 {
		panic(fmt.Sprintf("big key file is %d bytes", len(big)))
	}
	corrupt("key-file-too-large", fmt.Sprintf("%d bytes, over the limit of %d", len(big), maxKeyFileSize), big)

	// Modified after writing: argon2id runs, then the check value or the
	// AEAD refuses.
	flipField := func(f func(kf *keyFile) []byte) []byte {
		c := *base
		c.salt, c.check, c.nonce, c.ciphertext = bytes.Clone(c.salt), bytes.Clone(c.check), bytes.Clone(c.nonce), bytes.Clone(c.ciphertext)
		b := f(&c)
		b[len(b)/2] ^= 0x01
		return c.text()
	}
	kv("key-file-salt-modified", "ErrWrongPassphrase", "one bit of the salt flipped: another key is derived, as with a wrong passphrase", "0600",
		keyFilePassphrase, flipField(func(kf *keyFile) []byte { return kf.salt }), nil)
	corrupt("key-file-nonce-modified", "one bit of the nonce flipped", flipField(func(kf *keyFile) []byte { return kf.nonce }))
	corrupt("key-file-ciphertext-modified", "one bit of the ciphertext flipped", flipField(func(kf *keyFile) []byte { return kf.ciphertext }))

	// A plaintext that authenticates but is not a keyring this format
	// allows: written by someone who knows the passphrase.
	plain := func(name, desc string, f func(kr *keyring) []byte) {
		corrupt(name, desc, sealedKeyFile(name, f(missionKeyring())).text())
	}
	plain("key-file-keyring-unknown-role", "the role is embassy", func(kr *keyring) []byte { kr.role = "embassy"; return kr.text() })
	plain("key-file-keyring-not-canonical", "a space after the first colon of the keyring",
		func(kr *keyring) []byte { return bytes.Replace(kr.text(), []byte(`"role":`), []byte(`"role": `), 1) })
	plain("key-file-keyring-created-offset", "created 2025-06-01T14:00:00+02:00: the same instant, not in UTC",
		func(kr *keyring) []byte {
			return bytes.Replace(kr.text(), []byte(`"created":"2025-06-01T12:00:00Z"`), []byte(`"created":"2025-06-01T14:00:00+02:00"`), 1)
		})
	plain("key-file-keyring-nkey-account", "the NKey is an account seed (SA…), not a user seed", func(kr *keyring) []byte {
		kr.nkeySeed = nkeySeed(nkeyPrefixAccount, derive("nkey/mission", 32))
		return kr.text()
	})
	plain("key-file-keyring-inbox-not-signed", "the second inbox key's signature is by another identity", func(kr *keyring) []byte {
		kr.inboxes[1].signature = defender.signInboxKey(missionInbox2.pub, kr.inboxes[1].expires)
		return kr.text()
	})
	keyFileV2Vectors(kv, corrupt)
	return vs
}

const (
	b64std         = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	maxKeyFileSize = 64 << 10
)

func nkeySeedBytes(s string) []byte {
	raw, err := b32.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return raw[2:34]
}
