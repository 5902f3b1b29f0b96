package console

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/client/report"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// chromiumPath finds Debian's chromium. A test that needs it skips with a
// clear message when it is absent and CI is unset; under CI (.ci/run
// installs it) its absence is a failure.
func chromiumPath(t testing.TB) string {
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "" {
		t.Skip("chromium is not installed (apt-get install chromium): the browser test needs it; CI installs it")
	}
	t.Fatal("chromium is not installed, and CI is set: .ci/run must install it")
	return ""
}

// browser starts one headless Chromium for the test, with a fresh
// profile and none of its background traffic, and returns its context.
func browser(t testing.TB) context.Context {
	path := chromiumPath(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1200))
	// Errors on the page fail nothing by themselves but are logged, so a
	// test that times out says why.
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			t.Logf("page exception at %d:%d: %s", d.LineNumber, d.ColumnNumber, desc)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				for _, a := range ev.Args {
					t.Logf("page console %s: %s %s", ev.Type, a.Value, a.Description)
				}
			}
		}
	}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser on a context without a deadline (its life).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// artifacts is where the screenshots go: $BEACON_TEST_ARTIFACTS, or a
// directory under the system's temporary directory, printed in the log.
func artifacts(t testing.TB) string {
	dir := os.Getenv("BEACON_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "beacon-console-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// step runs browser actions with a bound, so a missing element fails the
// test instead of hanging it.
func step(t testing.TB, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestBrowser drives the console in a real headless Chromium against a
// real relay: an alert a defender sends appears in the open page without a
// reload, is acknowledged by a click and the defender's inbox shows the
// ack; a meeting time accepted in the page reaches the defender; the html
// report renders. Screenshots of the case list and the case view are
// saved as artifacts.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	tb := newTestbed(t)
	c, o := tb.console("nl-kampala")
	def := tb.defender()

	step(t, ctx, "opening the console", chromedp.Navigate(c.URL()), chromedp.WaitVisible(`body[data-live="yes"]`))

	// Some cases already there when the officer looks.
	observe, err := def.RequestObservation(tb.ctx, &message.ObservationRequest{Country: "ug", Court: "High Court, Kampala",
		Case: "HCT-00-CR-0123", Hearing: time.Now().Add(72 * time.Hour).Truncate(time.Hour), Defendants: []string{"Sarah N.", "Peter K."}, Charges: "Unlawful assembly"})
	if err != nil {
		t.Fatal(err)
	}
	times := []time.Time{time.Now().Add(48 * time.Hour).Truncate(time.Hour), time.Now().Add(50 * time.Hour).Truncate(time.Hour)}
	meet, err := def.RequestMeeting(tb.ctx, &message.MeetingRequest{Country: "ug", Purpose: "Protection for our staff after the raid",
		Times: times, Place: message.PlaceEmbassy, SafetyNotes: "Use the side entrance; we are followed."})
	if err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "the requests appear", chromedp.WaitVisible(fmt.Sprintf(`li[data-case="%s"]`, meet.ID)),
		chromedp.WaitVisible(fmt.Sprintf(`li[data-case="%s"]`, observe.ID)))

	// A new urgent alert appears in the open page, pushed, no reload.
	var loaded float64
	step(t, ctx, "marking the page", until(`(window.__loadedOnce = performance.timeOrigin) > 0`))
	alert := &message.Alert{Country: "ug", Priority: routing.Urgent, Category: message.CategoryDetention,
		Summary: "Arrested at Entebbe airport on arrival, held by plain-clothes officers", Details: "Two officers, no warrant shown. Phone taken.",
		Location: "Entebbe", Share: true}
	sent, err := def.SendAlert(tb.ctx, alert)
	if err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf(`li[data-case="%s"]`, sent.ID)
	step(t, ctx, "the alert appears without a reload", chromedp.WaitVisible(row))
	if v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__loadedOnce`)); err != nil || v == 0 {
		t.Fatalf("the page was reloaded (%v, %v)", v, err)
	} else {
		loaded = v
	}
	if _, err := def.SendAlert(tb.ctx, &message.Alert{Country: "ug", Priority: routing.High, Category: message.CategoryThreat,
		Summary: "Threatening calls to our director since Monday", Share: false}); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "the list sorted by priority", until(fmt.Sprintf(
		`document.querySelectorAll('#case-list li').length === 4 && document.querySelector('#case-list li').dataset.case === %q`, sent.ID.String())))
	screenshot(t, ctx, "case-list.png")

	// Open it, acknowledge it by a click.
	step(t, ctx, "opening the case", chromedp.Click(row), chromedp.WaitVisible(`#ack-btn`),
		chromedp.SendKeys(`#ack-next`, "A diplomat is on the way to the airport"))
	// A live update of the open case while the officer types keeps what
	// was typed.
	if _, err := def.SendUpdate(tb.ctx, sent.ID, "Moved to the central police station"); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "the update shown in the open case", until(`document.querySelector('#case-view').textContent.includes('Moved to the central police station')`))
	typed, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('ack-next').value`))
	if err != nil || typed != "A diplomat is on the way to the airport" {
		t.Fatalf("a live update wiped the officer's typing: the field holds %q (%v)", typed, err)
	}
	step(t, ctx, "acknowledging", chromedp.Click(`#ack-btn`), chromedp.WaitVisible(row+`[data-state="acknowledged"]`))
	// The roll-up panel says who received it and who acts: this post,
	// from its signed ack token.
	step(t, ctx, "the roll-up shows the ack", until(`document.querySelector('#rollup-body table') !== null &&
		document.querySelector('#rollup-body').textContent.includes('acts: Human rights officer, Embassy of the Netherlands')`))
	got := tb.mailbox(def, 1)
	a, ok := got[0].Message.(*message.Ack)
	if !ok || got[0].Case != sent.ID || got[0].From != "nl-kampala" || a.NextStep != "A diplomat is on the way to the airport" ||
		a.By != "Human rights officer, Embassy of the Netherlands" {
		t.Fatalf("the defender got %#v from %q", got[0].Message, got[0].From)
	}
	cases, err := def.Cases()
	if err != nil {
		t.Fatal(err)
	}
	if k := caseOf(cases, sent.ID); k == nil || len(k.Thread) != 3 || k.Thread[1].Kind != message.KindUpdate || k.Thread[2].Kind != message.KindAck {
		t.Fatalf("the defender's inbox: %+v", k)
	}
	step(t, ctx, "an internal note", chromedp.SendKeys(`#note-text`, "Lawyer (M. Okello) informed by phone; do not name him to partners."),
		chromedp.Click(`#note-btn`), chromedp.WaitVisible(`#notes .notes li`))
	// The note was taken: its field is empty again, not offering the
	// same note a second time.
	noteLeft, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('note-text').value`))
	if err != nil {
		t.Fatal(err)
	}
	if noteLeft != "" {
		t.Errorf("after adding the note its field still holds %q", noteLeft)
	}
	screenshot(t, ctx, "case-view.png")

	// A meeting time accepted in the page reaches the defender.
	meetRow := fmt.Sprintf(`li[data-case="%s"]`, meet.ID)
	step(t, ctx, "accepting a meeting time", chromedp.Click(meetRow), chromedp.WaitVisible(`button[data-accept="1"]`),
		chromedp.Click(`button[data-accept="1"]`),
		until(`document.querySelector('#meeting h2') && document.querySelector('#meeting h2').textContent === 'Meeting: accepted'`))
	got = tb.mailbox(def, 1)
	mr, ok := got[0].Message.(*message.MeetingResponse)
	if !ok || mr.Action != message.MeetingAccept || len(mr.Times) != 1 || !mr.Times[0].Equal(times[1]) || got[0].Case != meet.ID {
		t.Fatalf("the defender got %#v", got[0].Message)
	}
	cases, _ = def.Cases()
	if ms := caseOf(cases, meet.ID).Meetings(); len(ms) != 1 || ms[0].State != "accepted" || !ms[0].Times[0].Equal(times[1]) || ms[0].Mission != "nl-kampala" {
		t.Fatalf("the defender's inbox shows the meeting as %+v", ms)
	}
	screenshot(t, ctx, "meeting.png")

	// The page says when it has lost the console.
	sctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	c.Shutdown(sctx)
	cancel()
	step(t, ctx, "the page says the console is gone", chromedp.WaitVisible(`#lost`), until(`document.body.dataset.live === "no"`))

	// The html report, from the relay's metadata, renders in the browser.
	d, err := o.Client.Report(tb.ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := o.Client.Directory()
	rows, spreads := report.Compute(d, dir, time.Now())
	html := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(html)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.New(d, rows, spreads, time.Now()).Write(f, "html"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	step(t, ctx, "the html report renders", chromedp.Navigate("file://"+html), chromedp.WaitVisible(`svg rect`),
		until(`document.querySelector('table tbody tr td').textContent === 'nl-kampala'`))
	screenshot(t, ctx, "report.png")
	if loaded == 0 {
		t.Fatal("no page load recorded")
	}
}

func caseOf(cases []*client.Case, id routing.ID) *client.Case {
	for _, k := range cases {
		if k.ID == id {
			return k
		}
	}
	return nil
}

// until waits for a JavaScript condition on the page (polled by the
// browser on every animation frame), as an action of a step.
func until(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr)(ctx, t)
		return chromedp.Void{}, err
	}
}
