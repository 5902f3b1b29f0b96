package envelope

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

// checkOpened checks every field of an opened envelope against what was
// sealed.
func checkOpened(t *testing.T, o *Opened, h Header, body []byte, from *keys.Identity, auth Auth, recipients, stanza int) {
	t.Helper()
	if !bytes.Equal(o.Body, body) {
		t.Errorf("Body = %q, want %q", o.Body, body)
	}
	if !o.Sender.Equal(from.Public()) {
		t.Errorf("Sender = %s, want %s", o.Sender.Fingerprint().Short(), from.Public().Fingerprint().Short())
	}
	if o.Auth != auth {
		t.Errorf("Auth = %v, want %v", o.Auth, auth)
	}
	if o.Stanza != stanza {
		t.Errorf("Stanza = %d, want %d", o.Stanza, stanza)
	}
	if o.Recipients != recipients {
		t.Errorf("Recipients = %d, want %d", o.Recipients, recipients)
	}
	if o.ID != h.ID || o.Country != h.Country || o.Priority != h.Priority || o.ReplyTo != h.ReplyTo {
		t.Errorf("header = %+v, want %+v", o.Header, h)
	}
	if want := h.Created.Truncate(time.Millisecond); !o.Created.Equal(want) || o.Created.Location() != time.UTC {
		t.Errorf("Created = %v, want %v in UTC", o.Created, want)
	}
	if wantSig := auth == Signed; (o.Signature != nil) != wantSig || wantSig && len(o.Signature) != signatureSize {
		t.Errorf("Signature = %x for a %v envelope", o.Signature, auth)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{1, 3, MaxRecipients} {
		for _, auth := range []Auth{Deniable, Signed} {
			t.Run(fmt.Sprintf("%d-%v", n, auth), func(t *testing.T) {
				from := newIdentity(t)
				rcpts := newIdentities(t, n)
				h := testHeader()
				body := []byte(strings.Repeat("we are surrounded at the office; ", 20))
				env := mustSeal(t, h, body, from, auth, to(rcpts...)...)
				for i, r := range rcpts {
					checkOpened(t, mustOpen(t, env, r), h, body, from, auth, n, i)
				}
			})
		}
	}
}

func TestRecipientCount(t *testing.T) {
	from := newIdentity(t)
	r := To(newIdentity(t).Public())
	many := make([]Recipient, MaxRecipients+1)
	for i := range many {
		many[i] = r
	}
	for _, rs := range [][]Recipient{nil, {}, many} {
		_, err := Seal(testHeader(), []byte("x"), from, Deniable, rs...)
		wantErr(t, fmt.Sprintf("Seal to %d recipients", len(rs)), err, ErrTooManyRecipients)
	}
	// The largest count works, even with one key repeated.
	env := mustSeal(t, testHeader(), []byte("x"), from, Deniable, many[:MaxRecipients]...)
	if info, err := Parse(env); err != nil || info.Recipients != MaxRecipients {
		t.Errorf("Parse = %+v, %v", info, err)
	}
}

func TestSealRefusals(t *testing.T) {
	from := newIdentity(t)
	rs := to(newIdentity(t))
	for _, tc := range []struct {
		name string
		edit func(*Header)
	}{
		{"zero id", func(h *Header) { h.ID = routing.ID{} }},
		{"unknown country", func(h *Header) { h.Country = "zz" }},
		{"upper-case country", func(h *Header) { h.Country = "UG" }},
		{"empty country", func(h *Header) { h.Country = "" }},
		{"priority 0", func(h *Header) { h.Priority = 0 }},
		{"priority 4", func(h *Header) { h.Priority = 4 }},
		{"created 2019", func(h *Header) { h.Created = minCreated.Add(-time.Millisecond) }},
		{"created 2100", func(h *Header) { h.Created = maxCreated }},
		{"zero time", func(h *Header) { h.Created = time.Time{} }},
	} {
		h := testHeader()
		tc.edit(&h)
		_, err := Seal(h, []byte("x"), from, Deniable, rs...)
		wantErr(t, tc.name, err, ErrMalformed)
	}
	if _, err := Seal(testHeader(), []byte("x"), from, Auth(3), rs...); err == nil {
		t.Error("Seal with auth mode 3 succeeded")
	}
	if _, err := Seal(testHeader(), []byte("x"), from, Deniable, Recipient{}); err == nil {
		t.Error("Seal to an empty Recipient succeeded")
	}
}

func TestNotForMe(t *testing.T) {
	a, b, c, stranger := newIdentity(t), newIdentity(t), newIdentity(t), newIdentity(t)
	env := mustSeal(t, testHeader(), []byte("x"), a, Deniable, to(b, c)...)
	_, err := open(t, env, stranger)
	wantErr(t, "Open by a non-recipient", err, ErrNotForMe)
	// Nor does the sender read what it sent to others.
	_, err = open(t, env, a)
	wantErr(t, "Open by the sender", err, ErrNotForMe)
	// An inbox key of someone else does not help.
	_, err = open(t, env, stranger, newInbox(t))
	wantErr(t, "Open by a non-recipient with an inbox key", err, ErrNotForMe)
}

func TestInbox(t *testing.T) {
	defender, mission, other := newIdentity(t), newIdentity(t), newIdentity(t)
	old, current := newInbox(t), newInbox(t)
	h := testHeader()
	body := []byte("raid in progress")
	env := mustSeal(t, h, body, defender, Deniable,
		To(other.Public()), ToInbox(mission.Public(), current.Public()))

	checkOpened(t, mustOpen(t, env, mission, current), h, body, defender, Deniable, 2, 1)
	// A mission holding several inbox keys finds the right one.
	checkOpened(t, mustOpen(t, env, mission, old, current), h, body, defender, Deniable, 2, 1)
	// The identity's own KEM key does not open a stanza sealed to its inbox.
	_, err := open(t, env, mission)
	wantErr(t, "Open with the identity only", err, ErrNotForMe)
	_, err = open(t, env, mission, old)
	wantErr(t, "Open with a retired inbox key", err, ErrNotForMe)
	// The inbox key opens the stanza, but the deniable MAC is keyed to the
	// mission's identity: another identity holding the inbox key fails.
	_, err = open(t, env, other, current)
	if err != nil {
		t.Errorf("Open by the other recipient with a stray inbox key: %v", err)
	}
	_, err = open(t, env, newIdentity(t), current)
	wantErr(t, "Open with the inbox key under another identity", err, ErrBadAuthentication)
}

func TestReplyTo(t *testing.T) {
	from, r := newIdentity(t), newIdentity(t)
	h := testHeader()
	h.ReplyTo = routing.Mailbox{0x5e, 0x0b, 0x1c, 0xa7, 0x42, 0x9d, 0x13, 0x6f, 0x80, 0x2e, 0x44, 0xc1, 0x07, 0x9a, 0xb3, 0x58}
	body := []byte("please reply")
	env := mustSeal(t, h, body, from, Deniable, To(r.Public()))
	o := mustOpen(t, env, r)
	checkOpened(t, o, h, body, from, Deniable, 1, 0)
	if o.HeaderSize != routingSize+routing.MailboxSize {
		t.Errorf("HeaderSize = %d, want %d", o.HeaderSize, routingSize+routing.MailboxSize)
	}
	plain := mustSeal(t, testHeader(), body, from, Deniable, To(r.Public()))
	if len(env)-len(plain) != routing.MailboxSize {
		t.Errorf("a reply mailbox adds %d bytes, want %d", len(env)-len(plain), routing.MailboxSize)
	}
	if o := mustOpen(t, plain, r); !o.ReplyTo.IsZero() || o.HeaderSize != routingSize {
		t.Errorf("no ReplyTo: got %v, header %d bytes", o.ReplyTo, o.HeaderSize)
	}
}

func TestSealIsRandomised(t *testing.T) {
	from, r := newIdentity(t), newIdentity(t)
	a := mustSeal(t, testHeader(), []byte("same"), from, Signed, To(r.Public()))
	b := mustSeal(t, testHeader(), []byte("same"), from, Signed, To(r.Public()))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same message are equal")
	}
	// Only the header is common: the stanzas, MAC and payload all differ.
	hdr := routingSize
	if !bytes.Equal(a[:hdr], b[:hdr]) || bytes.Equal(a[hdr:hdr+StanzaSize], b[hdr:hdr+StanzaSize]) ||
		bytes.Equal(a[len(a)-64:], b[len(b)-64:]) {
		t.Error("seals share more than the header")
	}
}

