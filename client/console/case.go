package console

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// State is where a case stands.
type State string

// States of a case.
const (
	StateNew          State = "new"
	StateAcknowledged State = "acknowledged"
	StateInProgress   State = "in_progress"
	StateResolved     State = "resolved"
)

// A Case is a thread at the mission: what a defender sent, what the
// officers did about it, and the notes they keep among themselves.
type Case struct {
	ID       routing.ID       `json:"id"`
	Kind     message.Kind     `json:"kind"` // of the message that opened it
	Country  string           `json:"country"`
	Priority routing.Priority `json:"priority"`
	Title    string           `json:"title"`
	Category string           `json:"category,omitempty"`
	Location string           `json:"location,omitempty"`
	// Consent, as the defender gave it in the alert.
	Share     bool `json:"share"`
	Publicise bool `json:"publicise"`
	// Flags mark a case that came another way: "escalated", "check-in",
	// "drill". The escalation and check-in paths set them.
	Flags []string `json:"flags,omitempty"`

	Opened   time.Time `json:"opened"`   // when the defender created it
	Received time.Time `json:"received"` // when this mission filed it
	// SafetyNumber is the defender's, to compare in person.
	SafetyNumber string `json:"safety_number,omitempty"`
	From         string `json:"from"` // "defender", or the institution's id

	State    State     `json:"state"`
	Unread   int       `json:"unread"`
	Assignee string    `json:"assignee,omitempty"` // officer id
	AckedAt  time.Time `json:"acked_at,omitzero"`
	AckedBy  string    `json:"acked_by,omitempty"`
	// Cancelled is the defender's reason when they called the alert off.
	Cancelled string `json:"cancelled,omitempty"`

	Thread      []Entry       `json:"thread"`
	Notes       []Note        `json:"notes,omitempty"`
	Meeting     *Meeting      `json:"meeting,omitempty"`
	Observation *Observation  `json:"observation,omitempty"`
	Broadcast   *BroadcastRef `json:"broadcast,omitempty"`
	SharedWith  []string      `json:"shared_with,omitempty"`
	// Reshares are the message ids of this mission's re-shares of the
	// case: the bridge's receipts for them are about those ids.
	Reshares   []routing.ID `json:"reshares,omitempty"`
	ReportedTo string       `json:"reported_to,omitempty"`

	addressee client.Addressee
	sender    *keys.PublicIdentity // a defender's, for the safety number
	// defender is the defender who wrote into the case first: only their
	// messages join it.
	defender *keys.PublicIdentity
	alert    *message.Alert
	// unacked are the ids of defender messages no ack token covers yet.
	unacked []routing.ID
	acked   bool
}

// An Entry is one message or action in a case's thread.
type Entry struct {
	At   time.Time    `json:"at"`
	From string       `json:"from"` // "defender", an institution's id, or an officer's id
	Kind message.Kind `json:"kind,omitempty"`
	Act  ActionType   `json:"act,omitempty"`
	Text string       `json:"text"`
	ID   routing.ID   `json:"id"`
	Out  bool         `json:"out,omitempty"` // sent by this mission
	// Queued: sent, but waiting in the outbox for the relay.
	Queued bool `json:"queued,omitempty"`
}

// A Note is an officer's internal note. Notes never leave the mission.
type Note struct {
	At      time.Time `json:"at"`
	Officer string    `json:"officer"`
	Text    string    `json:"text"`
}

// A Meeting is a meeting request and where it stands.
type Meeting struct {
	Purpose     string        `json:"purpose"`
	Place       message.Place `json:"place"`
	SafetyNotes string        `json:"safety_notes,omitempty"`
	Proposed    []time.Time   `json:"proposed"` // by the defender
	// State is "requested", "accepted", "proposed", "confirmed" or
	// "cancelled"; Times the agreed time or the mission's proposals.
	State string      `json:"state"`
	Times []time.Time `json:"times,omitempty"`
}

// An Observation is a trial-observation request and who attends.
type Observation struct {
	Court      string    `json:"court"`
	Case       string    `json:"case"`
	Hearing    time.Time `json:"hearing"`
	Defendants []string  `json:"defendants,omitempty"`
	Charges    string    `json:"charges,omitempty"`
	// Ours is this mission's observer and status; Peers the other
	// missions' notices, so no hearing is left unattended and not every
	// post sends someone.
	Observer string     `json:"observer,omitempty"`
	Status   string     `json:"status,omitempty"`
	Outcome  string     `json:"outcome,omitempty"`
	Peers    []PeerNote `json:"peers,omitempty"`
}

