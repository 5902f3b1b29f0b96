package console

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hrdbeacon/beacon/client"
)

// RollUp is, for an alert case, where every government involved stands —
// the missions of the country and the partners it was shared with: who
// received it, who acknowledged it, who acts. It is computed by the
// client from the signed statements the relay holds (ack tokens, the
// bridge's receipts, for the alert and for this mission's re-shares of
// it), each verified against the directory; this mission's own ack says
// who acts here.
func (o *Office) RollUp(ctx context.Context, k *Case) (*client.RollUp, error) {
	if k.Alert() == nil {
		return nil, ErrNotAnAlert
	}
	if o.Partner {
		// The statements are at the sending network's relay, which this
		// console does not read; its own relay holds none.
		return nil, ErrRollUpElsewhere
	}
	ru, err := o.Client.FetchRollUp(ctx, k.ID, k.Country, k.Opened, k.Reshares...)
	if err != nil {
		return nil, err
	}
	for i := range ru.Parties {
		if p := &ru.Parties[i]; p.ID == o.Config.Mission && !k.AckedAt.IsZero() && p.Acts == "" {
			p.Acts = liaisonName(o.Config, k.AckedBy) // what the ack said: who acts

		}
	}
	return ru, nil
}

// ErrRollUpElsewhere means the roll-up of a case is kept by the sending
// network's relay, which a partner government's console does not read.
var ErrRollUpElsewhere = errors.New("the roll-up of a shared alert is kept by the sending network's relay (client.FetchRollUp there, where its directory lists this partner)")

// rollUpView is the roll-up as the page shows it.
type rollUpView struct {
	Parties []partyView `json:"parties"`
}

type partyView struct {
	ID           string    `json:"id"`
	Name         string    `json:"name,omitempty"`
	Role         string    `json:"role"`
	Received     time.Time `json:"received,omitzero"`
	Acknowledged time.Time `json:"acknowledged,omitzero"`
	Acts         string    `json:"acts,omitempty"`
	Status       string    `json:"status"`
}

// rollUpTimeout bounds the relay's answer to one roll-up.
const rollUpTimeout = 10 * time.Second

func (c *Console) apiRollUp(w http.ResponseWriter, r *http.Request) {
	id, ok := c.caseID(w, r)
	if !ok {
		return
	}
	k, err := c.office.Store.Case(id)
	if err != nil {
		apiError(w, http.StatusNotFound, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), rollUpTimeout)
	defer cancel()
	ru, err := c.office.RollUp(ctx, k)
	if err != nil {
		apiError(w, statusOf(err), err)
		return
	}
	v := rollUpView{Parties: []partyView{}}
	for _, p := range ru.Parties {
		v.Parties = append(v.Parties, partyView{ID: p.ID, Name: p.Name, Role: string(p.Role), Received: p.Received,
			Acknowledged: p.Acknowledged, Acts: p.Acts, Status: p.Status()})
	}
	writeJSON(w, http.StatusOK, v)
}
