package client_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// TestInboxDropsWhatNoInstitutionSigned: only institutions in the
// directory, signing, may write to a defender. Any mission may publish to
// any mailbox, so a mission's connection can carry an envelope signed by a
// stranger, or one it authenticated deniably (which proves nothing to
// anyone); both are dropped, and a genuine signed reply behind them is
// shown.
func TestInboxDropsWhatNoInstitutionSigned(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	def := w.open(t, newDefender(t))
	sent, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport"))
	if err != nil {
		t.Fatal(err)
	}
	nlKR := w.Keyrings["nl-kampala"]
	stranger, err := keys.NewKeyring(keys.RoleMission)
	if err != nil {
		t.Fatal(err)
	}
	reply := func(text string) []byte {
		b, err := message.Marshal(&message.Reply{Ref: routing.ID(sent.ID), Text: text})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seal := func(from *keys.Identity, auth envelope.Auth, text string) (routing.ID, []byte) {
		h := envelope.NewHeader("ug", routing.Urgent)
		env, err := envelope.Seal(h, reply(text), from, auth, envelope.To(def.Identity()))
		if err != nil {
			t.Fatal(err)
		}
		return h.ID, env
	}
	_, forged := seal(stranger.Identity, envelope.Signed, "Come to the back gate alone")
	_, deniable := seal(nlKR.Identity, envelope.Deniable, "Come to the side gate alone")
	genuineID, genuine := seal(nlKR.Identity, envelope.Signed, "A diplomat is on the way")

	conn := relaytest.Connect(t, w.relay.ClientURL(), nlKR.NKey)
	for _, env := range [][]byte{forged, deniable, genuine} {
		if _, err := conn.Publish(proto.MailboxTarget(def.Mailbox()), env); err != nil {
			t.Fatalf("publishing to the mailbox: %v", err)
		}
	}
	got := readInbox(t, def, 1)
	if got[0].ID != genuineID || got[0].From != "nl-kampala" || got[0].FromRole != keys.RoleMission ||
		got[0].Auth != envelope.Signed || got[0].Message.(*message.Reply).Text != "A diplomat is on the way" {
		t.Fatalf("inbox shows %+v from %q, want only the genuine reply", got[0].Message, got[0].From)
	}
	if rs, err := def.ReadMailbox(ctx(t), client.FetchOptions{}); err != nil || len(rs) != 0 {
		t.Fatalf("inbox shows %d more (err %v)", len(rs), err)
	}
	cs, err := def.Cases()
	if err != nil || len(cs) != 1 || len(cs[0].Thread) != 2 {
		t.Fatalf("cases = %+v (err %v), want the alert and the genuine reply", cs, err)
	}
}

func TestUpdateAndCancelReachTheSameMissions(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	def := w.open(t, newDefender(t))
	nl := w.open(t, w.Keyrings["nl-kampala"])
	se := w.open(t, w.Keyrings["se-kampala"])
	de := w.open(t, w.Keyrings["de-nairobi"])

	sent, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport"))
	if err != nil {
		t.Fatal(err)
	}
	up, err := def.SendUpdate(ctx(t), sent.ID, "Moved to Central Police Station")
	if err != nil {
		t.Fatal(err)
	}
	cn, err := def.Cancel(ctx(t), sent.ID, message.CancelSafe, "Released without charge")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*client.Sent{up, cn} {
		if s.Queued || !slices.Equal(s.Missions, sent.Missions) || s.ID == sent.ID {
			t.Fatalf("follow-up sent = %+v, want delivered to %v under its own id", s, sent.Missions)
		}
	}
	ref := routing.ID(sent.ID)
	for _, m := range []*client.Client{nl, se} {
		got := readAlerts(t, m, 3)
		u, ok1 := got[1].Message.(*message.Update)
		c, ok2 := got[2].Message.(*message.Cancel)
		switch {
		case got[0].ID != sent.ID || got[1].ID != up.ID || got[2].ID != cn.ID:
			t.Fatalf("ids %s %s %s, want %s %s %s", got[0].ID, got[1].ID, got[2].ID, sent.ID, up.ID, cn.ID)
		case !ok1 || u.Ref != ref || u.Text != "Moved to Central Police Station" || got[1].Case != sent.ID:
			t.Fatalf("update = %+v in case %s", got[1].Message, got[1].Case)
		case !ok2 || c.Ref != ref || c.Reason != message.CancelSafe || got[2].Case != sent.ID:
			t.Fatalf("cancel = %+v in case %s", got[2].Message, got[2].Case)
		case !got[1].Sender.Equal(def.Identity()) || !got[2].Sender.Equal(def.Identity()):
			t.Fatal("follow-ups not authenticated as the defender")
		}
	}
	if n := pending(t, de, "ke"); n != 0 {
		t.Fatalf("Kenya's mission has %d pending", n)
	}

	unknown := routing.NewID()
	if _, err := def.SendUpdate(ctx(t), unknown, "More facts"); err == nil {
		t.Fatal("SendUpdate for an unknown case succeeded")
	}
	if _, err := def.Cancel(ctx(t), unknown, message.CancelFalseAlarm, ""); err == nil {
		t.Fatal("Cancel for an unknown case succeeded")
	}
	if n := outboxLen(t, def); n != 0 {
		t.Fatalf("outbox holds %d", n)
	}
	cs, err := def.Cases()
	if err != nil || len(cs) != 1 || len(cs[0].Thread) != 3 {
		t.Fatalf("cases = %+v (err %v), want one case of three entries", cs, err)
	}
	if rs, err := receiveAlerts(nl, ctx(t), client.FetchOptions{}); err != nil || len(rs) != 0 {
		t.Fatalf("mission got %d more (err %v)", len(rs), err)
	}
}

func TestSharedAlertIsSealedToThePartnerOnly(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	def := w.open(t, newDefender(t))

	// Without consent nothing goes to the bridge.
	private, err := def.SendAlert(ctx(t), ugAlert("Followed home"))
	if err != nil {
		t.Fatal(err)
	}
	if len(private.Partners) != 0 {
		t.Fatalf("unshared alert sealed to partners %v", private.Partners)
	}
	if n := w.stored(t, proto.StreamShared); n != 0 {
		t.Fatalf("SHARED holds %d after an alert without consent", n)
	}

	a := ugAlert("Office raided")
	a.Share = true
	sent, err := def.SendAlert(ctx(t), a)
	if err != nil {
		t.Fatal(err)
	}
	if sent.Queued || !slices.Equal(sent.Partners, []string{"partner"}) || len(sent.Missions) != 2 {
		t.Fatalf("sent = %+v, want delivered, to two missions and the partner", sent)
	}
	if n := w.stored(t, proto.StreamShared); n != 1 {
		t.Fatalf("SHARED holds %d, want the one shared alert", n)
	}
	// The missions get their own copy, in ALERTS.
	nl := w.open(t, w.Keyrings["nl-kampala"])
	rs := readAlerts(t, nl, 2)
	if rs[1].ID != sent.ID || !rs[1].Message.(*message.Alert).Share {
		t.Fatalf("mission got %s, want the shared alert", rs[1].ID)
	}

	// What the bridge would forward, read from the relay's storage.
	nl.Close()
	def.Close()
	w.stop(t)
	msgs := w.storedMessages(t, proto.StreamShared)
	if len(msgs) != 1 || msgs[0].subject != "bcn.share.ug.urgent" {
		t.Fatalf("SHARED holds %d messages (%+v), want one under bcn.share.ug.urgent", len(msgs), msgs)
	}
	env := msgs[0].data
	pk := w.Keyrings["partner"]
	o, err := envelope.Open(env, pk.Identity, pk.InboxKeys()...)
	if err != nil {
		t.Fatalf("partner cannot open the shared alert: %v", err)
	}
	got, err := message.Unmarshal(o.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ga, ok := got.(*message.Alert); !ok || *ga != *a || o.Header.ID != sent.ID || !o.Sender.Equal(def.Identity()) {
		t.Fatalf("partner opened %+v (id %s)", got, o.Header.ID)
	}
	for _, id := range []string{"nl-kampala", "se-kampala", "de-nairobi"} {
		kr := w.Keyrings[id]
		if _, err := envelope.Open(env, kr.Identity, kr.InboxKeys()...); !errors.Is(err, envelope.ErrNotForMe) {
			t.Errorf("mission %s opening the partner's copy: %v, want envelope.ErrNotForMe", id, err)
		}
	}
}

func TestNewsShowsVerifiedBroadcasts(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	def := w.open(t, newDefender(t))
	nl := w.open(t, w.Keyrings["nl-kampala"])
	de := w.open(t, w.Keyrings["de-nairobi"])
	ug := &message.Broadcast{Country: "ug", Category: message.BroadcastTraining, Title: "Digital security training",
		Text: "Apply by the end of the month."}
	ke := &message.Broadcast{Country: "ke", Category: message.BroadcastGrant, Title: "Small grants",
		Text: "For human rights organisations."}
	if err := nl.Broadcast(ctx(t), ug); err != nil {
		t.Fatal(err)
	}
	if err := de.Broadcast(ctx(t), ke); err != nil {
		t.Fatal(err)
	}
	// A mission cannot broadcast for a country it does not cover.
	other := *ke
	other.Title = "Not ours to announce"
	if err := nl.Broadcast(ctx(t), &other); err == nil {
		t.Fatal("nl-kampala broadcast for Kenya")
	}

	got, err := def.News(ctx(t), "ug")
	if err != nil || len(got) != 1 {
		t.Fatalf("News(ug) = %d bulletins (err %v), want 1", len(got), err)
	}
	if b := got[0]; b.Mission != "nl-kampala" || b.Country != "ug" || *b.Broadcast != *ug {
		t.Fatalf("News(ug) = %+v", b)
	}
	all, err := def.News(ctx(t), "")
	if err != nil || len(all) != 2 {
		t.Fatalf("News() = %d bulletins (err %v), want 2", len(all), err)
	}
	if b := all[1]; b.Mission != "de-nairobi" || b.Country != "ke" || *b.Broadcast != *ke {
		t.Fatalf("News()[1] = %+v, want Kenya's", b)
	}
	if got, err := def.News(ctx(t), "ug"); err != nil || len(got) != 1 || got[0].Country != "ug" {
		t.Fatalf("News(ug) after News() = %d (err %v)", len(got), err)
	}
}

// TestWebSocketClient: a defender that can only reach the relay over
// WebSocket sends, reads its inbox, and reconnects by itself after the
// relay restarts, delivering what it queued meanwhile.
func TestWebSocketClient(t *testing.T) {
	t.Parallel()
	w := newRestartableWorld(t)
	def := w.openParty(t, newDefender(t), "", w.wsURL())
	nl := w.openParty(t, w.Keyrings["nl-kampala"], "")
	def.waitReady(t)
	nl.waitReady(t)

	sent, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport"))
	if err != nil || sent.Queued {
		t.Fatalf("SendAlert over WebSocket = %+v, %v", sent, err)
	}
	rs := readAlerts(t, nl.Client, 1)
	if _, err := nl.Acknowledge(ctx(t), rs[0], "Consul", "Visiting the station"); err != nil {
		t.Fatal(err)
	}
	if got := readInbox(t, def.Client, 1); got[0].Message.(*message.Ack).By != "Consul" {
		t.Fatalf("inbox over WebSocket = %+v", got[0].Message)
	}

	w.stop(t)
	def.waitDisconnected(t)
	nl.waitDisconnected(t)
	queued, err := def.SendAlert(ctx(t), ugAlert("Moved to another station"))
	if err != nil || !queued.Queued {
		t.Fatalf("SendAlert with the relay down = %+v, %v; want queued", queued, err)
	}
	w.restart(t)
	def.waitReady(t)
	nl.waitReady(t)
	rs = readAlerts(t, nl.Client, 1)
	if rs[0].ID != queued.ID {
		t.Fatalf("mission got %s, want %s", rs[0].ID, queued.ID)
	}
	if _, err := nl.Reply(ctx(t), rs[0], "We know; a diplomat is going there."); err != nil {
		t.Fatal(err)
	}
	if got := readInbox(t, def.Client, 1); got[0].Case != queued.ID {
		t.Fatalf("reply after reconnecting is in case %s, want %s", got[0].Case, queued.ID)
	}
	awaitOutboxDrained(t, def)
}
