package main

import (
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// A keyFileV2 is a two-slot key file (keys/SPEC.md, "Key file"): one
// derivation from the passphrase, compared with both slots' checks.
type keyFileV2 struct {
	format, kdf              string
	time, memoryKiB, threads uint32
	salt                     []byte
	slots                    []keySlot
}

type keySlot struct{ check, nonce, ciphertext []byte }

const slotPadding = 512

// text is the file's one form, the template of keys/SPEC.md.
func (kf *keyFileV2) text() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  \"format\": %q,\n  \"kdf\": %q,\n  \"time\": %d,\n  \"memory_kib\": %d,\n  \"threads\": %d,\n  \"salt\": \"%s\",\n  \"slots\": [\n",
		kf.format, kf.kdf, kf.time, kf.memoryKiB, kf.threads, std.EncodeToString(kf.salt))
	for i, s := range kf.slots {
		fmt.Fprintf(&b, "    {\n      \"check\": \"%s\",\n      \"nonce\": \"%s\",\n      \"ciphertext\": \"%s\"\n    }",
			std.EncodeToString(s.check), std.EncodeToString(s.nonce), std.EncodeToString(s.ciphertext))
		if i < len(kf.slots)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("  ]\n}\n")
	return []byte(b.String())
}

// associatedData of slot i: the label and slot number, then the file as
// compact JSON with every ciphertext null.
func (kf *keyFileV2) associatedData(i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, keyFileLabel+`/slot-%d{"format":%q,"kdf":%q,"time":%d,"memory_kib":%d,"threads":%d,"salt":"%s","slots":[`,
		i, kf.format, kf.kdf, kf.time, kf.memoryKiB, kf.threads, std.EncodeToString(kf.salt))
	for j, s := range kf.slots {
		if j > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"check":"%s","nonce":"%s","ciphertext":null}`, std.EncodeToString(s.check), std.EncodeToString(s.nonce))
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func (kf *keyFileV2) derive(passphrase string) (key, check []byte) {
	v1 := &keyFile{salt: kf.salt, time: kf.time, memoryKiB: kf.memoryKiB, threads: kf.threads}
	return v1.derive(passphrase)
}

// newKeyFileV2 is a file of two slots with the vectors' shared salt,
// each slot's nonce its own, checks and ciphertexts unset.
func newKeyFileV2(name string) *keyFileV2 {
	kf := &keyFileV2{format: "beacon-key-file-v2", kdf: "argon2id", time: 3, memoryKiB: 64 << 10, threads: 4,
		salt: derive("key-file/salt", 16)}
	for i := range 2 {
		kf.slots = append(kf.slots, keySlot{nonce: derive(fmt.Sprintf("key-file/nonce/%s/%d", name, i), 24)})
	}
	return kf
}

// padTo pads a keyring plaintext with zero bytes to size.
func padTo(pt []byte, size int) []byte {
	if len(pt) >= size {
		panic("padding shorter than the keyring")
	}
	return append(bytes.Clone(pt), make([]byte, size-len(pt))...)
}

// slotSize is the padded size for keyrings of these lengths: the smallest
// multiple of 512 greater than the longest.
func slotSize(pts ...[]byte) int {
	n := 0
	for _, p := range pts {
		n = max(n, len(p))
	}
	return (n/slotPadding + 1) * slotPadding
}

// sealV2 fills kf's slots: slot i with plaintexts[i] (already padded)
// under passphrases[i], or random bytes of the same length where the
// passphrase is "". Checks come first: every slot's AD covers them all.
func sealV2(name string, kf *keyFileV2, passphrases []string, plaintexts [][]byte) *keyFileV2 {
	size := 0
	for _, p := range plaintexts {
		size = max(size, len(p))
	}
	keys := make([][]byte, len(kf.slots))
	for i := range kf.slots {
		if passphrases[i] == "" {
			kf.slots[i].check = derive(fmt.Sprintf("key-file/random-check/%s/%d", name, i), 32)
			continue
		}
		keys[i], kf.slots[i].check = kf.derive(passphrases[i])
	}
	for i := range kf.slots {
		if passphrases[i] == "" {
			kf.slots[i].ciphertext = derive(fmt.Sprintf("key-file/random-slot/%s/%d", name, i), size+16)
			continue
		}
		aead, err := chacha20poly1305.NewX(keys[i])
		if err != nil {
			panic(err)
		}
		kf.slots[i].ciphertext = aead.Seal(nil, kf.slots[i].nonce, plaintexts[i], kf.associatedData(i))
	}
	return kf
}

// open is the reader's side, for the generator's own tests: the slot the
// passphrase opens, and its plaintext without the padding.
func (kf *keyFileV2) open(passphrase string) ([]byte, int, error) {
	key, check := kf.derive(passphrase)
	for i, s := range kf.slots {
		if bytes.Equal(check, s.check) {
			aead, err := chacha20poly1305.NewX(key)
			if err != nil {
				return nil, 0, err
			}
			pt, err := aead.Open(nil, s.nonce, s.ciphertext, kf.associatedData(i))
			return bytes.TrimRight(pt, "\x00"), i, err
		}
	}
	return nil, 0, fmt.Errorf("wrong passphrase")
}
