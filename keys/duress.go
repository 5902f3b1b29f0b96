package keys

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/chacha20poly1305"
)

// A key file has two slots, each a keyring encrypted under a key derived
// from a passphrase: the owner's, and either a decoy that a duress
// passphrase opens or random bytes that nothing opens. Both are padded to
// one length and stored in a random order, and a reader derives one key
// from the passphrase it is given and compares it with both slots, so
// that the file does not say whether it has a duress passphrase, and
// unlocking with either passphrase costs the same argon2id run.
// keys/SPEC.md ("Key file") has the bytes.

// DuressKeySize is the size of a duress key.
const DuressKeySize = 32

const (
	keyFileFormatV2 = "beacon-key-file-v2"
	// keySlots is the number of slots of a key file.
	keySlots = 2
	// slotPadding: a slot's plaintext is padded with zero bytes to a
	// multiple of this, the same for both slots, so their sizes say
	// nothing of which is which.
	slotPadding = 512
)

// keyFileV2 is the JSON form of a key file. Everything but the
// ciphertexts is authenticated as associated data.
type keyFileV2 struct {
	Format    string    `json:"format"`
	KDF       string    `json:"kdf"`
	Time      uint32    `json:"time"`
	MemoryKiB uint32    `json:"memory_kib"`
	Threads   uint8     `json:"threads"`
	Salt      []byte    `json:"salt"`
	Slots     []keySlot `json:"slots"`
}

