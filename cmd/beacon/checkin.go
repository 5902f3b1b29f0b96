package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

type checkinCmd struct {
	Arm    checkinArmCmd    `cmd:"" help:"Arm a check-in plan: if you do not check in, the relay releases your message to the missions of a country."`
	Ok     checkinOkCmd     `cmd:"" name:"ok" help:"Check in: you are fine. The plan's deadline moves to every + grace from now."`
	Disarm checkinDisarmCmd `cmd:"" help:"Disarm the plan: it is never released."`
	Status checkinStatusCmd `cmd:"" help:"Show the plan and your other holds (escalations of your alerts), as the relay has them."`
}

type checkinArmCmd struct {
	Every    time.Duration `required:"" help:"How often you will check in (e.g. 6h). The relay sets a minimum (5m by default)."`
	Grace    time.Duration `default:"30m" help:"How long past a missed check-in the relay waits before it releases the message."`
	Country  string        `required:"" help:"Country whose missions receive the message (ISO 3166-1 alpha-2)." placeholder:"CC"`
	Priority string        `default:"urgent" enum:"urgent,high,routine" help:"urgent, high or routine."`
	Exercise bool          `help:"A drill: the message reaches the missions marked as an exercise and never counts as a real case."`
	Text     string        `arg:"" help:"What the missions should know and do if you go silent."`
	clientFlags
}

