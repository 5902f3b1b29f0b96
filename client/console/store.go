package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/internal/state"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// The store's log holds three kinds of record, one JSON object each:
// a message received (kept whole, as its canonical body, so the case view
// can always be rebuilt), an officer's action, and a broadcast sent. The
// cases are the log replayed; nothing else is written.
type record struct {
	Msg   *msgRecord   `json:"msg,omitempty"`
	Act   *actRecord   `json:"act,omitempty"`
	Bcast *bcastRecord `json:"bcast,omitempty"`
}

// msgRecord is one received message.
type msgRecord struct {
	ID       routing.ID           `json:"id"`
	Case     routing.ID           `json:"case"`
	Created  time.Time            `json:"created"`
	Received time.Time            `json:"received"`
	Country  string               `json:"cc"`
	Priority routing.Priority     `json:"p"`
	ReplyTo  routing.Mailbox      `json:"reply_to,omitzero"`
	Sender   *keys.PublicIdentity `json:"sender"`
	From     string               `json:"from,omitempty"` // directory id, "" for a defender
	Body     []byte               `json:"body"`
	// Flags mark a case that did not come the usual way: "escalated",
	// "check-in" (a released check-in plan), "drill".
	Flags []string `json:"flags,omitempty"`
	// Bridge, at a partner government's console, is the bridge that
	// delivered it: answers go back through it.
	Bridge string `json:"bridge,omitempty"`
}

// key is the message's client.MessageKey: its sender and its id.
func (m *msgRecord) key() routing.ID {
	if m.Sender == nil {
		return m.ID
	}
	return client.MessageKey(m.Sender, m.ID)
}

// actRecord is one thing an officer did on a case.
type actRecord struct {
	ID      routing.ID `json:"id"` // the action's own id: applied once
	Case    routing.ID `json:"case"`
	At      time.Time  `json:"at"`
	Officer string     `json:"officer"`
	Type    ActionType `json:"type"`
	// Body is the message sent (canonical), if the action sent one; Sent
	// its message id and Queued whether it waits in the outbox.
	Body   []byte     `json:"body,omitempty"`
	Sent   routing.ID `json:"sent,omitzero"`
	Queued bool       `json:"queued,omitempty"`
	// Text is an internal note, or the new state's reason.
	Text     string       `json:"text,omitempty"`
	Assignee string       `json:"assignee,omitempty"`
	Tokens   []routing.ID `json:"tokens,omitempty"` // ack tokens sent to the relay
	To       []string     `json:"to,omitempty"`     // who received it (partners, peers, headquarters)
}

// bcastRecord is a broadcast the mission published.
type bcastRecord struct {
	ID      routing.ID `json:"id"`
	At      time.Time  `json:"at"`
	Officer string     `json:"officer"`
	Body    []byte     `json:"body"`
}

// ActionType names what an officer did.
type ActionType string

// Actions.
const (
	ActAck      ActionType = "ack"
	ActReply    ActionType = "reply"
	ActAssign   ActionType = "assign"
	ActNote     ActionType = "note"
	ActMeeting  ActionType = "meeting"
	ActObserve  ActionType = "observe"
	ActShare    ActionType = "share"
	ActReport   ActionType = "report"
	ActResolve  ActionType = "resolve"
	ActReopen   ActionType = "reopen"
	ActRead     ActionType = "read"
	ActProgress ActionType = "progress"
)

// ErrNoCase means no case has that id.
var ErrNoCase = errors.New("no such case")

// A Store is the mission's cases on a sealed log in its own state
// directory. Several processes (the console, the terminal) may open one
// directory: every change runs inside state.Dir.Do after the log has
// caught up (Sync), so each sees the others' changes and none overwrites
// them. It is safe for concurrent use.
type Store struct {
	dir *state.Dir
	log *state.Log

	mu       sync.Mutex // guards the view; never held across Do
	view     *view
	onChange func([]routing.ID)
	changed  chan struct{} // closed and replaced on every change
}

