package console

import (
	"slices"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/routing"
)

// TestReleasedCheckInIsACaseMarkedAsSuch: a defender's drill check-in
// plan, missed, reaches the post's console as a case marked check-in and
// drill.
func TestReleasedCheckInIsACaseMarkedAsSuch(t *testing.T) {
	tb := newTestbed(t, func(c *relay.Config) { c.Holds.MinCheckInInterval = time.Second })
	o := tb.office("nl-kampala")
	def := tb.defender()
	if _, err := def.ArmCheckIn(tb.ctx, client.CheckInOptions{Country: "ug", Every: time.Second, Text: "Drill: silent since noon\nCall Sarah", Exercise: true}); err != nil {
		t.Fatal(err)
	}
	tb.receiveAll(o, 1)
	k := o.Store.Cases()[0]
	if k.Kind != message.KindCheckIn || !slices.Equal(k.Flags, []string{FlagCheckIn, FlagDrill}) || k.Title != "Missed check-in: Drill: silent since noon" {
		t.Fatalf("case %+v", k)
	}
}

// TestEscalationOpensTheAlertsCase: an escalation opens, at the post it
// reached, the case of the alert it escalates (an ack there stops the
// rest of the escalation), marked escalated.
func TestEscalationOpensTheAlertsCase(t *testing.T) {
	st, err := OpenStore(t.TempDir(), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, err := keys.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	alert := routing.NewID()
	r := &client.Received{ID: routing.NewID(), Case: alert, Sender: id.Public(), FromRole: keys.RoleDefender,
		Header:  envelope.Header{ID: routing.NewID(), Created: time.Now(), Country: "ug", Priority: routing.Urgent},
		Message: &message.Escalation{Ref: alert, Tier: message.TierTarget, Alert: message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryRaid, Summary: "Office raided"}}}
	if err := st.Keep(r, FlagsOf(r)...); err != nil {
		t.Fatal(err)
	}
	k, err := st.Case(alert)
	if err != nil || k.Kind != message.KindEscalation || k.Title != "Office raided" || !slices.Equal(k.Flags, []string{FlagEscalated}) || k.Country != "ug" {
		t.Fatalf("case %+v, %v", k, err)
	}
}