func (c *checkinArmCmd) Run(e *env) error {
	prio, err := routing.ParsePriority(c.Priority)
	if err != nil {
		return err
	}
	cleanText(e, &c.Text)
	o := client.CheckInOptions{Country: strings.ToLower(c.Country), Priority: prio, Every: c.Every, Grace: c.Grace, Text: c.Text, Exercise: c.Exercise}
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := covered(cl, o.Country); err != nil {
		return err
	}
	if !c.connect(e, cl) {
		return withHint(fmt.Errorf("the plan is not armed: the relay is not reachable (tried for %s)", c.Timeout),
			"a dead man's switch must be armed at the relay; try again when it is reachable")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	p, err := cl.ArmCheckIn(ctx, o)
	switch {
	case errors.Is(err, client.ErrPlanArmed):
		return withHint(err, "see it with beacon checkin status; beacon checkin disarm ends it")
	case errors.Is(err, client.ErrPlanUnconfirmed):
		return withHint(err, "it may be armed or not; beacon checkin status asks the relay")
	case err != nil:
		var perr *proto.Error
		if errors.As(err, &perr) && perr.Code == proto.CodeBadRequest {
			return withHint(fmt.Errorf("the relay refused the plan: %s", perr.Description), "check --every and --grace")
		}
		return err
	}
	drill := ""
	if p.Exercise {
		drill = " (a drill)"
	}
	fmt.Fprintf(e.stdout, "armed: check-in plan %s%s for the missions of %s\n", p.ID, drill, p.Country)
	printPlan(e, p)
	if p.Duress {
		fmt.Fprintln(e.stdout, "your duress passphrase releases it too")
	}
	return nil
}

func printPlan(e *env, p *client.Plan) {
	now := time.Now()
	fmt.Fprintf(e.stdout, "next check-in due %s (in %s); without it the relay releases your message at %s\n",
		p.Due.Local().Format(time.DateTime), p.Due.Sub(now).Round(time.Second), p.Release.Local().Format(time.DateTime))
	fmt.Fprintf(e.stdout, "check in every %s with beacon checkin ok (%d made, %d left on this plan)\n", p.Every, p.CheckIns, p.Left)
}

type checkinOkCmd struct{ clientFlags }

func (c *checkinOkCmd) Run(e *env) error {
	return c.spend(e, "check-in", func(ctx context.Context, cl *client.Client) (*client.Plan, error) { return cl.CheckIn(ctx) },
		func(p *client.Plan) {
			fmt.Fprintln(e.stdout, "checked in")
			printPlan(e, p)
		})
}

type checkinDisarmCmd struct{ clientFlags }

func (c *checkinDisarmCmd) Run(e *env) error {
	return c.spend(e, "disarm", func(ctx context.Context, cl *client.Client) (*client.Plan, error) { return cl.Disarm(ctx) },
		func(p *client.Plan) { fmt.Fprintf(e.stdout, "disarmed: check-in plan %s will not be released\n", p.ID) })
}

// spend runs a request that spends a link of the plan's chain, which
// needs the relay: a check-in that did not reach it did not happen, and
// the defender must know.
func (f *clientFlags) spend(e *env, what string, do func(context.Context, *client.Client) (*client.Plan, error), done func(*client.Plan)) error {
	cl, err := f.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := cl.LocalPlan(); err != nil {
		return planHint(err)
	}
	if !f.connect(e, cl) {
		return withHint(fmt.Errorf("no %s: the relay is not reachable (tried for %s)", what, f.Timeout), "try again soon: the plan is released if no check-in reaches the relay in time")
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.Timeout)
	defer cancel()
	p, err := do(ctx, cl)
	if err != nil {
		return planHint(err)
	}
	done(p)
	return nil
}

func planHint(err error) error {
	var ended *client.PlanEndedError
	switch {
	case errors.Is(err, client.ErrNoPlan):
		return withHint(err, "arm one with beacon checkin arm --every 6h --country CC 'what to send if you go silent'")
	case errors.As(err, &ended) && ended.State == proto.HoldReleased:
		return withHint(err, "the missions have your message; if you are safe, tell them (beacon inbox, beacon update)")
	case errors.As(err, &ended):
		return withHint(err, "arm a new one with beacon checkin arm")
	}
	return err
}

type checkinStatusCmd struct{ clientFlags }

func (c *checkinStatusCmd) Run(e *env) error {
	cl, err := c.openClient(e)
	if err != nil {
		return err
	}
	defer cl.Close()
	local, lerr := cl.LocalPlan()
	if !c.connect(e, cl) {
		if lerr != nil {
			return planHint(lerr)
		}
		fmt.Fprintln(e.stderr, "note: the relay is not reachable; showing what this device last heard from it")
		fmt.Fprintf(e.stdout, "check-in plan %s for the missions of %s\n", local.ID, local.Country)
		printPlan(e, local)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	p, err := cl.PlanStatus(ctx)
	switch {
	case err == nil:
		fmt.Fprintf(e.stdout, "check-in plan %s for the missions of %s: armed\n", p.ID, p.Country)
		printPlan(e, p)
	case errors.Is(err, client.ErrNoPlan):
		fmt.Fprintln(e.stdout, "no check-in plan is armed on this device")
	default:
		var ended *client.PlanEndedError
		if !errors.As(err, &ended) {
			return err
		}
		fmt.Fprintf(e.stdout, "check-in plan %s: %v\n", local.ID, err)
	}
	holds, err := cl.Holds(ctx)
	if err != nil {
		return err
	}
	var esc []proto.HoldInfo
	for _, h := range holds {
		if h.Kind == proto.HoldKindEscalation {
			esc = append(esc, h)
		}
	}
	if len(esc) > 0 {
		fmt.Fprintf(e.stdout, "escalations of your alerts (%d):\n", len(esc))
		for _, h := range esc {
			fmt.Fprintf(e.stdout, "  alert %s tier %d (%s): %s at %s\n", h.Alert, h.Tier, tierName(h.Tier), h.State, h.Deadline.Local().Format(time.DateTime))
		}
	}
	return nil
}

func tierName(t int) string {
	switch t {
	case 1:
		return "the posts' escalation target"
	case 2:
		return "headquarters"
	case 3:
		return "partner governments"
	}
	return "?"
}

type panicCmd struct {
	Wipe bool `help:"After releasing the plan, delete this device's key file and state. Destroying data under coercion can itself put you at legal risk: the default is to alert, not to destroy."`
	clientFlags
}

// Run releases the armed plan now and, only with --wipe, destroys the
// device's key and state.
func (c *panicCmd) Run(e *env) error {
	home, err := beaconHome(e)
	if err != nil {
		return err
	}
	released, relErr := c.release(e)
	if released {
		fmt.Fprintln(e.stdout, "released: the missions will have your check-in plan's message within seconds")
	}
	if c.Wipe {
		if err := wipe(home); err != nil {
			return fmt.Errorf("wiping %s: %w", home, err)
		}
		fmt.Fprintf(e.stdout, "wiped: the key file and state in %s are deleted\n", home)
	}
	return relErr
}

// release releases the plan armed from this device, or, for a decoy, the
// one its duress key opens (openClient has done that already).
func (c *panicCmd) release(e *env) (bool, error) {
	cl, err := c.openClient(e)
	if err != nil {
		return false, err
	}
	defer cl.Close()
	if _, err := cl.LocalPlan(); errors.Is(err, client.ErrNoPlan) {
		if cl.Decoy() {
			return true, nil
		}
		return false, planHint(err)
	}
	if !c.connect(e, cl) {
		return false, withHint(fmt.Errorf("nothing released: the relay is not reachable (tried for %s)", c.Timeout),
			"try again; if you cannot, the plan is released when you miss your next check-in")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	if _, err := cl.ReleasePlan(ctx); err != nil {
		return false, planHint(err)
	}
	return true, nil
}

// wipe deletes the key file and the state directory: the identity, the
// cases, the outbox, the plan's chain.
func wipe(home string) error {
	for _, p := range []string{filepath.Join(home, "key"), filepath.Join(home, "state"), filepath.Join(home, "state.new")} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}
