package envelope

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/routing"
)

// Every single-bit change of an envelope makes Open fail: in the stanza
// with ErrNotForMe, after it with ErrTampered, and in the routing header
// with a structural error or ErrTampered. Every bit is tried; the bits are
// split across parallel subtests because each Open costs a KEM
// decapsulation.
func TestBitFlips(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	env := mustSeal(t, testHeader(), []byte("we have been arrested"), a, Deniable, To(b.Public()))
	if _, err := Open(env, b); err != nil {
		t.Fatal(err)
	}
	hdr := routingSize
	stanzaEnd := hdr + StanzaSize
	want := func(off int) error {
		switch {
		case off < hdr:
			return nil // any sentinel: depends on the field
		case off < stanzaEnd:
			return ErrNotForMe
		default:
			return ErrTampered // header MAC, payload, tag
		}
	}
	chunks := 4 * runtime.GOMAXPROCS(0)
	per := (len(env) + chunks - 1) / chunks
	for start := 0; start < len(env); start += per {
		end := min(start+per, len(env))
		t.Run(fmt.Sprintf("bytes-%d-%d", start, end), func(t *testing.T) {
			t.Parallel()
			e := bytes.Clone(env)
			for off := start; off < end; off++ {
				for bit := range 8 {
					e[off] ^= 1 << bit
					o, err := open(t, e, b)
					e[off] ^= 1 << bit
					what := fmt.Sprintf("bit %d of byte %d", bit, off)
					switch w := want(off); {
					case o != nil || err == nil:
						t.Fatalf("%s: Open succeeded", what)
					case w != nil:
						wantErr(t, what, err, w)
					case len(sentinelNames(err)) != 1:
						t.Errorf("%s: error %v wraps %v, want one sentinel", what, err, sentinelNames(err))
					}
				}
			}
		})
	}
}

// Rewriting a routing-header field to another valid value passes Parse
// (the relay cannot tell, and need not) but fails Open: the header MAC
// covers it.
func TestHeaderRewrite(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	h := testHeader()
	h.ReplyTo = testMailbox("UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4")
	env := mustSeal(t, h, []byte("raid"), a, Deniable, To(b.Public()))
	noReply := mustSeal(t, testHeader(), []byte("raid"), a, Deniable, To(b.Public()))
	for _, tc := range []struct {
		name string
		env  []byte
		edit func([]byte) []byte
	}{
		{"country ug to ke", env, func(e []byte) []byte { copy(e[offCountry:], "ke"); return e }},
		{"priority high to urgent", env, func(e []byte) []byte { e[offPriority] = byte(routing.Urgent); return e }},
		{"priority high to routine", env, func(e []byte) []byte { e[offPriority] = byte(routing.Routine); return e }},
		{"message id", env, func(e []byte) []byte { e[offID+15] ^= 0x80; return e }},
		{"created", env, func(e []byte) []byte {
			binary.BigEndian.PutUint64(e[offCreated:], uint64(testCreated.Add(-time.Hour).UnixMilli()))
			return e
		}},
		{"reply mailbox", env, func(e []byte) []byte {
			m := testMailbox("someone else")
			copy(e[offMailbox:], m[:])
			return e
		}},
		{"reply mailbox removed", env, func(e []byte) []byte {
			e[offFlags] = 0
			return append(e[:offMailbox], e[offMailbox+routing.MailboxSize:]...)
		}},
		{"reply mailbox added", noReply, func(e []byte) []byte {
			m := testMailbox("the relay's own")
			e[offFlags] = flagReplyTo
			return append(e[:offMailbox], append(m[:], e[offMailbox:]...)...)
		}},
	} {
		e := tc.edit(bytes.Clone(tc.env))
		if _, err := Parse(e); err != nil {
			t.Errorf("%s: Parse: %v", tc.name, err)
			continue
		}
		_, err := open(t, e, b)
		wantErr(t, tc.name, err, ErrTampered)
	}
}

// Dropping a bit of every length at the end of the envelope gives
// ErrTruncated, whatever the length; one byte more is ErrMalformed; more
// than MaxSize is ErrTooLarge before anything else is read.
func TestTruncation(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	h := testHeader()
	h.ReplyTo = testMailbox("UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4")
	for _, env := range [][]byte{
		mustSeal(t, testHeader(), []byte("x"), a, Deniable, To(b.Public())),
		mustSeal(t, h, []byte("x"), a, Signed, To(b.Public()), To(a.Public())),
	} {
		for n := range len(env) {
			_, err := Parse(env[:n])
			wantErr(t, fmt.Sprintf("Parse of the first %d of %d bytes", n, len(env)), err, ErrTruncated)
			_, err = open(t, env[:n], b)
			wantErr(t, fmt.Sprintf("Open of the first %d of %d bytes", n, len(env)), err, ErrTruncated)
		}
		for _, extra := range [][]byte{{0}, {1}, make([]byte, 16)} {
			_, err := open(t, append(bytes.Clone(env), extra...), b)
			wantErr(t, fmt.Sprintf("%d bytes appended", len(extra)), err, ErrMalformed)
		}
	}
}

func TestTooLarge(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	env := mustSeal(t, testHeader(), []byte("x"), a, Deniable, To(b.Public()))
	big := append(bytes.Clone(env), make([]byte, MaxSize+1-len(env))...)
	_, err := Parse(big)
	wantErr(t, "Parse of MaxSize+1 bytes", err, ErrTooLarge)
	_, err = open(t, big, b)
	wantErr(t, "Open of MaxSize+1 bytes", err, ErrTooLarge)
	// The size check is first: garbage of that size is too large, not malformed.
	_, err = Parse(make([]byte, MaxSize+1))
	wantErr(t, "Parse of MaxSize+1 zero bytes", err, ErrTooLarge)
	// At MaxSize it is the trailing bytes that are refused.
	_, err = Parse(big[:MaxSize])
	wantErr(t, "Parse of MaxSize bytes", err, ErrMalformed)
}

// A stanza that gives a recipient another content key than the one the
// header MAC and payload were made with is refused: the header MAC commits
// the envelope to one key, so two recipients cannot be shown two different
// messages (the "invisible salamander" attack on non-committing AEADs).
func TestKeyCommitment(t *testing.T) {
	a, b, c := newIdentity(t), newIdentity(t), newIdentity(t)
	env := mustSeal(t, testHeader(), []byte("the real message"), a, Deniable, to(b, c)...)
	co := openAsCoRecipient(t, env, b.KEMKey())
	good := co.seal()
	// A second content key wrapped to c, the payload and MAC still made
	// with the first.
	other := &coRecipient{fileKey: bytes.Repeat([]byte{7}, fileKeySize)}
	co.stanzas[1] = other.wrap(t, c.Public().KEMKey())
	forked := co.seal()
	if _, err := open(t, good, c); err != nil {
		t.Fatalf("re-sealed envelope: %v", err)
	}
	_, err := open(t, forked, c)
	wantErr(t, "Open with a stanza holding another key", err, ErrTampered)
	// b's stanza still holds the real key, but the sender's MAC covers
	// c's stanza: the change is a re-addressing and fails authentication.
	_, err = open(t, forked, b)
	wantErr(t, "Open by the other recipient", err, ErrBadAuthentication)
}
