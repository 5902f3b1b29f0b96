package client

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hrdbeacon/beacon/internal/state"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// A Case is a thread: an alert or request a defender sent, and everything
// said about it since, in order.
type Case struct {
	ID       routing.ID       `json:"id"`
	Kind     message.Kind     `json:"kind"`
	Country  string           `json:"country"`
	Priority routing.Priority `json:"priority"`
	Title    string           `json:"title"`
	Opened   time.Time        `json:"opened"`
	Missions []string         `json:"missions"`
	// Partners are the partner governments a copy was sealed to, with
	// the defender's consent; [Client.RollUp] says which have it.
	Partners []string `json:"partners,omitempty"`
	Thread   []Entry  `json:"thread"`
}

// An Entry is one message in a case.
type Entry struct {
	At     time.Time    `json:"at"`
	From   string       `json:"from"` // "you", or the sender's directory id
	Kind   message.Kind `json:"kind"`
	Text   string       `json:"text"`
	ID     routing.ID   `json:"id"`
	Queued bool         `json:"queued,omitempty"`
	// Refused is the relay's reason for refusing a message this device
	// sent; it will not be sent again.
	Refused string `json:"refused,omitempty"`
	// Meeting is what a meeting response said; Liaison the officer a
	// liaison message named. Case.Meetings and Case.Liaisons read them.
	Meeting *MeetingInfo `json:"meeting,omitempty"`
	Liaison string       `json:"liaison,omitempty"`
	// Partner is, for a bridge's receipt, the partner whose relay stored
	// the alert.
	Partner string `json:"partner,omitempty"`
	// Acts is, for an ack, who acts, as the acknowledging institution
	// said.
	Acts string `json:"acts,omitempty"`
}

// Acknowledged returns the directory ids of the institutions whose
// signed acknowledgement of the case is in its thread, each once, in the
// order they came. Until one is, nobody has said they read it: that the
// relay stored a message means only that it can be fetched.
func (k *Case) Acknowledged() []string {
	var out []string
	for _, e := range k.Thread {
		if e.Kind == message.KindAck && e.From != "you" && e.From != "" && !slices.Contains(out, e.From) {
			out = append(out, e.From)
		}
	}
	return out
}

// MaxCases bounds the cases kept on the device; the oldest go first when
// the log is compacted. A defender's device may be seized: it should not
// hold years of history.
const MaxCases = 500

// caseRecord is one change to the cases: a new case, an entry added to
// one, or a queued message delivered or refused.
type caseRecord struct {
	Case  *Case       `json:"case,omitempty"`
	Ref   routing.ID  `json:"ref,omitzero"`
	Entry *Entry      `json:"entry,omitempty"`
	Sent  *routing.ID `json:"sent,omitempty"`
	// Missions, with Sent, are those a message queued without a
	// directory was sealed to when it left.
	Missions []string    `json:"missions,omitempty"`
	Refused  *refusedRec `json:"refused,omitempty"`
}

type refusedRec struct {
	ID     routing.ID `json:"id"`
	Reason string     `json:"reason"`
}

// caseLog is the defender's case threads on a sealed log, with the
// in-memory view of it. Its methods run inside state.Dir.Do.
type caseLog struct {
	log *state.Log

	mu      sync.Mutex // guards the view, which Cases reads outside Do
	list    []*Case
	byID    map[routing.ID]*Case
	entries map[entryKey]bool // every entry, to keep each once
	records int
}

// entryKey names an entry by who wrote it and its id: an id is in the
// clear, and one institution reusing another's must not hide the other's
// entry.
type entryKey struct {
	from string
	id   routing.ID
}

func openCaseLog(d *state.Dir) (*caseLog, error) {
	l, err := d.Log("cases")
	if err != nil {
		return nil, err
	}
	return &caseLog{log: l}, nil
}

// sync catches up with the log, and compacts it when it holds more than
// MaxCases cases or many small records.
func (cl *caseLog) sync() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	err := cl.log.Sync(func() {
		cl.list, cl.byID, cl.entries, cl.records = nil, map[routing.ID]*Case{}, map[entryKey]bool{}, 0
	}, func(b []byte) error {
		cl.records++
		var r caseRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil // a record of a newer version, or damaged: skip it
		}
		cl.apply(&r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("cases: %w", err)
	}
	if len(cl.list) > MaxCases || cl.records > 4*len(cl.list)+64 {
		return cl.compact()
	}
	return nil
}