// A PeerNote is another mission's notice about the same hearing.
type PeerNote struct {
	Mission  string `json:"mission"`
	Observer string `json:"observer"`
	Status   string `json:"status"`
}

// A BroadcastRef is the broadcast a case answers.
type BroadcastRef struct {
	ID     routing.ID `json:"id"`
	Title  string     `json:"title,omitempty"`
	Intent string     `json:"intent"`
}

// A Broadcast is a notice the mission published.
type Broadcast struct {
	ID      routing.ID         `json:"id"`
	At      time.Time          `json:"at"`
	Officer string             `json:"officer"`
	Message *message.Broadcast `json:"message"`
}

// Addressee is whom an answer on the case goes to.
func (k *Case) Addressee() client.Addressee { return k.addressee }

// Alert is the alert that opened the case, or nil.
func (k *Case) Alert() *message.Alert { return k.alert }

func (k *Case) clone() *Case {
	c := *k
	c.Thread = slices.Clone(k.Thread)
	c.Notes = slices.Clone(k.Notes)
	c.Flags = slices.Clone(k.Flags)
	c.SharedWith = slices.Clone(k.SharedWith)
	c.Reshares = slices.Clone(k.Reshares)
	c.unacked = slices.Clone(k.unacked)
	if k.Meeting != nil {
		m := *k.Meeting
		c.Meeting = &m
	}
	if k.Observation != nil {
		o := *k.Observation
		o.Peers = slices.Clone(o.Peers)
		c.Observation = &o
	}
	return &c
}

// view is the store's log replayed.
type view struct {
	cases     map[routing.ID]*Case
	order     []routing.ID
	msgs      map[routing.ID]bool
	acts      map[routing.ID]bool
	bcastSeen map[routing.ID]bool
	bcasts    []Broadcast
}

func newView() *view {
	return &view{cases: map[routing.ID]*Case{}, msgs: map[routing.ID]bool{}, acts: map[routing.ID]bool{}, bcastSeen: map[routing.ID]bool{}}
}

// apply applies one record and returns the cases it changed.
func (v *view) apply(r *record) []routing.ID {
	switch {
	case r.Msg != nil:
		if v.msgs[r.Msg.key()] {
			return nil
		}
		v.msgs[r.Msg.key()] = true
		m, err := message.Unmarshal(r.Msg.Body)
		if err != nil {
			return nil
		}
		return []routing.ID{v.applyMsg(r.Msg, m)}
	case r.Act != nil:
		if v.acts[r.Act.ID] {
			return nil
		}
		v.acts[r.Act.ID] = true
		if k, ok := v.cases[r.Act.Case]; ok {
			applyAct(k, r.Act)
			return []routing.ID{k.ID}
		}
	case r.Bcast != nil:
		if v.bcastSeen[r.Bcast.ID] {
			return nil
		}
		v.bcastSeen[r.Bcast.ID] = true
		if m, err := message.Unmarshal(r.Bcast.Body); err == nil {
			if b, ok := m.(*message.Broadcast); ok {
				v.bcasts = append(v.bcasts, Broadcast{ID: r.Bcast.ID, At: r.Bcast.At, Officer: r.Bcast.Officer, Message: b})
			}
		}
	}
	return nil
}

func (v *view) caseFor(id routing.ID, mr *msgRecord) *Case {
	k, ok := v.cases[id]
	if !ok {
		k = &Case{ID: id, Country: mr.Country, Priority: mr.Priority, Opened: mr.Created, Received: mr.Received,
			State: StateNew, Title: "(the message that opened this case has not arrived)"}
		v.cases[id] = k
		v.order = append(v.order, id)
	}
	return k
}

