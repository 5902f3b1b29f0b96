package main

import (
	"bytes"
	"strings"
)

// duressPassphrase opens the decoy of the two-slot vectors.
const duressPassphrase = "the flowers are for my aunt"

// keyFileV2Vectors are the two-slot key files: kv and corrupt add a
// vector as in keyFileVectors.
func keyFileV2Vectors(kv func(name, expect, desc, mode, passphrase string, file []byte, kr *keyring), corrupt func(name, desc string, file []byte)) {
	duressKey := derive("key-file/duress", 32)
	owner := defenderKeyring()
	owner.duress = duressKey
	decoy := &keyring{role: "defender", id: newIdentity("decoy"), nkeySeed: nkeySeed(nkeyPrefixUser, derive("nkey/decoy", 32)),
		created: keyFileCreated, duress: duressKey, decoy: true}
	size := slotSize(owner.text(), decoy.text())

	// A file with a duress passphrase: the owner in slot 1, the decoy in
	// slot 0, as a writer's random choice may put them.
	duress := sealV2("ok-key-file-v2-duress", newKeyFileV2("ok-key-file-v2-duress"), []string{duressPassphrase, keyFilePassphrase},
		[][]byte{padTo(decoy.text(), size), padTo(owner.text(), size)})
	kv("ok-key-file-v2-owner", "ok", "a file with a duress passphrase, opened with the owner's: the keyring in slot 1, with its duress key", "0600",
		keyFilePassphrase, duress.text(), owner)
	kv("ok-key-file-v2-decoy", "ok", "the same file opened with the duress passphrase: the decoy in slot 0, marked decoy, sharing the duress key", "0600",
		duressPassphrase, duress.text(), decoy)
	kv("key-file-v2-wrong-passphrase", "ErrWrongPassphrase", "the same file, a passphrase that opens neither slot", "0600",
		duressPassphrase+"!", duress.text(), nil)

	// Without a duress passphrase: the other slot is random bytes.
	mk := missionKeyring()
	mission := sealV2("ok-key-file-v2-mission", newKeyFileV2("ok-key-file-v2-mission"), []string{keyFilePassphrase, ""},
		[][]byte{padTo(mk.text(), slotSize(mk.text())), nil})
	kv("ok-key-file-v2-mission", "ok", "a mission's keyring in slot 0, random bytes in slot 1", "0600", keyFilePassphrase, mission.text(), mk)
	dk := defenderKeyring()
	plain := sealV2("ok-key-file-v2-defender", newKeyFileV2("ok-key-file-v2-defender"), []string{"", keyFilePassphrase},
		[][]byte{nil, padTo(dk.text(), slotSize(dk.text()))})
	kv("ok-key-file-v2-defender", "ok", "a defender's keyring in slot 1, random bytes in slot 0", "0600", keyFilePassphrase, plain.text(), dk)

	// The layout, refused before argon2id.
	slots := func(f func(kf *keyFileV2)) []byte {
		c := *plain
		c.slots = append([]keySlot(nil), plain.slots...)
		f(&c)
		return c.text()
	}
	corrupt("key-file-v2-one-slot", "the owner's slot only", slots(func(kf *keyFileV2) { kf.slots = kf.slots[1:] }))
	corrupt("key-file-v2-three-slots", "a third slot, a copy of the first", slots(func(kf *keyFileV2) { kf.slots = append(kf.slots, kf.slots[0]) }))
	corrupt("key-file-v2-slot-sizes-differ", "the random slot 512 bytes longer than the owner's",
		slots(func(kf *keyFileV2) {
			kf.slots[0].ciphertext = derive("key-file/longer", len(kf.slots[1].ciphertext)+512)
		}))
	corrupt("key-file-v2-not-padded", "both ciphertexts 16 bytes short of a multiple of 512 plus the tag", slots(func(kf *keyFileV2) {
		kf.slots[0].ciphertext = kf.slots[0].ciphertext[:len(kf.slots[0].ciphertext)-16]
		kf.slots[1].ciphertext = kf.slots[1].ciphertext[:len(kf.slots[1].ciphertext)-16]
	}))
	corrupt("key-file-v2-check-31", "a 31-byte check value in the random slot", slots(func(kf *keyFileV2) { kf.slots[0].check = kf.slots[0].check[:31] }))
	corrupt("key-file-v2-nonce-23", "a 23-byte nonce in the random slot", slots(func(kf *keyFileV2) { kf.slots[0].nonce = kf.slots[0].nonce[:23] }))
	text := string(plain.text())
	corrupt("key-file-v2-indent", "slots indented by one space too many", []byte(strings.ReplaceAll(text, "\n    ", "\n     ")))
	corrupt("key-file-v2-v1-fields", "a version 2 file with the version 1 check field at the top", []byte(strings.Replace(text, `  "slots": [`, `  "check": "`+std.EncodeToString(plain.slots[1].check)+`",`+"\n"+`  "slots": [`, 1)))

	// After argon2id: the checks, the AEAD, the plaintext.
	both := slots(func(kf *keyFileV2) { kf.slots[0].check = kf.slots[1].check })
	corrupt("key-file-v2-both-slots-match", "the random slot carries the owner's check value: both slots match one passphrase", both)
	swapped := slots(func(kf *keyFileV2) { kf.slots[0], kf.slots[1] = kf.slots[1], kf.slots[0] })
	corrupt("key-file-v2-slots-swapped", "the two slots in the other order: each slot's associated data names its number and the other's check", swapped)
	reseal := func(name string, pt []byte) []byte {
		return sealV2(name, newKeyFileV2(name), []string{keyFilePassphrase, ""}, [][]byte{pt, nil}).text()
	}
	dkPadded := padTo(dk.text(), slotSize(dk.text()))
	badPad := bytes.Clone(dkPadded)
	badPad[len(badPad)-1] = 0x20
	corrupt("key-file-v2-padding-space", "the padding ends in a space, not a zero byte", reseal("key-file-v2-padding-space", badPad))
	corrupt("key-file-v2-decoy-false", `"decoy":false: a second form of no flag`,
		reseal("key-file-v2-decoy-false", padTo(append(bytes.TrimSuffix(owner.text(), []byte("}")), []byte(`,"decoy":false}`)...), size)))
	mdecoy := missionKeyring()
	mdecoy.duress, mdecoy.decoy = duressKey, true
	corrupt("key-file-v2-decoy-mission", "a mission's keyring marked decoy: a decoy is a defender's",
		reseal("key-file-v2-decoy-mission", padTo(mdecoy.text(), slotSize(mdecoy.text()))))
	nodur := defenderKeyring()
	nodur.decoy = true
	corrupt("key-file-v2-decoy-no-duress", "a decoy without a duress key", reseal("key-file-v2-decoy-no-duress", padTo(nodur.text(), size)))
	short := defenderKeyring()
	short.duress = duressKey[:31]
	corrupt("key-file-v2-duress-31", "a 31-byte duress key", reseal("key-file-v2-duress-31", padTo(short.text(), size)))
}
