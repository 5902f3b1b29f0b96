package envelope

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

// The wire sizes, written out: a change to any of them is a format change.
func TestSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"StanzaSize", StanzaSize, 1088 + 32 + 32 + 16},
		{"innerPrefixSize", innerPrefixSize, 1 + 1280 + 4},
		{"MaxBodySize", MaxBodySize, 65536 - 1285 - 32*32},
		{"MaxSize", MaxSize, 34 + 16 + 32*1168 + 32 + 65536 + 16},
		{"MaxSize literal", MaxSize, 103010},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// Padding hides the body's length within a size class: a 1-byte and a
// 200-byte body seal to the same length.
func TestPaddingHidesLength(t *testing.T) {
	a, r := newIdentity(t), newIdentity(t)
	for _, auth := range []Auth{Deniable, Signed} {
		var lens []int
		for _, n := range []int{0, 1, 200, 600} {
			env := mustSeal(t, testHeader(), bytes.Repeat([]byte{'a'}, n), a, auth, To(r.Public()))
			lens = append(lens, len(env))
			// Padding is zeros.
			co := openAsCoRecipient(t, env, r.KEMKey())
			end := innerPrefixSize + n + len(co.authenticator())
			pad := co.inner[end:]
			if zero := bytes.Count(pad, []byte{0}) == len(pad); len(co.inner) != 1<<minSizeClass || !zero {
				t.Errorf("%v, %d bytes: padded to %d, padding zero %v", auth, n, len(co.inner), zero)
			}
		}
		for _, l := range lens {
			if l != lens[0] {
				t.Errorf("%v: lengths %v differ", auth, lens)
			}
		}
		if want := routingSize + StanzaSize + headerMACSize + 2048 + tagSize; lens[0] != want {
			t.Errorf("%v: length %d, want %d", auth, lens[0], want)
		}
	}
}

// A body one byte over what a class holds goes to the next class, for
// every class and both modes.
func TestPaddingClassBoundaries(t *testing.T) {
	a := newIdentity(t)
	rs := newIdentities(t, 3)
	for _, auth := range []Auth{Deniable, Signed} {
		for _, n := range []int{1, 3} {
			fixed := routingSize + n*StanzaSize + headerMACSize + tagSize
			for class := minSizeClass; class <= maxSizeClass; class++ {
				fits := 1<<class - innerPrefixSize - auth.authSize(n)
				if class == maxSizeClass {
					// MaxBodySize leaves room for 32 MACs.
					fits = MaxBodySize
				}
				env := mustSeal(t, testHeader(), make([]byte, fits), a, auth, to(rs[:n]...)...)
				if len(env) != fixed+1<<class {
					t.Errorf("%v, %d recipients, %d-byte body: %d bytes, want class %d (%d)", auth, n, fits, len(env), class, fixed+1<<class)
				}
				if class == maxSizeClass {
					continue
				}
				env = mustSeal(t, testHeader(), make([]byte, fits+1), a, auth, to(rs[:n]...)...)
				if len(env) != fixed+2<<class {
					t.Errorf("%v, %d recipients, %d-byte body: %d bytes, want class %d", auth, n, fits+1, len(env), class+1)
				}
				if info, err := Parse(env); err != nil || info.PaddedSize != 2<<class {
					t.Errorf("Parse: %+v, %v", info, err)
				}
			}
		}
	}
}

func TestMaxBodySize(t *testing.T) {
	a := newIdentity(t)
	rs := newIdentities(t, MaxRecipients)
	for _, n := range []int{1, MaxRecipients} {
		for _, auth := range []Auth{Deniable, Signed} {
			_, err := Seal(testHeader(), make([]byte, MaxBodySize+1), a, auth, to(rs[:n]...)...)
			wantErr(t, fmt.Sprintf("%v to %d, MaxBodySize+1", auth, n), err, ErrTooLarge)
		}
	}

	// The largest envelope: the largest body, 32 deniable MACs, and a
	// reply mailbox, is exactly MaxSize; without the mailbox it is
	// MaxSize-routing.MailboxSize.
	body := bytes.Repeat([]byte("0123456789abcdef"), MaxBodySize/16+1)[:MaxBodySize]
	env := mustSeal(t, testHeader(), body, a, Deniable, to(rs...)...)
	if want := MaxSize - routing.MailboxSize; len(env) != want || len(env) != 102994 {
		t.Errorf("largest envelope without a mailbox is %d bytes, want %d", len(env), want)
	}
	for _, i := range []int{0, MaxRecipients - 1} {
		checkOpened(t, mustOpen(t, env, rs[i]), testHeader(), body, a, Deniable, MaxRecipients, i)
	}
	h := testHeader()
	h.ReplyTo = testMailbox("x")
	env = mustSeal(t, h, body, a, Deniable, to(rs...)...)
	if len(env) != MaxSize {
		t.Errorf("largest envelope is %d bytes, want MaxSize %d", len(env), MaxSize)
	}
	if _, err := Parse(env); err != nil {
		t.Errorf("Parse of the largest envelope: %v", err)
	}
	// A signature is shorter than 32 MACs: the largest body also fits.
	env = mustSeal(t, testHeader(), body, a, Signed, to(rs...)...)
	checkOpened(t, mustOpen(t, env, rs[5]), testHeader(), body, a, Signed, MaxRecipients, 5)
}

