package console

import (
	"slices"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// TestIDSquattingChangesNoCase: someone who learned an alert's id (a
// coerced relay, a co-recipient) seals messages of their own under it to
// the same missions — an "alert" with the id, sent first, and a
// cancellation of it. The real alert is still delivered (not dropped as a
// replay), its case keeps the real defender as the one replies go to, is
// not cancelled, and the squatter's messages sit in a case of their own,
// flagged.
func TestIDSquattingChangesNoCase(t *testing.T) {
	for _, squatFirst := range []bool{false, true} {
		name := "real first"
		if squatFirst {
			name = "squatter first (a relay may reorder)"
		}
		t.Run(name, func(t *testing.T) { testSquat(t, squatFirst) })
	}
}

func testSquat(t *testing.T, squatFirst bool) {
	tb := newTestbed(t)
	o := tb.office("nl-kampala")
	var to []envelope.Recipient
	for _, m := range tb.w.Dir.MissionsFor("ug") {
		to = append(to, envelope.ToInbox(m.Identity, keys.CurrentInbox(m.InboxKeys, time.Now())))
	}
	type sender struct {
		kr   *keys.Keyring
		conn *relaytest.Conn
	}
	newSender := func() sender {
		kr, err := keys.NewKeyring(keys.RoleDefender)
		if err != nil {
			t.Fatal(err)
		}
		return sender{kr, relaytest.Connect(t, tb.url, kr.NKey)}
	}
	send := func(s sender, m message.Message, msgID routing.ID) {
		t.Helper()
		body, err := message.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		h := envelope.Header{ID: msgID, Created: time.Now(), Country: "ug", Priority: routing.Urgent, ReplyTo: s.conn.Mailbox}
		env, err := envelope.Seal(h, body, s.kr.Identity, envelope.Deniable, to...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.conn.Publish(proto.AlertTarget("ug", routing.Urgent), env); err != nil {
			t.Fatal(err)
		}
	}
	def, squatter := newSender(), newSender()
	id := routing.NewID()
	real := &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryDetention, Summary: "Arrested at the airport"}
	squat := func() {
		send(squatter, &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryOther, Summary: "Ignore the other alert"}, id)
		send(squatter, &message.Cancel{Ref: id, Reason: message.CancelFalseAlarm}, routing.NewID())
	}
	if squatFirst {
		squat()
		send(def, real, id)
	} else {
		send(def, real, id)
		squat()
	}
	tb.receiveAll(o, 2)
	if n := o.Store.Len(); n != 2 {
		t.Fatalf("%d cases, want the defender's and the squatter's", n)
	}
	var genuine, other *Case
	for _, k := range o.Store.Cases() {
		if k.addressee.Identity != nil && k.addressee.Identity.Equal(def.kr.Identity.Public()) {
			genuine = k
		} else {
			other = k
		}
	}
	if genuine == nil || other == nil {
		t.Fatalf("cases: the defender's %v, the other %v", genuine, other)
	}
	// The defender's case: the real alert, alone, not cancelled, answered
	// to the defender.
	if genuine.Title != real.Summary || genuine.Cancelled != "" || len(genuine.Thread) != 1 || genuine.addressee.ReplyTo != def.conn.Mailbox {
		t.Fatalf("the defender's case was changed by the squatter: %+v", genuine)
	}
	// The squatter's messages, together, in a case flagged as such (the
	// one of the two that came second is flagged).
	if other.addressee.ReplyTo != squatter.conn.Mailbox || len(other.Thread) != 2 {
		t.Fatalf("the squatter's case: %+v", other)
	}
	flagged := other
	if squatFirst {
		flagged = genuine
	}
	if !slices.Contains(flagged.Flags, FlagIDReused) {
		t.Fatalf("the second case to use the id is not flagged: %+v", flagged.Flags)
	}
}
