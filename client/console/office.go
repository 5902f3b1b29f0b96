package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// Errors the console and the terminal branch on.
var (
	// ErrUnknownOfficer means the officer is not in the console config.
	ErrUnknownOfficer = errors.New("no such officer in the console config")
	// ErrNotAnAlert means the action needs an alert (sharing).
	ErrNotAnAlert = errors.New("this case did not open with an alert")
	// ErrNotAMeeting and ErrNotAnObservation mean the case is not that
	// kind of request.
	ErrNotAMeeting      = errors.New("this case is not a meeting request")
	ErrNotAnObservation = errors.New("this case is not a trial-observation request")
	// ErrNotProposed means an accepted meeting time is not one the
	// defender proposed.
	ErrNotProposed = errors.New("the defender did not propose that time")
)

// An Office is what the console and the terminal both act through: the
// mission's store, its client (its keys and its one relay connection)
// and its config. Every action sends what it must, then records it in
// the store.
type Office struct {
	Store  *Store
	Client *client.Client
	Config *Config
	Clock  clockwork.Clock
	Log    *slog.Logger
	// Flag, if set, names how a received message came, for its case:
	// "escalated" (released to this post because others did not
	// acknowledge), "check-in" (a defender's missed check-in), "drill".
	// The escalation and check-in paths set it; nil flags nothing.
	Flag func(*client.Received) []string
	// Partner is set when the keys are a partner government's: the
	// console reads, on the partner's own relay, what bridges delivered
	// for its countries, and answers back through them. Config.Mission
	// is then the partner's id in that relay's directory.
	Partner bool
}

// Flags a case may carry.
const (
	FlagEscalated = "escalated"
	FlagCheckIn   = "check-in"
	FlagDrill     = "drill"
	// FlagIDReused marks a case opened by a message whose id another
	// sender's case already had: not the same defender, so not the same
	// case (see view.applyMsg).
	FlagIDReused = "id-reused-by-another-sender"
)

func (o *Office) now() time.Time {
	if o.Clock == nil {
		return time.Now()
	}
	return o.Clock.Now()
}

func (o *Office) logger() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Self is this mission's entry in the directory, or nil if the client has
// no directory yet.
func (o *Office) Self() *keys.Mission {
	d, err := o.Client.Directory()
	if err != nil {
		return nil
	}
	for i := range d.Missions {
		if d.Missions[i].ID == o.Config.Mission {
			return &d.Missions[i]
		}
	}
	return nil
}

// Due is when the post committed to acknowledge k: its opening time plus
// the directory's response target for its priority; zero if unknown.
func (o *Office) Due(k *Case) time.Time {
	t := targetFor(o.Self(), k.Priority)
	if t == 0 {
		return time.Time{}
	}
	return k.Opened.Add(t)
}

// Receive takes one batch of the mission's alerts (waiting up to wait for
// the first) into the store; KeepMailbox does the same for the mission's
// mailbox (other posts' notices).
func (o *Office) Receive(ctx context.Context, wait time.Duration) (client.Batch, error) {
	if o.Partner {
		return o.Client.ReceiveBridged(ctx, client.FetchOptions{Wait: wait}, o.keep)
	}
	return o.Client.ReceiveAlerts(ctx, client.FetchOptions{Wait: wait}, o.keep)
}

// ReceiveMailbox takes one batch of the mission's mailbox into the store.
func (o *Office) ReceiveMailbox(ctx context.Context, wait time.Duration) (client.Batch, error) {
	return o.Client.ReceiveMailbox(ctx, client.FetchOptions{Wait: wait}, o.keep)
}

// keep is the handler of the two-phase receive. A defender's follow-up
// filed in a case already acknowledged is covered by an ack token at
// once, so the relay's figures count it with its case (see package
// report).
func (o *Office) keep(ctx context.Context, r *client.Received) error {
	var flags []string
	if o.Flag != nil {
		flags = o.Flag(r)
	}
	if err := o.Store.Keep(r, flags...); err != nil {
		return err
	}
	if r.From != "" || r.Case == r.ID {
		return nil
	}
	k, err := o.Store.peek(r.Case)
	if err != nil || !k.acked || !slices.Contains(k.unacked, r.ID) {
		return nil
	}
	if err := o.Client.SendAckTokens(ctx, r.ID); err != nil {
		o.logger().Warn("ack token not sent", "err", err)
		return nil
	}
	if err := o.Store.act(&actRecord{Case: k.ID, At: o.now(), Officer: "console", Type: "tokens", Tokens: []routing.ID{r.ID}}); err != nil {
		o.logger().Warn("recording an ack token", "err", err)
	}
	return nil
}

func (o *Office) officer(id string) (*Officer, error) {
	if of := o.Config.Officer(id); of != nil {
		return of, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownOfficer, id)
}

// prepare refreshes the store and returns the case and the officer.
func (o *Office) prepare(id routing.ID, officer string) (*Case, *Officer, error) {
	of, err := o.officer(officer)
	if err != nil {
		return nil, nil, err
	}
	if err := o.Store.Refresh(); err != nil {
		return nil, nil, err
	}
	k, err := o.Store.Case(id)
	if err != nil {
		return nil, nil, err
	}
	return k, of, nil
}

