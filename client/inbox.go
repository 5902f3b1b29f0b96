package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// Received is a message opened, authenticated and decoded.
type Received struct {
	ID     routing.ID
	Header envelope.Header
	// Sender is the authenticated author. For a defender's message it is
	// the defender's identity, known only to the recipients.
	Sender *keys.PublicIdentity
	// From is the sender's directory id, or "" for a defender.
	From string
	// FromRole is the sender's role: defender unless the directory says
	// otherwise.
	FromRole keys.Role
	Auth     envelope.Auth
	Message  message.Message
	// Case is the id of the case the message belongs to: its own id for
	// an alert or request, the id it refers to otherwise.
	Case routing.ID
}

// Reasons a fetched envelope is dropped, for the log (never with content).
var (
	errReplay     = errors.New("already delivered")
	errTooOld     = errors.New("created before the seen-set's memory")
	errUnverified = errors.New("not signed by an institution in the directory")
)

// FetchOptions bound one fetch.
type FetchOptions struct {
	// Max is the most messages to return (default 256).
	Max int
	// Wait is how long to wait for the first message; 0 returns what is
	// there now.
	Wait time.Duration
}

func (o FetchOptions) max() int {
	if o.Max <= 0 {
		return 256
	}
	return o.Max
}

// Inbox fetches what has arrived in the client's mailbox: acks, replies,
// receipts. Each message is opened, checked (only institutions in the
// directory may write to a mailbox, and only with a signature), dropped if
// already delivered, recorded in its case, and only then acknowledged to
// the relay, so a crash in between delivers it again instead of losing it.
func (c *Client) Inbox(ctx context.Context, o FetchOptions) ([]*Received, error) {
	return c.fetch(ctx, proto.SvcFetchMbox, o, true)
}

// fetched is one message as the relay's fetch service hands it over.
type fetched struct {
	data    []byte
	ack     string
	subject string
}

// fetchRaw asks the relay's fetch service for up to o.Max messages from
// target and collects them until the batch's end marker.
func (c *Client) fetchRaw(ctx context.Context, target string, o FetchOptions) ([]fetched, error) {
	if err := c.WaitConnected(ctx); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(proto.FetchRequest{Max: min(o.max(), proto.MaxFetch), WaitMS: int(min(o.Wait, proto.MaxFetchWait*time.Millisecond) / time.Millisecond)})
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(2*proto.MaxFetch, 256<<20)
	if err := c.nc.PublishRequest(proto.Ingest(c.mbox.String(), target), inbox, body); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Wait+10*time.Second)
	defer cancel()
	var out []fetched
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		switch {
		case m.Header.Get(proto.HeaderEnd) != "":
			return out, nil
		case m.Header.Get(proto.HeaderSubject) != "":
			out = append(out, fetched{data: m.Data, ack: m.Header.Get(proto.HeaderAck), subject: m.Header.Get(proto.HeaderSubject)})
		default:
			return nil, svcError(m.Data)
		}
	}
}

// svcError decodes a service refusal.
func svcError(b []byte) error {
	var r proto.SvcReply
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("relay reply: %w", err)
	}
	if r.Error != nil {
		return r.Error
	}
	return errors.New("relay reply: unexpected")
}

// svcRequest sends a service request and decodes a proto.SvcReply.
func (c *Client) svcRequest(ctx context.Context, target string, body []byte) (*proto.SvcReply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	m, err := c.nc.RequestWithContext(ctx, proto.Ingest(c.mbox.String(), target), body)
	if err != nil {
		return nil, err
	}
	var r proto.SvcReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, fmt.Errorf("relay reply: %w", err)
	}
	if r.Error != nil {
		return nil, r.Error
	}
	return &r, nil
}

// fetch pulls one batch from target and processes it.
func (c *Client) fetch(ctx context.Context, target string, o FetchOptions, record bool) ([]*Received, error) {
	msgs, err := c.fetchRaw(ctx, target, o)
	if err != nil {
		return nil, err
	}
	return c.process(ctx, msgs, record)
}

