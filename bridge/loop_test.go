package bridge_test

import (
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/bridge"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// TestBridgesBothWaysCannotLoop: two governments each run a relay and a
// bridge to the other (A→B and B→A). What each shares reaches the other
// once, and nothing comes back: once both bridges have settled
// everything they read, each relay holds its own share in SHARED and the
// other's in BRIDGED, one each — and a bridged envelope that claims to
// have crossed more bridges than proto.MaxHops is refused.
func TestBridgesBothWaysCannotLoop(t *testing.T) {
	desk := map[string]*keys.Keyring{"a": keyring(t, keys.RolePartner), "b": keyring(t, keys.RolePartner)}
	br := map[string]*keys.Keyring{"a": keyring(t, keys.RoleBridge), "b": keyring(t, keys.RoleBridge)}
	other := map[string]string{"a": "b", "b": "a"}
	nets := map[string]*network{}
	for _, g := range []string{"a", "b"} {
		o := other[g]
		nets[g] = sign(t, &keys.Roster{
			Missions: []keys.Mission{mission(g+"-kampala", keyring(t, keys.RoleMission), "ug")},
			// The other government's desk is this network's partner; this
			// government's own desk reads what the other's bridge delivers.
			Partners: []keys.Partner{partnerEntry("gov-"+o, desk[o], "ug"), partnerEntry("gov-"+g+"-desk", desk[g], "ug")},
			// This network's bridge (home here), and the other's (which
			// delivers here).
			Bridges: []keys.Bridge{bridgeEntry(g+"-out", br[g]), bridgeEntry(o+"-in", br[o])},
		})
		nets[g].start(t, nil)
	}
	settled := make(chan string, 64)
	for _, g := range []string{"a", "b"} {
		o := other[g]
		cfg := &bridge.Config{Home: bridge.HomeConfig{URLs: []string{nets[g].url()}, KeyFile: "unused",
			RootFingerprint: nets[g].root.Public().Fingerprint().String()},
			Partners: []bridge.PartnerConfig{{ID: "gov-" + o, URLs: []string{nets[o].url()}, BridgeID: g + "-in",
				Priorities: []string{"urgent", "high", "routine"}}},
			Batch: 64, Wait: 5 * time.Second, Timeout: 10 * time.Second,
			Retry:            bridge.RetryConfig{Min: 20 * time.Millisecond, Max: 500 * time.Millisecond},
			DirectoryRefresh: time.Hour, Log: bridge.LogConfig{Level: "info", Format: "text"}}
		b, err := bridge.New(cfg, br[g], bridge.WithLogger(testLogger(t)), bridge.WithEvents(func(e bridge.Event) {
			if e.Settled > 0 {
				settled <- g
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Shutdown(testCtx(t)) })
	}

	// Each network shares one alert with the other's desk.
	body, _ := message.Marshal(ugAlert("shared both ways", true))
	def := keyring(t, keys.RoleDefender).Identity
	ids := map[string]routing.ID{}
	for _, g := range []string{"a", "b"} {
		pt := nets[g].dir.PartnersFor("ug")[0] // gov-<other>
		h := envelope.Header{ID: routing.NewID(), Created: time.Now(), Country: "ug", Priority: routing.Urgent}
		env, err := envelope.Seal(h, body, def, envelope.Deniable, envelope.ToInbox(pt.Identity, keys.CurrentInbox(pt.InboxKeys, time.Now())))
		if err != nil {
			t.Fatal(err)
		}
		c := relaytest.Connect(t, nets[g].url(), nil)
		if _, err := c.Publish(proto.ShareTarget("ug", routing.Urgent), env); err != nil {
			t.Fatal(err)
		}
		ids[g] = h.ID
	}
	// Each desk reads, on its own relay, the other's alert.
	for _, g := range []string{"a", "b"} {
		c := relaytest.Connect(t, nets[g].url(), desk[g].NKey)
		got, err := c.FetchAll(proto.FetchTarget(proto.BridgedSource("ug")), 1)
		if err != nil {
			t.Fatal(err)
		}
		if info, _ := envelope.Parse(got[0].Data); info.ID != ids[other[g]] {
			t.Errorf("%s's desk received %s, want %s's alert %s", g, info.ID, other[g], ids[other[g]])
		}
	}
	// Both bridges have settled what they read: nothing is left to carry.
	quiet := time.NewTimer(time.Minute)
	defer quiet.Stop()
	for done := map[string]bool{}; len(done) < 2; {
		var g string
		select {
		case g = <-settled:
			quiet.Reset(time.Minute)
		case <-quiet.C:
			t.Fatalf("bridges %v settled everything; no settle from the others for a minute", done)
		}
		c := relaytest.Connect(t, nets[g].url(), br[g].NKey)
		if n, err := c.Relay.Pending(testCtx(t), proto.SharedSource("gov-"+other[g])); err != nil || n != 0 {
			continue
		}
		done[g] = true
	}
	for _, g := range []string{"a", "b"} {
		if s, b := streamMsgs(t, nets[g].relay, proto.StreamShared), streamMsgs(t, nets[g].relay, proto.StreamBridged); s != 1 || b != 1 {
			t.Errorf("%s holds %d shared and %d bridged envelopes, want one of each", g, s, b)
		}
	}

	// A delivery claiming two hops is refused: an envelope crosses one
	// bridge.
	env := func() []byte {
		pt := nets["b"].dir.PartnersFor("ug")[1]
		h := envelope.Header{ID: routing.NewID(), Created: time.Now(), Country: "ug", Priority: routing.Urgent}
		e, _ := envelope.Seal(h, body, def, envelope.Deniable, envelope.ToInbox(pt.Identity, keys.CurrentInbox(pt.InboxKeys, time.Now())))
		return e
	}()
	info, _ := envelope.Parse(env)
	tr, err := bridge.NewNATS(bridge.TransportConfig{URLs: []string{nets["b"].url()}, NKey: br["a"].NKey, BridgeID: "a-in"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	res := tr.Deliver(testCtx(t), []bridge.Delivery{{ID: info.ID, Country: "ug", Priority: routing.Urgent, Envelope: env, Hops: proto.MaxHops + 1}})
	if perr := asProtoError(res[0].Err); perr == nil || perr.Code != proto.CodeForbidden {
		t.Errorf("a delivery of %d hops: %v, want forbidden", proto.MaxHops+1, res[0].Err)
	}
}
