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

// progress reports a wait for what ("connecting to the relay") that gives
// up after limit (0: no limit shown) until stop is called. stop returns
// once nothing more will be written.
func (e *env) progress(what string, limit time.Duration) (stop func()) {
	return startProgress(e.stderr, what, limit, nil, time.After)
}

// progressNote is progress with a line added under the first one when
// note, asked at that moment, has something to say.
func (e *env) progressNote(what string, limit time.Duration, note func() string) (stop func()) {
	return startProgress(e.stderr, what, limit, note, time.After)
}

// startProgress is progressNote with the clock's After injected, so a test
// can say when each moment comes.
func startProgress(w io.Writer, what string, limit time.Duration, note func() string, after func(time.Duration) <-chan time.Time) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for at, wait := progressAfter, progressAfter; ; {
			select {
			case <-done:
				return
			case <-after(wait):
			}
			if at == progressAfter {
				fmt.Fprintf(w, "%s%s…\n", what, upTo(limit))
				if note != nil {
					if n := note(); n != "" {
						fmt.Fprintln(w, n)
					}
				}
			} else {
				fmt.Fprintf(w, "still %s (%s)…\n", what, at)
			}
			next := (at/progressEvery + 1) * progressEvery
			at, wait = next, next-at
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}

func upTo(limit time.Duration) string {
	if limit <= 0 {
		return ""
	}
	return fmt.Sprintf(" (up to %s)", limit)
}
