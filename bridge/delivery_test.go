package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/bridge"
	"github.com/hrdbeacon/beacon/bridge/receipt"
	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/client/console"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// receiveBridged reads n messages a partner's console receives from its
// own relay, waiting on the relay's long-polls.
func receiveBridged(t testing.TB, c *client.Client, n int) []*client.Received {
	t.Helper()
	var out []*client.Received
	for len(out) < n {
		b, err := c.ReceiveBridged(testCtx(t), client.FetchOptions{Wait: 10 * time.Second}, func(_ context.Context, r *client.Received) error {
			out = append(out, r)
			return nil
		})
		if err != nil || b.Err != nil {
			t.Fatalf("partner receive: %v %v", err, b.Err)
		}
		if b.Handled+b.Dropped == 0 {
			t.Fatalf("partner received %d of %d", len(out), n)
		}
	}
	return out
}

// readMailbox reads a client's mailbox until it has received n messages.
func readMailbox(t testing.TB, c *client.Client, n int) []*client.Received {
	t.Helper()
	var out []*client.Received
	for len(out) < n {
		rs, err := c.ReadMailbox(testCtx(t), client.FetchOptions{Wait: 10 * time.Second})
		if err != nil {
			t.Fatalf("mailbox: %v", err)
		}
		if len(rs) == 0 {
			t.Fatalf("mailbox: %d of %d messages", len(out), n)
		}
		out = append(out, rs...)
	}
	return out
}

