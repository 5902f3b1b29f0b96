package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/routing"
)

// world is a relay with a directory of two missions for Uganda and one for
// Kenya.
type world struct {
	*relaytest.World
	relay *relay.Relay
	cfg   *relay.Config
	// ahead, if set, is the directory parties are given instead of the
	// relay's: the same roster under the next serial (see
	// newRestartableWorld).
	ahead []byte
	// gate and wsGate, if set, are the fixed addresses clients reach the
	// relay's client and WebSocket ports through (see newRestartableWorld).
	gate, wsGate *gate
}

func newWorld(t *testing.T) *world { return newWorldWith(t, nil) }

// newWorldWith is newWorld with the relay's config adjusted by tweak.
func newWorldWith(t *testing.T, tweak func(*relay.Config)) *world {
	t.Helper()
	w := relaytest.NewWorld(t,
		relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "se-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "de-nairobi", Countries: []string{"ke"}})
	cfg := relaytest.Config(t)
	w.Configure(cfg)
	if tweak != nil {
		tweak(cfg)
	}
	return &world{World: w, relay: relaytest.Start(t, cfg), cfg: cfg}
}

// open opens a client for keyring kr against the world's relay.
func (w *world) open(t *testing.T, kr *keys.Keyring) *client.Client {
	t.Helper()
	c, err := client.Open(client.Config{URLs: []string{w.relay.ClientURL()}, Keyring: kr,
		Root: w.Root.Public().Fingerprint(), StateDir: t.TempDir(), Directory: w.Dir.Raw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestAlertReachesMissionsOfItsCountry(t *testing.T) {
	w := newWorld(t)
	defKR, _ := keys.NewKeyring(keys.RoleDefender)
	def := w.open(t, defKR)
	nl := w.open(t, w.Keyrings["nl-kampala"])
	se := w.open(t, w.Keyrings["se-kampala"])
	de := w.open(t, w.Keyrings["de-nairobi"])

	a := &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryRaid,
		Summary: "Office raided, two colleagues taken", Details: "At 06:00 by plain-clothes police."}
	sent, err := def.SendAlert(ctx(t), a)
	if err != nil {
		t.Fatal(err)
	}
	if sent.Queued || len(sent.Missions) != 2 {
		t.Fatalf("sent = %+v, want delivered to 2 missions", sent)
	}
	for _, m := range []*client.Client{nl, se} {
		got, err := receiveAlerts(m, ctx(t), client.FetchOptions{Wait: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != sent.ID {
			t.Fatalf("mission got %d messages, want the alert", len(got))
		}
		ga := got[0].Message.(*message.Alert)
		if *ga != *a || !got[0].Sender.Equal(def.Identity()) || got[0].From != "" {
			t.Fatalf("mission decrypted %+v from %q", ga, got[0].From)
		}
	}
	if n, err := de.Pending(ctx(t), "ke"); err != nil || n != 0 {
		t.Fatalf("Kenya's mission has %d pending (err %v), want 0", n, err)
	}
	got, err := receiveAlerts(de, ctx(t), client.FetchOptions{})
	if err != nil || len(got) != 0 {
		t.Fatalf("Kenya's mission got %d messages (err %v)", len(got), err)
	}

	// Read again: nothing new.
	if rs, _ := receiveAlerts(nl, ctx(t), client.FetchOptions{}); len(rs) != 0 {
		t.Fatalf("alert delivered twice: %d", len(rs))
	}
}

func TestAckAndReplyReachTheDefender(t *testing.T) {
	w := newWorld(t)
	defKR, _ := keys.NewKeyring(keys.RoleDefender)
	def := w.open(t, defKR)
	nl := w.open(t, w.Keyrings["nl-kampala"])
	sent, err := def.SendAlert(ctx(t), &message.Alert{Country: "ug", Priority: routing.Urgent,
		Category: message.CategoryDetention, Summary: "Detained at the airport"})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := receiveAlerts(nl, ctx(t), client.FetchOptions{Wait: 5 * time.Second})
	if err != nil || len(rs) != 1 {
		t.Fatalf("mission got %d (err %v)", len(rs), err)
	}
	if _, err := nl.Acknowledge(ctx(t), rs[0], "Human rights officer", "Calling the station commander"); err != nil {
		t.Fatal(err)
	}
	if _, err := nl.Reply(ctx(t), rs[0], "Stay where you are; a diplomat is on the way."); err != nil {
		t.Fatal(err)
	}
	var got []*client.Received
	for len(got) < 2 {
		rs, err := def.ReadMailbox(ctx(t), client.FetchOptions{Wait: 5 * time.Second})
		if err != nil || len(rs) == 0 {
			t.Fatalf("inbox: %d (err %v)", len(rs), err)
		}
		got = append(got, rs...)
	}
	ack, ok := got[0].Message.(*message.Ack)
	if !ok || ack.By != "Human rights officer" || got[0].From != "nl-kampala" || got[0].Case != sent.ID {
		t.Fatalf("first inbox message = %+v from %q", got[0].Message, got[0].From)
	}
	reply, ok := got[1].Message.(*message.Reply)
	if !ok || reply.Text != "Stay where you are; a diplomat is on the way." || got[1].Case != sent.ID {
		t.Fatalf("second inbox message = %+v", got[1].Message)
	}
	cases, err := def.Cases()
	if err != nil || len(cases) != 1 || len(cases[0].Thread) != 3 {
		t.Fatalf("cases = %+v (err %v)", cases, err)
	}
}
