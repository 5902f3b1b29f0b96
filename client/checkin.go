package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// Check-ins: a dead man's switch. [Client.ArmCheckIn] seals a message to
// the missions of a country and hands it to the relay as a check-in plan;
// if the defender does not check in ([Client.CheckIn]) within every +
// grace of the last check-in, the relay releases it into the missions'
// alerts. Each check-in shows the relay the next value of a hash chain
// whose seed only this device holds (sealed in its state directory), so
// neither the relay nor anyone who saw an earlier check-in can check in
// in the defender's name. [Client.Disarm] ends the plan the same way;
// [Client.ReleasePlan] releases it now (beacon panic). One plan is armed
// per device.

// Errors callers branch on.
var (
	// ErrNoPlan means no check-in plan is armed from this device.
	ErrNoPlan = errors.New("no check-in plan is armed on this device")
	// ErrPlanArmed means a plan is armed already: disarm it first.
	ErrPlanArmed = errors.New("a check-in plan is armed already")
	// ErrPlanUnconfirmed means the relay did not answer an arm in time: it
	// may hold the plan or not. [Client.PlanStatus] finds out.
	ErrPlanUnconfirmed = errors.New("the relay did not confirm the check-in plan")
)

// A PlanEndedError says the relay no longer holds the plan armed, and
// why: it was released (a missed check-in, a panic), or disarmed.
type PlanEndedError struct {
	State string // proto.HoldReleased, HoldDisarmed, or "unknown"
	At    time.Time
}

func (e *PlanEndedError) Error() string {
	if e.State == "unknown" {
		return "the relay holds no such check-in plan"
	}
	return fmt.Sprintf("the check-in plan was %s at %s", e.State, e.At.Format(time.RFC3339))
}

// CheckInOptions are the terms of a check-in plan.
type CheckInOptions struct {
	Country  string
	Priority routing.Priority // zero is urgent
	// Every is how often the defender will check in; Grace how long past
	// a missed check-in the relay waits before it releases the message.
	Every, Grace time.Duration
	// Text is what the missions read if the defender goes silent.
	Text string
	// Exercise marks a drill.
	Exercise bool
	// Length is the number of check-ins the chain allows; zero is enough
	// for a year at Every.
	Length uint32
}

// A Plan is the check-in plan armed from this device, as this device and
// the relay know it.
type Plan struct {
	ID       routing.ID
	Country  string
	Priority routing.Priority
	Every    time.Duration
	Grace    time.Duration
	Armed    time.Time
	// Due is when the next check-in is due; Release when the relay
	// releases the message without one (Due + Grace).
	Due, Release time.Time
	CheckIns     uint32 // made so far
	Left         uint32 // the chain allows this many more
	Exercise     bool
	// Duress: armed under the duress key, so the duress passphrase
	// releases it.
	Duress bool
	// Unconfirmed: the relay did not answer the arm; PlanStatus asks it.
	Unconfirmed bool
}

// planFile is the sealed file holding the armed plan and its chain.
const planFile = "checkin-plan"

// savedPlan is planFile's content.
type savedPlan struct {
	ID       routing.ID       `json:"id"`
	Seed     proto.Link       `json:"seed"`
	Length   uint32           `json:"length"`
	Used     uint32           `json:"used"` // links spent, or about to be
	Every    time.Duration    `json:"every"`
	Grace    time.Duration    `json:"grace"`
	Country  string           `json:"country"`
	Priority routing.Priority `json:"priority"`
	Armed    time.Time        `json:"armed"`
	Release  time.Time        `json:"release"` // as the relay last said
	Exercise bool             `json:"exercise,omitempty"`
	Duress   bool             `json:"duress,omitempty"`
	Pending  bool             `json:"pending,omitempty"` // armed, not confirmed
}

func (p *savedPlan) public() *Plan {
	return &Plan{ID: p.ID, Country: p.Country, Priority: p.Priority, Every: p.Every, Grace: p.Grace, Armed: p.Armed,
		Due: p.Release.Add(-p.Grace), Release: p.Release, CheckIns: p.Used, Left: p.Length - p.Used,
		Exercise: p.Exercise, Duress: p.Duress, Unconfirmed: p.Pending}
}

func (p *savedPlan) link(i uint32) *proto.CheckIn {
	return &proto.CheckIn{ID: p.ID, Index: i, Value: proto.ChainValue(p.ID, p.Seed, p.Length, i)}
}

// loadPlan returns the saved plan, or nil. It runs inside Do.
func (c *Client) loadPlan() (*savedPlan, error) {
	b, err := c.st.ReadFile(planFile, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p savedPlan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("check-in plan: %w", err)
	}
	return &p, nil
}

