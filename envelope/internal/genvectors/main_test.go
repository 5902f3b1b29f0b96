package main

import (
	"bytes"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

// The vector directories, from this package's directory.
var vectorDirs = []struct {
	dir      string
	generate func() map[string][]byte
}{
	{"../../testdata/vectors", generate},
	{"../../testdata/signed", generateSigned},
	{"../../../keys/testdata/vectors", generateKeys},
}

// The files in the tree are exactly what the generator writes.
func TestVectorsUpToDate(t *testing.T) {
	for _, d := range vectorDirs {
		files := d.generate()
		onDisk, err := filepath.Glob(filepath.Join(d.dir, "*.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if len(onDisk) != len(files) {
			t.Errorf("%s: %d vector files, the generator writes %d", d.dir, len(onDisk), len(files))
		}
		for _, f := range onDisk {
			if _, ok := files[filepath.Base(f)]; !ok {
				t.Errorf("%s is not written by the generator", f)
			}
		}
		for name, want := range files {
			got, err := os.ReadFile(filepath.Join(d.dir, name))
			if err != nil {
				t.Errorf("%v (run go run ./envelope/internal/genvectors)", err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s/%s differs from the generator's output (run go run ./envelope/internal/genvectors)", d.dir, name)
			}
		}
		// And the output does not depend on the run.
		for name, b := range d.generate() {
			if !bytes.Equal(b, files[name]) {
				t.Errorf("%s: two runs differ", name)
			}
		}
	}
}

// The generator's constants, written from the spec, are the package's.
func TestConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		spec, pkg int
	}{
		{"Version", version, envelope.Version},
		{"MaxRecipients", maxRecipients, envelope.MaxRecipients},
		{"IDSize", idSize, routing.IDSize},
		{"MailboxSize", mailboxSize, routing.MailboxSize},
		{"StanzaSize", stanzaSize, envelope.StanzaSize},
		{"MaxBodySize", maxBodySize, envelope.MaxBodySize},
		{"MaxSize", maxSize, envelope.MaxSize},
		{"PublicIdentitySize", publicIdentitySize, keys.PublicIdentitySize},
		{"KEMKeySize", kemKeySize, keys.KEMKeySize},
		{"FingerprintSize", 32, keys.FingerprintSize},
		{"AckTokenSize", ackTokenSize, envelope.AckTokenSize},
		{"MaxPublicBody", maxPublicBody, envelope.MaxPublicBody},
		{"MaxPublicSize", maxPublicSize, envelope.MaxPublicSize},
		{"MaxKeyFileSize", maxKeyFileSize, keys.MaxKeyFileSize},
	} {
		if c.spec != c.pkg {
			t.Errorf("%s: spec %d, package %d", c.name, c.spec, c.pkg)
		}
	}
}

// Keys derived here parse in package keys to the same public keys.
func TestKeyInterop(t *testing.T) {
	for _, id := range []*identity{recipientID, defender, embassy, mission} {
		k, err := keys.ParseIdentity(id.secretText())
		if err != nil {
			t.Fatal(err)
		}
		if got := k.Public().String(); got != id.publicText() {
			t.Errorf("%s: package keys derives another public identity", id.name)
		}
	}
	k, err := keys.ParseInboxKey(missionInbox.secretText())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Public().Bytes(), missionInbox.pub) {
		t.Error("inbox: package keys derives another public key")
	}
	if k.Public().String() != missionInbox.publicText() {
		t.Error("inbox: package keys writes another public text")
	}
}

// Keys that package keys generates, this implementation reads to the same
// public values: text forms, fingerprint, safety number, the NKey.
func TestKeysFromPackageKeys(t *testing.T) {
	id, err := keys.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	secret, err := b64.Strict().DecodeString(strings.TrimPrefix(id.SecretString(), secretIdentityPrefix))
	if err != nil {
		t.Fatal(err)
	}
	mine := identityFromSecret("generated", secret)
	if mine.publicText() != id.Public().String() {
		t.Fatal("another public identity from the same secret")
	}
	if fingerprintText(mine.fingerprint()) != id.Public().Fingerprint().String() {
		t.Error("another fingerprint")
	}
	if safetyNumber(mine.pub) != id.Public().SafetyNumber() {
		t.Error("another safety number")
	}
}