// OpenStore opens (creating) the store in path, sealed under key.
func OpenStore(path string, key []byte) (*Store, error) {
	d, err := state.Open(path, key)
	if err != nil {
		return nil, err
	}
	l, err := d.Log("cases")
	if err != nil {
		d.Close()
		return nil, err
	}
	s := &Store{dir: d, log: l, view: newView(), changed: make(chan struct{})}
	if err := s.Refresh(); err != nil {
		d.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.dir.Close() }

// OnChange sets a function called with the ids of the cases that changed,
// after each change this process made or saw (outside any lock).
func (s *Store) OnChange(f func([]routing.ID)) {
	s.mu.Lock()
	s.onChange = f
	s.mu.Unlock()
}

// sync catches up with the log; the caller holds the directory.
func (s *Store) sync(changed map[routing.ID]bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Sync(func() {
		s.view = newView()
		changed[routing.ID{}] = true // everything
	}, func(b []byte) error {
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil // damaged or from a newer version: skip it
		}
		for _, id := range s.view.apply(&r) {
			changed[id] = true
		}
		return nil
	})
}

// Refresh catches up with what other processes wrote.
func (s *Store) Refresh() error {
	changed := map[routing.ID]bool{}
	err := s.dir.Do(func() error { return s.sync(changed) })
	s.notify(changed)
	return err
}

// Changed returns a channel closed at the next change.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) notify(changed map[routing.ID]bool) {
	if len(changed) == 0 {
		return
	}
	s.mu.Lock()
	f := s.onChange
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if f == nil {
		return
	}
	ids := make([]routing.ID, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	f(ids)
}

// appendRecord writes r durably once the log has caught up, unless skip
// says, on the caught-up view, that it is already there.
func (s *Store) appendRecord(r *record, skip func(*view) bool) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if len(b) > state.MaxRecord {
		return fmt.Errorf("console: a %d-byte record", len(b))
	}
	changed := map[routing.ID]bool{}
	err = s.dir.Do(func() error {
		if err := s.sync(changed); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if skip != nil && skip(s.view) {
			return nil
		}
		if err := s.log.Append(true, b); err != nil {
			return err
		}
		for _, id := range s.view.apply(r) {
			changed[id] = true
		}
		return nil
	})
	s.notify(changed)
	return err
}

// Keep is the console's client.Handler: it files r in its case, durably
// (fsynced), and keeping the same message twice files it once. Only once
// it returned nil does the client add r to the seen-set and settle it with
// the relay, so nothing is acknowledged to the relay before the store has
// it.
//
// flags mark a case that came another way ("escalated", "check-in",
// "drill"): the escalation and check-in paths pass them, through
// [Office.Flag].
func (s *Store) Keep(r *client.Received, flags ...string) error {
	body, err := message.Marshal(r.Message)
	if err != nil {
		return err
	}
	m := &msgRecord{ID: r.ID, Case: r.Case, Created: r.Header.Created, Received: time.Now(), Country: r.Header.Country,
		Priority: r.Header.Priority, ReplyTo: r.Header.ReplyTo, Sender: r.Sender, From: r.From, Body: body, Flags: flags,
		Bridge: r.Bridge}
	return s.appendRecord(&record{Msg: m}, func(v *view) bool { return v.msgs[m.key()] })
}

// act records an action.
func (s *Store) act(a *actRecord) error {
	if a.ID.IsZero() {
		a.ID = routing.NewID()
	}
	return s.appendRecord(&record{Act: a}, func(v *view) bool { return v.acts[a.ID] })
}

func (s *Store) broadcast(b *bcastRecord) error {
	return s.appendRecord(&record{Bcast: b}, func(v *view) bool { return v.bcastSeen[b.ID] })
}

// Cases returns copies of every case, as of the last refresh.
func (s *Store) Cases() []*Case {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Case, 0, len(s.view.order))
	for _, id := range s.view.order {
		out = append(out, s.view.cases[id].clone())
	}
	return out
}

// Case returns a copy of one case.
func (s *Store) Case(id routing.ID) (*Case, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.view.cases[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoCase, id)
	}
	if k.SafetyNumber == "" && k.sender != nil {
		k.SafetyNumber = k.sender.SafetyNumber()
	}
	return k.clone(), nil
}

// peek returns a copy of one case without working out the defender's
// safety number: for the list and the pushes, which do not show it.
func (s *Store) peek(id routing.ID) (*Case, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.view.cases[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoCase, id)
	}
	return k.clone(), nil
}

// Broadcasts returns the broadcasts sent, oldest first.
func (s *Store) Broadcasts() []Broadcast {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Broadcast(nil), s.view.bcasts...)
}

// Len is how many cases the store holds.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.view.order)
}

func jsonRecord(r *record) ([]byte, error) { return json.Marshal(r) }
