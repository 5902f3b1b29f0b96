package main

// What keys/SPEC.md specifies, written from it: the text forms, the
// fingerprint and safety number, the signed inbox key, the NKey seed a key
// file holds, and the key file itself. Like spec.go, it imports nothing of
// Beacon.

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Text prefixes and labels of keys/SPEC.md.
const (
	inboxPublicPrefix = "bcn-inbox:"
	fingerprintPrefix = "bcn-fp:"

	fingerprintLabel  = "beacon.keys.v1/fingerprint"
	safetyNumberLabel = "beacon.keys.v1/safety-number"
	inboxKeyLabel     = "beacon.keys.v1/inbox-key"
	keyFileLabel      = "beacon.keys.v1/key-file"

	safetyNumberIterations = 5200
)

func (id *identity) fingerprint() []byte {
	h := sha256.New()
	h.Write([]byte(fingerprintLabel))
	h.Write(id.pub)
	return h.Sum(nil)
}

func fingerprintText(fp []byte) string { return fingerprintPrefix + hex.EncodeToString(fp) }

func publicText(pub []byte) string { return publicIdentityPrefix + b64.EncodeToString(pub) }

// safetyNumber is keys/SPEC.md's: SHA-512 iterated over the identity, six
// groups of five digits from the first 30 bytes.
func safetyNumber(pub []byte) string {
	h := sha512.New()
	h.Write([]byte(safetyNumberLabel))
	h.Write(pub)
	sum := h.Sum(nil)
	for range safetyNumberIterations {
		h.Reset()
		h.Write(sum)
		h.Write(pub)
		sum = h.Sum(nil)
	}
	groups := make([]string, 6)
	for i := range groups {
		var n uint64
		for _, c := range sum[5*i : 5*i+5] {
			n = n<<8 | uint64(c)
		}
		groups[i] = fmt.Sprintf("%05d", n%100000)
	}
	return strings.Join(groups, " ")
}

func (k *inboxKey) publicText() string { return inboxPublicPrefix + b64.EncodeToString(k.pub) }

// inboxKeyMessage is what a mission signs to list an inbox key.
func inboxKeyMessage(pub []byte, expires time.Time) []byte {
	msg := append([]byte(inboxKeyLabel), pub...)
	return binary.BigEndian.AppendUint64(msg, uint64(expires.Unix()))
}

func (id *identity) signInboxKey(pub []byte, expires time.Time) []byte {
	return ed25519.Sign(id.sign, inboxKeyMessage(pub, expires))
}