// process opens a batch, records what is new, persists the seen-set and
// then acknowledges every message (delivered or dropped) to the relay.
func (c *Client) process(ctx context.Context, msgs []fetched, record bool) ([]*Received, error) {
	// Opening is the costly step (a KEM decapsulation per stanza tried):
	// spread a batch over the cores, then dedupe in order.
	opened := make([]*Received, len(msgs))
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range min(len(msgs), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(msgs); i = int(next.Add(1) - 1) {
				opened[i], errs[i] = c.open(msgs[i].data)
			}
		})
	}
	wg.Wait()
	var out []*Received
	var ids []routing.ID
	batchSeen := map[routing.ID]bool{}
	for i, m := range msgs {
		r, err := opened[i], errs[i]
		if err == nil && batchSeen[r.ID] {
			err = errReplay
		}
		if err != nil {
			c.log.Info("dropped a message", "subject_kind", subjectKind(m.subject), "reason", err)
			continue
		}
		batchSeen[r.ID] = true
		out = append(out, r)
		ids = append(ids, r.ID)
	}
	if record && c.role == keys.RoleDefender && len(out) > 0 {
		rs := make([]*caseRecord, len(out))
		for i, r := range out {
			rs[i] = &caseRecord{Ref: r.Case, Entry: &Entry{At: r.Header.Created, From: r.From, Kind: r.Message.Kind(), Text: Summarize(r.Message), ID: r.ID}}
		}
		c.record(true, rs...)
	}
	if err := c.store.markSeen(ids); err != nil {
		return nil, err // not acknowledged: the relay delivers them again
	}
	var toks []string
	for _, m := range msgs {
		if m.ack != "" {
			toks = append(toks, m.ack)
		}
	}
	if len(toks) > 0 {
		// A lost ack only means a redelivery, which the seen-set drops.
		if _, err := c.svcRequest(ctx, proto.SvcAck, []byte(strings.Join(toks, "\n"))); err != nil {
			c.log.Info("acknowledging to the relay", "err", err)
		}
	}
	return out, nil
}

// subjectKind is the second token of a subject ("to", "mbox"): enough to
// tell log lines apart without naming a mailbox or country.
func subjectKind(s string) string {
	for i := 4; i < len(s); i++ {
		if s[i] == '.' {
			return s[4:i]
		}
	}
	return ""
}

// open opens one envelope addressed to this client and checks it.
func (c *Client) open(data []byte) (*Received, error) {
	var inboxes []*keys.InboxKey
	if c.cfg.Keyring != nil {
		inboxes = c.cfg.Keyring.InboxKeys()
	}
	o, err := envelope.Open(data, c.id, inboxes...)
	if err != nil {
		return nil, err
	}
	if o.Header.Created.Before(c.now().Add(-seenRetention)) {
		return nil, errTooOld
	}
	if c.store.hasSeen(o.Header.ID) {
		return nil, errReplay
	}
	r := &Received{ID: o.Header.ID, Header: o.Header, Sender: o.Sender, Auth: o.Auth, FromRole: keys.RoleDefender, Case: o.Header.ID}
	if d, err := c.Directory(); err == nil {
		r.From, r.FromRole = lookup(d, o.Sender)
	}
	// Institutions sign; a defender's writing is deniable. A mailbox only
	// takes what an institution in the directory signed, so a stranger
	// cannot pose as a mission to a defender.
	if c.role == keys.RoleDefender && (o.Auth != envelope.Signed || r.From == "") {
		return nil, errUnverified
	}
	if r.FromRole != keys.RoleDefender && o.Auth != envelope.Signed {
		return nil, errUnverified
	}
	if r.Message, err = message.Unmarshal(o.Body); err != nil {
		return nil, err
	}
	if ref, ok := refOf(r.Message); ok {
		r.Case = ref
	}
	return r, nil
}

// lookup finds an identity in the directory.
func lookup(d *keys.Directory, id *keys.PublicIdentity) (string, keys.Role) {
	for _, m := range d.Missions {
		if m.Identity.Equal(id) {
			return m.ID, keys.RoleMission
		}
	}
	for _, p := range d.Partners {
		if p.Identity.Equal(id) {
			return p.ID, keys.RolePartner
		}
	}
	for _, b := range d.Bridges {
		if b.Identity.Equal(id) {
			return b.ID, keys.RoleBridge
		}
	}
	return "", keys.RoleDefender
}

// refOf returns the case a message refers to.
func refOf(m message.Message) (routing.ID, bool) {
	switch m := m.(type) {
	case *message.Update:
		return routing.ID(m.Ref), true
	case *message.Cancel:
		return routing.ID(m.Ref), true
	case *message.Ack:
		return routing.ID(m.Ref), true
	case *message.Reply:
		return routing.ID(m.Ref), true
	case *message.Receipt:
		return routing.ID(m.Ref), true
	}
	return routing.ID{}, false
}

// Summarize renders a message as one line, as a case thread shows it.
func Summarize(m message.Message) string {
	switch m := m.(type) {
	case *message.Alert:
		return fmt.Sprintf("[%s/%s] %s", m.Priority, m.Category, m.Summary)
	case *message.Update:
		return m.Text
	case *message.Cancel:
		return strings.TrimSpace(fmt.Sprintf("cancelled (%s) %s", m.Reason, m.Text))
	case *message.MeetingRequest:
		return "meeting request: " + m.Purpose
	case *message.ObservationRequest:
		return fmt.Sprintf("trial observation: %s, %s", m.Court, m.Case)
	case *message.Ack:
		s := "acknowledged by " + m.By
		if m.NextStep != "" {
			s += "; next: " + m.NextStep
		}
		return s
	case *message.Reply:
		return m.Text
	case *message.Receipt:
		return fmt.Sprintf("stored at partner %s at %s", m.Partner, m.StoredAt.Format(time.RFC3339))
	case *message.Broadcast:
		return m.Title
	}
	return string(m.Kind())
}
