package envelope

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/routing"
)

func putCreated(e []byte, t time.Time) {
	binary.BigEndian.PutUint64(e[offCreated:], uint64(t.UnixMilli()))
}

// Each routing-header field is refused on its own, with its own sentinel,
// in an envelope that is otherwise valid (and whose length matches).
func TestParseRefusals(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	env := mustSeal(t, testHeader(), []byte("x"), a, Deniable, To(b.Public()))
	h := testHeader()
	h.ReplyTo = testMailbox("UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4")
	withReply := mustSeal(t, h, []byte("x"), a, Deniable, To(b.Public()))
	classAt, countAt := routingSize-2, routingSize-1

	for _, tc := range []struct {
		name  string
		reply bool
		edit  func(e []byte)
		want  error
	}{
		{"bad magic", false, func(e []byte) { e[0] = 'b' }, ErrMalformed},
		{"magic BCM", false, func(e []byte) { e[2] = 'M' }, ErrMalformed},
		{"version 0", false, func(e []byte) { e[offVersion] = 0 }, ErrUnsupportedVersion},
		{"version 2", false, func(e []byte) { e[offVersion] = 2 }, ErrUnsupportedVersion},
		{"version 255", false, func(e []byte) { e[offVersion] = 255 }, ErrUnsupportedVersion},
		{"flag 0x02", false, func(e []byte) { e[offFlags] = 0x02 }, ErrMalformed},
		{"flag 0x80", false, func(e []byte) { e[offFlags] = 0x80 }, ErrMalformed},
		{"flags 0x03", true, func(e []byte) { e[offFlags] = 0x03 }, ErrMalformed},
		{"priority 0", false, func(e []byte) { e[offPriority] = 0 }, ErrMalformed},
		{"priority 4", false, func(e []byte) { e[offPriority] = 4 }, ErrMalformed},
		{"priority 255", false, func(e []byte) { e[offPriority] = 255 }, ErrMalformed},
		{"country UG", false, func(e []byte) { copy(e[offCountry:], "UG") }, ErrMalformed},
		{"country Ug", false, func(e []byte) { copy(e[offCountry:], "Ug") }, ErrMalformed},
		{"country zz", false, func(e []byte) { copy(e[offCountry:], "zz") }, ErrMalformed},
		{"country NUL NUL", false, func(e []byte) { copy(e[offCountry:], "\x00\x00") }, ErrMalformed},
		{"country u NUL", false, func(e []byte) { copy(e[offCountry:], "u\x00") }, ErrMalformed},
		{"zero id", false, func(e []byte) { clear(e[offID : offID+routing.IDSize]) }, ErrMalformed},
		{"created 1970", false, func(e []byte) { clear(e[offCreated : offCreated+8]) }, ErrMalformed},
		{"created 2019-12-31T23:59:59.999", false, func(e []byte) { putCreated(e, minCreated.Add(-time.Millisecond)) }, ErrMalformed},
		{"created 2100-01-01", false, func(e []byte) { putCreated(e, maxCreated) }, ErrMalformed},
		{"created 2^62 ms", false, func(e []byte) { binary.BigEndian.PutUint64(e[offCreated:], 1<<62) }, ErrMalformed},
		{"created 2^64-1 ms", false, func(e []byte) { binary.BigEndian.PutUint64(e[offCreated:], 1<<64-1) }, ErrMalformed},
		{"zero reply mailbox", true, func(e []byte) { clear(e[offMailbox : offMailbox+routing.MailboxSize]) }, ErrMalformed},
		{"size class 0", false, func(e []byte) { e[classAt] = 0 }, ErrMalformed},
		{"size class 10", false, func(e []byte) { e[classAt] = 10 }, ErrMalformed},
		{"size class 17", false, func(e []byte) { e[classAt] = 17 }, ErrMalformed},
		{"size class 255", false, func(e []byte) { e[classAt] = 255 }, ErrMalformed},
		{"size class 10 with a mailbox", true, func(e []byte) { e[classAt+routing.MailboxSize] = 10 }, ErrMalformed},
		{"recipients 0", false, func(e []byte) { e[countAt] = 0 }, ErrTooManyRecipients},
		{"recipients 33", false, func(e []byte) { e[countAt] = 33 }, ErrTooManyRecipients},
		{"recipients 255", false, func(e []byte) { e[countAt] = 255 }, ErrTooManyRecipients},
		{"recipients 0 with a mailbox", true, func(e []byte) { e[countAt+routing.MailboxSize] = 0 }, ErrTooManyRecipients},
		// Values that fit the header but not the length that follows.
		{"size class 12", false, func(e []byte) { e[classAt] = 12 }, ErrTruncated},
		{"recipients 2", false, func(e []byte) { e[countAt] = 2 }, ErrTruncated},
		{"reply flag without a mailbox", false, func(e []byte) { e[offFlags] = flagReplyTo }, nil},
	} {
		e := bytes.Clone(env)
		if tc.reply {
			e = bytes.Clone(withReply)
		}
		tc.edit(e)
		_, perr := Parse(e)
		_, oerr := open(t, e, b)
		if tc.want == nil {
			// Which check fails depends on the bytes read as a mailbox;
			// it must be some structural refusal.
			if perr == nil || len(sentinelNames(perr)) != 1 {
				t.Errorf("%s: Parse: %v", tc.name, perr)
			}
			continue
		}
		wantErr(t, tc.name+": Parse", perr, tc.want)
		wantErr(t, tc.name+": Open", oerr, tc.want)
	}
}

// The boundaries of the accepted ranges are accepted.
func TestParseBoundaries(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	for _, created := range []time.Time{minCreated, maxCreated.Add(-time.Millisecond)} {
		h := testHeader()
		h.Created = created
		env := mustSeal(t, h, []byte("x"), a, Deniable, To(b.Public()))
		info, err := Parse(env)
		if err != nil || !info.Created.Equal(created) {
			t.Errorf("created %v: Parse = %v, %v", created, info.Created, err)
		}
	}
	for _, p := range []routing.Priority{routing.Urgent, routing.High, routing.Routine} {
		h := testHeader()
		h.Priority = p
		env := mustSeal(t, h, []byte("x"), a, Deniable, To(b.Public()))
		if info, err := Parse(env); err != nil || info.Priority != p {
			t.Errorf("priority %v: Parse = %v, %v", p, info.Priority, err)
		}
	}
}

// Parse reports exactly what the sender put in the header, and the sizes.
func TestParseInfo(t *testing.T) {
	a := newIdentity(t)
	rs := newIdentities(t, 3)
	h := testHeader()
	h.ReplyTo = testMailbox("x")
	env := mustSeal(t, h, make([]byte, 1000), a, Signed, to(rs...)...)
	info, err := Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	if info.Header.ID != h.ID || info.Country != h.Country || info.Priority != h.Priority || info.ReplyTo != h.ReplyTo ||
		!info.Created.Equal(h.Created.Truncate(time.Millisecond)) || info.Created.Location() != time.UTC {
		t.Errorf("Parse header = %+v, want %+v", info.Header, h)
	}
	if info.Recipients != 3 || info.PaddedSize != 4096 || info.HeaderSize != routingSize+routing.MailboxSize {
		t.Errorf("Parse sizes = %d recipients, %d padded, %d header", info.Recipients, info.PaddedSize, info.HeaderSize)
	}
	if n := info.HeaderSize + 3*StanzaSize + headerMACSize + info.PaddedSize + tagSize; n != len(env) {
		t.Errorf("sizes add up to %d, envelope is %d", n, len(env))
	}
}
