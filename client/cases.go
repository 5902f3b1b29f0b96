package client

import (
	"fmt"
	"sort"
	"time"

	"beacon/envelope"
	"beacon/message"
)

// A Case is a thread: an alert or request a defender sent, and everything
// said about it since, in order.
type Case struct {
	ID       envelope.ID       `json:"id"`
	Kind     message.Kind      `json:"kind"`
	Country  string            `json:"country"`
	Priority envelope.Priority `json:"priority"`
	Title    string            `json:"title"`
	Opened   time.Time         `json:"opened"`
	Missions []string          `json:"missions"`
	Thread   []Entry           `json:"thread"`
}

// An Entry is one message in a case.
type Entry struct {
	At     time.Time    `json:"at"`
	From   string       `json:"from"` // "you", or the sender's directory id
	Kind   message.Kind `json:"kind"`
	Text   string       `json:"text"`
	ID     envelope.ID  `json:"id"`
	Queued bool         `json:"queued,omitempty"`
}

const casesFile = "cases.json.enc"

// MaxCases bounds the cases kept on the device; the oldest go first. A
// defender's device may be seized: it should not hold years of history.
const MaxCases = 500

// Cases returns the case threads, most recent first.
func (c *Client) Cases() ([]*Case, error) {
	c.casesMu.Lock()
	defer c.casesMu.Unlock()
	cs, err := c.loadCases()
	if err != nil {
		return nil, err
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Opened.After(cs[j].Opened) })
	return cs, nil
}

func (c *Client) loadCases() ([]*Case, error) {
	var cs []*Case
	if err := c.store.getJSON(casesFile, &cs); err != nil {
		return nil, err
	}
	return cs, nil
}

// updateCases applies f to the cases and saves them.
func (c *Client) updateCases(f func([]*Case) []*Case) error {
	c.casesMu.Lock()
	defer c.casesMu.Unlock()
	cs, err := c.loadCases()
	if err != nil {
		return err
	}
	cs = f(cs)
	if len(cs) > MaxCases {
		sort.Slice(cs, func(i, j int) bool { return cs[i].Opened.After(cs[j].Opened) })
		cs = cs[:MaxCases]
	}
	return c.store.putJSON(casesFile, cs)
}

func (c *Client) caseFor(ref envelope.ID) (*Case, error) {
	cs, err := c.Cases()
	if err != nil {
		return nil, err
	}
	for _, k := range cs {
		if k.ID == ref {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no case %s on this device (beacon inbox lists them)", ref)
}

func (c *Client) recordSent(s *Sent, m message.Message, cc string, p envelope.Priority, title string) {
	err := c.updateCases(func(cs []*Case) []*Case {
		return append(cs, &Case{ID: s.ID, Kind: m.Kind(), Country: cc, Priority: p, Title: title, Opened: c.now(),
			Missions: s.Missions, Thread: []Entry{{At: c.now(), From: "you", Kind: m.Kind(), Text: title, ID: s.ID, Queued: s.Queued}}})
	})
	if err != nil {
		c.log.Warn("recording the case", "err", err)
	}
}

func (c *Client) appendEntry(ref envelope.ID, e Entry) {
	err := c.updateCases(func(cs []*Case) []*Case {
		for _, k := range cs {
			if k.ID == ref {
				k.Thread = append(k.Thread, e)
				return cs
			}
		}
		// A reply about a case this device no longer holds (or never
		// sent): keep it in a case of its own.
		return append(cs, &Case{ID: ref, Title: "(case not on this device)", Opened: e.At, Thread: []Entry{e}})
	})
	if err != nil {
		c.log.Warn("recording a message", "err", err)
	}
}

// markSentInCases clears the queued flag of the entry for a message the
// outbox delivered.
func (c *Client) markSentInCases(id envelope.ID) {
	c.updateCases(func(cs []*Case) []*Case {
		for _, k := range cs {
			for i := range k.Thread {
				if k.Thread[i].ID == id {
					k.Thread[i].Queued = false
				}
			}
		}
		return cs
	})
}
