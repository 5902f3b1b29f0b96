package console

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/bridge/receipt"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// TestRollUpPanel: the case view's roll-up says, from the signed
// statements the relay holds, which governments received the alert, which
// acknowledged it and who acts — the partner "waiting to be delivered"
// until the bridge's receipt, received once it is stored, acknowledged
// once its token is carried back — and a forged receipt counts for
// nothing.
func TestRollUpPanel(t *testing.T) {
	tb := newTestbed(t)
	c, o := tb.console("nl-kampala")
	def := tb.defender()
	sent, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryDetention,
		Summary: "Taken at the airport", Share: true})
	if err != nil {
		t.Fatal(err)
	}
	tb.waitCase(o, sent.ID)
	get := func() map[string]partyView {
		t.Helper()
		req, _ := http.NewRequest("GET", c.URL()+"api/cases/"+sent.ID.String()+"/rollup", nil)
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v rollUpView
		if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&v) != nil {
			t.Fatalf("roll-up: %d", res.StatusCode)
		}
		out := map[string]partyView{}
		for _, p := range v.Parties {
			out[p.ID] = p
		}
		return out
	}
	ps := get()
	if len(ps) != 3 || ps["partner"].Status != "waiting to be delivered" || ps["nl-kampala"].Status != "received, not acknowledged yet" {
		t.Fatalf("before anything: %+v", ps)
	}

	br := tb.w.ConnectAs(t, tb.url, "bridge")
	forged, _ := receipt.Sign(sent.ID, "ug", "partner", time.Now(), tb.w.Keyrings["se-kampala"].Identity)
	if _, err := br.Publish(proto.Receipt(sent.ID, "partner").Target(), forged); err == nil {
		t.Fatal("the relay stored a receipt signed by a mission")
	}
	rc, _ := receipt.Sign(sent.ID, "ug", "partner", time.Now(), tb.w.Keyrings["bridge"].Identity)
	if _, err := br.Publish(proto.Receipt(sent.ID, "partner").Target(), rc); err != nil {
		t.Fatal(err)
	}
	if p := get()["partner"]; p.Received.IsZero() || !p.Acknowledged.IsZero() {
		t.Errorf("after the receipt: %+v", p)
	}
	if _, err := br.Publish(proto.AckTarget(sent.ID), envelope.SignAck(sent.ID, tb.w.Keyrings["partner"].Identity, time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := o.Acknowledge(tb.ctx, sent.ID, "avries", "A diplomat is on the way"); err != nil {
		t.Fatal(err)
	}
	ps = get()
	if p := ps["partner"]; p.Acknowledged.IsZero() || p.Role != "partner" {
		t.Errorf("after the partner's ack: %+v", p)
	}
	if p := ps["nl-kampala"]; p.Acknowledged.IsZero() || p.Acts != "Human rights officer, Embassy of the Netherlands" {
		t.Errorf("after our ack: %+v", p)
	}
	if p := ps["se-kampala"]; !p.Acknowledged.IsZero() {
		t.Errorf("se-kampala: %+v", p)
	}
}