func (c *Client) savePlan(p *savedPlan) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return c.st.Do(func() error { return c.st.WriteFile(planFile, b, true) })
}

func (c *Client) dropPlan() error { return c.st.Do(func() error { return c.st.Remove(planFile) }) }

func (c *Client) plan() (*savedPlan, error) {
	var p *savedPlan
	err := c.st.Do(func() (err error) { p, err = c.loadPlan(); return err })
	return p, err
}

// LocalPlan returns the plan armed from this device as the device last
// heard from the relay, without asking it (for reminders), or ErrNoPlan.
func (c *Client) LocalPlan() (*Plan, error) {
	p, err := c.plan()
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, ErrNoPlan
	}
	return p.public(), nil
}

// defaultChain is the chain length for a year of check-ins at every.
func defaultChain(every time.Duration) uint32 {
	n := int64(365*24*time.Hour/every) + 64
	return uint32(min(n, proto.MaxChainLength))
}

// ArmCheckIn seals o.Text to the missions covering o.Country and arms it
// at the relay as a check-in plan. The relay must be reachable: a dead
// man's switch that is not armed must say so, not wait in an outbox.
func (c *Client) ArmCheckIn(ctx context.Context, o CheckInOptions) (*Plan, error) {
	if o.Priority == 0 {
		o.Priority = routing.Urgent
	}
	now := c.clock.Now()
	m := &message.CheckIn{Country: o.Country, Priority: o.Priority, Text: o.Text, Armed: now.Truncate(time.Second),
		Every: o.Every, Grace: o.Grace, Exercise: o.Exercise}
	body, err := message.Marshal(m)
	if err != nil {
		return nil, err
	}
	if o.Length == 0 {
		o.Length = defaultChain(o.Every)
	}
	if old, err := c.plan(); err != nil {
		return nil, err
	} else if old != nil {
		if _, err := c.PlanStatus(ctx); err == nil {
			return nil, ErrPlanArmed
		} else if !isPlanEnded(err) {
			return nil, err
		}
	}
	to, _, err := c.recipients(o.Country, false)
	if err != nil {
		return nil, err
	}
	p := &savedPlan{ID: routing.NewID(), Length: o.Length, Every: o.Every, Grace: o.Grace, Country: o.Country,
		Priority: o.Priority, Armed: now, Exercise: o.Exercise, Pending: true}
	rand.Read(p.Seed[:])
	params := &proto.CheckInPlan{Every: proto.SecondsOf(o.Every), Grace: proto.SecondsOf(o.Grace), Length: o.Length, Exercise: o.Exercise}
	if key := c.cfg.Keyring.DuressKey(); key != nil && !c.cfg.Keyring.Decoy {
		// Armed under the duress key, the plan can be released by a device
		// that holds nothing of it but that key: the decoy.
		p.ID, p.Duress = proto.PanicID(key), true
		lock := proto.PanicLock(p.ID, proto.PanicSecret(key))
		params.Panic = &lock
	}
	params.ID, params.Chain = p.ID, proto.ChainValue(p.ID, p.Seed, p.Length, 0)
	h := envelope.Header{ID: routing.NewID(), Created: now, Country: o.Country, Priority: o.Priority, ReplyTo: c.Mailbox()}
	env, err := envelope.Seal(h, body, c.id, envelope.Deniable, to...)
	if err != nil {
		return nil, err
	}
	req, err := proto.FrameHold(params, env)
	if err != nil {
		return nil, err
	}
	// The seed is on the device before the relay holds its chain: a plan
	// the relay holds is one this device can check in on.
	if err := c.savePlan(p); err != nil {
		return nil, err
	}
	rep, err := c.conn.Hold(ctx, proto.HoldArmCheckIn, req)
	if err != nil {
		if isTransient(err) {
			return p.public(), fmt.Errorf("%w: %w", ErrPlanUnconfirmed, err)
		}
		c.dropPlan()
		return nil, err
	}
	p.Release, p.Pending = rep.Holds[0].Deadline, false
	if err := c.savePlan(p); err != nil {
		return nil, err
	}
	c.noteHold(holdEntry{ID: p.ID, Kind: proto.HoldKindCheckIn, Deadline: p.Release})
	return p.public(), nil
}

// CheckIn tells the relay the defender is fine: the plan is released at
// every + grace from now instead.
func (c *Client) CheckIn(ctx context.Context) (*Plan, error) {
	return c.spend(ctx, proto.HoldOK)
}

