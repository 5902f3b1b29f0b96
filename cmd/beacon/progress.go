package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// A wait that lasts longer than progressAfter says what it waits for, and
// again every progressEvery, on stderr: the person at the keyboard knows the
// command is alive, and a script reading stdout sees nothing new. A wait
// that ends sooner prints nothing.
const (
	progressAfter = time.Second
	progressEvery = 5 * time.Second
)

// A waitReport says on stderr what a command waits for, once the wait has
// lasted progressAfter, and how long it has lasted every progressEvery
// after that. Notes added with Note appear under the first line: at once
// if it is already out, with it otherwise — never lost to the timing.
type waitReport struct {
	w     io.Writer
	mu    sync.Mutex
	shown bool     // the first line is out
	notes []string // to print with the first line
	once  sync.Once
	done  chan struct{}
	ended chan struct{}
}

// progress reports a wait for what ("connecting to the relay") that gives
// up after limit (0: no limit shown) until Stop is called. A limit of a
// second or less reports nothing.
func (e *env) progress(what string, limit time.Duration) *waitReport {
	return startProgress(e.stderr, what, limit, time.After)
}

// startProgress is progress with the clock's After injected, so a test can
// say when each moment comes.
func startProgress(w io.Writer, what string, limit time.Duration, after func(time.Duration) <-chan time.Time) *waitReport {
	p := &waitReport{w: w, done: make(chan struct{}), ended: make(chan struct{})}
	if limit > 0 && limit <= progressAfter {
		// A wait that cannot last a second has nothing to report, however
		// slow the machine is around it.
		close(p.ended)
		return p
	}
	go func() {
		defer close(p.ended)
		for at, wait := progressAfter, progressAfter; ; {
			select {
			case <-p.done:
				return
			case <-after(wait):
			}
			p.mu.Lock()
			if at == progressAfter {
				fmt.Fprintf(w, "%s%s…\n", what, upTo(limit))
				for _, n := range p.notes {
					fmt.Fprintln(w, n)
				}
				p.shown, p.notes = true, nil
			} else {
				fmt.Fprintf(w, "still %s (%s)…\n", what, at)
			}
			p.mu.Unlock()
			next := (at/progressEvery + 1) * progressEvery
			at, wait = next, next-at
		}
	}()
	return p
}

// Note adds a line under the report's first line. A note added to a wait
// that ends before its first line is never printed.
func (p *waitReport) Note(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	if p.shown {
		fmt.Fprintln(p.w, line)
		return
	}
	p.notes = append(p.notes, line)
}

// Stop ends the report; it returns once nothing more will be written.
// Calling it again is harmless.
func (p *waitReport) Stop() {
	p.once.Do(func() {
		p.mu.Lock()
		close(p.done)
		p.mu.Unlock()
		<-p.ended
	})
}

func upTo(limit time.Duration) string {
	if limit <= 0 {
		return ""
	}
	return fmt.Sprintf(" (up to %s)", limit)
}