// The sender's identity is only inside the ciphertext: it appears nowhere in
// the clear, in any encoding a relay might search for.
func TestSealedSender(t *testing.T) {
	from, r := newIdentity(t), newIdentity(t)
	env := mustSeal(t, testHeader(), []byte("x"), from, Deniable, To(r.Public()))
	pub := from.Public().Bytes()
	for _, part := range [][]byte{pub[:keys.SigningKeySize], pub[keys.SigningKeySize : keys.SigningKeySize+keys.DHKeySize], pub[64:96], pub[len(pub)-32:]} {
		if bytes.Contains(env, part[:16]) {
			t.Errorf("the envelope contains part of the sender's public identity")
		}
	}
}

// Identities are shared by goroutines (a mission console opens many
// envelopes at once); with -race this checks the DH cache's locking.
func TestConcurrentUse(t *testing.T) {
	a, b, c := newIdentity(t), newIdentity(t), newIdentity(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			from, rcpt := a, b
			if i%2 == 1 {
				from, rcpt = b, a
			}
			for j := range 3 {
				body := []byte(fmt.Sprintf("message %d.%d", i, j))
				env, err := Seal(testHeader(), body, from, Deniable, To(rcpt.Public()), To(c.Public()))
				if err != nil {
					errs <- err
					return
				}
				for _, r := range []*keys.Identity{rcpt, c} {
					if o, err := Open(env, r); err != nil || !bytes.Equal(o.Body, body) || !o.Sender.Equal(from.Public()) {
						errs <- fmt.Errorf("Open: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
