package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/client/console"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// demoConsole has se-kampala answer from the console's encrypted store: a
// new alert is kept by the two-phase receive before the relay is told,
// the console serves it on loopback behind its session token, an officer
// acknowledges it from the store, and the defender reads the ack.
func demoConsole(ctx context.Context, dir, relayURL string, root keys.Fingerprint, dirFile string, kr *keys.Keyring,
	def *client.Client, step func(string, ...any)) error {
	fail := func(format string, args ...any) error { return fmt.Errorf("demo: console: "+format, args...) }
	cfg := &console.Config{Mission: "se-kampala", Key: "(in memory)", StateDir: filepath.Join(dir, "se-kampala-console"),
		Relays: []string{relayURL}, RootFingerprint: root.String(), Directory: dirFile, Listen: "127.0.0.1:0", Poll: time.Second,
		Officers: []console.Officer{{ID: "duty", Name: "Duty officer", Liaison: "Duty officer, Embassy of Sweden"}}}
	o, err := console.Open(cfg, kr, nil, nil)
	if err != nil {
		return fail("%w", err)
	}
	defer o.Close()
	if err := o.Client.WaitConnected(ctx); err != nil {
		return fail("%w", err)
	}
	sent, err := def.SendAlert(ctx, &message.Alert{Country: "ug", Priority: routing.High, Category: message.CategoryThreat,
		Summary: "Threatening calls to our director since Monday"})
	if err != nil {
		return fail("sending: %w", err)
	}
	t0 := time.Now()
	for {
		if _, err := o.Store.Case(sent.ID); err == nil {
			break
		}
		b, err := o.Receive(ctx, 10*time.Second)
		if err == nil {
			err = b.Err
		}
		if err != nil || b.Handled+b.Dropped == 0 {
			return fail("receiving the alert: %v", err)
		}
	}
	step("se-kampala's console kept the new alert in its encrypted case store, then settled it with the relay (%s after sending)", since(t0))

	c, err := console.New(o)
	if err != nil {
		return fail("%w", err)
	}
	if err := c.Start(); err != nil {
		return fail("%w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Shutdown(sctx)
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL()+"api/state", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail("%w", err)
	}
	var st struct {
		Cases []struct {
			ID    routing.ID `json:"id"`
			State string     `json:"state"`
		} `json:"cases"`
	}
	err = json.NewDecoder(res.Body).Decode(&st)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || len(st.Cases) != 1 || st.Cases[0].ID != sent.ID || st.Cases[0].State != "new" {
		return fail("the page's state: %d %+v %v", res.StatusCode, st, err)
	}
	step("the console serves it at http://%s/s/<session token>/ (loopback only, strict CSP, pushed live to open pages)", c.Addr())

	t1 := time.Now()
	if err := o.Acknowledge(ctx, sent.ID, "duty", "We will call you within the hour"); err != nil {
		return fail("acknowledging: %w", err)
	}
	for {
		rs, err := def.ReadMailbox(ctx, client.FetchOptions{Wait: 10 * time.Second})
		if err != nil {
			return fail("defender inbox: %w", err)
		}
		if len(rs) == 0 {
			return fail("the defender received no ack from se-kampala")
		}
		for _, r := range rs {
			if a, ok := r.Message.(*message.Ack); ok && r.Case == sent.ID && r.From == "se-kampala" {
				step("defender verified se-kampala's ack from the console's store: %q by %q (%s after acknowledging)", a.NextStep, a.By, since(t1))
				return nil
			}
		}
	}
}
