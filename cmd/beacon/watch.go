package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/hrdbeacon/beacon/client"
)

// watchCmd keeps a defender's device connected: what is queued leaves as
// soon as the relay is reachable, and acks and replies show as they
// arrive. It runs until Ctrl-C or SIGTERM; configs/beacon-watch.service
// runs it as a systemd user service.
type watchCmd struct {
	passphraseFlags
}

// watchEvents bounds the client events waiting to be printed. The client
// must not block on its handler; past this, events are counted and said
// in one line.
const watchEvents = 256

// Run watches. The client's background loop does the sending: it flushes
// the outbox on every (re)connect, and while something waits it retries
// the connection at least every second, so a queued alert leaves within
// a second of the relay coming back. Run prints what the loop reports
// and follows the mailbox in the foreground.
func (c *watchCmd) Run(e *env) error {
	ctx, stop := signal.NotifyContext(e.context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := &lineWriter{w: e.stdout}
	events := make(chan client.Event, watchEvents)
	var lost sync.Mutex
	dropped := 0
	f := clientFlags{passphraseFlags: c.passphraseFlags}
	cl, err := f.openClientWith(e, func(cfg *client.Config) {
		cfg.OnEvent = func(ev client.Event) {
			select {
			case events <- ev:
			default:
				lost.Lock()
				dropped++
				lost.Unlock()
			}
		}
	})
	if err != nil {
		return err
	}
	defer cl.Close()

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		p := &eventPrinter{out: out, cl: cl}
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				p.print(ev)
				lost.Lock()
				if dropped > 0 {
					fmt.Fprintf(out, "note: %d more event(s) came too fast to show; beacon outbox and beacon inbox have it all\n", dropped)
					dropped = 0
				}
				lost.Unlock()
			}
		}
	})

	printWatchStart(out, cl)
	// Say once, after a second, if the relay cannot be reached; the
	// connection events say the rest.
	wg.Go(func() {
		wait, cancel := context.WithTimeout(ctx, progressAfter)
		defer cancel()
		if err := cl.WaitConnected(wait); err != nil && ctx.Err() == nil {
			if errors.Is(err, client.ErrNotConnected) {
				fmt.Fprintln(out, "the relay is not reachable now; queued messages leave as soon as it is")
			} else {
				relayRefused(&env{stderr: out}, err)
			}
		}
	})
	wg.Go(func() { watchCheckIns(ctx, out, cl) })
	return cl.FollowMailbox(ctx, func(r *client.Received) { printReceived(out, r) }, followProblem(e))
}

// printWatchStart says what the device holds as the watch begins.
func printWatchStart(out *lineWriter, cl *client.Client) {
	fmt.Fprintln(out, "watching: queued messages leave as soon as the relay is reachable; acks and replies show as they arrive. Ctrl-C stops.")
	st, err := cl.Status()
	if err != nil {
		return
	}
	if st.Directory == nil && st.DirectoryErr != nil {
		fmt.Fprintf(out, "note: %v; waiting for a current one from the relay\n", st.DirectoryErr)
	}
	if st.Waiting > 0 {
		fmt.Fprintf(out, "%d message(s) waiting in the outbox\n", st.Waiting)
	}
	if st.Refused > 0 {
		fmt.Fprintf(out, "%d message(s) refused for good; beacon outbox shows why\n", st.Refused)
	}
}

// An eventPrinter shows the events of the client's background work.
type eventPrinter struct {
	out *lineWriter
	cl  *client.Client
	// warned is the last refused directory said: the background loop
	// meets it again every round, and it is said again only if it
	// changes.
	warned string
}

func (p *eventPrinter) print(ev client.Event) {
	out := p.out
	at := ev.At.Local().Format("2006-01-02 15:04:05")
	switch ev.Kind {
	case client.EventConnected:
		fmt.Fprintf(out, "%s  connected to the relay\n", at)
	case client.EventDisconnected:
		fmt.Fprintf(out, "%s  lost the relay; messages queue on this device and leave when it is back\n", at)
	case client.EventSent:
		fmt.Fprintf(out, "%s  sent: %s %s from the outbox; the relay has stored it, nobody has read it yet\n", at, ev.Message, ev.ID)
	case client.EventRefused:
		fmt.Fprintf(out, "%s  refused: %s %s will not be sent: %s (%s); it stays in beacon outbox\n", at, ev.Message, ev.ID, ev.Refusal.Reason, ev.Refusal.Code)
	case client.EventDirectory:
		p.warned = ""
		fmt.Fprintf(out, "%s  directory serial %d accepted\n", at, ev.Directory.Serial)
	case client.EventDirectoryRefused:
		var re *client.RelayDirectoryError
		if errors.As(ev.Err, &re) && re.Err.Error() != p.warned {
			p.warned = re.Err.Error()
			printWarning(out, directoryWarning(p.cl, re))
		}
	}
}
