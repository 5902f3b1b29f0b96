package console

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

func sharedCount(t *testing.T, tb *testbed) float64 {
	t.Helper()
	m, err := tb.r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, "beacon_relay_received_total,") && strings.Contains(k, "stream=SHARED") {
			n += v
		}
	}
	return n
}

// TestShareNeedsConsent: an alert sent without consent to share is
// never re-shared (nothing reaches the relay's SHARED stream); one with
// consent is, to the partner covering the country, signed by the mission.
func TestShareNeedsConsent(t *testing.T) {
	tb := newTestbed(t)
	o := tb.office("nl-kampala")
	def := tb.defender()
	no, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryRaid, Summary: "Raid", Share: false})
	if err != nil {
		t.Fatal(err)
	}
	yes, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryRaid, Summary: "Raid, share it", Share: true})
	if err != nil {
		t.Fatal(err)
	}
	tb.receiveAll(o, 2)
	before := sharedCount(t, tb) // the defender's own copy for partners
	if err := o.Share(tb.ctx, no.ID, "avries", ""); !errors.Is(err, message.ErrNoConsent) {
		t.Fatalf("sharing without consent: %v", err)
	}
	if n := sharedCount(t, tb); n != before {
		t.Fatalf("something reached SHARED: %v → %v", before, n)
	}
	if k, _ := o.Store.Case(no.ID); len(k.SharedWith) != 0 || len(k.Thread) != 1 {
		t.Fatalf("the refused share was recorded: %+v", k)
	}
	if err := o.Share(tb.ctx, yes.ID, "avries", "Please raise it with the Ministry of Interior"); err != nil {
		t.Fatal(err)
	}
	if n := sharedCount(t, tb); n != before+1 {
		t.Fatalf("SHARED received %v → %v, want one more", before, n)
	}
	if k, _ := o.Store.Case(yes.ID); len(k.SharedWith) != 1 || k.SharedWith[0] != "partner" {
		t.Fatalf("shared with %v", k.SharedWith)
	}
}

// TestNotesNeverLeaveTheMission: a note's text is in no message anyone
// receives from the mission — the defender, another mission, headquarters
// — after every action that sends something, and in no byte the relay
// stored.
func TestNotesNeverLeaveTheMission(t *testing.T) {
	tb := newTestbed(t)
	nl, se := tb.office("nl-kampala"), tb.office("se-kampala")
	def := tb.defender()
	hq := tb.client(tb.w.Keyrings["hq"])
	note := "NOTE-" + routing.NewID().String() + ": the source is the driver"

	a, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryDetention,
		Summary: "Detained", Share: true})
	if err != nil {
		t.Fatal(err)
	}
	obs, err := def.RequestObservation(tb.ctx, &message.ObservationRequest{Country: "ug", Court: "High Court", Case: "HCT-1",
		Hearing: time.Now().Add(48 * time.Hour), Defendants: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	tb.receiveAll(nl, 2)
	ctx := tb.ctx
	for _, id := range []routing.ID{a.ID, obs.ID} {
		if err := nl.Note(id, "avries", note); err != nil {
			t.Fatal(err)
		}
	}
	steps := []error{
		nl.Acknowledge(ctx, a.ID, "avries", "We are calling the station"),
		nl.Reply(ctx, a.ID, "avries", "Stay calm; a lawyer is coming."),
		nl.Assign(ctx, a.ID, "avries", "jbakker", true),
		nl.Share(ctx, a.ID, "avries", "For the partner's embassy"),
		nl.Report(ctx, a.ID, "jbakker", "Detained at the airport; acknowledged within target."),
		nl.Observe(ctx, obs.ID, "avries", message.ObservationAssigned, "Second Secretary", ""),
		nl.Observe(ctx, obs.ID, "avries", message.ObservationConfirmed, "", ""),
		nl.Broadcast(ctx, "avries", &message.Broadcast{Country: "ug", Category: message.BroadcastTraining, Title: "Digital security clinic", Text: "Thursdays."}),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	check := func(who string, rs []*client.Received) {
		t.Helper()
		for _, r := range rs {
			b, _ := message.Marshal(r.Message)
			if bytes.Contains(b, []byte(note)) || strings.Contains(client.Summarize(r.Message), "NOTE-") {
				t.Errorf("%s received the note in a %s", who, r.Message.Kind())
			}
		}
	}
	// The defender: ack, reply, liaison, confirmed observation.
	check("the defender", tb.mailbox(def, 4))
	// The other mission: the two observation notices.
	var peer []*client.Received
	for len(peer) < 2 {
		b, err := se.Client.ReceiveMailbox(ctx, client.FetchOptions{Wait: 10 * time.Second}, func(_ context.Context, r *client.Received) error {
			peer = append(peer, r)
			return nil
		})
		if err != nil || b.Handled == 0 {
			t.Fatalf("se-kampala's mailbox: %d of 2 (%v)", len(peer), err)
		}
	}
	check("se-kampala", peer)
	// Headquarters: the case report, which it can open.
	var got []*client.Received
	if _, err := hq.ReceiveMailbox(ctx, client.FetchOptions{Wait: 10 * time.Second}, func(_ context.Context, r *client.Received) error {
		got = append(got, r)
		return nil
	}); err != nil || len(got) != 1 {
		t.Fatalf("headquarters received %d (%v)", len(got), err)
	}
	if cr, ok := got[0].Message.(*message.CaseReport); !ok || cr.Ref != a.ID || got[0].From != "nl-kampala" {
		t.Fatalf("headquarters got %#v", got[0].Message)
	}
	check("headquarters", got)
	// Nothing the relay stored holds it, in any file.
	filepath.WalkDir(tb.cfg.DataDir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(note[:37])) {
				t.Errorf("relay file %s holds the note", p)
			}
		}
		return nil
	})
	// And the mission keeps it.
	if k, _ := nl.Store.Case(a.ID); len(k.Notes) != 1 || k.Notes[0].Text != note {
		t.Fatalf("notes %+v", k.Notes)
	}
}

