package envelope

import (
	"bytes"
	"crypto/hpke"
	"testing"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

// A co-recipient knows the content key, so it can decrypt, rewrite and
// re-encrypt an envelope and recompute the header MAC. These tests play
// that co-recipient (c) against another recipient (r) of an envelope from a
// defender (a): whatever c changes, r must refuse with ErrBadAuthentication.

// c cannot make a's envelope verify as written by b.
func TestCoRecipientCannotReattribute(t *testing.T) {
	a, b, c, r := newIdentity(t), newIdentity(t), newIdentity(t), newIdentity(t)
	for _, auth := range []Auth{Deniable, Signed} {
		env := mustSeal(t, testHeader(), []byte("they took him at dawn"), a, auth, to(c, r)...)
		mustOpen(t, env, r)

		co := openAsCoRecipient(t, env, c.KEMKey())
		co.setPlaintext(b.Public(), co.body(), bytes.Clone(co.authenticator()))
		_, err := open(t, co.seal(), r)
		wantErr(t, auth.String()+": sender replaced, authenticator kept", err, ErrBadAuthentication)

		if auth == Deniable {
			// Nor with a MAC that c computes itself for r under b's name:
			// the key is b's and r's DH secret, which c does not have.
			co := openAsCoRecipient(t, env, c.KEMKey())
			co.setPlaintext(b.Public(), co.body(), bytes.Clone(co.authenticator()))
			mac, err := deniableMAC(c, b.Public(), r.Public(), co.authData())
			if err != nil {
				t.Fatal(err)
			}
			copy(co.authenticator()[macSize:], mac)
			_, err = open(t, co.seal(), r)
			wantErr(t, "sender replaced, MAC computed by the co-recipient", err, ErrBadAuthentication)
		}
	}
}

// c cannot change the body that r reads, even keeping every MAC; c can only
// fool itself.
func TestCoRecipientCannotSwapBody(t *testing.T) {
	a, c, r := newIdentity(t), newIdentity(t), newIdentity(t)
	for _, auth := range []Auth{Deniable, Signed} {
		body := []byte("I am detained at the central police station")
		env := mustSeal(t, testHeader(), body, a, auth, to(c, r)...)
		for _, fake := range [][]byte{
			[]byte("I am safe, false alarm, please ignore the alert"[:len(body)]),
			[]byte("I am safe"),
			append(bytes.Clone(body), " - cancel"...),
			{},
		} {
			co := openAsCoRecipient(t, env, c.KEMKey())
			co.setPlaintext(a.Public(), fake, bytes.Clone(co.authenticator()))
			if auth == Deniable {
				// c recomputes its own slot, as it may: that proves to c
				// only what c already knows.
				mine, err := deniableMAC(c, a.Public(), c.Public(), co.authData())
				if err != nil {
					t.Fatal(err)
				}
				copy(co.authenticator(), mine)
			}
			forged := co.seal()
			_, err := open(t, forged, r)
			wantErr(t, auth.String()+": body "+string(fake), err, ErrBadAuthentication)
			if auth == Deniable {
				if o, err := open(t, forged, c); err != nil || !bytes.Equal(o.Body, fake) {
					t.Errorf("the co-recipient's own forgery to itself: %v", err)
				}
			}
		}
	}
}

// c cannot re-address the envelope: drop, replace, add or reorder a stanza,
// or move it to another country's channel.
func TestCoRecipientCannotReaddress(t *testing.T) {
	a, c, x, r, e := newIdentity(t), newIdentity(t), newIdentity(t), newIdentity(t), newIdentity(t)
	for _, auth := range []Auth{Deniable, Signed} {
		env := mustSeal(t, testHeader(), []byte("raid"), a, auth, to(c, x, r)...)
		setCount := func(co *coRecipient, n int) { co.header[len(co.header)-1] = byte(n) }
		macs := func(co *coRecipient) [][]byte {
			var m [][]byte
			for i := range len(co.stanzas) {
				m = append(m, bytes.Clone(co.authenticator()[i*macSize:(i+1)*macSize]))
			}
			return m
		}
		for _, tc := range []struct {
			name string
			edit func(co *coRecipient)
			who  []*keys.Identity // recipients who try to open
		}{
			{"x's stanza dropped", func(co *coRecipient) {
				m := macs(co)
				co.stanzas = append(co.stanzas[:1], co.stanzas[2])
				setCount(co, 2)
				if auth == Deniable {
					co.setPlaintext(a.Public(), co.body(), append(m[0], m[2]...))
				}
			}, []*keys.Identity{r}},
			{"x's stanza replaced by one for e", func(co *coRecipient) {
				co.stanzas[1] = co.wrap(t, e.Public().KEMKey())
			}, []*keys.Identity{r, e}},
			{"a stanza for e added", func(co *coRecipient) {
				auth := co.authenticator()
				if co.auth() == Deniable {
					auth = append(bytes.Clone(auth), make([]byte, macSize)...)
				}
				co.stanzas = append(co.stanzas, co.wrap(t, e.Public().KEMKey()))
				setCount(co, 4)
				co.setPlaintext(a.Public(), co.body(), bytes.Clone(auth))
			}, []*keys.Identity{r, e}},
			{"stanzas reordered", func(co *coRecipient) {
				m := macs(co)
				co.stanzas[0], co.stanzas[2] = co.stanzas[2], co.stanzas[0]
				if auth == Deniable {
					co.setPlaintext(a.Public(), co.body(), bytes.Join([][]byte{m[2], m[1], m[0]}, nil))
				}
			}, []*keys.Identity{r, x}},
			{"moved to another country", func(co *coRecipient) { copy(co.header[offCountry:], "ke") }, []*keys.Identity{r, x}},
			{"priority lowered", func(co *coRecipient) { co.header[offPriority] = byte(routing.Routine) }, []*keys.Identity{r, x}},
			{"message id changed", func(co *coRecipient) { co.header[offID] ^= 1 }, []*keys.Identity{r, x}},
		} {
			co := openAsCoRecipient(t, env, c.KEMKey())
			tc.edit(co)
			forged := co.seal()
			if _, err := Parse(forged); err != nil {
				t.Fatalf("%s: the forgery does not parse: %v", tc.name, err)
			}
			for _, who := range tc.who {
				_, err := open(t, forged, who)
				wantErr(t, auth.String()+": "+tc.name, err, ErrBadAuthentication)
			}
		}
	}
}

// The recipient of a Deniable envelope computes the very MAC the sender
// put in it, from its own secret and the sender's public key: the MAC
// convinces the recipient and proves nothing to anyone else.
func TestDeniableMACIsRecipientComputable(t *testing.T) {
	a := newIdentity(t)
	rs := newIdentities(t, 3)
	env := mustSeal(t, testHeader(), []byte("meeting request"), a, Deniable, to(rs...)...)
	for i, r := range rs {
		co := openAsCoRecipient(t, env, r.KEMKey())
		inEnvelope := co.authenticator()[i*macSize : (i+1)*macSize]
		byRecipient, err := deniableMAC(r, a.Public(), r.Public(), co.authData())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(byRecipient, inEnvelope) {
			t.Errorf("recipient %d computes %x, the envelope holds %x", i, byRecipient, inEnvelope)
		}
		bySender, _ := deniableMAC(a, a.Public(), r.Public(), co.authData())
		if !bytes.Equal(bySender, inEnvelope) {
			t.Errorf("recipient %d: the sender computes %x", i, bySender)
		}
		// The MAC is directional: the same two parties with roles swapped
		// get another MAC, so r cannot replay a's MAC as its own to a.
		reverse, _ := deniableMAC(r, r.Public(), a.Public(), co.authData())
		if bytes.Equal(reverse, inEnvelope) {
			t.Errorf("recipient %d: the MAC from r to a equals the MAC from a to r", i)
		}
	}
}

// Deniability made concrete: a recipient, alone, writes an envelope that
// it opens as from the defender. A seized inbox therefore holds nothing a
// third party would accept as the defender's.
func TestRecipientCanForgeToItself(t *testing.T) {
	a, r := newIdentity(t), newIdentity(t)
	env := mustSeal(t, testHeader(), []byte("r writing to itself"), r, Deniable, To(r.Public()))
	co := openAsCoRecipient(t, env, r.KEMKey())
	body := []byte("words the defender never wrote")
	co.setPlaintext(a.Public(), body, make([]byte, macSize))
	mac, err := deniableMAC(r, a.Public(), r.Public(), co.authData())
	if err != nil {
		t.Fatal(err)
	}
	copy(co.authenticator(), mac)
	o, err := open(t, co.seal(), r)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !o.Sender.Equal(a.Public()) || !bytes.Equal(o.Body, body) || o.Auth != Deniable {
		t.Errorf("opened %v from %s", o.Auth, o.Sender.Fingerprint().Short())
	}
}

// A Signed envelope verifies for anyone, without a secret key; the
// signature binds the sender, the body and the envelope.
func TestSignedVerifiesForAnyone(t *testing.T) {
	mission, r1, r2, other := newIdentity(t), newIdentity(t), newIdentity(t), newIdentity(t)
	body := []byte("ACK: the mission is sending an observer")
	env := mustSeal(t, testHeader(), body, mission, Signed, to(r1, r2)...)
	o := mustOpen(t, env, r2)
	sig := bytes.Clone(o.Signature)
	if len(sig) != signatureSize {
		t.Fatalf("signature is %d bytes", len(sig))
	}
	// A partner holding only public data verifies it.
	sender, err := keys.ParsePublicIdentity(mission.Public().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySigned(env, sender, body, sig); err != nil {
		t.Fatalf("VerifySigned: %v", err)
	}
	// Both recipients hold the same signature.
	if o1 := mustOpen(t, env, r1); !bytes.Equal(o1.Signature, sig) {
		t.Error("recipients see different signatures")
	}

	other2 := mustSeal(t, testHeader(), body, mission, Signed, to(r1, r2)...)
	for _, tc := range []struct {
		name   string
		env    []byte
		sender *keys.PublicIdentity
		body   []byte
		sig    []byte
	}{
		{"another body", env, mission.Public(), []byte("ACK: the mission is sending an observer."), sig},
		{"empty body", env, mission.Public(), nil, sig},
		{"another sender", env, other.Public(), body, sig},
		{"the recipient as sender", env, r2.Public(), body, sig},
		{"another envelope with the same body", other2, mission.Public(), body, sig},
		{"short signature", env, mission.Public(), body, sig[:63]},
		{"long signature", env, mission.Public(), body, append(bytes.Clone(sig), 0)},
		{"no signature", env, mission.Public(), body, nil},
	} {
		var err error
		if p := catch(func() { err = VerifySigned(tc.env, tc.sender, tc.body, tc.sig) }); p != nil {
			t.Errorf("%s: panic: %v", tc.name, p)
			continue
		}
		wantErr(t, tc.name, err, ErrBadAuthentication)
	}
	for i := range 8 * len(sig) {
		s := bytes.Clone(sig)
		s[i/8] ^= 1 << (i % 8)
		wantErr(t, "flipped signature bit", VerifySigned(env, mission.Public(), body, s), ErrBadAuthentication)
	}
	// VerifySigned parses the envelope first.
	wantErr(t, "truncated envelope", VerifySigned(env[:len(env)-1], mission.Public(), body, sig), ErrTruncated)
	wantErr(t, "oversized body", VerifySigned(env, mission.Public(), make([]byte, MaxBodySize+1), sig), ErrTooLarge)
}

// A Signed envelope's signature is checked by Open too.
func TestSignedBadSignature(t *testing.T) {
	mission, r := newIdentity(t), newIdentity(t)
	env := mustSeal(t, testHeader(), []byte("ack"), mission, Signed, To(r.Public()))
	co := openAsCoRecipient(t, env, r.KEMKey())
	co.authenticator()[10] ^= 4
	_, err := open(t, co.seal(), r)
	wantErr(t, "flipped signature bit", err, ErrBadAuthentication)
}

// A Deniable envelope has one MAC per recipient, each checked only by its
// own recipient.
func TestDeniableMACPerRecipient(t *testing.T) {
	a := newIdentity(t)
	rs := newIdentities(t, 3)
	env := mustSeal(t, testHeader(), []byte("x"), a, Deniable, to(rs...)...)
	for bad := range rs {
		co := openAsCoRecipient(t, env, rs[0].KEMKey())
		co.authenticator()[bad*macSize+5] ^= 1
		forged := co.seal()
		for i, r := range rs {
			_, err := open(t, forged, r)
			if i == bad {
				wantErr(t, "recipient with the bad MAC", err, ErrBadAuthentication)
			} else if err != nil {
				t.Errorf("MAC %d flipped, recipient %d: %v", bad, i, err)
			}
		}
	}
}

// Open refuses an unknown authentication mode and an invalid sender
// identity as malformed, before any authentication.
func TestInnerStructure(t *testing.T) {
	a, r := newIdentity(t), newIdentity(t)
	env := mustSeal(t, testHeader(), []byte("x"), a, Deniable, To(r.Public()))
	for _, mode := range []byte{0, 3, 255} {
		co := openAsCoRecipient(t, env, r.KEMKey())
		co.inner[0] = mode
		_, err := open(t, co.seal(), r)
		wantErr(t, "auth mode", err, ErrMalformed)
	}
	co := openAsCoRecipient(t, env, r.KEMKey())
	clear(co.sender())
	_, err := open(t, co.seal(), r)
	wantErr(t, "all-zero sender", err, ErrMalformed)

	// A sender whose DH key is a low-order point is no identity: Open
	// refuses it as malformed in both modes, before any authentication.
	for _, auth := range []Auth{Deniable, Signed} {
		env := mustSeal(t, testHeader(), []byte("x"), a, auth, To(r.Public()))
		co := openAsCoRecipient(t, env, r.KEMKey())
		copy(co.sender()[keys.SigningKeySize:], append([]byte{1}, make([]byte, 31)...))
		_, err = open(t, co.seal(), r)
		wantErr(t, auth.String()+", low-order sender DH key", err, ErrMalformed)
	}
}

// A stanza that opens with one of the reader's keys to a content key the
// header MAC refuses does not end the search (SPEC.md, "Finding the
// stanza"): the outcome does not depend on which stanza or key is tried
// first.
func TestDecoyStanza(t *testing.T) {
	a, r, o := newIdentity(t), newIdentity(t), newIdentity(t)
	inbox := newInbox(t)
	decoy := func(pub hpke.PublicKey) []byte {
		st, err := hpke.Seal(pub, suiteKDF, suiteAEAD, []byte(stanzaLabel), bytes.Repeat([]byte{7}, fileKeySize))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tc := range []struct {
		name    string
		decoy   hpke.PublicKey
		real    Recipient
		inboxes []*keys.InboxKey
	}{
		{"decoy and real stanza to the identity key", r.Public().KEMKey(), To(r.Public()), nil},
		{"decoy to the inbox key, real stanza to the identity key", inbox.Public().KEMKey(), To(r.Public()), []*keys.InboxKey{inbox}},
		{"decoy to the identity key, real stanza to the inbox key", r.Public().KEMKey(), ToInbox(r.Public(), inbox.Public()), []*keys.InboxKey{inbox}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := mustSeal(t, testHeader(), []byte("meet at noon"), a, Deniable, To(o.Public()), tc.real)
			// The sender replaces stanza 0 by a decoy and authenticates
			// what it then sends, as an honest Seal would have.
			co := openAsCoRecipient(t, env, o.KEMKey())
			co.stanzas[0] = decoy(tc.decoy)
			ad, macs := co.authData(), co.authenticator()
			for i, to := range []*keys.PublicIdentity{o.Public(), r.Public()} {
				mac, err := deniableMAC(a, a.Public(), to, ad)
				if err != nil {
					t.Fatal(err)
				}
				copy(macs[i*macSize:], mac)
			}
			got := mustOpen(t, co.seal(), r, tc.inboxes...)
			if got.Stanza != 1 || string(got.Body) != "meet at noon" || !got.Sender.Equal(a.Public()) {
				t.Errorf("opened stanza %d, body %q", got.Stanza, got.Body)
			}
		})
	}

	// A co-recipient who plants a decoy for r in its own stanza cannot
	// change what r sees: r reads past the decoy, and the authenticator,
	// which covers every stanza, tells r the envelope was changed.
	env := mustSeal(t, testHeader(), []byte("x"), a, Deniable, To(o.Public()), To(r.Public()))
	co := openAsCoRecipient(t, env, o.KEMKey())
	co.stanzas[0] = decoy(r.Public().KEMKey())
	_, err := open(t, co.seal(), r)
	wantErr(t, "co-recipient's decoy", err, ErrBadAuthentication)

	// Decoys alone: something opened for r, but nothing the header MAC
	// commits to.
	co.stanzas[1] = decoy(r.Public().KEMKey())
	_, err = open(t, co.seal(), r)
	wantErr(t, "decoys only", err, ErrTampered)
}
