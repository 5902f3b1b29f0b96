package client

import (
	"fmt"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// MeetingInfo is what one meeting response said.
type MeetingInfo struct {
	Action message.MeetingAction `json:"action"`
	Times  []time.Time           `json:"times,omitempty"`
}

// A MeetingStatus is where a meeting stands with one mission: the last
// thing that mission said about it.
type MeetingStatus struct {
	Mission string
	// State is "accepted", "proposed", "confirmed" or "cancelled".
	State string
	// Times is the agreed time (accepted, confirmed) or the times the
	// mission proposes.
	Times []time.Time
	At    time.Time
}

var meetingStates = map[message.MeetingAction]string{message.MeetingAccept: "accepted", message.MeetingPropose: "proposed",
	message.MeetingConfirm: "confirmed", message.MeetingCancel: "cancelled"}

// MeetingStateName names the state a meeting action leaves the meeting
// in: "accepted", "proposed", "confirmed" or "cancelled".
func MeetingStateName(a message.MeetingAction) string { return meetingStates[a] }

// Meetings is where the case's meeting stands with each mission that
// answered it, in the order they first answered.
func (k *Case) Meetings() []MeetingStatus {
	var out []MeetingStatus
	idx := map[string]int{}
	for _, e := range k.Thread {
		if e.Meeting == nil {
			continue
		}
		st := MeetingStatus{Mission: e.From, State: meetingStates[e.Meeting.Action], Times: e.Meeting.Times, At: e.At}
		if i, ok := idx[e.From]; ok {
			out[i] = st
		} else {
			idx[e.From] = len(out)
			out = append(out, st)
		}
	}
	return out
}

// A LiaisonOfficer is the officer a mission named as the defender's
// liaison on a case.
type LiaisonOfficer struct {
	Mission string
	Officer string
}

// Liaisons names, per mission, the last liaison officer it gave.
func (k *Case) Liaisons() []LiaisonOfficer {
	var out []LiaisonOfficer
	idx := map[string]int{}
	for _, e := range k.Thread {
		if e.Liaison == "" {
			continue
		}
		l := LiaisonOfficer{Mission: e.From, Officer: e.Liaison}
		if i, ok := idx[e.From]; ok {
			out[i] = l
		} else {
			idx[e.From] = len(out)
			out = append(out, l)
		}
	}
	return out
}

// annotate keeps in e what the case views need of m beyond its summary.
func annotate(e *Entry, m message.Message) {
	switch m := m.(type) {
	case *message.MeetingResponse:
		e.Meeting = &MeetingInfo{Action: m.Action, Times: m.Times}
	case *message.Liaison:
		e.Liaison = m.Officer
	}
}

// missionRef is the case a message of the console's kinds refers to. A
// broadcast answer opens a case of its own (each defender who answers is
// one), so it has none.
func missionRef(m message.Message) (routing.ID, bool) {
	switch m := m.(type) {
	case *message.MeetingResponse:
		return m.Ref, true
	case *message.Observation:
		return m.Ref, true
	case *message.Liaison:
		return m.Ref, true
	case *message.CaseReport:
		return m.Ref, true
	case *message.SharedAlert:
		return m.Ref, true
	}
	return routing.ID{}, false
}

func summarizeMission(m message.Message) (string, bool) {
	switch m := m.(type) {
	case *message.MeetingResponse:
		s := "meeting " + meetingStates[m.Action]
		var ts []string
		for _, t := range m.Times {
			ts = append(ts, t.UTC().Format("2006-01-02 15:04 UTC"))
		}
		if len(ts) > 0 {
			s += ": " + strings.Join(ts, ", ")
		}
		if m.Note != "" {
			s += " (" + m.Note + ")"
		}
		return s, true
	case *message.Observation:
		s := fmt.Sprintf("trial observation %s: %s, hearing %s", m.Status, m.Observer, m.Hearing.UTC().Format("2006-01-02 15:04 UTC"))
		if m.Text != "" {
			s += ": " + m.Text
		}
		return s, true
	case *message.Liaison:
		return "your liaison officer: " + m.Officer, true
	case *message.BroadcastAnswer:
		return fmt.Sprintf("%s: %s", m.Intent, m.Text), true
	case *message.CaseReport:
		return fmt.Sprintf("case report from %s [%s/%s, %s] %s", m.Mission, m.Country, m.Priority, m.Status, m.Title), true
	case *message.SharedAlert:
		return fmt.Sprintf("[%s/%s] %s (shared by %s)", m.Priority, m.Category, m.Summary, m.Mission), true
	}
	return "", false
}
