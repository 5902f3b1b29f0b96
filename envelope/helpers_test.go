package envelope

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

// sentinels names every error Parse and Open branch on, as the vectors
// write them.
var sentinels = map[string]error{
	"ErrTruncated":          ErrTruncated,
	"ErrMalformed":          ErrMalformed,
	"ErrUnsupportedVersion": ErrUnsupportedVersion,
	"ErrTooLarge":           ErrTooLarge,
	"ErrTooManyRecipients":  ErrTooManyRecipients,
	"ErrNotForMe":           ErrNotForMe,
	"ErrTampered":           ErrTampered,
	"ErrBadAuthentication":  ErrBadAuthentication,
}

// sentinelNames returns the names of the package sentinels err wraps.
func sentinelNames(err error) []string {
	var names []string
	for name, s := range sentinels {
		if errors.Is(err, s) {
			names = append(names, name)
		}
	}
	return names
}

// wantErr fails unless err wraps want and no other package sentinel: an
// error that also wrapped ErrMalformed, say, would let a caller branch the
// wrong way.
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
		return
	}
	if names := sentinelNames(err); len(names) != 1 {
		t.Errorf("%s: error %v wraps %d sentinels %v, want only %v", what, err, len(names), names, want)
	}
}

// catch runs f and returns what it panicked with, or nil.
func catch(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}

// open calls Open and turns a panic into a test failure, so that one bad
// input reports every bad input rather than ending the test binary.
func open(t testing.TB, env []byte, id *keys.Identity, inboxes ...*keys.InboxKey) (o *Opened, err error) {
	t.Helper()
	if p := catch(func() { o, err = Open(env, id, inboxes...) }); p != nil {
		t.Errorf("Open panicked: %v", p)
		return nil, fmt.Errorf("panic: %v", p)
	}
	return o, err
}

