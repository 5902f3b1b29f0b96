package main

import (
	"bytes"
	"testing"
	"time"
)

// fakeTimer is one call to the injected After: how long it was asked to
// wait, and the channel the test fires.
type fakeTimer struct {
	d time.Duration
	c chan time.Time
}

func fakeAfter() (func(time.Duration) <-chan time.Time, chan fakeTimer) {
	calls := make(chan fakeTimer)
	return func(d time.Duration) <-chan time.Time {
		c := make(chan time.Time, 1)
		calls <- fakeTimer{d, c}
		return c
	}, calls
}

// TestProgress: nothing is said in the first second; then what the wait is
// for, with its limit and the note; then every five seconds how long it has
// lasted; and nothing once stopped.
func TestProgress(t *testing.T) {
	var out bytes.Buffer
	after, calls := fakeAfter()
	p := startProgress(&out, "connecting to the relay", 15*time.Second, after)
	p.Note("the alert is already stored on this device")
	want := ""
	for i, step := range []struct {
		wait time.Duration
		line string
	}{
		{time.Second, "connecting to the relay (up to 15s)…\nthe alert is already stored on this device\n"},
		{4 * time.Second, "still connecting to the relay (5s)…\n"},
		{5 * time.Second, "still connecting to the relay (10s)…\n"},
	} {
		tm := <-calls
		if tm.d != step.wait {
			t.Fatalf("step %d: waits %v, want %v", i, tm.d, step.wait)
		}
		if out.String() != want {
			t.Fatalf("step %d: before the timer fires, printed %q, want %q", i, out.String(), want)
		}
		tm.c <- time.Time{}
		want += step.line
	}
	tm := <-calls // the next five seconds
	if out.String() != want {
		t.Fatalf("printed %q, want %q", out.String(), want)
	}
	p.Note("a note after the first line is printed at once")
	want += "a note after the first line is printed at once\n"
	if out.String() != want {
		t.Fatalf("printed %q, want %q", out.String(), want)
	}
	p.Stop()
	p.Stop() // twice is harmless
	p.Note("a note after Stop is not printed")
	tm.c <- time.Time{}
	if out.String() != want {
		t.Fatalf("printed %q after stop", out.String()[len(want):])
	}
}

func TestProgressQuietWhenQuick(t *testing.T) {
	var out bytes.Buffer
	after, calls := fakeAfter()
	p := startProgress(&out, "sending to the relay", 0, after)
	p.Note("never printed")
	<-calls
	p.Stop()
	if out.Len() != 0 {
		t.Fatalf("a wait under a second printed %q", out.String())
	}
}

func TestProgressQuietWhenTheLimitIsShort(t *testing.T) {
	var out bytes.Buffer
	after := func(time.Duration) <-chan time.Time {
		t.Fatal("a wait limited to 200ms set a timer")
		return nil
	}
	p := startProgress(&out, "connecting to the relay", 200*time.Millisecond, after)
	p.Note("never printed")
	p.Stop()
	if out.Len() != 0 {
		t.Fatalf("printed %q", out.String())
	}
}
