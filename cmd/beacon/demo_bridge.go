package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hrdbeacon/beacon/bridge"
	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/routing"
)

// demoBridge shows a partner government receiving through the bridge:
// the home network (a mission for ug, the partner de-mfa, the bridge) and
// the partner's own network each run a relay; a defender's alert with
// consent to share reaches the partner's relay, the partner's desk
// decrypts and acknowledges it, and the defender verifies the bridge's
// receipt and the partner's ack.
func demoBridge(ctx context.Context, e *env, dir string, step func(string, ...any)) error {
	fail := func(format string, args ...any) error { return fmt.Errorf("demo: bridge: "+format, args...) }
	gen := func(role keys.Role) *keys.Keyring {
		kr, err := keys.NewKeyring(role)
		if err != nil {
			panic(err) // the system's randomness failed
		}
		return kr
	}
	mission, desk, br, own := gen(keys.RoleMission), gen(keys.RolePartner), gen(keys.RoleBridge), gen(keys.RoleMission)
	now := time.Now()
	mk := func(name string, r *keys.Roster) (*relay.Relay, *keys.Identity, []byte, error) {
		root, err := keys.GenerateIdentity()
		if err != nil {
			return nil, nil, nil, err
		}
		r.Serial, r.Issued, r.Expires = 1, now.Add(-time.Minute), now.Add(24*time.Hour)
		signed, err := keys.SignDirectory(r, root)
		if err != nil {
			return nil, nil, nil, err
		}
		file := filepath.Join(dir, name+"-directory.yaml")
		if err := os.WriteFile(file, signed, 0o644); err != nil {
			return nil, nil, nil, err
		}
		rl, err := startDemoRelay(ctx, dir, name, file, root.Public().Fingerprint())
		if err != nil {
			return nil, nil, nil, err
		}
		return rl, root, signed, nil
	}
	entry := func(kr *keys.Keyring) (*keys.PublicIdentity, string, []keys.SignedInboxKey) {
		var in []keys.SignedInboxKey
		for _, e := range kr.Inboxes {
			in = append(in, e.Signed)
		}
		return kr.Identity.Public(), kr.NKeyPublic(), in
	}
	mi, mn, min := entry(mission)
	di, dn, din := entry(desk)
	bi, bn, _ := entry(br)
	oi, on, oin := entry(own)
	targets := keys.ResponseTargets{Urgent: 15 * time.Minute, High: 4 * time.Hour, Routine: 72 * time.Hour}
	home, homeRoot, homeDir, err := mk("home", &keys.Roster{
		Missions: []keys.Mission{{ID: "nl-kampala", Name: "Embassy of the Netherlands, Kampala", Countries: []string{"ug"},
			Identity: mi, NKey: mn, InboxKeys: min, Response: targets}},
		Partners: []keys.Partner{{ID: "de-mfa", Name: "Federal Foreign Office, Germany", Countries: []string{"ug"},
			Identity: di, NKey: dn, InboxKeys: din}},
		Bridges: []keys.Bridge{{ID: "nl-bridge", Name: "Netherlands bridge", Identity: bi, NKey: bn}}})
	if err != nil {
		return err
	}
	defer home.Shutdown(context.Background())
	partner, partnerRoot, partnerDir, err := mk("partner", &keys.Roster{
		Missions: []keys.Mission{{ID: "de-kampala", Name: "Embassy of Germany, Kampala", Countries: []string{"ug"},
			Identity: oi, NKey: on, InboxKeys: oin, Response: targets}},
		Partners: []keys.Partner{{ID: "de-mfa", Name: "Human rights desk", Countries: []string{"ug"},
			Identity: di, NKey: dn, InboxKeys: din}},
		Bridges: []keys.Bridge{{ID: "nl-bridge", Name: "Bridge from the Netherlands' network", Identity: bi, NKey: bn}}})
	if err != nil {
		return err
	}
	defer partner.Shutdown(context.Background())
	step("a partner government, de-mfa, runs its own relay at %s, its directory signed by its own root (%s)",
		partner.ClientURL(), partnerRoot.Public().Fingerprint().Short())

	cfg := &bridge.Config{Home: bridge.HomeConfig{URLs: []string{home.ClientURL()}, KeyFile: "-",
		RootFingerprint: homeRoot.Public().Fingerprint().String()},
		Partners: []bridge.PartnerConfig{{ID: "de-mfa", URLs: []string{partner.ClientURL()}, Priorities: []string{"urgent", "high", "routine"}}},
		Batch:    64, Wait: 10 * time.Second, Timeout: 10 * time.Second,
		Retry:            bridge.RetryConfig{Min: 50 * time.Millisecond, Max: time.Second},
		DirectoryRefresh: time.Hour, Log: bridge.LogConfig{Level: "warn", Format: "text"}}
	b, err := bridge.New(cfg, br)
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		return err
	}
	defer b.Shutdown(context.Background())
	step("the bridge nl-bridge reads what is shared with de-mfa on the home relay and forwards it to de-mfa's relay")

	open := func(name string, kr *keys.Keyring, url string, root *keys.Identity, d []byte) (*client.Client, error) {
		cl, err := client.Open(client.Config{URLs: []string{url}, Keyring: kr, Root: root.Public().Fingerprint(),
			StateDir: filepath.Join(dir, name), Directory: d})
		if err != nil {
			return nil, err
		}
		if err := cl.WaitConnected(ctx); err != nil {
			cl.Close()
			return nil, err
		}
		return cl, nil
	}
	def, err := open("bridge-defender", gen(keys.RoleDefender), home.ClientURL(), homeRoot, homeDir)
	if err != nil {
		return err
	}
	defer def.Close()
	deskCl, err := open("bridge-desk", desk, partner.ClientURL(), partnerRoot, partnerDir)
	if err != nil {
		return err
	}
	defer deskCl.Close()

	alert := &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryDetention,
		Summary: "Our director was taken from the office by unidentified men", Share: true}
	t0 := time.Now()
	sent, err := def.SendAlert(ctx, alert)
	if err != nil || sent.Queued || len(sent.Partners) != 1 {
		return fail("sending the shared alert: %+v, %v", sent, err)
	}
	step("defender sealed an urgent alert to nl-kampala and, with consent to share, a copy to de-mfa; it is waiting to be delivered to de-mfa")

	var got *client.Received
	for got == nil {
		bt, err := deskCl.ReceiveBridged(ctx, client.FetchOptions{Wait: 10 * time.Second}, func(_ context.Context, r *client.Received) error {
			got = r
			return nil
		})
		if err != nil || bt.Err != nil {
			return fail("the partner's desk reading its relay: %v %v", err, bt.Err)
		}
		if bt.Handled+bt.Dropped == 0 {
			return fail("nothing reached the partner's relay")
		}
	}
	a, ok := got.Message.(*message.Alert)
	if !ok || got.ID != sent.ID || a.Summary != alert.Summary {
		return fail("the partner's desk did not decrypt the shared alert")
	}
	step("de-mfa's relay stored it and its desk decrypted it with the partner's keys: %q (%s after sending)", a.Summary, since(t0))

	t1 := time.Now()
	if _, err := deskCl.Acknowledge(ctx, got, "Human rights desk, Federal Foreign Office", "Raising it with the ambassador in Kampala"); err != nil {
		return fail("acknowledging: %w", err)
	}
	var rc *message.Receipt
	var ack *message.Ack
	for rc == nil || ack == nil {
		rs, err := def.ReadMailbox(ctx, client.FetchOptions{Wait: 10 * time.Second})
		if err != nil {
			return fail("defender inbox: %w", err)
		}
		if len(rs) == 0 {
			return fail("the defender received no receipt or ack")
		}
		for _, r := range rs {
			switch m := r.Message.(type) {
			case *message.Receipt:
				rc = m
			case *message.Ack:
				if r.From == "de-mfa" {
					ack = m
				}
			}
		}
	}
	step("defender verified the bridge's signed receipt: stored at partner %s at %s", rc.Partner, rc.StoredAt.Local().Format(time.TimeOnly))
	step("defender verified de-mfa's ack, carried back through the bridge: %q (%s after acknowledging)", ack.NextStep, since(t1))
	ru, err := def.RollUp(sent.ID)
	if err != nil {
		return err
	}
	for _, p := range ru.Parties {
		step("roll-up: %-10s %s", p.ID, p.Status())
	}
	fmt.Fprintln(e.stdout, "ok: a partner government received the shared alert through the bridge; the defender holds its receipt and its ack.")
	return nil
}