func newIdentity(t testing.TB) *keys.Identity {
	t.Helper()
	id, err := keys.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newIdentities(t testing.TB, n int) []*keys.Identity {
	t.Helper()
	ids := make([]*keys.Identity, n)
	for i := range ids {
		ids[i] = newIdentity(t)
	}
	return ids
}

func newInbox(t testing.TB) *keys.InboxKey {
	t.Helper()
	k, err := keys.GenerateInboxKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func to(ids ...*keys.Identity) []Recipient {
	rs := make([]Recipient, len(ids))
	for i, id := range ids {
		rs[i] = To(id.Public())
	}
	return rs
}

// testCreated has sub-millisecond digits, which the wire drops.
var testCreated = time.Date(2025, 6, 1, 12, 30, 45, 123_456_789, time.UTC)

// testHeader is a valid header with fixed fields, so that tests can rewrite
// them to known other values.
func testHeader() Header {
	return Header{
		ID:       routing.ID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10},
		Created:  testCreated,
		Country:  "ug",
		Priority: routing.High,
	}
}

func mustSeal(t testing.TB, h Header, body []byte, from *keys.Identity, auth Auth, rs ...Recipient) []byte {
	t.Helper()
	env, err := Seal(h, body, from, auth, rs...)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return env
}

func mustOpen(t testing.TB, env []byte, id *keys.Identity, inboxes ...*keys.InboxKey) *Opened {
	t.Helper()
	o, err := open(t, env, id, inboxes...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return o
}

// A coRecipient is what a recipient learns by opening an envelope: the
// content key, and with it every part of the envelope in the clear. The
// attack tests play a co-recipient who rewrites an envelope, re-encrypts it
// and recomputes the header MAC, which an outsider cannot do. What the
// co-recipient still cannot do is compute another recipient's deniable MAC
// or the sender's signature: that is what the tests check.
type coRecipient struct {
	header  []byte // routing header, ending with the size class and recipient count
	stanzas [][]byte
	fileKey []byte
	inner   []byte // the padded plaintext
}

// openAsCoRecipient opens env with the KEM key k, as [Open] does, and
// returns its parts.
func openAsCoRecipient(t testing.TB, env []byte, k hpke.PrivateKey) *coRecipient {
	t.Helper()
	info, err := Parse(env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c := &coRecipient{header: bytes.Clone(env[:info.HeaderSize])}
	for i := range info.Recipients {
		st := bytes.Clone(env[info.HeaderSize+i*StanzaSize : info.HeaderSize+(i+1)*StanzaSize])
		c.stanzas = append(c.stanzas, st)
		if c.fileKey == nil {
			if fk, err := hpke.Open(k, suiteKDF, suiteAEAD, []byte(stanzaLabel), st); err == nil {
				c.fileKey = fk
			}
		}
	}
	if c.fileKey == nil {
		t.Fatal("no stanza opens with the co-recipient's key")
	}
	hdrLen := info.HeaderSize + info.Recipients*StanzaSize
	macKey, payloadKey := deriveKeys(c.fileKey)
	if !bytes.Equal(headerMAC(macKey, env[:hdrLen]), env[hdrLen:hdrLen+headerMACSize]) {
		t.Fatal("header MAC does not verify")
	}
	aead, _ := chacha20poly1305.New(payloadKey)
	c.inner, err = aead.Open(nil, make([]byte, aead.NonceSize()), env[hdrLen+headerMACSize:], nil)
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	return c
}

func (c *coRecipient) headerAndStanzas() []byte {
	b := bytes.Clone(c.header)
	for _, st := range c.stanzas {
		b = append(b, st...)
	}
	return b
}

func (c *coRecipient) auth() Auth { return Auth(c.inner[0]) }

func (c *coRecipient) sender() []byte { return c.inner[1 : 1+keys.PublicIdentitySize] }

func (c *coRecipient) body() []byte {
	n := binary.BigEndian.Uint32(c.inner[1+keys.PublicIdentitySize:])
	return c.inner[innerPrefixSize : innerPrefixSize+int(n)]
}

// authenticator returns the MACs or the signature after the body, sized
// for the recipient count in the header.
func (c *coRecipient) authenticator() []byte {
	start := innerPrefixSize + len(c.body())
	return c.inner[start : start+c.auth().authSize(int(c.header[len(c.header)-1]))]
}

// authData is what the sender authenticated, recomputed over the current
// parts.
func (c *coRecipient) authData() []byte {
	return authData(c.headerAndStanzas(), c.inner[:innerPrefixSize+len(c.body())])
}

// setPlaintext rewrites the inner plaintext with the given sender, body and
// authenticator, zero-padded to the current size.
func (c *coRecipient) setPlaintext(sender *keys.PublicIdentity, body, authenticator []byte) {
	inner := make([]byte, len(c.inner))
	inner[0] = c.inner[0]
	copy(inner[1:], sender.Bytes())
	binary.BigEndian.PutUint32(inner[1+keys.PublicIdentitySize:], uint32(len(body)))
	copy(inner[innerPrefixSize:], body)
	copy(inner[innerPrefixSize+len(body):], authenticator)
	c.inner = inner
}

// wrap returns a new stanza that gives the content key to pub.
func (c *coRecipient) wrap(t testing.TB, pub hpke.PublicKey) []byte {
	t.Helper()
	st, err := hpke.Seal(pub, suiteKDF, suiteAEAD, []byte(stanzaLabel), c.fileKey)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// seal re-serialises the envelope: header, stanzas, a header MAC
// recomputed with the content key, and the plaintext encrypted again.
func (c *coRecipient) seal() []byte {
	env := c.headerAndStanzas()
	macKey, payloadKey := deriveKeys(c.fileKey)
	env = append(env, headerMAC(macKey, env)...)
	aead, _ := chacha20poly1305.New(payloadKey)
	return aead.Seal(env, make([]byte, aead.NonceSize()), c.inner, nil)
}

// testMailbox derives a fixed, non-zero mailbox from a label. The relay's
// own derivation (relay/proto.MailboxFor) is not the envelope's business.
func testMailbox(label string) routing.Mailbox {
	h := sha256.Sum256([]byte(label))
	return routing.Mailbox(h[:routing.MailboxSize])
}
