package console

import (
	"errors"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// A summary is one row of the case list.
type summary struct {
	ID       routing.ID       `json:"id"`
	Kind     message.Kind     `json:"kind"`
	Title    string           `json:"title"`
	Country  string           `json:"country"`
	Priority routing.Priority `json:"priority"`
	Category string           `json:"category,omitempty"`
	State    State            `json:"state"`
	Unread   int              `json:"unread"`
	Assignee string           `json:"assignee,omitempty"`
	Flags    []string         `json:"flags,omitempty"`
	Opened   time.Time        `json:"opened"`
	// DueMS is when the post committed to acknowledge it (Unix ms); 0
	// when unknown. AckedMS is when it did.
	DueMS     int64  `json:"due_ms"`
	AckedMS   int64  `json:"acked_ms,omitempty"`
	Cancelled string `json:"cancelled,omitempty"`
	Meeting   string `json:"meeting,omitempty"`
}

func (c *Console) summarize(k *Case) summary {
	s := summary{ID: k.ID, Kind: k.Kind, Title: k.Title, Country: k.Country, Priority: k.Priority, Category: k.Category,
		State: k.State, Unread: k.Unread, Assignee: k.Assignee, Flags: k.Flags, Opened: k.Opened, Cancelled: k.Cancelled}
	if due := c.office.Due(k); !due.IsZero() {
		s.DueMS = due.UnixMilli()
	}
	if !k.AckedAt.IsZero() {
		s.AckedMS = k.AckedAt.UnixMilli()
	}
	if k.Meeting != nil {
		s.Meeting = k.Meeting.State
	}
	return s
}

// sortCases orders by what needs an officer first: open before resolved,
// then priority, then the oldest.
func sortCases(ss []summary) {
	sort.SliceStable(ss, func(i, j int) bool {
		a, b := ss[i], ss[j]
		if (a.State == StateResolved) != (b.State == StateResolved) {
			return b.State == StateResolved
		}
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		return a.Opened.Before(b.Opened)
	})
}

type missionView struct {
	ID        string               `json:"id"`
	Name      string               `json:"name"`
	Countries []string             `json:"countries"`
	Targets   keys.ResponseTargets `json:"-"`
	TargetsS  map[string]int64     `json:"targets_s"`
	Offers    []string             `json:"offers"`
	Emergency string               `json:"emergency_contact,omitempty"`
	HQ        string               `json:"headquarters,omitempty"`
	Partners  []string             `json:"partners,omitempty"`
}

func (c *Console) apiState(w http.ResponseWriter, r *http.Request) {
	if err := c.office.Store.Refresh(); err != nil {
		apiError(w, http.StatusInternalServerError, err)
		return
	}
	mv := missionView{ID: c.office.Config.Mission, Name: c.office.Config.Mission, Offers: []string{}}
	if m := c.office.Self(); m != nil {
		mv.Name, mv.Countries, mv.Offers, mv.Emergency = m.Name, m.Countries, m.Offers.Services(), m.Offers.EmergencyContact
		mv.TargetsS = map[string]int64{"urgent": int64(m.Response.Urgent.Seconds()), "high": int64(m.Response.High.Seconds()),
			"routine": int64(m.Response.Routine.Seconds())}
		if d, err := c.office.Client.Directory(); err == nil {
			if hq := d.HeadquartersOf(m.ID); hq != nil {
				mv.HQ = hq.ID
			}
			for _, cc := range m.Countries {
				for _, p := range d.PartnersFor(cc) {
					if !slices.Contains(mv.Partners, p.ID) {
						mv.Partners = append(mv.Partners, p.ID)
					}
				}
			}
		}
	}
	cases := c.office.Store.Cases()
	ss := make([]summary, len(cases))
	for i, k := range cases {
		ss[i] = c.summarize(k)
	}
	sortCases(ss)
	writeJSON(w, http.StatusOK, map[string]any{
		"mission": mv, "officers": c.office.Config.Officers, "connected": c.office.Client.Connected(),
		"cases": ss, "broadcasts": c.office.Store.Broadcasts(), "now_ms": time.Now().UnixMilli(),
	})
}

// caseView is a case as the case view shows it.
type caseView struct {
	*Case
	DueMS   int64  `json:"due_ms"`
	TargetS int64  `json:"target_s"`
	HasMail bool   `json:"can_answer"`
	Liaison string `json:"liaison,omitempty"`
}

func (c *Console) caseID(w http.ResponseWriter, r *http.Request) (routing.ID, bool) {
	id, err := routing.ParseID(r.PathValue("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, err)
		return id, false
	}
	return id, true
}

func (c *Console) viewOf(k *Case) caseView {
	v := caseView{Case: k, TargetS: int64(targetFor(c.office.Self(), k.Priority).Seconds()), HasMail: !k.Addressee().ReplyTo.IsZero()}
	if due := c.office.Due(k); !due.IsZero() {
		v.DueMS = due.UnixMilli()
	}
	if k.Assignee != "" {
		v.Liaison = liaisonName(c.office.Config, k.Assignee)
	}
	if k.Broadcast != nil {
		for _, b := range c.office.Store.Broadcasts() {
			if b.ID == k.Broadcast.ID {
				k.Broadcast.Title = b.Message.Title
			}
		}
	}
	return v
}

func (c *Console) apiCase(w http.ResponseWriter, r *http.Request) {
	id, ok := c.caseID(w, r)
	if !ok {
		return
	}
	if err := c.office.Store.Refresh(); err != nil {
		apiError(w, http.StatusInternalServerError, err)
		return
	}
	k, err := c.office.Store.Case(id)
	if err != nil {
		apiError(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, c.viewOf(k))
}

// actionRequest is the body of every case action; each uses its fields.
type actionRequest struct {
	Officer  string      `json:"officer"`
	Text     string      `json:"text,omitempty"`
	Next     string      `json:"next,omitempty"`
	Assignee string      `json:"assignee,omitempty"`
	Tell     bool        `json:"tell,omitempty"`
	Action   string      `json:"action,omitempty"` // meeting: accept, propose, confirm, cancel
	Times    []time.Time `json:"times,omitempty"`
	Status   string      `json:"status,omitempty"` // observation
	Observer string      `json:"observer,omitempty"`
	State    string      `json:"state,omitempty"`
}

func (c *Console) apiAction(w http.ResponseWriter, r *http.Request) {
	id, ok := c.caseID(w, r)
	if !ok {
		return
	}
	var req actionRequest
	if err := decode(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	ctx, o := r.Context(), c.office
	var err error
	switch r.PathValue("action") {
	case "ack":
		err = o.Acknowledge(ctx, id, req.Officer, req.Next)
	case "reply":
		err = o.Reply(ctx, id, req.Officer, req.Text)
	case "assign":
		err = o.Assign(ctx, id, req.Officer, req.Assignee, req.Tell)
	case "note":
		err = o.Note(id, req.Officer, req.Text)
	case "meeting":
		err = o.Meeting(ctx, id, req.Officer, message.MeetingAction(req.Action), req.Times, req.Text)
	case "observe":
		err = o.Observe(ctx, id, req.Officer, message.ObservationStatus(req.Status), req.Observer, req.Text)
	case "share":
		err = o.Share(ctx, id, req.Officer, req.Text)
	case "report":
		err = o.Report(ctx, id, req.Officer, req.Text)
	case "state":
		err = o.SetState(id, req.Officer, State(req.State), req.Text)
	case "read":
		err = o.MarkRead(id, req.Officer)
	default:
		apiError(w, http.StatusNotFound, errors.New("no such action"))
		return
	}
	if err != nil {
		apiError(w, statusOf(err), err)
		return
	}
	k, err := o.Store.Case(id)
	if err != nil {
		apiError(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, c.viewOf(k))
}

type broadcastRequest struct {
	Officer    string    `json:"officer"`
	Country    string    `json:"country"`
	Category   string    `json:"category"`
	Title      string    `json:"title"`
	Text       string    `json:"text"`
	ValidUntil time.Time `json:"valid_until"`
}

func (c *Console) apiBroadcast(w http.ResponseWriter, r *http.Request) {
	var req broadcastRequest
	if err := decode(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	b := &message.Broadcast{Country: req.Country, Category: message.BroadcastCategory(req.Category), Title: req.Title, Text: req.Text, ValidUntil: req.ValidUntil}
	if err := c.office.Broadcast(r.Context(), req.Officer, b); err != nil {
		apiError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"broadcasts": c.office.Store.Broadcasts()})
}
