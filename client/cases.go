package client

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

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
	Thread   []Entry          `json:"thread"`
}

// An Entry is one message in a case.
type Entry struct {
	At     time.Time    `json:"at"`
	From   string       `json:"from"` // "you", or the sender's directory id
	Kind   message.Kind `json:"kind"`
	Text   string       `json:"text"`
	ID     routing.ID   `json:"id"`
	Queued bool         `json:"queued,omitempty"`
}

const casesLog = "cases.log"

// MaxCases bounds the cases kept on the device; the oldest go first when
// the log is compacted. A defender's device may be seized: it should not
// hold years of history.
const MaxCases = 500

// caseRecord is one change to the cases: a new case, an entry added to
// one, or a queued message delivered.
type caseRecord struct {
	Case  *Case       `json:"case,omitempty"`
	Ref   routing.ID  `json:"ref,omitzero"`
	Entry *Entry      `json:"entry,omitempty"`
	Sent  *routing.ID `json:"sent,omitempty"`
}

// cases is the in-memory view of cases.log.
type cases struct {
	list []*Case
	byID map[routing.ID]*Case
}

func (cs *cases) apply(r *caseRecord) {
	switch {
	case r.Case != nil:
		if _, dup := cs.byID[r.Case.ID]; !dup {
			cs.list = append(cs.list, r.Case)
			cs.byID[r.Case.ID] = r.Case
		}
	case r.Entry != nil:
		k, ok := cs.byID[r.Ref]
		if !ok {
			// A message about a case this device no longer holds (or
			// never sent): keep it in a case of its own.
			k = &Case{ID: r.Ref, Title: "(case not on this device)", Opened: r.Entry.At}
			cs.list = append(cs.list, k)
			cs.byID[r.Ref] = k
		}
		k.Thread = append(k.Thread, *r.Entry)
	case r.Sent != nil:
		for _, k := range cs.list {
			for i := range k.Thread {
				if k.Thread[i].ID == *r.Sent {
					k.Thread[i].Queued = false
				}
			}
		}
	}
}

// loadCases replays the log, and compacts it when it holds more than
// MaxCases cases or many small records.
func (c *Client) loadCases() error {
	recs, err := c.store.readLog(casesLog)
	if err != nil {
		return err
	}
	cs := &cases{byID: map[routing.ID]*Case{}}
	for _, b := range recs {
		var r caseRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("cases: %w", err)
		}
		cs.apply(&r)
	}
	c.cases = cs
	if len(cs.list) > MaxCases || len(recs) > 4*len(cs.list)+64 {
		return c.compactCases()
	}
	return nil
}

func (c *Client) compactCases() error {
	cs := c.cases
	sort.SliceStable(cs.list, func(i, j int) bool { return cs.list[i].Opened.Before(cs.list[j].Opened) })
	if n := len(cs.list); n > MaxCases {
		for _, k := range cs.list[:n-MaxCases] {
			delete(cs.byID, k.ID)
		}
		cs.list = cs.list[n-MaxCases:]
	}
	recs := make([][]byte, len(cs.list))
	for i, k := range cs.list {
		recs[i], _ = json.Marshal(&caseRecord{Case: k})
	}
	return c.store.rewriteLog(casesLog, recs)
}

// record appends records to the log in one write and applies them. With
// durable the write is fsynced (without the cases lock held): received
// messages are, before they are marked seen and acknowledged, so none is
// lost to a power cut. What the device itself sent is not: the relay has
// it, and losing the local line of it to a power cut costs a display.
func (c *Client) record(durable bool, rs ...*caseRecord) {
	bs := make([][]byte, 0, len(rs))
	for _, r := range rs {
		b, err := json.Marshal(r)
		if err != nil {
			c.log.Warn("recording a case", "err", err)
			return
		}
		bs = append(bs, b)
	}
	if err := c.store.appendLog(casesLog, durable, bs...); err != nil {
		c.log.Warn("recording a case", "err", err)
		return
	}
	c.casesMu.Lock()
	defer c.casesMu.Unlock()
	for _, r := range rs {
		c.cases.apply(r)
	}
}

// Cases returns the case threads, most recent first. The returned cases
// are copies.
func (c *Client) Cases() ([]*Case, error) {
	c.casesMu.Lock()
	defer c.casesMu.Unlock()
	out := make([]*Case, len(c.cases.list))
	for i, k := range c.cases.list {
		cp := *k
		cp.Thread = append([]Entry(nil), k.Thread...)
		out[i] = &cp
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Opened.After(out[j].Opened) })
	return out, nil
}

func (c *Client) caseFor(ref routing.ID) (*Case, error) {
	c.casesMu.Lock()
	defer c.casesMu.Unlock()
	k, ok := c.cases.byID[ref]
	if !ok {
		return nil, fmt.Errorf("no case %s on this device (beacon inbox lists them)", ref)
	}
	cp := *k
	return &cp, nil
}

func (c *Client) recordSent(s *Sent, m message.Message, cc string, p routing.Priority, title string) {
	now := c.now()
	c.record(false, &caseRecord{Case: &Case{ID: s.ID, Kind: m.Kind(), Country: cc, Priority: p, Title: title, Opened: now,
		Missions: s.Missions, Thread: []Entry{{At: now, From: "you", Kind: m.Kind(), Text: title, ID: s.ID, Queued: s.Queued}}}})
}

func (c *Client) appendEntry(ref routing.ID, e Entry) {
	c.record(false, &caseRecord{Ref: ref, Entry: &e})
}

// markSentInCases clears the queued flag of the entry for a message the
// outbox delivered.
func (c *Client) markSentInCases(id routing.ID) {
	c.record(false, &caseRecord{Sent: &id})
}