// Disarm ends the plan: it is never released.
func (c *Client) Disarm(ctx context.Context) (*Plan, error) { return c.spend(ctx, proto.HoldDisarm) }

// ReleasePlan releases the plan now: the missions get its message within
// seconds.
func (c *Client) ReleasePlan(ctx context.Context) (*Plan, error) {
	return c.spend(ctx, proto.HoldRelease)
}

// spend spends the next link of the chain on op. The link is marked spent
// on the device before it is sent, so a value is never sent twice; if
// the device and the relay disagree on how many were spent (a crash
// between the two), the relay's count decides, and the request is made
// once more with the link after it.
func (c *Client) spend(ctx context.Context, op proto.HoldOp) (*Plan, error) {
	p, err := c.plan()
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, ErrNoPlan
	}
	for try := 0; ; try++ {
		if p.Used >= p.Length {
			return nil, fmt.Errorf("the plan's %d check-ins are used up: disarm it and arm a new one", p.Length)
		}
		p.Used++
		if err := c.savePlan(p); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(p.link(p.Used))
		rep, err := c.conn.Hold(ctx, op, b)
		var perr *proto.Error
		switch {
		case err == nil:
			hi := rep.Holds[0]
			if op != proto.HoldOK {
				c.dropPlan()
				c.noteHold(holdEntry{ID: p.ID, Kind: proto.HoldKindCheckIn, Deadline: hi.Deadline})
				return p.public(), nil
			}
			p.Release, p.Pending = hi.Deadline, false
			return p.public(), c.savePlan(p)
		case errors.As(err, &perr) && perr.Code == proto.CodeNoHold:
			return nil, c.ended(ctx, p)
		case errors.As(err, &perr) && perr.Code == proto.CodeChain && try == 0:
			st, serr := c.holdStatus(ctx, p.ID)
			if serr != nil {
				return nil, serr
			}
			if st == nil || st.State != proto.HoldArmed {
				return nil, c.ended(ctx, p)
			}
			p.Used = st.Index
		default:
			return nil, err
		}
	}
}

// ended records that the relay no longer holds p armed and says why.
func (c *Client) ended(ctx context.Context, p *savedPlan) error {
	st, err := c.holdStatus(ctx, p.ID)
	if err != nil {
		return err
	}
	e := &PlanEndedError{State: "unknown"}
	if st != nil {
		e.State, e.At = st.State, st.Deadline
	}
	if err := c.dropPlan(); err != nil {
		return err
	}
	return e
}

func isPlanEnded(err error) bool {
	var e *PlanEndedError
	return errors.As(err, &e) || errors.Is(err, ErrNoPlan)
}

// holdStatus asks the relay about hold id: nil if it holds nothing by
// that id.
func (c *Client) holdStatus(ctx context.Context, id routing.ID) (*proto.HoldInfo, error) {
	b, _ := json.Marshal(&proto.StatusRequest{IDs: []routing.ID{id}})
	rep, err := c.conn.Hold(ctx, proto.HoldStatus, b)
	if err != nil {
		return nil, err
	}
	for _, h := range rep.Holds {
		if h.ID == id {
			return &h, nil
		}
	}
	return nil, nil
}

// PlanStatus asks the relay about the plan armed from this device. A plan
// the relay no longer holds armed is forgotten, with a *PlanEndedError
// saying what became of it.
func (c *Client) PlanStatus(ctx context.Context) (*Plan, error) {
	p, err := c.plan()
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, ErrNoPlan
	}
	st, err := c.holdStatus(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	if st == nil || st.State != proto.HoldArmed {
		return nil, c.ended(ctx, p)
	}
	p.Release, p.Pending = st.Deadline, false
	if st.Index > p.Used {
		p.Used = st.Index
	}
	return p.public(), c.savePlan(p)
}

// DuressRelease releases, without a word, the plan armed under the duress
// key this client's keyring holds: what a device unlocked with the duress
// passphrase does. Nothing armed is not an error.
func (c *Client) DuressRelease(ctx context.Context) error {
	key := c.cfg.Keyring.DuressKey()
	if key == nil {
		return nil
	}
	b, _ := json.Marshal(&proto.PanicRequest{ID: proto.PanicID(key), Secret: proto.PanicSecret(key)})
	_, err := c.conn.Hold(ctx, proto.HoldPanic, b)
	var perr *proto.Error
	if errors.As(err, &perr) && perr.Code == proto.CodeNoHold {
		return nil
	}
	return err
}

// Decoy reports whether this client was opened with the decoy keyring a
// duress passphrase opens.
func (c *Client) Decoy() bool { return c.cfg.Keyring.Decoy }