// TestConsentedAlertReachesTwoPartners: an urgent alert a defender
// consented to share reaches both partner governments' relays, over
// NATS and over WebSocket; each partner's console decrypts it; both
// receipts come back to the defender, whose inbox says so — and said the
// alert was waiting to be delivered until they came.
func TestConsentedAlertReachesTwoPartners(t *testing.T) {
	for _, transport := range []string{"nats", "websocket"} {
		t.Run(transport, func(t *testing.T) {
			w := newWorld(t, "de-mfa", "fr-mfa")
			w.startBridge(t, w.bridgeConfig(t, transport == "websocket"))
			defKR := keyring(t, keys.RoleDefender)
			def := openClient(t, w.home, defKR)
			alert := ugAlert("Taken at the border crossing", true)
			sent, err := def.SendAlert(testCtx(t), alert)
			if err != nil || sent.Queued {
				t.Fatalf("SendAlert: %+v, %v", sent, err)
			}
			if !slices.Equal(sent.Partners, []string{"de-mfa", "fr-mfa"}) {
				t.Fatalf("sealed to partners %v, want de-mfa and fr-mfa", sent.Partners)
			}

			// Before any receipt the defender is told the partners do not
			// have it yet.
			ru, err := def.RollUp(sent.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ru.Parties {
				if p.Role == keys.RolePartner && (p.Status() != "waiting to be delivered" || !p.Received.IsZero()) {
					t.Errorf("before any receipt, %s: %q", p.ID, p.Status())
				}
			}

			for _, id := range w.ids {
				pc := openClient(t, w.partners[id], w.keys[id])
				got := receiveBridged(t, pc, 1)
				a, ok := got[0].Message.(*message.Alert)
				if got[0].ID != sent.ID || !ok || a.Summary != alert.Summary || !got[0].Sender.Equal(defKR.Identity.Public()) {
					t.Fatalf("%s received %+v, want the defender's alert", id, got[0])
				}
				if got[0].Bridge != partnerBridgeID {
					t.Errorf("%s: delivered by %q, want %q", id, got[0].Bridge, partnerBridgeID)
				}
			}

			rs := readMailbox(t, def, 2)
			var from []string
			for _, r := range rs {
				rc, ok := r.Message.(*message.Receipt)
				if !ok || r.From != homeBridgeID || rc.Ref != sent.ID || r.Case != sent.ID {
					t.Fatalf("mailbox: %+v, want a receipt from the bridge for the alert", r)
				}
				from = append(from, rc.Partner)
			}
			slices.Sort(from)
			if !slices.Equal(from, []string{"de-mfa", "fr-mfa"}) {
				t.Errorf("receipts from %v, want de-mfa and fr-mfa", from)
			}
			ru, err = def.RollUp(sent.ID)
			if err != nil {
				t.Fatal(err)
			}
			received := 0
			for _, p := range ru.Parties {
				if p.Role == keys.RolePartner {
					if p.Received.IsZero() {
						t.Errorf("after its receipt, %s: %q", p.ID, p.Status())
					}
					received++
				}
			}
			if received != 2 {
				t.Errorf("roll-up lists %d partners, want 2: %+v", received, ru.Parties)
			}
			cases, err := def.Cases()
			if err != nil {
				t.Fatal(err)
			}
			if len(cases) != 1 || len(cases[0].Thread) != 3 {
				t.Fatalf("cases: %+v, want one case with the alert and two receipts", cases)
			}
		})
	}
}

// TestWithoutConsentOrOutOfScopeNeverLeaves: an alert without consent is
// never in SHARED; one for a country no partner covers, or of a priority
// the bridge does not forward, is settled and never reaches a partner.
// What is in scope, sent after them, does: the bridge has passed them.
func TestWithoutConsentOrOutOfScopeNeverLeaves(t *testing.T) {
	w := newWorld(t, "de-mfa")
	cfg := w.bridgeConfig(t, false)
	cfg.Partners[0].Priorities = []string{"urgent"}
	w.startBridge(t, cfg)
	def := openClient(t, w.home, keyring(t, keys.RoleDefender))

	// No consent: sealed to the missions only.
	s1, err := def.SendAlert(testCtx(t), ugAlert("no consent", false))
	if err != nil || len(s1.Partners) != 0 {
		t.Fatalf("no consent: %+v, %v", s1, err)
	}
	if n := streamMsgs(t, w.home.relay, proto.StreamShared); n != 0 {
		t.Fatalf("SHARED holds %d envelopes after an alert without consent", n)
	}
	// Out of scope: a ke alert (the partner covers ug; the envelope
	// would not even open there) and a routine ug one.
	w.publishShares(t, w.sealShares(t, 1, "ke", routing.Urgent), "ke", routing.Urgent)
	w.publishShares(t, w.sealShares(t, 1, "ug", routing.Routine), "ug", routing.Routine)
	in := w.sealShares(t, 1, "ug", routing.Urgent)
	w.publishShares(t, in, "ug", routing.Urgent)

	pc := w.partnerConn(t, "de-mfa")
	assertOnce(t, w.readBridged(t, pc, 1), in)
	if n := streamMsgs(t, w.partners["de-mfa"].relay, proto.StreamBridged); n != 1 {
		t.Errorf("the partner's relay holds %d envelopes, want only the one in scope", n)
	}
}

// TestPartnerDownDuringBurst: while one partner's relay is down, a burst
// of 1,000 shared alerts reaches the other in full; once the first is
// back, it gets every one of them, exactly once.
func TestPartnerDownDuringBurst(t *testing.T) {
	const n = 1000
	w := newWorld(t, "de-mfa", "fr-mfa")
	fr := w.partners["fr-mfa"]
	// fr-mfa's relay comes back on the same address and data directory.
	fr.stop(t)
	frCfg := relaytest.Config(t)
	frCfg.DataDir = fr.cfg.DataDir
	frCfg.Listen = fmt.Sprintf("127.0.0.1:%d", fixedPort(t))
	fr.start(t, frCfg)
	w.startBridge(t, w.bridgeConfig(t, false))
	fr.stop(t)

	envs := w.sealShares(t, n, "ug", routing.Urgent)
	w.publishShares(t, envs, "ug", routing.Urgent)
	// de-mfa receives the whole burst while fr-mfa is down.
	assertOnce(t, w.readBridged(t, w.partnerConn(t, "de-mfa"), n), envs)

	fr.start(t, frCfg)
	assertOnce(t, w.readBridged(t, w.partnerConn(t, "fr-mfa"), n), envs)
	if got := streamMsgs(t, fr.relay, proto.StreamBridged); got != n {
		t.Errorf("fr-mfa's relay holds %d envelopes, want %d", got, n)
	}
}

// TestPartnerAcknowledges: a partner's console acknowledges what the
// bridge delivered; the ack goes back through the bridge to the
// defender's mailbox and the ack token to the home relay, so that the
// defender's roll-up and a mission's both show the partner received it
// and acts.
func TestPartnerAcknowledges(t *testing.T) {
	w := newWorld(t, "de-mfa")
	returned := make(chan int, 64)
	w.startBridge(t, w.bridgeConfig(t, false), bridge.WithEvents(func(e bridge.Event) {
		if e.Returned > 0 {
			returned <- e.Returned
		}
	}))
	def := openClient(t, w.home, keyring(t, keys.RoleDefender))
	sent, err := def.SendAlert(testCtx(t), ugAlert("Detained after the march", true))
	if err != nil {
		t.Fatal(err)
	}
	pc := openClient(t, w.partners["de-mfa"], w.keys["de-mfa"])
	got := receiveBridged(t, pc, 1)
	const acts = "Human rights desk, Foreign Ministry"
	if _, err := pc.Acknowledge(testCtx(t), got[0], acts, "Raising it with the ambassador today"); err != nil {
		t.Fatal(err)
	}

	var ack *client.Received
	for _, r := range readMailbox(t, def, 2) {
		if _, ok := r.Message.(*message.Ack); ok {
			ack = r
		}
	}
	if ack == nil || ack.From != "de-mfa" || ack.Case != sent.ID {
		t.Fatalf("the defender's mailbox holds no ack from de-mfa for the alert (ack %+v)", ack)
	}
	ru, err := def.RollUp(sent.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := party(t, ru, "de-mfa")
	if p.Received.IsZero() || p.Acknowledged.IsZero() || p.Acts != acts {
		t.Errorf("defender's roll-up: de-mfa %+v, want received, acknowledged, acts %q", p, acts)
	}
	if acting := ru.Acting(); len(acting) != 1 || acting[0].ID != "de-mfa" {
		t.Errorf("acting: %+v, want de-mfa", acting)
	}
	// The partner's ack token comes back beside its ack, not
	// necessarily in the same round.
	for n := 0; n < 2; {
		n += <-returned
	}

	// A mission of the country sees the same from the signed statements
	// the home relay holds, with its own ack beside the partner's.
	m := openClient(t, w.home, w.keys["nl-kampala"])
	var alert *client.Received
	if _, err := m.ReceiveAlerts(testCtx(t), client.FetchOptions{Wait: 10 * time.Second}, func(_ context.Context, r *client.Received) error {
		alert = r
		return nil
	}); err != nil || alert == nil {
		t.Fatalf("mission receive: %v", err)
	}
	if _, err := m.Acknowledge(testCtx(t), alert, "Political officer", ""); err != nil {
		t.Fatal(err)
	}
	// Acknowledge does not wait for the relay to store its token; an
	// equal one published and answered is stored once the reply comes
	// (one token per alert and signer: the first stays).
	mc := relaytest.Connect(t, w.home.url(), w.keys["nl-kampala"].NKey)
	if _, err := mc.Publish(proto.AckTarget(alert.Case), envelope.SignAck(alert.Case, w.keys["nl-kampala"].Identity, time.Now())); err != nil {
		t.Fatal(err)
	}
	mru, err := m.FetchRollUp(testCtx(t), alert.Case, alert.Header.Country, alert.Header.Created)
	if err != nil {
		t.Fatal(err)
	}
	if p := party(t, mru, "de-mfa"); p.Received.IsZero() || p.Acknowledged.IsZero() {
		t.Errorf("mission's roll-up: de-mfa %+v, want received and acknowledged", p)
	}
	if p := party(t, mru, "nl-kampala"); p.Acknowledged.IsZero() {
		t.Errorf("mission's roll-up: nl-kampala %+v, want acknowledged", p)
	}
	if p := party(t, mru, "se-kampala"); !p.Acknowledged.IsZero() || p.Status() != "received, not acknowledged yet" {
		t.Errorf("mission's roll-up: se-kampala %q", p.Status())
	}
}

func party(t testing.TB, ru *client.RollUp, id string) client.Party {
	t.Helper()
	for _, p := range ru.Parties {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("no party %s in the roll-up: %+v", id, ru.Parties)
	return client.Party{}
}

// TestMissionReshare: a mission re-shares a defender's alert with the
// partners — re-sealed and signed by the mission — only where the
// defender consented; it travels the same way, and its receipt comes to
// the mission's mailbox.
func TestMissionReshare(t *testing.T) {
	w := newWorld(t, "de-mfa")
	w.startBridge(t, w.bridgeConfig(t, false))
	def := openClient(t, w.home, keyring(t, keys.RoleDefender))
	m := openClient(t, w.home, w.keys["nl-kampala"])
	if _, err := def.SendAlert(testCtx(t), ugAlert("without consent", false)); err != nil {
		t.Fatal(err)
	}
	if _, err := def.SendAlert(testCtx(t), ugAlert("with consent", true)); err != nil {
		t.Fatal(err)
	}
	var got []*client.Received
	for len(got) < 2 {
		if _, err := m.ReceiveAlerts(testCtx(t), client.FetchOptions{Wait: 10 * time.Second}, func(_ context.Context, r *client.Received) error {
			got = append(got, r)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	share := func(r *client.Received) (*client.Sent, error) {
		s, err := message.ShareFrom(r.ID, r.Message.(*message.Alert), "nl-kampala", "We are following this closely.")
		if err != nil {
			return nil, err
		}
		return m.ShareAlert(testCtx(t), s)
	}
	if _, err := share(got[0]); !errors.Is(err, message.ErrNoConsent) {
		t.Fatalf("re-sharing an alert without consent: %v, want ErrNoConsent", err)
	}
	// The defender's consented alert is already in SHARED once.
	if n := streamMsgs(t, w.home.relay, proto.StreamShared); n != 1 {
		t.Fatalf("SHARED holds %d envelopes, want the defender's one", n)
	}
	s, err := share(got[1])
	if err != nil || s.Queued || !slices.Equal(s.Partners, []string{"de-mfa"}) || s.ID == got[1].ID {
		t.Fatalf("re-share: %+v, %v", s, err)
	}
	pc := openClient(t, w.partners["de-mfa"], w.keys["de-mfa"])
	var reshare *client.Received
	for _, r := range receiveBridged(t, pc, 2) {
		if r.ID == s.ID {
			reshare = r
		}
	}
	if reshare == nil || reshare.Auth != envelope.Signed || !reshare.Sender.Equal(w.keys["nl-kampala"].Identity.Public()) {
		t.Fatalf("the partner did not receive the mission's signed re-share: %+v", reshare)
	}
	if sa, ok := reshare.Message.(*message.SharedAlert); !ok || sa.Ref != got[1].ID || reshare.Case != got[1].ID || sa.Summary != "with consent" {
		t.Errorf("the re-share: %+v, want the mission's re-share of the defender's alert", reshare.Message)
	}
	rs := readMailbox(t, m, 1)
	if rc, ok := rs[0].Message.(*message.Receipt); !ok || rc.Ref != s.ID || rc.Partner != "de-mfa" {
		t.Errorf("the mission's mailbox: %+v, want de-mfa's receipt for the re-share", rs[0])
	}
}

// TestReceiptShownOnce: a receipt the bridge sends twice (it may, after
// a crash) is kept once in the defender's case.
func TestReceiptShownOnce(t *testing.T) {
	w := newWorld(t, "de-mfa")
	def := openClient(t, w.home, keyring(t, keys.RoleDefender))
	sent, err := def.SendAlert(testCtx(t), ugAlert("twice", true))
	if err != nil {
		t.Fatal(err)
	}
	br := w.bridgeConn(t)
	for range 2 {
		rc, err := receipt.Sign(sent.ID, "ug", "de-mfa", time.Now(), w.keys["bridge"].Identity)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := br.Publish(proto.MailboxTarget(def.Mailbox()), rc); err != nil {
			t.Fatal(err)
		}
	}
	var handled, dropped int
	for handled+dropped < 2 {
		b, err := def.ReceiveMailbox(testCtx(t), client.FetchOptions{Wait: 10 * time.Second}, func(_ context.Context, r *client.Received) error {
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		handled, dropped = handled+b.Handled, dropped+b.Dropped
	}
	if handled != 1 || dropped != 1 {
		t.Errorf("handled %d and dropped %d receipts, want one of each", handled, dropped)
	}
}

// TestPartnerConsole: the partner's side is the same binary — its
// console, with the partner's keys, reads on its own relay what the
// bridge delivered, and an officer's ack there reaches the defender
// (through the bridge) and the home relay's roll-up.
func TestPartnerConsole(t *testing.T) {
	w := newWorld(t, "de-mfa")
	returned := make(chan int, 64)
	w.startBridge(t, w.bridgeConfig(t, false), bridge.WithEvents(func(e bridge.Event) {
		if e.Returned > 0 {
			returned <- e.Returned
		}
	}))
	def := openClient(t, w.home, keyring(t, keys.RoleDefender))
	sent, err := def.SendAlert(testCtx(t), ugAlert("Detained at the border", true))
	if err != nil {
		t.Fatal(err)
	}
	pn := w.partners["de-mfa"]
	o, err := console.Open(&console.Config{Mission: "de-mfa", Key: "unused", StateDir: t.TempDir(), Relays: []string{pn.url()},
		RootFingerprint: pn.root.Public().Fingerprint().String(), Directory: pn.file, Listen: "127.0.0.1:0",
		Officers: []console.Officer{{ID: "kmeyer", Name: "K. Meyer", Liaison: "Human rights desk, Federal Foreign Office"}}},
		w.keys["de-mfa"], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.Client.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for o.Store.Len() < 1 {
		if _, err := o.Receive(testCtx(t), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	k, err := o.Store.Case(sent.ID)
	if err != nil || k.Title != "Detained at the border" {
		t.Fatalf("the partner's console: %+v, %v", k, err)
	}
	if err := o.Acknowledge(testCtx(t), sent.ID, "kmeyer", "Raising it with our embassy"); err != nil {
		t.Fatal(err)
	}
	var ack *client.Received
	for ack == nil {
		for _, r := range readMailbox(t, def, 1) {
			if _, ok := r.Message.(*message.Ack); ok {
				ack = r
			}
		}
	}
	if ack.From != "de-mfa" || ack.Case != sent.ID {
		t.Fatalf("the defender's ack: from %q for %s", ack.From, ack.Case)
	}
	ru, err := def.RollUp(sent.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p := party(t, ru, "de-mfa"); p.Acts != "Human rights desk, Federal Foreign Office" {
		t.Errorf("the defender's roll-up: %+v", p)
	}
	// The token went back through the bridge too, in the same round as
	// the ack or an earlier one: once both are carried, a mission's
	// roll-up has it.
	for n := 0; n < 2; {
		n += <-returned
	}
	m := openClient(t, w.home, w.keys["nl-kampala"])
	mru, err := m.FetchRollUp(testCtx(t), sent.ID, "ug", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if party(t, mru, "de-mfa").Acknowledged.IsZero() {
		t.Errorf("the mission's roll-up: de-mfa has not acknowledged")
	}
}
