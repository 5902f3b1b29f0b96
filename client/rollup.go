package client

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hrdbeacon/beacon/bridge/receipt"
	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// A RollUp says, for one coordinated alert, where every government
// involved stands: the missions covering its country and the partner
// governments it was shared with. It is computed from signed statements
// only — the bridge's receipts and the institutions' acks — each verified
// against the directory; nothing in it is taken from the relay's word.
type RollUp struct {
	Alert   routing.ID
	Country string
	Parties []Party // missions first, then partners, in directory order
}

// A Party is one government's part in a coordinated alert.
type Party struct {
	ID   string
	Name string
	Role keys.Role // mission or partner
	// Received is when the relay the party reads stored the alert: for a
	// partner, the time on the bridge's signed receipt; for a mission,
	// when the sender's relay stored it in the mission's channel. Zero
	// until then: a partner without a receipt has not received it, it is
	// waiting to be delivered.
	Received time.Time
	// Acknowledged is when the party signed its ack; zero if it has not.
	Acknowledged time.Time
	// Acts is who acts, as the party's ack said; empty when the viewer
	// only holds the party's ack token (which names no one).
	Acts string
}

// Status says, in words, where the party stands.
func (p Party) Status() string {
	switch {
	case !p.Acknowledged.IsZero() && p.Acts != "":
		return "acknowledged " + p.Acknowledged.Local().Format(time.DateTime) + "; acts: " + p.Acts
	case !p.Acknowledged.IsZero():
		return "acknowledged " + p.Acknowledged.Local().Format(time.DateTime)
	case !p.Received.IsZero() && p.Role == keys.RolePartner:
		return "received (stored at its relay " + p.Received.Local().Format(time.DateTime) + "), not acknowledged yet"
	case !p.Received.IsZero():
		return "received, not acknowledged yet"
	case p.Role == keys.RolePartner:
		return "waiting to be delivered"
	}
	return "not received yet"
}

// Acting returns the parties that acknowledged the alert: those who act.
func (r *RollUp) Acting() []Party {
	var out []Party
	for _, p := range r.Parties {
		if !p.Acknowledged.IsZero() {
			out = append(out, p)
		}
	}
	return out
}

// party returns the party with id, adding it (with the directory's name
// and role) if it is not listed yet.
func (r *RollUp) party(d *keys.Directory, id string) *Party {
	for i := range r.Parties {
		if r.Parties[i].ID == id {
			return &r.Parties[i]
		}
	}
	p := Party{ID: id}
	if d != nil {
		for _, in := range d.Institutions() {
			if in.ID == id {
				p.Role = in.Role
			}
		}
		for _, m := range d.Missions {
			if m.ID == id {
				p.Name = m.Name
			}
		}
		for _, pt := range d.Partners {
			if pt.ID == id {
				p.Name = pt.Name
			}
		}
	}
	r.Parties = append(r.Parties, p)
	return &r.Parties[len(r.Parties)-1]
}

func earliest(t *time.Time, at time.Time) {
	if t.IsZero() || at.Before(*t) {
		*t = at
	}
}

// RollUp is the defender's roll-up of one of its alerts, from its own
// case ([RollUpOf]).
func (c *Client) RollUp(ref routing.ID) (*RollUp, error) {
	k, err := c.caseFor(ref)
	if err != nil {
		return nil, err
	}
	d, _ := c.Directory()
	return RollUpOf(k, d), nil
}

// RollUpOf is the roll-up of a defender's case: the missions it was
// sealed to and the partners a copy was sealed to, the receipts the
// bridge sent and the acks that came back. A mission received it once
// the relay stored it (the alert is not queued); a partner once the
// bridge's receipt for it arrived; an ack says it was received too. d
// (may be nil) gives the parties' names.
func RollUpOf(k *Case, d *keys.Directory) *RollUp {
	r := &RollUp{Alert: k.ID, Country: k.Country}
	stored := time.Time{}
	for _, e := range k.Thread {
		if e.ID == k.ID && !e.Queued && e.Refused == "" {
			stored = e.At
		}
	}
	for _, id := range k.Missions {
		p := r.party(d, id)
		p.Role = keys.RoleMission
		p.Received = stored
	}
	for _, id := range k.Partners {
		r.party(d, id).Role = keys.RolePartner
	}
	for _, e := range k.Thread {
		switch e.Kind {
		case message.KindReceipt:
			if slices.Contains(k.Partners, e.Partner) {
				earliest(&r.party(d, e.Partner).Received, e.At)
			}
		case message.KindAck:
			if e.From != "" && e.From != "you" {
				p := r.party(d, e.From)
				earliest(&p.Acknowledged, e.At)
				if p.Acts == "" {
					p.Acts = e.Acts
				}
				if p.Received.IsZero() {
					p.Received = e.At // an ack proves it was received
				}
			}
		}
	}
	return r
}

// FetchRollUp is an institution's roll-up of alert ref of country cc,
// which reached the relay's channel at stored (a mission holds it, so
// every mission of cc could read it from then): the ack tokens and the
// bridge's receipts the relay holds for ref and for the ids of its
// re-shares ([Client.ShareAlert] returned them), each verified against
// the directory. The parties are the missions and the partners covering
// cc. A partner, or headquarters, asks the sending network's relay, where
// that directory lists it. Acts is left empty: the tokens name no one;
// the institution keeps its own ack.
func (c *Client) FetchRollUp(ctx context.Context, ref routing.ID, cc string, stored time.Time, reshares ...routing.ID) (*RollUp, error) {
	if err := c.WaitConnected(ctx); err != nil {
		return nil, err
	}
	d, err := c.Directory()
	if err != nil {
		return nil, err
	}
	ru := &RollUp{Alert: ref, Country: cc}
	for _, m := range d.MissionsFor(cc) {
		ru.party(d, m.ID).Received = stored
	}
	for _, pt := range d.PartnersFor(cc) {
		ru.party(d, pt.ID)
	}
	for _, id := range append([]routing.ID{ref}, reshares...) {
		stmts, err := c.conn.RollUp(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("roll-up: %w", err)
		}
		for _, data := range stmts {
			c.applyStatement(ru, d, id, data)
		}
	}
	return ru, nil
}

// applyStatement adds one signed statement about alert id to ru, if it
// verifies: an ack token by a mission or partner covering the country, or
// a bridge's receipt.
func (c *Client) applyStatement(ru *RollUp, d *keys.Directory, id routing.ID, data []byte) {
	if s, err := receipt.Parse(data); err == nil {
		if _, err := s.Verify(d); err == nil && s.Ref == id && s.Country == ru.Country {
			earliest(&ru.party(d, s.Partner).Received, s.StoredAt)
		}
		return
	}
	tok, err := envelope.ParseAck(data)
	if err != nil || tok.Alert != id {
		return
	}
	for _, m := range d.MissionsFor(ru.Country) {
		if m.Identity.Fingerprint().Equal(tok.Signer) && tok.Verify(m.Identity) == nil {
			earliest(&ru.party(d, m.ID).Acknowledged, tok.Created)
			return
		}
	}
	for _, pt := range d.PartnersFor(ru.Country) {
		if pt.Identity.Fingerprint().Equal(tok.Signer) && tok.Verify(pt.Identity) == nil {
			p := ru.party(d, pt.ID)
			earliest(&p.Acknowledged, tok.Created)
			if p.Received.IsZero() {
				p.Received = tok.Created
			}
			return
		}
	}
}