func (v *view) applyMsg(mr *msgRecord, m message.Message) routing.ID {
	from := mr.From
	if from == "" {
		from = "defender"
	}
	caseID := mr.Case
	if mr.From == "" && mr.Sender != nil {
		// A case belongs to the defender who wrote into it first. Ids are
		// in the clear: another sender who learned one and writes under
		// it (a second "alert" with its id, an update or a cancellation
		// of it) must not change the case, its thread or where replies
		// go. Its message gets a case of its own, flagged.
		if k, ok := v.cases[caseID]; ok && k.defender != nil && !k.defender.Equal(mr.Sender) {
			caseID = client.MessageKey(mr.Sender, mr.Case)
			k := v.caseFor(caseID, mr)
			if !slices.Contains(k.Flags, FlagIDReused) {
				k.Flags = append(k.Flags, FlagIDReused)
			}
		}
	}
	k := v.caseFor(caseID, mr)
	if mr.From == "" && mr.Sender != nil && k.defender == nil {
		k.defender = mr.Sender
	}
	// An escalation opens, at the post it reached, the case of the alert
	// it escalates (its case is the alert's id, so an ack stops the rest
	// of the escalation); a check-in opens its own.
	_, escalation := m.(*message.Escalation)
	opens := mr.Case == mr.ID || escalation && k.Kind == ""
	if opens {
		k.Kind, k.Country, k.Priority, k.Opened, k.Received, k.From = m.Kind(), mr.Country, mr.Priority, mr.Created, mr.Received, from
		k.addressee = client.Addressee{Identity: mr.Sender, ReplyTo: mr.ReplyTo, Country: mr.Country, Priority: mr.Priority,
			Bridge: mr.Bridge}
		// The safety number (thousands of hashes) is worked out when a
		// case is shown, not on every replay of the log.
		if mr.From == "" {
			k.sender = mr.Sender
		}
		for _, f := range mr.Flags {
			if !slices.Contains(k.Flags, f) {
				k.Flags = append(k.Flags, f)
			}
		}
	}
	switch m := m.(type) {
	case *message.Alert:
		k.Title, k.Category, k.Location, k.Share, k.Publicise, k.alert = m.Summary, string(m.Category), m.Location, m.Share, m.Publicise, m
	case *message.Escalation:
		a := &m.Alert
		k.Title, k.Category, k.Location, k.Share, k.Publicise, k.alert = a.Summary, string(a.Category), a.Location, a.Share, a.Publicise, a
	case *message.CheckIn:
		k.Title = "Missed check-in: " + strings.SplitN(m.Text, "\n", 2)[0]
	case *message.MeetingRequest:
		k.Title = "Meeting: " + m.Purpose
		k.Meeting = &Meeting{Purpose: m.Purpose, Place: m.Place, SafetyNotes: m.SafetyNotes, Proposed: m.Times, State: "requested"}
	case *message.ObservationRequest:
		k.Title = fmt.Sprintf("Trial observation: %s, %s", m.Court, m.Case)
		obs := &Observation{Court: m.Court, Case: m.Case, Hearing: m.Hearing, Defendants: m.Defendants, Charges: m.Charges}
		if k.Observation != nil {
			obs.Peers = k.Observation.Peers // peers' notices that came first
		}
		k.Observation = obs
	case *message.BroadcastAnswer:
		k.Title = fmt.Sprintf("Answer to a broadcast (%s)", m.Intent)
		k.Broadcast = &BroadcastRef{ID: m.Ref, Intent: string(m.Intent)}
	case *message.Cancel:
		k.Cancelled = string(m.Reason)
	case *message.Observation:
		if k.Observation == nil {
			k.Observation = &Observation{Hearing: m.Hearing}
		}
		peers := k.Observation.Peers
		i := slices.IndexFunc(peers, func(p PeerNote) bool { return p.Mission == from })
		pn := PeerNote{Mission: from, Observer: m.Observer, Status: string(m.Status)}
		if i >= 0 {
			peers[i] = pn
		} else {
			peers = append(peers, pn)
		}
		k.Observation.Peers = peers
	}
	k.Thread = append(k.Thread, Entry{At: mr.Created, From: from, Kind: m.Kind(), Text: describe(m), ID: mr.ID})
	if mr.From == "" {
		// A defender's message: unread, and owed an ack token. A message
		// on a resolved case opens it again.
		k.Unread++
		k.unacked = append(k.unacked, mr.ID)
		if k.State == StateResolved {
			k.State = StateInProgress
		}
	}
	return k.ID
}