// What keys.WriteKeyFile writes has the form keys/SPEC.md gives, and this
// implementation decrypts it to the keyring it holds. Two argon2id runs.
// (keys' own tests cover a file with a duress passphrase.)
func TestReadWhatWriteKeyFileWrites(t *testing.T) {
	kr, err := keys.NewKeyring(keys.RoleMission)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mission.key")
	if err := keys.WriteKeyFile(path, kr, []byte(keyFilePassphrase), false); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Read the fields by position from the template, not with a JSON
	// decoder, so that a difference in layout fails.
	lines := strings.Split(string(data), "\n")
	if len(lines) != 21 || lines[0] != "{" || lines[19] != "}" || lines[20] != "" {
		t.Fatalf("key file is not the 21-line template:\n%s", data)
	}
	field := func(i int, indent, name string) string {
		v, ok := strings.CutPrefix(lines[i], indent+`"`+name+`": `)
		if !ok {
			t.Fatalf("line %d is %q, want field %q", i, lines[i], name)
		}
		return strings.Trim(strings.TrimSuffix(v, ","), `"`)
	}
	num := func(s string) uint32 {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(n)
	}
	bin := func(s string) []byte {
		b, err := std.Strict().DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const top, in = "  ", "      "
	kf := &keyFileV2{format: field(1, top, "format"), kdf: field(2, top, "kdf"), time: num(field(3, top, "time")), memoryKiB: num(field(4, top, "memory_kib")),
		threads: num(field(5, top, "threads")), salt: bin(field(6, top, "salt")),
		slots: []keySlot{
			{check: bin(field(9, in, "check")), nonce: bin(field(10, in, "nonce")), ciphertext: bin(field(11, in, "ciphertext"))},
			{check: bin(field(14, in, "check")), nonce: bin(field(15, in, "nonce")), ciphertext: bin(field(16, in, "ciphertext"))},
		}}
	if !bytes.Equal(kf.text(), data) {
		t.Fatalf("the template gives another file:\n%s\nwant\n%s", kf.text(), data)
	}
	if n := len(kf.slots[0].ciphertext); n != len(kf.slots[1].ciphertext) || (n-16)%slotPadding != 0 {
		t.Errorf("slots of %d and %d bytes, want one multiple of %d plus 16", n, len(kf.slots[1].ciphertext), slotPadding)
	}
	pt, _, err := kf.open(keyFilePassphrase)
	if err != nil {
		t.Fatalf("this implementation cannot open it: %v", err)
	}
	seed, _ := kr.NKey.Seed()
	want := &keyring{role: "mission", id: identityFromSecret("kr", mustDecode(t, kr.Identity.SecretString(), secretIdentityPrefix)),
		nkeySeed: string(seed), created: kr.Created}
	for _, e := range kr.Inboxes {
		want.inboxes = append(want.inboxes, keyringInbox{key: inboxFromSeed(mustDecode(t, e.Key.SecretString(), inboxSecretPrefix)),
			expires: e.Signed.Expires, signature: e.Signed.Signature})
	}
	if !bytes.Equal(pt, want.text()) {
		t.Errorf("the keyring is not in its one form:\n%s\nwant\n%s", pt, want.text())
	}
	if _, _, err := kf.open(keyFilePassphrase + "x"); err == nil {
		t.Error("opens with another passphrase")
	}
	pub, _ := kr.NKey.PublicKey()
	if nkeyPublic(nkeyPrefixUser, nkeySeedBytes(string(seed))) != pub {
		t.Error("another NKey public key from the seed")
	}
}

func mustDecode(t *testing.T, s, prefix string) []byte {
	t.Helper()
	b, err := b64.Strict().DecodeString(strings.TrimPrefix(s, prefix))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// What envelope.SignAck and SignPublic write has the layout SPEC.md gives
// and verifies here.
func TestReadWhatSignWrites(t *testing.T) {
	inst, err := keys.ParseIdentity(embassy.secretText())
	if err != nil {
		t.Fatal(err)
	}
	alert := routing.NewID()
	tok := envelope.SignAck(alert, inst, ackCreated)
	if want := signWith(embassy, ackLabel, ackBody(alert[:], ackCreated, embassy)); !bytes.Equal(tok, want) {
		t.Errorf("ack token differs from the spec's:\n%x\nwant\n%x", tok, want)
	}
	body := []byte("office closed on Monday")
	pub, err := envelope.SignPublic("ke", body, inst, ackCreated)
	if err != nil {
		t.Fatal(err)
	}
	// The id is random: take it from the message and rebuild the rest.
	if len(pub) != publicFixed+len(body)+signatureSize {
		t.Fatalf("public message is %d bytes", len(pub))
	}
	if want := signWith(embassy, publicLabel, publicBody("ke", pub[6:22], ackCreated, embassy, body)); !bytes.Equal(pub, want) {
		t.Errorf("public message differs from the spec's:\n%x\nwant\n%x", pub, want)
	}
}

// The other direction: what envelope.Seal writes, this implementation
// opens and authenticates.
func TestOpenWhatSealWrites(t *testing.T) {
	must := func(id *keys.Identity, err error) *keys.Identity {
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	from := must(keys.ParseIdentity(defender.secretText()))
	inst := must(keys.ParseIdentity(embassy.secretText()))
	me := must(keys.ParseIdentity(recipientID.secretText()))
	o0 := must(keys.ParseIdentity(others[0].secretText()))
	inbox, err := keys.ParseInboxKey(missionInbox.secretText())
	if err != nil {
		t.Fatal(err)
	}
	missionPub := must(keys.ParseIdentity(mission.secretText())).Public()

	for _, tc := range []struct {
		name   string
		sender *keys.Identity
		auth   envelope.Auth
		to     []envelope.Recipient
		reader *identity
		inbox  []byte
		reply  bool
		body   []byte
	}{
		{"deniable-1", from, envelope.Deniable, []envelope.Recipient{envelope.To(me.Public())}, recipientID, nil, false, []byte("x")},
		{"deniable-3", from, envelope.Deniable, []envelope.Recipient{envelope.To(o0.Public()), envelope.To(me.Public()), envelope.To(o0.Public())}, recipientID, nil, true, make([]byte, 3000)},
		{"signed-2", inst, envelope.Signed, []envelope.Recipient{envelope.To(o0.Public()), envelope.To(me.Public())}, recipientID, nil, false, []byte("ack")},
		{"inbox", from, envelope.Deniable, []envelope.Recipient{envelope.ToInbox(missionPub, inbox.Public())}, mission, missionInbox.seed, false, nil},
	} {
		h := envelope.NewHeader("ug", routing.Urgent)
		if tc.reply {
			h.ReplyTo = routing.Mailbox(routing.NewID())
		}
		env, err := envelope.Seal(h, tc.body, tc.sender, tc.auth, tc.to...)
		if err != nil {
			t.Fatal(err)
		}
		kemSeed := tc.reader.kemSeed()
		if tc.inbox != nil {
			kemSeed = tc.inbox
		}
		o, err := openIndependently(env, tc.reader, kemSeed)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !bytes.Equal(o.sender, tc.sender.Public().Bytes()) || !bytes.Equal(o.body, tc.body) || o.auth != byte(tc.auth) {
			t.Errorf("%s: opened another message", tc.name)
		}
	}
}

// Every low-order point this implementation finds, package keys refuses
// wherever a public key can hold it.
func TestKeysRefuseEveryLowOrderPoint(t *testing.T) {
	with := func(off int, b []byte) []byte {
		pub := bytes.Clone(defender.pub)
		copy(pub[off:], b)
		return pub
	}
	for _, u := range lowOrderU {
		for _, off := range []int{offDH, offKEMX} {
			if _, err := keys.NewPublicIdentity(with(off, u)); !errors.Is(err, keys.ErrMalformedKey) {
				t.Errorf("u = %x at %d: %v", u, off, err)
			}
		}
		if _, err := keys.NewInboxPublicKey(append(bytes.Clone(missionInbox.pub[:mlkemLen]), u...)); !errors.Is(err, keys.ErrMalformedKey) {
			t.Errorf("inbox key with u = %x: %v", u, err)
		}
	}
	for _, p := range smallOrderPoints {
		enc := p.encode()
		if _, err := keys.NewPublicIdentity(with(offSign, enc)); !errors.Is(err, keys.ErrMalformedKey) {
			t.Errorf("signing key %x: %v", enc, err)
		}
	}
	// Every y below 19 on a point of large order has a second encoding
	// p + y; all are refused, and the canonical ones accepted.
	for y := int64(2); y < 19; y++ {
		p, ok := edRecoverX(big.NewInt(y), 0)
		if !ok || p.isSmallOrder() {
			continue
		}
		if _, err := keys.NewPublicIdentity(with(offSign, p.encode())); err != nil {
			t.Errorf("y = %d: %v", y, err)
		}
		nc := le(new(big.Int).Add(fieldP, big.NewInt(y)))
		nc[31] |= p.encode()[31] & 0x80
		if _, err := keys.NewPublicIdentity(with(offSign, nc)); !errors.Is(err, keys.ErrMalformedKey) {
			t.Errorf("y = p + %d: %v", y, err)
		}
	}
}