// TestTerminalAndConsoleShareTheStore: two offices on one state
// directory (the console and `beacon mission` in another process) see
// each other's changes, and a message kept twice shows once.
func TestTerminalAndConsoleShareTheStore(t *testing.T) {
	tb := newTestbed(t)
	c, console := tb.console("nl-kampala")
	_ = c
	def := tb.defender()
	sent, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: routing.High, Category: message.CategoryThreat, Summary: "Threats"})
	if err != nil {
		t.Fatal(err)
	}
	tb.waitCase(console, sent.ID)
	term := tb.office("nl-kampala") // same state directory: the terminal
	if err := term.Acknowledge(tb.ctx, sent.ID, "jbakker", "Calling you back"); err != nil {
		t.Fatal(err)
	}
	k := tb.waitCaseState(console, sent.ID, StateAcknowledged)
	if k.AckedBy != "jbakker" {
		t.Fatalf("the console sees %+v", k)
	}
	// Keeping the same message again (a redelivery after a crash) files
	// it once, in either process.
	r := &client.Received{ID: sent.ID, Case: sent.ID, Sender: def.Identity(), Message: &message.Alert{Country: "ug", Priority: routing.High, Category: message.CategoryThreat, Summary: "Threats"}}
	r.Header.Country, r.Header.Priority, r.Header.Created = "ug", routing.High, time.Now()
	if err := term.Store.Keep(r); err != nil {
		t.Fatal(err)
	}
	console.Store.Refresh()
	if k, _ := console.Store.Case(sent.ID); len(k.Thread) != 2 || console.Store.Len() != 1 {
		t.Fatalf("after a second keep: %d entries, %d cases", len(k.Thread), console.Store.Len())
	}
}

func (tb *testbed) waitCaseState(o *Office, id routing.ID, st State) *Case {
	tb.t.Helper()
	var k *Case
	tb.waitFor(o, "case "+string(st), func() bool {
		var err error
		k, err = o.Store.Case(id)
		return err == nil && k.State == st
	})
	return k
}

// TestBroadcastAnswer: a defender's answer to a broadcast reaches the
// broadcasting mission alone, as a case threaded to the broadcast.
func TestBroadcastAnswer(t *testing.T) {
	tb := newTestbed(t)
	nl, se := tb.office("nl-kampala"), tb.office("se-kampala")
	def := tb.defender()
	if err := nl.Broadcast(tb.ctx, "avries", &message.Broadcast{Country: "ug", Category: message.BroadcastGrant,
		Title: "Small grants for human rights groups", Text: "Apply by 31 January."}); err != nil {
		t.Fatal(err)
	}
	bs, err := def.News(tb.ctx, "ug")
	if err != nil || len(bs) != 1 || bs[0].ID != nl.Store.Broadcasts()[0].ID {
		t.Fatalf("news: %+v, %v", bs, err)
	}
	s, err := def.AnswerBroadcast(tb.ctx, bs[0], message.AnswerApply, "Our group of lawyers would like to apply.")
	if err != nil || len(s.Missions) != 1 || s.Missions[0] != "nl-kampala" {
		t.Fatalf("answer: %+v, %v", s, err)
	}
	tb.receiveAll(nl, 1)
	k, err := nl.Store.Case(s.ID)
	if err != nil || k.Kind != message.KindBroadcastAnswer || k.Broadcast == nil || k.Broadcast.ID != bs[0].ID || k.Broadcast.Intent != "apply" {
		t.Fatalf("the case: %+v, %v", k, err)
	}
	// The other mission of the country cannot open it.
	b, err := se.Receive(tb.ctx, 5*time.Second)
	if err != nil || b.Handled != 0 || b.Dropped != 1 || se.Store.Len() != 0 {
		t.Fatalf("se-kampala: %+v, %v", b, err)
	}
}