func applyAct(k *Case, a *actRecord) {
	var m message.Message
	if len(a.Body) > 0 {
		m, _ = message.Unmarshal(a.Body)
	}
	add := func(text string) {
		k.Thread = append(k.Thread, Entry{At: a.At, From: a.Officer, Act: a.Type, Text: text, ID: a.Sent, Out: !a.Sent.IsZero(), Queued: a.Queued})
	}
	progress := func() {
		if k.State == StateAcknowledged || k.State == StateNew && k.acked {
			k.State = StateInProgress
		}
	}
	k.unacked = slices.DeleteFunc(k.unacked, func(id routing.ID) bool { return slices.Contains(a.Tokens, id) })
	switch a.Type {
	case ActAck:
		k.acked = true
		if k.State == StateNew {
			k.State = StateAcknowledged
		}
		k.AckedAt, k.AckedBy, k.Unread = a.At, a.Officer, 0
		if m != nil {
			add(describe(m))
		}
	case ActReply:
		progress()
		if m != nil {
			add(describe(m))
		}
	case ActAssign:
		k.Assignee = a.Assignee
		text := "assigned to " + a.Assignee
		if m != nil {
			text += "; the defender was told: " + describe(m)
		}
		add(text)
	case ActNote:
		k.Notes = append(k.Notes, Note{At: a.At, Officer: a.Officer, Text: a.Text})
	case ActMeeting:
		progress()
		if r, ok := m.(*message.MeetingResponse); ok {
			if k.Meeting == nil {
				k.Meeting = &Meeting{}
			}
			k.Meeting.State, k.Meeting.Times = client.MeetingStateName(r.Action), r.Times
			add(describe(m))
		}
	case ActObserve:
		progress()
		if o, ok := m.(*message.Observation); ok {
			if k.Observation == nil {
				k.Observation = &Observation{Hearing: o.Hearing}
			}
			k.Observation.Observer, k.Observation.Status = o.Observer, string(o.Status)
			if o.Status == message.ObservationOutcome {
				k.Observation.Outcome = o.Text
			}
			text := describe(m)
			if len(a.To) > 0 {
				text += " (told " + strings.Join(a.To, ", ") + ")"
			}
			add(text)
		}
	case ActShare:
		progress()
		k.SharedWith = append(k.SharedWith, a.To...)
		if !a.Sent.IsZero() {
			k.Reshares = append(k.Reshares, a.Sent)
		}
		add("shared with partner governments: " + strings.Join(a.To, ", "))
	case ActReport:
		k.ReportedTo = strings.Join(a.To, ", ")
		add("case report sent to headquarters (" + k.ReportedTo + ")")
	case ActResolve:
		k.State = StateResolved
		text := "resolved"
		if a.Text != "" {
			text += ": " + a.Text
		}
		add(text)
	case ActReopen:
		k.State = StateInProgress
		add("reopened")
	case ActProgress:
		k.State = StateInProgress
		add("marked in progress")
	case ActRead:
		k.Unread = 0
	}
}

// describe renders a message in full for a case thread.
func describe(m message.Message) string {
	switch m := m.(type) {
	case *message.Alert:
		s := fmt.Sprintf("%s alert (%s): %s", m.Priority, m.Category, m.Summary)
		if m.Details != "" {
			s += "\n" + m.Details
		}
		if m.Location != "" {
			s += "\nLocation: " + m.Location
		}
		return s
	case *message.MeetingRequest:
		var ts []string
		for _, t := range m.Times {
			ts = append(ts, t.UTC().Format("Mon 2 Jan 15:04 UTC"))
		}
		s := fmt.Sprintf("Meeting request (%s): %s\nProposed: %s", m.Place, m.Purpose, strings.Join(ts, "; "))
		if m.SafetyNotes != "" {
			s += "\nSafety notes: " + m.SafetyNotes
		}
		return s
	case *message.ObservationRequest:
		s := fmt.Sprintf("Trial observation request: %s, case %s, hearing %s", m.Court, m.Case, m.Hearing.UTC().Format("Mon 2 Jan 2006 15:04 UTC"))
		if len(m.Defendants) > 0 {
			s += "\nDefendants: " + strings.Join(m.Defendants, ", ")
		}
		if m.Charges != "" {
			s += "\nCharges: " + m.Charges
		}
		return s
	case *message.Ack:
		s := "Acknowledged by " + m.By
		if m.NextStep != "" {
			s += ". Next step: " + m.NextStep
		}
		return s
	case *message.Cancel:
		s := "Called off by the defender: " + strings.ReplaceAll(string(m.Reason), "_", " ")
		if m.Text != "" {
			s += ". " + m.Text
		}
		return s
	}
	return client.Summarize(m)
}

// Liaison is the name defenders see for officer id, from the config.
func liaisonName(cfg *Config, id string) string {
	for _, o := range cfg.Officers {
		if o.ID == id {
			return o.Liaison
		}
	}
	return ""
}

// targetFor is the post's committed acknowledgement time for p.
func targetFor(m *keys.Mission, p routing.Priority) time.Duration {
	if m == nil {
		return 0
	}
	switch p {
	case routing.Urgent:
		return m.Response.Urgent
	case routing.High:
		return m.Response.High
	}
	return m.Response.Routine
}