// send seals m to the case's defender and records the action.
func (o *Office) send(ctx context.Context, k *Case, a *actRecord, m message.Message) error {
	body, err := message.Marshal(m)
	if err != nil {
		return err
	}
	s, err := o.Client.AnswerTo(ctx, k.Addressee(), m)
	if err != nil {
		return err
	}
	a.Body, a.Sent, a.Queued = body, s.ID, s.Queued
	return o.Store.act(a)
}

// Acknowledge sends the defender a signed ack naming who acts (the
// officer's liaison name) and the next step, and the relay an ack token
// for every message of the case not yet covered.
func (o *Office) Acknowledge(ctx context.Context, id routing.ID, officer, next string) error {
	k, of, err := o.prepare(id, officer)
	if err != nil {
		return err
	}
	m := &message.Ack{Ref: k.ID, By: of.Liaison, NextStep: next}
	if err := m.Validate(); err != nil {
		return err
	}
	tokens := k.unacked
	if !slices.Contains(tokens, k.ID) && !k.acked {
		tokens = append(tokens, k.ID)
	}
	a := &actRecord{Case: k.ID, At: o.now(), Officer: of.ID, Type: ActAck, Tokens: tokens}
	// The tokens go first: they stop escalation, and cost nothing to send.
	// At a partner's console they go back through the bridge that
	// delivered the case, to the sending network's relay.
	send := o.Client.SendAckTokens
	if b := k.Addressee().Bridge; b != "" {
		send = func(ctx context.Context, ids ...routing.ID) error { return o.Client.SendAckTokensVia(ctx, b, ids...) }
	}
	if err := send(ctx, tokens...); err != nil {
		o.logger().Warn("ack tokens not sent", "err", err)
		a.Tokens = nil
	}
	if k.Addressee().ReplyTo.IsZero() {
		return o.Store.act(a) // the defender gave no mailbox to answer to
	}
	return o.send(ctx, k, a, m)
}

// Reply answers the defender in the case thread.
func (o *Office) Reply(ctx context.Context, id routing.ID, officer, text string) error {
	k, of, err := o.prepare(id, officer)
	if err != nil {
		return err
	}
	m := &message.Reply{Ref: k.ID, Text: text}
	if err := m.Validate(); err != nil {
		return err
	}
	return o.send(ctx, k, &actRecord{Case: k.ID, At: o.now(), Officer: of.ID, Type: ActReply}, m)
}

// Assign makes assignee the case's officer; with tell, the defender is
// told (signed) who their liaison is now.
func (o *Office) Assign(ctx context.Context, id routing.ID, officer, assignee string, tell bool) error {
	k, of, err := o.prepare(id, officer)
	if err != nil {
		return err
	}
	to, err := o.officer(assignee)
	if err != nil {
		return err
	}
	a := &actRecord{Case: k.ID, At: o.now(), Officer: of.ID, Type: ActAssign, Assignee: to.ID}
	if !tell || k.Addressee().ReplyTo.IsZero() {
		return o.Store.act(a)
	}
	return o.send(ctx, k, a, &message.Liaison{Ref: k.ID, Officer: to.Liaison})
}

// Note adds an internal note. It is written to the store and nowhere
// else: no message, no relay.
func (o *Office) Note(id routing.ID, officer, text string) error {
	k, of, err := o.prepare(id, officer)
	if err != nil {
		return err
	}
	if err := checkNote(text); err != nil {
		return err
	}
	return o.Store.act(&actRecord{Case: k.ID, At: o.now(), Officer: of.ID, Type: ActNote, Text: text})
}

// maxNote bounds an internal note, like a reply.
const maxNote = 4000

func checkNote(s string) error {
	// The same rules as a reply's text: the note is shown to officers.
	if err := (&message.Reply{Ref: routing.NewID(), Text: s}).Validate(); err != nil {
		var fe *message.FieldError
		if errors.As(err, &fe) {
			return fmt.Errorf("note: %s", fe.Problem)
		}
		return err
	}
	if len([]rune(s)) > maxNote {
		return fmt.Errorf("note: longer than %d characters", maxNote)
	}
	return nil
}

// Meeting answers a meeting request: accept one of the defender's times,
// propose others, confirm the agreed time, or cancel.
func (o *Office) Meeting(ctx context.Context, id routing.ID, officer string, action message.MeetingAction, times []time.Time, note string) error {
	k, of, err := o.prepare(id, officer)
	if err != nil {
		return err
	}
	if k.Meeting == nil {
		return ErrNotAMeeting
	}
	if action == message.MeetingAccept && len(times) == 1 &&
		!slices.ContainsFunc(k.Meeting.Proposed, func(t time.Time) bool { return t.Equal(times[0].Truncate(time.Second)) }) {
		return ErrNotProposed
	}
	if action == message.MeetingConfirm && len(times) == 0 && len(k.Meeting.Times) == 1 {
		times = k.Meeting.Times
	}
	m := &message.MeetingResponse{Ref: k.ID, Action: action, Times: times, Note: note}
	if err := m.Validate(); err != nil {
		return err
	}
	return o.send(ctx, k, &actRecord{Case: k.ID, At: o.now(), Officer: of.ID, Type: ActMeeting}, m)
}