func (cl *caseLog) apply(r *caseRecord) {
	switch {
	case r.Case != nil:
		if _, dup := cl.byID[r.Case.ID]; !dup {
			cl.list = append(cl.list, r.Case)
			cl.byID[r.Case.ID] = r.Case
			for _, e := range r.Case.Thread {
				cl.entries[entryKey{e.From, e.ID}] = true
			}
		}
	case r.Entry != nil:
		if cl.entries[entryKey{r.Entry.From, r.Entry.ID}] {
			return // kept twice (a redelivery after a crash): shown once
		}
		cl.entries[entryKey{r.Entry.From, r.Entry.ID}] = true
		k, ok := cl.byID[r.Ref]
		if !ok {
			// A message about a case this device no longer holds (or
			// never sent): keep it in a case of its own.
			k = &Case{ID: r.Ref, Title: "(case not on this device)", Opened: r.Entry.At}
			cl.list = append(cl.list, k)
			cl.byID[r.Ref] = k
		}
		k.Thread = append(k.Thread, *r.Entry)
	case r.Sent != nil:
		cl.forEntry(*r.Sent, func(e *Entry) { e.Queued = false })
		if k, ok := cl.byID[*r.Sent]; ok && len(k.Missions) == 0 {
			k.Missions = r.Missions
		}
	case r.Refused != nil:
		cl.forEntry(r.Refused.ID, func(e *Entry) { e.Queued, e.Refused = false, r.Refused.Reason })
	}
}

func (cl *caseLog) forEntry(id routing.ID, f func(*Entry)) {
	for _, k := range cl.list {
		for i := range k.Thread {
			if k.Thread[i].ID == id {
				f(&k.Thread[i])
			}
		}
	}
}

func (cl *caseLog) compact() error {
	sort.SliceStable(cl.list, func(i, j int) bool { return cl.list[i].Opened.Before(cl.list[j].Opened) })
	if n := len(cl.list); n > MaxCases {
		for _, k := range cl.list[:n-MaxCases] {
			delete(cl.byID, k.ID)
		}
		cl.list = cl.list[n-MaxCases:]
	}
	recs := make([][]byte, len(cl.list))
	for i, k := range cl.list {
		recs[i], _ = json.Marshal(&caseRecord{Case: k})
	}
	if err := cl.log.Rewrite(recs); err != nil {
		return fmt.Errorf("cases: compacting: %w", err)
	}
	cl.records = len(recs)
	return nil
}

// append writes records (durably if asked) and applies them. The caller
// holds the state directory.
func (cl *caseLog) append(durable bool, rs ...*caseRecord) error {
	bs := make([][]byte, 0, len(rs))
	for _, r := range rs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		bs = append(bs, b)
	}
	if err := cl.sync(); err != nil {
		return err
	}
	if err := cl.log.Append(durable, bs...); err != nil {
		return fmt.Errorf("cases: %w", err)
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, r := range rs {
		cl.apply(r)
		cl.records++
	}
	return nil
}

// record appends records in one write. With durable the write is fsynced:
// received messages are, before they are marked seen and settled, so none
// is lost to a power cut. What the device itself sent is not: the relay
// has it, and losing the local line of it to a power cut costs a display.
func (c *Client) record(durable bool, rs ...*caseRecord) error {
	return c.st.Do(func() error { return c.cases.append(durable, rs...) })
}

// recordReceived keeps a received message in its case, durably. Keeping
// the same message twice records it once.
func (c *Client) recordReceived(r *Received) error {
	e := &Entry{At: r.Header.Created, From: r.From, Kind: r.Message.Kind(), Text: Summarize(r.Message), ID: r.ID}
	annotate(e, r.Message)
	annotateBridge(e, r.Message)
	return c.record(true, &caseRecord{Ref: r.Case, Entry: e})
}

// recordOrLog records what this device did; a failure is logged, not
// returned: the message itself has been handled (sent or queued).
func (c *Client) recordOrLog(rs ...*caseRecord) {
	if err := c.record(false, rs...); err != nil {
		c.log.Warn("recording a case", "err", err)
	}
}

// Cases returns the case threads, most recent first, as this and any
// other process using the same state directory left them. The returned
// cases are copies.
func (c *Client) Cases() ([]*Case, error) {
	if err := c.st.Do(c.cases.sync); err != nil {
		return nil, err
	}
	cl := c.cases
	cl.mu.Lock()
	defer cl.mu.Unlock()
	out := make([]*Case, len(cl.list))
	for i, k := range cl.list {
		cp := *k
		cp.Thread = append([]Entry(nil), k.Thread...)
		out[i] = &cp
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Opened.After(out[j].Opened) })
	return out, nil
}

func (c *Client) caseFor(ref routing.ID) (*Case, error) {
	if err := c.st.Do(c.cases.sync); err != nil {
		return nil, err
	}
	cl := c.cases
	cl.mu.Lock()
	defer cl.mu.Unlock()
	k, ok := cl.byID[ref]
	if !ok {
		return nil, fmt.Errorf("no case %s on this device (beacon inbox lists them)", ref)
	}
	cp := *k
	return &cp, nil
}

func (c *Client) recordSent(s *Sent, m message.Message, cc string, p routing.Priority, title string) {
	now := c.clock.Now()
	c.recordOrLog(&caseRecord{Case: &Case{ID: s.ID, Kind: m.Kind(), Country: cc, Priority: p, Title: title, Opened: now,
		Missions: s.Missions, Partners: s.Partners, Thread: []Entry{{At: now, From: "you", Kind: m.Kind(), Text: title, ID: s.ID, Queued: s.Queued}}}})
}

func (c *Client) appendEntry(ref routing.ID, e Entry) {
	c.recordOrLog(&caseRecord{Ref: ref, Entry: &e})
}
