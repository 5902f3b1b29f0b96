package keys

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/google/renameio/v2"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// A Keyring is everything secret one party holds, stored together in one
// encrypted key file.
type Keyring struct {
	Role     Role
	Identity *Identity
	// NKey is the seed of the key the party connects to the relay with. It
	// is never the identity: the relay chooses the nonce an NKey signs.
	NKey nkeys.KeyPair
	// Inboxes are a mission's or partner's inbox keys, newest last.
	Inboxes []InboxEntry
	Created time.Time
	// duress is the key of [Keyring.DuressKey].
	duress []byte
	// Decoy marks the keyring that a duress passphrase opens: a harmless
	// identity of its own, with nothing to show.
	Decoy bool
}

// Format prints a keyring without its secrets, whatever the verb: fmt
// would otherwise print the NKey seed for %s.
func (kr Keyring) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "Keyring{role: %s, identity: %s, nkey: %s, inboxes: %d}", kr.Role, kr.Identity, kr.NKeyPublic(), len(kr.Inboxes))
}

// An InboxEntry is an inbox key with its expiry and the signature that
// lists it in the directory.
type InboxEntry struct {
	Key    *InboxKey
	Signed SignedInboxKey
}

// inboxKeyLifetime is how long a newly generated inbox key is listed for.
const inboxKeyLifetime = 180 * 24 * time.Hour

