package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

const vectorDir = "../../testdata/vectors"

// The files in the tree are exactly what the generator writes.
func TestVectorsUpToDate(t *testing.T) {
	files := generate()
	onDisk, err := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(onDisk) != len(files) {
		t.Errorf("%d vector files, the generator writes %d", len(onDisk), len(files))
	}
	for _, f := range onDisk {
		if _, ok := files[filepath.Base(f)]; !ok {
			t.Errorf("%s is not written by the generator", f)
		}
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(vectorDir, name))
		if err != nil {
			t.Errorf("%v (run go run ./envelope/internal/genvectors)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator's output (run go run ./envelope/internal/genvectors)", name)
		}
	}
	// And the output does not depend on the run.
	for name, b := range generate() {
		if !bytes.Equal(b, files[name]) {
			t.Errorf("%s: two runs differ", name)
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
		sender, body, auth, err := openIndependently(env, tc.reader, kemSeed)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !bytes.Equal(sender, tc.sender.Public().Bytes()) || !bytes.Equal(body, tc.body) || auth != byte(tc.auth) {
			t.Errorf("%s: opened another message", tc.name)
		}
	}
}

// openIndependently opens an envelope with this implementation only.
func openIndependently(env []byte, me *identity, kemSeed []byte) (sender, body []byte, auth byte, err error) {
	if len(env) < routingSize || string(env[:3]) != magic || env[offVersion] != version {
		return nil, nil, 0, errors.New("not an envelope")
	}
	n := routingSize
	if env[offFlags]&flagReplyTo != 0 {
		n += mailboxSize
	}
	class, count := int(env[n-2]), int(env[n-1])
	hdrLen := n + count*stanzaSize
	if len(env) != hdrLen+headerMACSize+1<<class+tagSize {
		return nil, nil, 0, fmt.Errorf("length %d", len(env))
	}
	var fileKey []byte
	stanza := -1
	for i := range count {
		if fk, err := hpkeOpen(kemSeed, stanzaLabel, env[n+i*stanzaSize:n+(i+1)*stanzaSize]); err == nil {
			fileKey, stanza = fk, i
			break
		}
	}
	if fileKey == nil {
		return nil, nil, 0, errors.New("no stanza opens")
	}
	macKey, payloadKey := contentKeys(fileKey)
	if !hmac.Equal(hmacSHA256(macKey, env[:hdrLen]), env[hdrLen:hdrLen+headerMACSize]) {
		return nil, nil, 0, errors.New("header MAC")
	}
	_, open := payloadAEAD(payloadKey)
	inner, err := open(env[hdrLen+headerMACSize:])
	if err != nil {
		return nil, nil, 0, err
	}
	auth, sender = inner[0], inner[1:1+publicIdentitySize]
	bodyLen := int(binary.BigEndian.Uint32(inner[1+publicIdentitySize:]))
	authLen := signatureSize
	if auth == authDeniable {
		authLen = count * macSize
	}
	end := innerPrefixSize + bodyLen
	if end+authLen > len(inner) {
		return nil, nil, 0, errors.New("body length")
	}
	for _, c := range inner[end+authLen:] {
		if c != 0 {
			return nil, nil, 0, errors.New("padding")
		}
	}
	if class > minClass && end+authLen <= 1<<(class-1) {
		return nil, nil, 0, errors.New("over-padded")
	}
	ad := authData(env[:hdrLen], inner[:end])
	authenticator := inner[end : end+authLen]
	switch auth {
	case authDeniable:
		senderDH := sender[signingKeySize : signingKeySize+dhKeySize]
		mac, err := deniableMAC(me.dh, senderDH, senderDH, me.dhPublic(), ad)
		if err != nil {
			return nil, nil, 0, err
		}
		if !hmac.Equal(mac, authenticator[stanza*macSize:(stanza+1)*macSize]) {
			return nil, nil, 0, errors.New("deniable MAC")
		}
	case authSigned:
		if !ed25519.Verify(ed25519.PublicKey(sender[:signingKeySize]), ad, authenticator) {
			return nil, nil, 0, errors.New("signature")
		}
	default:
		return nil, nil, 0, errors.New("auth mode")
	}
	return sender, inner[innerPrefixSize:end], auth, nil
}
