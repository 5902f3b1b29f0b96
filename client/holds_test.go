package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// holdsWorld: ug-a and ug-b cover ug and promise urgent answers within 3
// seconds; ug-a escalates to ke-hub, which covers ke; hq oversees them
// all; plans may check in every second.
func holdsWorld(t *testing.T, opts ...relay.Option) *world {
	t.Helper()
	w := relaytest.NewWorld(t,
		relaytest.MissionSpec{ID: "ug-a", Countries: []string{"ug"}, Urgent: 3 * time.Second, Escalation: "ke-hub"},
		relaytest.MissionSpec{ID: "ug-b", Countries: []string{"ug"}, Urgent: 3 * time.Second},
		relaytest.MissionSpec{ID: "ke-hub", Countries: []string{"ke"}, Urgent: 3 * time.Second})
	cfg := relaytest.Config(t)
	cfg.Holds.MinCheckInInterval = time.Second
	w.Configure(cfg)
	rw := &world{World: w, cfg: cfg}
	rw.relay = relaytest.Start(t, cfg, opts...)
	return rw
}

func (w *world) party(t *testing.T, kr *keys.Keyring) *party {
	t.Helper()
	p := w.openParty(t, kr, "")
	p.waitConnected(t)
	return p
}

// TestCheckInPlanLifecycle: a defender arms a plan, checks in (the
// release does not come sooner), sees it in its holds, disarms it; the
// relay then holds it disarmed. (relay's TestCheckInPostpones shows the
// deadline moving on a fake clock, and TestCheckInRefusals that a
// disarmed plan never fires.)
func TestCheckInPlanLifecycle(t *testing.T) {
	t.Parallel()
	w := holdsWorld(t)
	def := w.party(t, newDefender(t))
	plan, err := def.ArmCheckIn(ctx(t), client.CheckInOptions{Country: "ug", Every: 30 * time.Second, Grace: time.Second,
		Text: "If I do not check in, I was taken. Call Sarah."})
	if err != nil {
		t.Fatal(err)
	}
	if plan.CheckIns != 0 || plan.Release.Sub(plan.Due) != time.Second || plan.Priority != routing.Urgent || plan.Duress {
		t.Fatalf("armed %+v", plan)
	}
	if _, err := def.ArmCheckIn(ctx(t), client.CheckInOptions{Country: "ug", Every: time.Hour, Text: "again"}); !errors.Is(err, client.ErrPlanArmed) {
		t.Errorf("arming a second plan: %v", err)
	}
	after, err := def.CheckIn(ctx(t))
	if err != nil || after.CheckIns != 1 || after.Release.Before(plan.Release) {
		t.Fatalf("check-in: %+v %v", after, err)
	}
	holds, err := def.Holds(ctx(t))
	if err != nil || len(holds) != 1 || holds[0].ID != plan.ID || holds[0].State != proto.HoldArmed || !holds[0].Deadline.Equal(after.Release) || holds[0].Index != 1 {
		t.Fatalf("holds: %+v %v", holds, err)
	}
	if _, err := def.Disarm(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := def.LocalPlan(); !errors.Is(err, client.ErrNoPlan) {
		t.Errorf("after disarming, the device still holds a plan: %v", err)
	}
	if holds, _ := def.Holds(ctx(t)); len(holds) != 1 || holds[0].State != proto.HoldDisarmed {
		t.Errorf("holds after disarming: %+v", holds)
	}
	if _, err := def.CheckIn(ctx(t)); !errors.Is(err, client.ErrNoPlan) {
		t.Errorf("a check-in after disarming: %v", err)
	}
}

// TestMissedCheckInDrill: a drill plan nobody checks in on reaches both
// missions of ug as a check-in marked as a drill; the defender's next
// check-in learns it was released.
func TestMissedCheckInDrill(t *testing.T) {
	t.Parallel()
	w := holdsWorld(t)
	def := w.party(t, newDefender(t))
	plan, err := def.ArmCheckIn(ctx(t), client.CheckInOptions{Country: "ug", Every: time.Second, Text: "drill: I went silent", Exercise: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ug-a", "ug-b"} {
		m := w.party(t, w.Keyrings[id])
		got := readAlertsWaiting(t, m.Client, 1, 20*time.Second)
		ci, ok := got[0].Message.(*message.CheckIn)
		if !ok || !ci.Exercise || ci.Text != "drill: I went silent" || !got[0].Sender.Equal(def.Identity()) || ci.Every != time.Second {
			t.Fatalf("%s read %#v", id, got[0].Message)
		}
		if s := client.Summarize(ci); !strings.HasPrefix(s, "DRILL: missed check-in") {
			t.Errorf("%s: summary %q does not say it is a drill", id, s)
		}
	}
	var ended *client.PlanEndedError
	if _, err := def.CheckIn(ctx(t)); !errors.As(err, &ended) || ended.State != proto.HoldReleased || ended.At.Before(plan.Release) {
		t.Errorf("a check-in after the release: %v", err)
	}
}

// readAlertsWaiting is readAlerts with a longer wait for the first.
func readAlertsWaiting(t *testing.T, m *client.Client, n int, wait time.Duration) []*client.Received {
	t.Helper()
	var got []*client.Received
	deadline := time.Now().Add(wait)
	for len(got) < n && time.Now().Before(deadline) {
		rs, err := receiveAlerts(m, ctx(t), client.FetchOptions{Wait: time.Until(deadline)})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rs...)
	}
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	return got
}

// readMailboxWaiting receives a mission's mailbox (where escalations are
// released) until it has n messages or wait passes.
func readMailboxWaiting(t *testing.T, m *client.Client, n int, wait time.Duration) []*client.Received {
	t.Helper()
	var got []*client.Received
	deadline := time.Now().Add(wait)
	for len(got) < n && time.Now().Before(deadline) {
		_, err := m.ReceiveMailbox(ctx(t), client.FetchOptions{Wait: time.Until(deadline)}, func(_ context.Context, r *client.Received) error {
			got = append(got, r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// TestAlertEscalates: an urgent alert nobody acknowledges reaches
// ke-hub, ug-a's escalation target, as an escalation it can read, in the
// alert's case; a second alert that ug-a acknowledges does not; a drill
// escalates marked as one, and is offered to no partner.
func TestAlertEscalates(t *testing.T) {
	t.Parallel()
	w := holdsWorld(t)
	def := w.party(t, newDefender(t))
	ugA := w.party(t, w.Keyrings["ug-a"])
	hub := w.party(t, w.Keyrings["ke-hub"])

	unanswered, err := def.SendAlert(ctx(t), ugAlert("Taken at the checkpoint"))
	if err != nil || !slices.Equal(unanswered.Escalation, []int{keys.TierTarget, keys.TierHeadquarters}) {
		t.Fatalf("SendAlert: %+v %v", unanswered, err)
	}
	answered, err := def.SendAlert(ctx(t), ugAlert("Office surrounded"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range readAlerts(t, ugA.Client, 2) {
		if r.ID == answered.ID {
			if _, err := ugA.Acknowledge(ctx(t), r, "ug-a duty officer", "calling"); err != nil {
				t.Fatal(err)
			}
		}
	}
	drill := ugAlert("Drill: raid on the office")
	drill.Exercise, drill.Share = true, true
	drilled, err := def.SendAlert(ctx(t), drill)
	if err != nil || len(drilled.Partners) != 0 || slices.Contains(drilled.Escalation, keys.TierPartners) {
		t.Fatalf("a drill shared with partners: %+v %v", drilled, err)
	}

	got := readMailboxWaiting(t, hub.Client, 2, 20*time.Second)
	cases := map[routing.ID]*message.Escalation{}
	for _, r := range got {
		e, ok := r.Message.(*message.Escalation)
		if !ok || r.Case != e.Ref || e.Tier != message.TierTarget || !r.Sender.Equal(def.Identity()) {
			t.Fatalf("ke-hub read %#v in case %s", r.Message, r.Case)
		}
		cases[e.Ref] = e
	}
	if e := cases[unanswered.ID]; e == nil || e.Alert.Summary != "Taken at the checkpoint" || e.Alert.Exercise {
		t.Errorf("the unanswered alert's escalation: %+v", e)
	}
	if e := cases[drilled.ID]; e == nil || !e.Alert.Exercise || !strings.HasPrefix(client.Summarize(e), "DRILL: escalated to target") {
		t.Errorf("the drill's escalation: %+v", e)
	}
	if cases[answered.ID] != nil || len(got) != 2 {
		t.Errorf("ke-hub read %d escalations, the acknowledged alert's among them: %v", len(got), cases[answered.ID] != nil)
	}
	holds, err := def.Holds(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range holds {
		if h.Alert == answered.ID && h.State != proto.HoldStopped {
			t.Errorf("the acknowledged alert's tier %d is %s, want stopped", h.Tier, h.State)
		}
	}
}

// TestDuressReleasesThePlan: a plan armed by a keyring with a duress key
// is released, at once, by the decoy the duress passphrase opens, which
// holds nothing else of the plan and shows an empty inbox.
func TestDuressReleasesThePlan(t *testing.T) {
	t.Parallel()
	w := holdsWorld(t)
	kr := newDefender(t)
	decoy, err := keys.NewDecoy(kr)
	if err != nil {
		t.Fatal(err)
	}
	def := w.party(t, kr)
	plan, err := def.ArmCheckIn(ctx(t), client.CheckInOptions{Country: "ug", Every: time.Hour, Text: "under duress"})
	if err != nil || !plan.Duress {
		t.Fatalf("arm: %+v %v", plan, err)
	}
	dec := w.party(t, decoy)
	if cs, err := dec.Cases(); err != nil || len(cs) != 0 {
		t.Fatalf("the decoy shows %d cases, %v", len(cs), err)
	}
	if err := dec.DuressRelease(ctx(t)); err != nil {
		t.Fatal(err)
	}
	m := w.party(t, w.Keyrings["ug-a"])
	got := readAlertsWaiting(t, m.Client, 1, 10*time.Second)
	if ci, ok := got[0].Message.(*message.CheckIn); !ok || ci.Text != "under duress" || !got[0].Sender.Equal(def.Identity()) {
		t.Fatalf("the mission read %#v", got[0].Message)
	}
	if time.Now().After(plan.Release) {
		t.Error("released at the plan's deadline, not at once")
	}
	// Again: nothing armed, nothing said.
	if err := dec.DuressRelease(ctx(t)); err != nil {
		t.Errorf("a second duress release: %v", err)
	}
}

// TestDrillsAreNotInTheReport: a drill alert and a missed drill check-in
// reach the missions, but the response report, which the relay computes
// from metadata, leaves them out; a real alert stays in it, even if
// someone marks it as a drill after it was stored.
func TestDrillsAreNotInTheReport(t *testing.T) {
	t.Parallel()
	w := holdsWorld(t)
	def := w.party(t, newDefender(t))
	since := time.Now().Add(-time.Minute)
	drill := ugAlert("Drill: office raided")
	drill.Exercise = true
	drilled, err := def.SendAlert(ctx(t), drill)
	if err != nil {
		t.Fatal(err)
	}
	real, err := def.SendAlert(ctx(t), ugAlert("Office raided"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := def.ArmCheckIn(ctx(t), client.CheckInOptions{Country: "ug", Every: time.Second, Text: "drill: silent", Exercise: true}); err != nil {
		t.Fatal(err)
	}
	m := w.party(t, w.Keyrings["ug-a"])
	got := readAlertsWaiting(t, m.Client, 3, 20*time.Second)
	drills := 0
	for _, r := range got {
		if message.IsExercise(r.Message) {
			drills++
		}
	}
	if drills != 2 {
		t.Fatalf("the mission read %d drills of 3 messages, want 2", drills)
	}
	// Marked after it was stored, a real alert stays a real one.
	late := relaytest.Connect(t, w.url(), nil)
	b, _ := json.Marshal(&proto.DrillMark{Alert: real.ID})
	if _, err := late.Relay.Hold(ctx(t), proto.HoldDrill, b); err != nil {
		t.Fatal(err)
	}
	d, err := m.Report(ctx(t), since, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var ids []routing.ID
	for _, a := range d.Alerts {
		ids = append(ids, a.ID)
	}
	if !slices.Equal(ids, []routing.ID{real.ID}) {
		t.Errorf("the report counts %v; want only the real alert %s (not the drill %s nor the drill check-in)", ids, real.ID, drilled.ID)
	}
}