// NewKeyring generates a fresh identity and NKey for role; missions and
// partners also get a first inbox key.
func NewKeyring(role Role) (*Keyring, error) {
	id, err := GenerateIdentity()
	if err != nil {
		return nil, err
	}
	nk, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("generating NKey: %w", err)
	}
	kr := &Keyring{Role: role, Identity: id, NKey: nk, Created: time.Now().UTC().Truncate(time.Second)}
	if role == RoleMission || role == RolePartner || role == RoleHeadquarters {
		if err := kr.AddInbox(kr.Created.Add(inboxKeyLifetime)); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// AddInbox generates a new inbox key valid until expires.
func (kr *Keyring) AddInbox(expires time.Time) error {
	k, err := GenerateInboxKey()
	if err != nil {
		return err
	}
	kr.Inboxes = append(kr.Inboxes, InboxEntry{Key: k, Signed: SignInboxKey(kr.Identity, k.Public(), expires)})
	return nil
}

// InboxKeys returns the secret inbox keys, for opening envelopes.
func (kr *Keyring) InboxKeys() []*InboxKey {
	out := make([]*InboxKey, len(kr.Inboxes))
	for i, e := range kr.Inboxes {
		out[i] = e.Key
	}
	return out
}

// NKeyPublic returns the public NKey ("U…").
func (kr *Keyring) NKeyPublic() string {
	pub, _ := kr.NKey.PublicKey()
	return pub
}

// Key-file limits and parameters.
const (
	// MaxKeyFileSize bounds what LoadKeyFile reads: a key file holds a few
	// hundred bytes of secrets, so anything larger is not one.
	MaxKeyFileSize = 64 << 10

	// MinPassphraseLength is the shortest passphrase WriteKeyFile accepts.
	// argon2id slows guessing, it cannot save a short passphrase.
	MinPassphraseLength = 10

	// Argon2id parameters: RFC 9106's second recommended option (t=3,
	// 64 MiB, p=4), for devices that cannot spare 2 GiB.
	argonTime    = 3
	argonMemory  = 64 << 10 // KiB
	argonThreads = 4

	// Bounds on the parameters LoadKeyFile accepts from a file. The lower
	// bounds are the defaults: a file with weaker ones was not written by
	// Beacon. The upper bounds keep a hostile file from costing unbounded
	// memory or time.
	maxArgonTime   = 16
	maxArgonMemory = 1 << 20 // 1 GiB in KiB: what a phone can spare
	maxArgonThread = 64

	keyFileFormat = "beacon-key-file-v1"
)

// keyFile is the JSON form of a key file. Everything but Ciphertext is
// authenticated as associated data.
type keyFile struct {
	Format     string `json:"format"`
	KDF        string `json:"kdf"`
	Time       uint32 `json:"time"`
	MemoryKiB  uint32 `json:"memory_kib"`
	Threads    uint8  `json:"threads"`
	Salt       []byte `json:"salt"`
	Check      []byte `json:"check"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// keyringJSON is the plaintext inside a key file.
type keyringJSON struct {
	Role     Role        `json:"role"`
	Identity string      `json:"identity"`
	NKeySeed string      `json:"nkey_seed"`
	Inboxes  []inboxJSON `json:"inboxes,omitempty"`
	Created  time.Time   `json:"created"`
	Duress   []byte      `json:"duress,omitempty"`
	Decoy    bool        `json:"decoy,omitempty"`
}

type inboxJSON struct {
	Key       string    `json:"key"`
	Expires   time.Time `json:"expires"`
	Signature []byte    `json:"signature"`
}

// WriteKeyFile encrypts kr under passphrase and writes it to path with mode
// 0600, atomically: a crash leaves either the old file or the new one. It
// refuses to replace an existing file unless overwrite is set.
//
// The file has two slots (keys/SPEC.md, "Key file"): kr's, and one of
// random bytes as long, which no passphrase opens. A file with a duress
// passphrase ([WriteDuressKeyFile]) looks the same, so a file does not
// say whether it has one.
func WriteKeyFile(path string, kr *Keyring, passphrase []byte, overwrite bool) error {
	return writeKeyFile(path, kr, passphrase, nil, nil, overwrite)
}

// keyringPlaintext is kr's keyring JSON.
func keyringPlaintext(kr *Keyring) ([]byte, error) {
	seed, err := kr.NKey.Seed()
	if err != nil {
		return nil, fmt.Errorf("NKey seed: %w", err)
	}
	// Times are written in UTC, in whole seconds: the one form a reader
	// accepts (an inbox key's signature covers whole seconds anyway).
	plain := keyringJSON{Role: kr.Role, Identity: kr.Identity.SecretString(), NKeySeed: string(seed), Created: wholeSecondUTC(kr.Created),
		Duress: kr.duress, Decoy: kr.Decoy}
	for _, e := range kr.Inboxes {
		plain.Inboxes = append(plain.Inboxes, inboxJSON{Key: e.Key.SecretString(), Expires: wholeSecondUTC(e.Signed.Expires), Signature: e.Signed.Signature})
	}
	return json.Marshal(plain)
}

// marshal returns the file's one form: indented JSON and a newline.
func (kf *keyFile) marshal() ([]byte, error) {
	out, err := json.MarshalIndent(kf, "", "  ")
	return append(out, '\n'), err
}

func wholeSecondUTC(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// derive stretches the passphrase and splits the result into the
// encryption key and a check value that tells a wrong passphrase from a
// modified file. The check value helps an attacker no more than the
// ciphertext does: both cost one argon2id run per guess.
func (kf *keyFile) derive(passphrase []byte) (key, check []byte) {
	return deriveKeyFile(passphrase, kf.Salt, kf.Time, kf.MemoryKiB, kf.Threads)
}

// argonRuns counts argon2id derivations, for the test that every unlock,
// with either passphrase or a wrong one, costs exactly one.
var argonRuns atomic.Int64

func deriveKeyFile(passphrase, salt []byte, t, m uint32, p uint8) (key, check []byte) {
	argonRuns.Add(1)
	master := argon2.IDKey(passphrase, salt, t, m, p, 32)
	key, _ = hkdf.Key(sha256.New, master, nil, keyFileLabel+"/key", chacha20poly1305.KeySize)
	check, _ = hkdf.Key(sha256.New, master, nil, keyFileLabel+"/check", 32)
	return key, check
}

// checkKDF checks the derivation's parameters (keys/SPEC.md, "Reading",
// step 4). The lower bounds are the defaults: a file with weaker ones
// was not written by Beacon. The upper bounds keep a hostile file from
// costing unbounded memory or time.
func checkKDF(kdf string, t, m uint32, p uint8, salt []byte) error {
	switch {
	case kdf != "argon2id":
		return fmt.Errorf("%w: unknown kdf %q", ErrKeyFileCorrupt, kdf)
	case t < argonTime || t > maxArgonTime, m < argonMemory || m > maxArgonMemory, p < 1 || p > maxArgonThread:
		return fmt.Errorf("%w: argon2id parameters t=%d m=%d p=%d out of range", ErrKeyFileCorrupt, t, m, p)
	case len(salt) < 16 || len(salt) > 64:
		return fmt.Errorf("%w: bad field sizes", ErrKeyFileCorrupt)
	}
	return nil
}

// associatedData is every field but the ciphertext, canonically encoded.
func (kf *keyFile) associatedData() []byte {
	c := *kf
	c.Ciphertext = nil
	ad, _ := json.Marshal(c)
	return append([]byte(keyFileLabel), ad...)
}

// LoadKeyFile reads and decrypts a key file. It refuses a symlink, a
// non-regular file and a file readable by group or others before reading a
// byte of it, and returns either the whole keyring or an error.
func LoadKeyFile(path string, passphrase []byte) (*Keyring, error) {
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	// The format decides the layout; the strict decode and the
	// comparison with the one form below judge the file.
	var f struct {
		Format string `json:"format"`
	}
	json.Unmarshal(data, &f)
	if f.Format == keyFileFormatV2 {
		return loadKeyFileV2(path, data, passphrase)
	}
	var kf keyFile
	if err := decodeKeyFile(path, data, &kf); err != nil {
		return nil, err
	}
	if kf.Format != keyFileFormat {
		return nil, fmt.Errorf("%s: %w: unknown format %q", path, ErrKeyFileCorrupt, kf.Format)
	}
	if err := checkKDF(kf.KDF, kf.Time, kf.MemoryKiB, kf.Threads, kf.Salt); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(kf.Check) != 32 || len(kf.Nonce) != chacha20poly1305.NonceSizeX || len(kf.Ciphertext) < chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%s: %w: bad field sizes", path, ErrKeyFileCorrupt)
	}
	key, check := kf.derive(passphrase)
	if !hmac.Equal(check, kf.Check) {
		return nil, fmt.Errorf("%s: %w", path, ErrWrongPassphrase)
	}
	aead, _ := chacha20poly1305.NewX(key)
	pt, err := aead.Open(nil, kf.Nonce, kf.Ciphertext, kf.associatedData())
	if err != nil {
		return nil, fmt.Errorf("%s: %w: contents do not authenticate", path, ErrKeyFileCorrupt)
	}
	kr, err := parseKeyring(pt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrKeyFileCorrupt, err)
	}
	return kr, nil
}

// atEOF reports whether nothing but white space follows the decoded value
// (dec.More is false before a stray "}" or "]").
func atEOF(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err == io.EOF
}

// parseKeyring reads the plaintext of a key file. It is authenticated, so
// only the passphrase's holder could have written it; it is checked as
// strictly as the file around it all the same, so that what one
// implementation writes, every other reads the same way.
func parseKeyring(pt []byte) (*Keyring, error) {
	var kj keyringJSON
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kj); err != nil {
		return nil, err
	}
	if !atEOF(dec) {
		return nil, errors.New("data after the keyring")
	}
	if canon, err := json.Marshal(kj); err != nil || !bytes.Equal(canon, pt) {
		return nil, errors.New("the keyring is not in its one form")
	}
	role, err := ParseRole(string(kj.Role))
	if err != nil {
		return nil, err
	}
	if !isWholeSecondUTC(kj.Created) {
		return nil, errors.New("created time is not in UTC whole seconds")
	}
	if kj.Duress != nil && len(kj.Duress) != DuressKeySize {
		return nil, fmt.Errorf("duress key is %d bytes, want %d", len(kj.Duress), DuressKeySize)
	}
	if kj.Decoy && (kj.Duress == nil || role != RoleDefender) {
		return nil, errors.New("a decoy is a defender's keyring with a duress key")
	}
	kr := &Keyring{Role: role, Created: kj.Created, duress: kj.Duress, Decoy: kj.Decoy}
	if kr.Identity, err = ParseIdentity(kj.Identity); err != nil {
		return nil, err
	}
	if kr.NKey, err = parseUserSeed(kj.NKeySeed); err != nil {
		return nil, err
	}
	for i, ij := range kj.Inboxes {
		k, err := ParseInboxKey(ij.Key)
		if err != nil {
			return nil, err
		}
		if !isWholeSecondUTC(ij.Expires) {
			return nil, fmt.Errorf("inbox key %d: expiry is not in UTC whole seconds", i)
		}
		signed := SignedInboxKey{Key: k.Public(), Expires: ij.Expires, Signature: ij.Signature}
		// The identity signed each of its inbox keys; a key file whose
		// inbox key it did not sign would publish a listing no one accepts.
		if err := signed.verifySignature(kr.Identity.Public()); err != nil {
			return nil, fmt.Errorf("inbox key %d: %w", i, err)
		}
		kr.Inboxes = append(kr.Inboxes, InboxEntry{Key: k, Signed: signed})
	}
	return kr, nil
}

func isWholeSecondUTC(t time.Time) bool {
	_, offset := t.Zone()
	return offset == 0 && t.Nanosecond() == 0
}

// parseUserSeed parses the NKey a party connects with: a user seed
// ("SU…"), in the one text form nkeys writes for it.
func parseUserSeed(s string) (nkeys.KeyPair, error) {
	prefix, _, err := nkeys.DecodeSeed([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("NKey: %w", err)
	}
	if prefix != nkeys.PrefixByteUser {
		return nil, errors.New("NKey: not a user seed")
	}
	kp, err := nkeys.FromSeed([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("NKey: %w", err)
	}
	// base32 leaves spare bits in the last character; only the form with
	// them clear is the seed's.
	if again, err := kp.Seed(); err != nil || string(again) != s {
		return nil, errors.New("NKey: seed is not in its canonical form")
	}
	return kp, nil
}

// readPrivateFile opens path without following a symlink, checks that it is
// a regular file readable by its owner only, and reads at most
// MaxKeyFileSize bytes.
func readPrivateFile(path string) ([]byte, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", path, ErrKeyFileInsecure)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: %w: mode %04o lets group or others read it; run chmod 600 %s", path, ErrKeyFileInsecure, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxKeyFileSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrKeyFileCorrupt, MaxKeyFileSize)
	}
	return data, nil
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, then syncs the directory, so that path holds either
// the old contents or the new, never a mix. Without overwrite it fails if
// path exists, checked atomically (a hard link, not a stat then a rename).
//
// The temporary file is github.com/google/renameio's: created with O_EXCL
// and exactly perm (the umask does not apply), synced before the rename,
// removed on any failure. renameio has no way to refuse an existing path
// and does not sync the directory; both are done here.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode, overwrite bool) error {
	dir := filepath.Dir(path)
	t, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(perm))
	if err != nil {
		return err
	}
	defer t.Cleanup() // a no-op once the file is in place
	if _, err := t.Write(data); err != nil {
		return err
	}
	if overwrite {
		err = t.CloseAtomicallyReplace()
	} else {
		err = linkPending(t, path)
	}
	if err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// linkPending syncs t and links it at path, failing if path exists. The
// deferred Cleanup then removes the temporary name.
func linkPending(t *renameio.PendingFile, path string) error {
	if err := t.Sync(); err != nil {
		return err
	}
	err := os.Link(t.Name(), path)
	if errors.Is(err, fs.ErrExist) {
		return &fs.PathError{Op: "refusing to overwrite", Path: path, Err: fs.ErrExist}
	}
	return err
}

// decodeKeyFile decodes data, read from path, into kf strictly. A key
// file has exactly one form, the one WriteKeyFile writes: another
// implementation then has a byte layout to match rather than the
// leniencies of a JSON decoder (field names in any case, duplicate
// fields, lax base64).
func decodeKeyFile(path string, data []byte, kf interface{ marshal() ([]byte, error) }) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(kf); err != nil || !atEOF(dec) {
		return fmt.Errorf("%s: %w: not a Beacon key file", path, ErrKeyFileCorrupt)
	}
	if canon, _ := kf.marshal(); !bytes.Equal(canon, data) {
		return fmt.Errorf("%s: %w: not in the one form a key file has (was it edited?)", path, ErrKeyFileCorrupt)
	}
	return nil
}
