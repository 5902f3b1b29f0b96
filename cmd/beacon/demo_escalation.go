package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// demoEscalationTarget is the demo's response target for urgent alerts:
// seconds, so the demo shows an escalation fire and still ends quickly.
const demoEscalationTarget = 3 * time.Second

// demoEscalation shows an escalation when nobody answers, on a relay of
// its own: nl-kampala promises to acknowledge urgent alerts within three
// seconds and escalates to de-nairobi. A defender sends two urgent
// alerts; nl-kampala acknowledges one. The relay, which reads neither,
// releases the other's escalation to de-nairobi when the three seconds
// pass, and stops the acknowledged one's.
func demoEscalation(ctx context.Context, e *env, dir string, step func(string, ...any)) error {
	fail := func(format string, args ...any) error { return fmt.Errorf("demo: escalation: "+format, args...) }
	fmt.Fprintln(e.stdout, "An escalation when nobody answers:")
	root, err := keys.GenerateIdentity()
	if err != nil {
		return err
	}
	now := time.Now()
	roster := &keys.Roster{Serial: 1, Issued: now.Add(-time.Minute), Expires: now.Add(24 * time.Hour)}
	krs := map[string]*keys.Keyring{}
	for _, s := range []struct{ id, name, cc, escalation string }{
		{"nl-kampala", "Embassy of the Netherlands, Kampala", "ug", "de-nairobi"},
		{"de-nairobi", "Embassy of Germany, Nairobi", "ke", ""},
	} {
		kr, err := keys.NewKeyring(keys.RoleMission)
		if err != nil {
			return err
		}
		krs[s.id] = kr
		roster.Missions = append(roster.Missions, keys.Mission{ID: s.id, Name: s.name, Countries: []string{s.cc},
			Identity: kr.Identity.Public(), NKey: kr.NKeyPublic(), InboxKeys: []keys.SignedInboxKey{kr.Inboxes[0].Signed},
			Response:   keys.ResponseTargets{Urgent: demoEscalationTarget, High: time.Hour, Routine: 72 * time.Hour},
			Escalation: s.escalation})
	}
	signed, err := keys.SignDirectory(roster, root)
	if err != nil {
		return err
	}
	dirFile := filepath.Join(dir, "escalation-directory.yaml")
	if err := os.WriteFile(dirFile, signed, 0o644); err != nil {
		return err
	}
	r, err := startDemoRelay(ctx, dir, "escalation", dirFile, root.Public().Fingerprint())
	if err != nil {
		return err
	}
	defer r.Shutdown(context.Background())
	step("a second relay; nl-kampala promises to acknowledge urgent alerts within %s, and escalates to de-nairobi", demoEscalationTarget)

	open := func(name string, kr *keys.Keyring) (*client.Client, error) {
		cl, err := client.Open(client.Config{URLs: []string{r.ClientURL()}, Keyring: kr, Root: root.Public().Fingerprint(),
			StateDir: filepath.Join(dir, "escalation-"+name), Directory: signed})
		if err != nil {
			return nil, err
		}
		if err := cl.WaitConnected(ctx); err != nil {
			cl.Close()
			return nil, err
		}
		return cl, nil
	}
	defKR, err := keys.NewKeyring(keys.RoleDefender)
	if err != nil {
		return err
	}
	def, err := open("defender", defKR)
	if err != nil {
		return err
	}
	defer def.Close()
	nl, err := open("nl-kampala", krs["nl-kampala"])
	if err != nil {
		return err
	}
	defer nl.Close()
	de, err := open("de-nairobi", krs["de-nairobi"])
	if err != nil {
		return err
	}
	defer de.Close()

	alert := func(summary string) *message.Alert {
		return &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryDetention, Summary: summary}
	}
	t0 := time.Now()
	silent, err := def.SendAlert(ctx, alert("Taken at the Entebbe checkpoint"))
	if err != nil || len(silent.Escalation) != 1 {
		return fail("sending: %v (escalation tiers %v)", err, silent)
	}
	answered, err := def.SendAlert(ctx, alert("Men outside our office"))
	if err != nil {
		return fail("sending: %w", err)
	}
	step("defender sent two urgent alerts to nl-kampala, each with its escalation sealed to de-nairobi and held by the relay")
	got, err := demoReceive(ctx, nl, client.FetchOptions{Wait: 10 * time.Second})
	for len(got) < 2 && err == nil {
		var more []*client.Received
		if more, err = demoReceive(ctx, nl, client.FetchOptions{Wait: 10 * time.Second}); len(more) == 0 && err == nil {
			err = fmt.Errorf("received %d of 2", len(got))
		}
		got = append(got, more...)
	}
	if err != nil {
		return fail("nl-kampala reading: %w", err)
	}
	for _, a := range got {
		if a.ID == answered.ID {
			if _, err := nl.Acknowledge(ctx, a, "Duty officer, Embassy of the Netherlands", "On our way"); err != nil {
				return fail("acknowledging: %w", err)
			}
		}
	}
	step("nl-kampala acknowledged %q and left %q unanswered", "Men outside our office", "Taken at the Entebbe checkpoint")

	var esc *message.Escalation
	for esc == nil {
		_, err := de.ReceiveMailbox(ctx, client.FetchOptions{Wait: 10 * time.Second}, func(_ context.Context, r *client.Received) error {
			if m, ok := r.Message.(*message.Escalation); ok && m.Ref == silent.ID && r.Sender.Equal(def.Identity()) {
				esc = m
			} else {
				return fail("de-nairobi read something else: %s", client.Summarize(r.Message))
			}
			return nil
		})
		if err != nil || ctx.Err() != nil {
			return fail("de-nairobi's mailbox: %v", err)
		}
	}
	step("%s after sending, the relay released the unanswered alert's escalation; de-nairobi decrypted it: %q", since(t0), esc.Alert.Summary)
	holds, err := def.Holds(ctx)
	if err != nil {
		return fail("holds: %w", err)
	}
	for _, h := range holds {
		if h.Alert == answered.ID && h.State != proto.HoldStopped {
			return fail("the acknowledged alert's escalation is %s", h.State)
		}
	}
	step("the acknowledged alert's escalation stopped at the ack; de-nairobi received nothing of it")
	fmt.Fprintln(e.stdout, "ok: the relay escalated, unread, the alert nobody acknowledged in time, and only that one.")
	return nil
}