// NATS NKeys (github.com/nats-io/nkeys, as keys/SPEC.md describes them):
// base32 without padding of the prefix bytes, the 32-byte Ed25519 seed and
// a CRC-16/XMODEM, little endian.
const (
	nkeyPrefixSeed    = 18 << 3
	nkeyPrefixUser    = 20 << 3
	nkeyPrefixAccount = 0
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func crc16(data []byte) uint16 {
	var crc uint16
	for _, b := range data {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func nkeyEncode(raw []byte) string {
	return b32.EncodeToString(binary.LittleEndian.AppendUint16(raw, crc16(raw)))
}

// nkeySeed is the seed text of an NKey of the given public type.
func nkeySeed(kind byte, seed []byte) string {
	return nkeyEncode(append([]byte{nkeyPrefixSeed | kind>>5, (kind & 31) << 3}, seed...))
}

// nkeyPublic is the public text ("U…" for a user) of a seed.
func nkeyPublic(kind byte, seed []byte) string {
	return nkeyEncode(append([]byte{kind}, ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)...))
}

// A keyFile is the outer JSON of a key file, field for field.
type keyFile struct {
	format, kdf                    string
	time, memoryKiB, threads       uint32
	salt, check, nonce, ciphertext []byte
}

var std = base64.StdEncoding

// text is the file's one form: keys/SPEC.md's template, byte for byte.
func (kf *keyFile) text() []byte {
	return []byte(fmt.Sprintf("{\n"+
		"  \"format\": %q,\n"+
		"  \"kdf\": %q,\n"+
		"  \"time\": %d,\n"+
		"  \"memory_kib\": %d,\n"+
		"  \"threads\": %d,\n"+
		"  \"salt\": \"%s\",\n"+
		"  \"check\": \"%s\",\n"+
		"  \"nonce\": \"%s\",\n"+
		"  \"ciphertext\": \"%s\"\n"+
		"}\n", kf.format, kf.kdf, kf.time, kf.memoryKiB, kf.threads,
		std.EncodeToString(kf.salt), std.EncodeToString(kf.check), std.EncodeToString(kf.nonce), std.EncodeToString(kf.ciphertext)))
}

// associatedData is the label and every field but the ciphertext, as
// compact JSON with the ciphertext null.
func (kf *keyFile) associatedData() []byte {
	return []byte(fmt.Sprintf(keyFileLabel+`{"format":%q,"kdf":%q,"time":%d,"memory_kib":%d,"threads":%d,"salt":"%s","check":"%s","nonce":"%s","ciphertext":null}`,
		kf.format, kf.kdf, kf.time, kf.memoryKiB, kf.threads,
		std.EncodeToString(kf.salt), std.EncodeToString(kf.check), std.EncodeToString(kf.nonce)))
}

// argon2Cache remembers derivations: argon2id at 64 MiB is the slowest
// thing the generator does, and many vectors share a passphrase and salt.
var argon2Cache sync.Map

// derive is argon2id, then HKDF-SHA256 into the encryption key and the
// check value.
func (kf *keyFile) derive(passphrase string) (key, check []byte) {
	id := fmt.Sprintf("%q %x %d %d %d", passphrase, kf.salt, kf.time, kf.memoryKiB, kf.threads)
	master, ok := argon2Cache.Load(id)
	if !ok {
		master = argon2.IDKey([]byte(passphrase), kf.salt, kf.time, kf.memoryKiB, uint8(kf.threads), 32)
		argon2Cache.Store(id, master)
	}
	key, err := hkdf.Key(sha256.New, master.([]byte), nil, keyFileLabel+"/key", 32)
	if err != nil {
		panic(err)
	}
	check, err = hkdf.Key(sha256.New, master.([]byte), nil, keyFileLabel+"/check", 32)
	if err != nil {
		panic(err)
	}
	return key, check
}

// sealKeyFile encrypts the keyring plaintext into kf (whose parameters,
// salt and nonce are set).
func (kf *keyFile) seal(passphrase string, plaintext []byte) {
	key, check := kf.derive(passphrase)
	kf.check = check
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err)
	}
	kf.ciphertext = aead.Seal(nil, kf.nonce, plaintext, kf.associatedData())
}

// openKeyFile is the reader's side, for the generator's own tests.
func (kf *keyFile) open(passphrase string) ([]byte, error) {
	key, check := kf.derive(passphrase)
	if string(check) != string(kf.check) {
		return nil, fmt.Errorf("wrong passphrase")
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, kf.nonce, kf.ciphertext, kf.associatedData())
}

// A keyring is the plaintext of a key file.
type keyring struct {
	role     string
	id       *identity
	nkeySeed string
	inboxes  []keyringInbox
	created  time.Time
	duress   []byte // the duress key, or nil
	decoy    bool
}

type keyringInbox struct {
	key       *inboxKey
	expires   time.Time
	signature []byte
}

const rfc3339Seconds = "2006-01-02T15:04:05Z07:00"

// text is the keyring's one form: compact JSON, fields in this order,
// "inboxes" left out when there are none.
func (kr *keyring) text() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"role":%q,"identity":%q,"nkey_seed":%q`, kr.role, kr.id.secretText(), kr.nkeySeed)
	if len(kr.inboxes) > 0 {
		b.WriteString(`,"inboxes":[`)
		for i, e := range kr.inboxes {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"key":%q,"expires":%q,"signature":"%s"}`,
				e.key.secretText(), e.expires.UTC().Format(rfc3339Seconds), std.EncodeToString(e.signature))
		}
		b.WriteString("]")
	}
	fmt.Fprintf(&b, `,"created":%q`, kr.created.UTC().Format(rfc3339Seconds))
	if kr.duress != nil {
		fmt.Fprintf(&b, `,"duress":"%s"`, std.EncodeToString(kr.duress))
	}
	if kr.decoy {
		b.WriteString(`,"decoy":true`)
	}
	b.WriteString("}")
	return []byte(b.String())
}
