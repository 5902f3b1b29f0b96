package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/routing"
)

type demoCmd struct {
	Keep bool `help:"Keep the temporary directory (keys, relay data) and print where it is."`
}

// demo shows Beacon doing its job on this machine: headquarters signs a
// directory, a relay starts, a defender in Uganda sends an urgent alert
// and a meeting request, both Ugandan missions read them, the Kenyan one
// reads nothing, and one mission acknowledges and replies.
func (c *demoCmd) Run(e *env) error {
	dir, err := os.MkdirTemp("", "beacon-demo-")
	if err != nil {
		return err
	}
	if c.Keep {
		fmt.Fprintf(e.stdout, "working directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	at := func() string { return fmt.Sprintf("%8.1f ms", float64(time.Since(start).Microseconds())/1000) }
	step := func(format string, args ...any) {
		fmt.Fprintf(e.stdout, "%s  %s\n", at(), fmt.Sprintf(format, args...))
	}
	fail := func(format string, args ...any) error { return fmt.Errorf("demo: "+format, args...) }

	fmt.Fprintln(e.stdout, "Beacon demo: everything runs on this machine, over loopback, with real keys and a real relay.")

	// Headquarters: a root key and a signed directory.
	root, err := keys.GenerateIdentity()
	if err != nil {
		return err
	}
	specs := []struct{ id, name, cc string }{
		{"nl-kampala", "Embassy of the Netherlands, Kampala", "ug"},
		{"se-kampala", "Embassy of Sweden, Kampala", "ug"},
		{"de-nairobi", "Embassy of Germany, Nairobi", "ke"},
	}
	missions := map[string]*keys.Keyring{}
	now := time.Now()
	roster := &keys.Roster{Serial: 1, Issued: now.Add(-time.Minute), Expires: now.Add(24 * time.Hour)}
	for _, s := range specs {
		kr, err := keys.NewKeyring(keys.RoleMission)
		if err != nil {
			return err
		}
		missions[s.id] = kr
		roster.Missions = append(roster.Missions, keys.Mission{ID: s.id, Name: s.name, Countries: []string{s.cc},
			Identity: kr.Identity.Public(), NKey: kr.NKeyPublic(), InboxKeys: []keys.SignedInboxKey{kr.Inboxes[0].Signed},
			Response: keys.ResponseTargets{Urgent: 15 * time.Minute, High: 4 * time.Hour, Routine: 72 * time.Hour}})
	}
	signed, err := keys.SignDirectory(roster, root)
	if err != nil {
		return err
	}
	dirFile := filepath.Join(dir, "directory.yaml")
	if err := os.WriteFile(dirFile, signed, 0o644); err != nil {
		return err
	}
	step("headquarters signed the directory: nl-kampala and se-kampala cover ug, de-nairobi covers ke (root %s)", root.Public().Fingerprint().Short())

	// The relay.
	r, err := startDemoRelay(ctx, dir, "main", dirFile, root.Public().Fingerprint())
	if err != nil {
		return err
	}
	defer r.Shutdown(context.Background())
	step("relay ready at %s (JetStream on disk, fsync on every write)", r.ClientURL())

	open := func(name string, kr *keys.Keyring, withDir bool) (*client.Client, error) {
		cc := client.Config{URLs: []string{r.ClientURL()}, Keyring: kr, Root: root.Public().Fingerprint(),
			StateDir: filepath.Join(dir, name)}
		if withDir {
			cc.Directory = signed
		}
		cl, err := client.Open(cc)
		if err != nil {
			return nil, err
		}
		if err := cl.WaitConnected(ctx); err != nil {
			cl.Close()
			return nil, err
		}
		return cl, nil
	}
	// The defender has only the root fingerprint and fetches the
	// directory from the relay, as "beacon init" does.
	defKR, err := keys.NewKeyring(keys.RoleDefender)
	if err != nil {
		return err
	}
	def, err := open("defender", defKR, false)
	if err != nil {
		return err
	}
	defer def.Close()
	if err := def.RefreshDirectory(ctx); err != nil {
		return fail("fetching the directory: %w", err)
	}
	step("defender connected with a fresh key (a walk-in: no account), fetched and verified the directory")
	mcl := map[string]*client.Client{}
	for _, s := range specs {
		cl, err := open(s.id, missions[s.id], true)
		if err != nil {
			return err
		}
		defer cl.Close()
		mcl[s.id] = cl
	}
	step("the three missions connected")

	// The alert.
	alert := &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryRaid,
		Summary: "Our office is being raided; two colleagues taken", Details: "Plain-clothes police, 06:00, laptops seized.",
		Location: "Kampala Central"}
	t0 := time.Now()
	sent, err := def.SendAlert(ctx, alert)
	if err != nil {
		return fail("sending the alert: %w", err)
	}
	if sent.Queued {
		return fail("the alert was queued: the relay did not take it")
	}
	step("defender sealed an urgent alert to %s and the relay stored it (%s)", strings.Join(sent.Missions, " and "), since(t0))
	meet := &message.MeetingRequest{Country: "ug", Purpose: "Discuss protection for our staff", Place: message.PlaceEmbassy,
		Times: []time.Time{now.Add(48 * time.Hour).Truncate(time.Hour), now.Add(72 * time.Hour).Truncate(time.Hour)}}
	t1 := time.Now()
	msent, err := def.RequestMeeting(ctx, meet)
	if err != nil {
		return fail("sending the meeting request: %w", err)
	}
	step("defender sealed a meeting request and the relay stored it (%s)", since(t1))

	var first *client.Received
	for _, id := range []string{"nl-kampala", "se-kampala"} {
		var got []*client.Received
		for len(got) < 2 {
			rs, err := demoReceive(ctx, mcl[id], client.FetchOptions{Wait: 10 * time.Second})
			if err != nil {
				return fail("%s reading alerts: %w", id, err)
			}
			if len(rs) == 0 {
				return fail("%s received %d of 2 messages", id, len(got))
			}
			got = append(got, rs...)
		}
		a, ok := got[0].Message.(*message.Alert)
		if !ok || got[0].ID != sent.ID || a.Summary != alert.Summary || !got[0].Sender.Equal(def.Identity()) {
			return fail("%s did not decrypt the alert it was sent", id)
		}
		if _, ok := got[1].Message.(*message.MeetingRequest); !ok || got[1].ID != msent.ID {
			return fail("%s did not decrypt the meeting request", id)
		}
		step("%s decrypted and authenticated both: %q (%s after sending)", id, a.Summary, since(t0))
		if first == nil {
			first = got[0]
		}
	}
	if n, err := mcl["de-nairobi"].Pending(ctx, "ke"); err != nil || n != 0 {
		return fail("de-nairobi has %d messages pending (err %v), want none", n, err)
	}
	if rs, err := demoReceive(ctx, mcl["de-nairobi"], client.FetchOptions{}); err != nil || len(rs) != 0 {
		return fail("de-nairobi received %d messages (err %v), want none", len(rs), err)
	}
	step("de-nairobi (covers ke) received nothing")

	t2 := time.Now()
	if _, err := mcl["nl-kampala"].Acknowledge(ctx, first, "Human rights officer, Embassy of the Netherlands", "Calling the police commander now"); err != nil {
		return fail("acknowledging: %w", err)
	}
	if _, err := mcl["nl-kampala"].Reply(ctx, first, "Stay where you are if it is safe. A diplomat is on the way."); err != nil {
		return fail("replying: %w", err)
	}
	step("nl-kampala acknowledged and replied, signed, to the defender's mailbox")
	var inbox []*client.Received
	for len(inbox) < 2 {
		rs, err := def.ReadMailbox(ctx, client.FetchOptions{Wait: 10 * time.Second})
		if err != nil {
			return fail("defender inbox: %w", err)
		}
		if len(rs) == 0 {
			return fail("defender received %d of 2 messages", len(inbox))
		}
		inbox = append(inbox, rs...)
	}
	ack, ok1 := inbox[0].Message.(*message.Ack)
	reply, ok2 := inbox[1].Message.(*message.Reply)
	if !ok1 || !ok2 || inbox[0].From != "nl-kampala" || inbox[0].Case != sent.ID || inbox[1].Case != sent.ID {
		return fail("the defender did not get the ack and the reply for its alert")
	}
	step("defender verified the ack (%q) and the reply (%q) from nl-kampala (%s after acknowledging)", ack.NextStep, reply.Text, since(t2))
	if err := demoConsole(ctx, dir, r.ClientURL(), root.Public().Fingerprint(), dirFile, missions["se-kampala"], def, step); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "ok: the alert and the meeting request reached both missions of ug and no one else; the defender read the ack and the reply; se-kampala answered from its console's encrypted store.")
	if err := demoBridge(ctx, e, dir, step); err != nil {
		return err
	}
	return demoEscalation(ctx, e, dir, step)
}

func since(t time.Time) string {
	return fmt.Sprintf("%.1f ms", float64(time.Since(t).Microseconds())/1000)
}

// demoReceive receives one batch of a mission's alerts. The demo's
// missions keep what they read in memory, for the timeline.
func demoReceive(ctx context.Context, cl *client.Client, o client.FetchOptions) ([]*client.Received, error) {
	var out []*client.Received
	b, err := cl.ReceiveAlerts(ctx, o, func(_ context.Context, r *client.Received) error {
		out = append(out, r)
		return nil
	})
	if err == nil {
		err = b.Err
	}
	return out, err
}

// startDemoRelay starts one of the demo's relays on loopback: its data in
// dir/<name>-relay, the directory dirFile signed by root.
func startDemoRelay(ctx context.Context, dir, name, dirFile string, root keys.Fingerprint) (*relay.Relay, error) {
	cfg := relay.DefaultConfig(filepath.Join(dir, name+"-relay"))
	cfg.ServerName, cfg.Listen, cfg.WebSocket = "beacon-demo-"+name, "127.0.0.1:0", nil
	cfg.Storage.MaxBytes = 64 << 20
	cfg.Directory = &relay.DirectoryConfig{File: dirFile, RootFingerprint: root.String()}
	r, err := relay.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}