// Observe records the mission's trial observation: an observer assigned
// (told to the other missions covering the country), confirmed to the
// defender, an outcome, or a withdrawal. Every notice goes to the other
// missions; all but an assignment to the defender too.
func (o *Office) Observe(ctx context.Context, id routing.ID, officer string, status message.ObservationStatus, observer, text string) error {
	k, of, err := o.prepare(id, officer)
	if err != nil {
		return err
	}
	if k.Observation == nil || k.Observation.Court == "" {
		return ErrNotAnObservation
	}
	if observer == "" {
		observer = k.Observation.Observer
	}
	m := &message.Observation{Ref: k.ID, Status: status, Observer: observer, Hearing: k.Observation.Hearing, Text: text}
	if err := m.Validate(); err != nil {
		return err
	}
	a := &actRecord{Case: k.ID, At: o.now(), Officer: of.ID, Type: ActObserve}
	peers, perr := o.Client.NotifyPeers(ctx, k.Country, k.Priority, m)
	if perr != nil {
		o.logger().Warn("telling the other missions", "err", perr)
	}
	a.To = peers
	if status == message.ObservationAssigned || k.Addressee().ReplyTo.IsZero() {
		body, _ := message.Marshal(m)
		a.Body = body
		return o.Store.act(a)
	}
	return o.send(ctx, k, a, m)
}

// Share re-seals the case's alert to the partner governments covering
// its country, signed by the mission. It is refused (message.ErrNoConsent)
// unless the defender consented to sharing.
func (o *Office) Share(ctx context.Context, id routing.ID, officer, note string) error {
	k, of, err := o.prepare(id, officer)
	if err != nil {
		return err
	}
	if k.Alert() == nil {
		return ErrNotAnAlert
	}
	s, err := message.ShareFrom(k.ID, k.Alert(), o.Config.Mission, note)
	if err != nil {
		return err
	}
	sent, err := o.Client.ShareAlert(ctx, s)
	if err != nil {
		return err
	}
	body, _ := message.Marshal(s)
	return o.Store.act(&actRecord{Case: k.ID, At: o.now(), Officer: of.ID, Type: ActShare, Body: body, Sent: sent.ID, Queued: sent.Queued, To: sent.Partners})
}

// Report sends headquarters an encrypted case report.
func (o *Office) Report(ctx context.Context, id routing.ID, officer, text string) error {
	k, of, err := o.prepare(id, officer)
	if err != nil {
		return err
	}
	status := message.CaseStatus(k.State)
	m := &message.CaseReport{Ref: k.ID, Mission: o.Config.Mission, Country: k.Country, Priority: k.Priority, Status: status,
		Title: k.Title, Text: text}
	if err := m.Validate(); err != nil {
		return err
	}
	sent, err := o.Client.ReportCase(ctx, m)
	if err != nil {
		return err
	}
	var to []string
	if d, err := o.Client.Directory(); err == nil {
		if hq := d.HeadquartersOf(o.Config.Mission); hq != nil {
			to = []string{hq.ID}
		}
	}
	body, _ := message.Marshal(m)
	return o.Store.act(&actRecord{Case: k.ID, At: o.now(), Officer: of.ID, Type: ActReport, Body: body, Sent: sent.ID, Queued: sent.Queued, To: to})
}

// SetState resolves, reopens or marks a case in progress.
func (o *Office) SetState(id routing.ID, officer string, to State, reason string) error {
	k, of, err := o.prepare(id, officer)
	if err != nil {
		return err
	}
	t := map[State]ActionType{StateResolved: ActResolve, StateInProgress: ActProgress}[to]
	if to == StateInProgress && k.State == StateResolved {
		t = ActReopen
	}
	if t == "" {
		return fmt.Errorf("a case cannot be set to %q", to)
	}
	return o.Store.act(&actRecord{Case: k.ID, At: o.now(), Officer: of.ID, Type: t, Text: reason})
}

// MarkRead marks a case's messages read.
func (o *Office) MarkRead(id routing.ID, officer string) error {
	k, of, err := o.prepare(id, officer)
	if err != nil {
		return err
	}
	if k.Unread == 0 {
		return nil
	}
	return o.Store.act(&actRecord{Case: k.ID, At: o.now(), Officer: of.ID, Type: ActRead})
}

// Broadcast publishes a signed notice to everyone in b.Country.
func (o *Office) Broadcast(ctx context.Context, officer string, b *message.Broadcast) error {
	of, err := o.officer(officer)
	if err != nil {
		return err
	}
	body, err := message.Marshal(b)
	if err != nil {
		return err
	}
	id, err := o.Client.PublishBroadcast(ctx, b)
	if err != nil {
		return err
	}
	return o.Store.broadcast(&bcastRecord{ID: id, At: o.now(), Officer: of.ID, Body: body})
}