type keySlot struct {
	Check      []byte `json:"check"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// ErrSamePassphrase is returned by [WriteDuressKeyFile] when the duress
// passphrase is the passphrase.
var ErrSamePassphrase = errors.New("the duress passphrase must differ from the passphrase")

// NewDecoy returns the keyring a duress passphrase opens for kr: a fresh
// defender identity and NKey, created when kr was, sharing with kr a new
// duress key (which it sets on kr). Write both with [WriteDuressKeyFile].
func NewDecoy(kr *Keyring) (*Keyring, error) {
	id, err := GenerateIdentity()
	if err != nil {
		return nil, err
	}
	nk, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("generating NKey: %w", err)
	}
	key := make([]byte, DuressKeySize)
	rand.Read(key)
	kr.duress = key
	return &Keyring{Role: RoleDefender, Identity: id, NKey: nk, Created: kr.Created, duress: bytes.Clone(key), Decoy: true}, nil
}

// DuressKey returns the duress key ([DuressKeySize] bytes) this keyring
// shares with the decoy its key file holds beside it, or nil if it has
// none: the client arms its check-in plan under an id and a panic lock
// derived from it, and the decoy releases that plan with it. It is a
// secret.
func (kr *Keyring) DuressKey() []byte { return bytes.Clone(kr.duress) }

// WriteDuressKeyFile writes a key file that passphrase opens to kr and
// duress opens to decoy (from [NewDecoy]), as [WriteKeyFile] writes one.
// Nothing in the file tells the two apart.
func WriteDuressKeyFile(path string, kr *Keyring, passphrase []byte, decoy *Keyring, duress []byte, overwrite bool) error {
	switch {
	case !decoy.Decoy || len(decoy.duress) != DuressKeySize || !bytes.Equal(decoy.duress, kr.duress):
		return errors.New("keys: the decoy and the keyring do not share a duress key (use NewDecoy)")
	case bytes.Equal(passphrase, duress):
		return ErrSamePassphrase
	}
	return writeKeyFile(path, kr, passphrase, decoy, duress, overwrite)
}

func writeKeyFile(path string, kr *Keyring, passphrase []byte, decoy *Keyring, duress []byte, overwrite bool) error {
	for _, p := range [][]byte{passphrase, duress} {
		if p != nil && utf8.RuneCount(p) < MinPassphraseLength {
			return fmt.Errorf("passphrase is too short: at least %d characters", MinPassphraseLength)
		}
	}
	if kr.Decoy {
		return errors.New("keys: a decoy is written beside the keyring it hides, with WriteDuressKeyFile")
	}
	real, err := keyringPlaintext(kr)
	if err != nil {
		return err
	}
	var fake []byte
	if decoy != nil {
		if fake, err = keyringPlaintext(decoy); err != nil {
			return err
		}
	}
	size := (max(len(real), len(fake))/slotPadding + 1) * slotPadding
	kf := keyFileV2{Format: keyFileFormatV2, KDF: "argon2id", Time: argonTime, MemoryKiB: argonMemory, Threads: argonThreads,
		Salt: make([]byte, 16), Slots: make([]keySlot, keySlots)}
	rand.Read(kf.Salt)
	var b [1]byte
	rand.Read(b[:])
	mine := int(b[0] & 1) // the owner's slot; the other is the decoy's or random
	plain := [keySlots][]byte{}
	slotKeys := [keySlots][]byte{}
	plain[mine] = real
	slotKeys[mine], kf.Slots[mine].Check = deriveKeyFile(passphrase, kf.Salt, kf.Time, kf.MemoryKiB, kf.Threads)
	if decoy != nil {
		plain[1-mine] = fake
		slotKeys[1-mine], kf.Slots[1-mine].Check = deriveKeyFile(duress, kf.Salt, kf.Time, kf.MemoryKiB, kf.Threads)
	} else {
		kf.Slots[1-mine].Check = make([]byte, 32)
		rand.Read(kf.Slots[1-mine].Check)
	}
	for i := range kf.Slots {
		kf.Slots[i].Nonce = make([]byte, chacha20poly1305.NonceSizeX)
		rand.Read(kf.Slots[i].Nonce)
	}
	for i := range kf.Slots {
		if plain[i] == nil {
			kf.Slots[i].Ciphertext = make([]byte, size+chacha20poly1305.Overhead)
			rand.Read(kf.Slots[i].Ciphertext)
			continue
		}
		padded := make([]byte, size)
		copy(padded, plain[i])
		aead, _ := chacha20poly1305.NewX(slotKeys[i])
		kf.Slots[i].Ciphertext = aead.Seal(nil, kf.Slots[i].Nonce, padded, kf.associatedData(i))
	}
	out, err := kf.marshal()
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, out, 0o600, overwrite)
}

func (kf *keyFileV2) marshal() ([]byte, error) {
	out, err := json.MarshalIndent(kf, "", "  ")
	return append(out, '\n'), err
}

// associatedData of slot i: the label with the slot's number, then every
// field of the file, both ciphertexts null, as compact JSON.
func (kf *keyFileV2) associatedData(i int) []byte {
	c := *kf
	c.Slots = make([]keySlot, len(kf.Slots))
	for j, s := range kf.Slots {
		c.Slots[j] = keySlot{Check: s.Check, Nonce: s.Nonce}
	}
	ad, _ := json.Marshal(c)
	return append([]byte(fmt.Sprintf("%s/slot-%d", keyFileLabel, i)), ad...)
}

// loadKeyFileV2 reads a two-slot key file (data, read from path).
func loadKeyFileV2(path string, data, passphrase []byte) (*Keyring, error) {
	var kf keyFileV2
	if err := decodeKeyFile(path, data, &kf); err != nil {
		return nil, err
	}
	if err := checkKDF(kf.KDF, kf.Time, kf.MemoryKiB, kf.Threads, kf.Salt); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(kf.Slots) != keySlots {
		return nil, fmt.Errorf("%s: %w: %d slots, want %d", path, ErrKeyFileCorrupt, len(kf.Slots), keySlots)
	}
	for _, s := range kf.Slots {
		n := len(s.Ciphertext) - chacha20poly1305.Overhead
		if len(s.Check) != 32 || len(s.Nonce) != chacha20poly1305.NonceSizeX || n < slotPadding || n%slotPadding != 0 ||
			len(s.Ciphertext) != len(kf.Slots[0].Ciphertext) {
			return nil, fmt.Errorf("%s: %w: bad field sizes", path, ErrKeyFileCorrupt)
		}
	}
	// One derivation, compared with both slots whichever matches: the
	// owner's passphrase and the duress passphrase cost the same.
	key, check := deriveKeyFile(passphrase, kf.Salt, kf.Time, kf.MemoryKiB, kf.Threads)
	m0, m1 := hmac.Equal(check, kf.Slots[0].Check), hmac.Equal(check, kf.Slots[1].Check)
	if m0 == m1 {
		if m0 {
			return nil, fmt.Errorf("%s: %w: both slots open with one passphrase", path, ErrKeyFileCorrupt)
		}
		return nil, fmt.Errorf("%s: %w", path, ErrWrongPassphrase)
	}
	i := 0
	if m1 {
		i = 1
	}
	aead, _ := chacha20poly1305.NewX(key)
	padded, err := aead.Open(nil, kf.Slots[i].Nonce, kf.Slots[i].Ciphertext, kf.associatedData(i))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: contents do not authenticate", path, ErrKeyFileCorrupt)
	}
	// JSON never holds a zero byte: the keyring ends where the padding
	// starts.
	pt := bytes.TrimRight(padded, "\x00")
	kr, err := parseKeyring(pt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrKeyFileCorrupt, err)
	}
	return kr, nil
}