// Open refuses padding that is not zero: no second encoding of a message
// and no covert channel.
func TestNonzeroPadding(t *testing.T) {
	a, r := newIdentity(t), newIdentity(t)
	env := mustSeal(t, testHeader(), []byte("x"), a, Deniable, To(r.Public()))
	for _, off := range []int{innerPrefixSize + 1 + macSize, 1<<minSizeClass - 1} {
		co := openAsCoRecipient(t, env, r.KEMKey())
		co.inner[off] = 0x80
		_, err := open(t, co.seal(), r)
		wantErr(t, fmt.Sprintf("padding byte %d set", off), err, ErrMalformed)
	}
}

// Open refuses a size class larger than the message needs, even with a
// valid authenticator: the choice of class would be a covert channel.
func TestOverPadded(t *testing.T) {
	a, r := newIdentity(t), newIdentity(t)
	for _, n := range []int{1, 731, 2048} {
		env := mustSeal(t, testHeader(), make([]byte, n), a, Deniable, To(r.Public()))
		co := openAsCoRecipient(t, env, r.KEMKey())
		class := int(co.header[len(co.header)-2])
		co.header[len(co.header)-2] = byte(class + 1)
		co.inner = append(co.inner, make([]byte, 1<<class)...)
		// r recomputes its own MAC, so only the class is wrong.
		mac, err := deniableMAC(r, a.Public(), r.Public(), co.authData())
		if err != nil {
			t.Fatal(err)
		}
		copy(co.authenticator(), mac)
		_, err = open(t, co.seal(), r)
		wantErr(t, fmt.Sprintf("%d-byte body padded to class %d", n, class+1), err, ErrMalformed)
	}
}

// A body length that does not fit the padded size with the authenticator
// is refused, never read past.
func TestBodyLengthOverflow(t *testing.T) {
	a, r := newIdentity(t), newIdentity(t)
	for _, auth := range []Auth{Deniable, Signed} {
		env := mustSeal(t, testHeader(), []byte("x"), a, auth, To(r.Public()))
		fits := uint32(1<<minSizeClass - innerPrefixSize - auth.authSize(1))
		for _, n := range []uint32{fits + 1, 1 << minSizeClass, 1<<31 - 1, 1 << 31, 1<<32 - 1} {
			co := openAsCoRecipient(t, env, r.KEMKey())
			binary.BigEndian.PutUint32(co.inner[1+keys.PublicIdentitySize:], n)
			_, err := open(t, co.seal(), r)
			wantErr(t, fmt.Sprintf("%v: body length %d of %d that fit", auth, n, fits), err, ErrMalformed)
		}
	}
}

// With 24 or more recipients, 24 deniable MACs and the sender's identity
// alone overflow the smallest class (1285 + 24*32 > 2048). A sender (or a
// co-recipient, who knows the content key) who nevertheless writes class
// 11 must get ErrMalformed, not a panic: the body-length check computes
// len(inner)-innerPrefixSize-authLen, which is negative here, and converts
// it to uint64.
func TestAuthenticatorLargerThanClass(t *testing.T) {
	a := newIdentity(t)
	rs := newIdentities(t, MaxRecipients)
	for _, n := range []int{24, 28, MaxRecipients} {
		env := mustSeal(t, testHeader(), nil, a, Deniable, to(rs[:n]...)...)
		co := openAsCoRecipient(t, env, rs[0].KEMKey())
		if class := co.header[len(co.header)-2]; class != minSizeClass+1 {
			t.Fatalf("%d recipients, empty body: class %d", n, class)
		}
		co.header[len(co.header)-2] = minSizeClass
		co.inner = co.inner[:1<<minSizeClass]
		_, err := open(t, co.seal(), rs[0])
		wantErr(t, fmt.Sprintf("%d deniable MACs in class 11", n), err, ErrMalformed)
	}
}
