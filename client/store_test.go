package client_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// replayAll makes the relay deliver every stored Ugandan alert to
// nl-kampala again, as if it had lost the mission's acknowledgements (see
// forgetConsumer; every client must be closed), opens the mission again
// with cfg, checks the relay offers it n alerts, and returns what Alerts
// shows of them.
func replayAll(t *testing.T, w *world, cfg client.Config, n uint64) []*client.Received {
	t.Helper()
	name := proto.AlertConsumer("nl-kampala", "ug")
	w.forgetConsumer(t, proto.StreamAlerts, name)
	cfg.URLs = []string{w.relay.ClientURL()}
	m := reopen(t, cfg)
	m.waitConnected(t)
	if got := pending(t, m.Client, "ug"); got != n {
		t.Fatalf("the relay offers %d alerts again, want %d", got, n)
	}
	rs, err := receiveAlerts(m, ctx(t), client.FetchOptions{Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Everything offered was handed to the client, shown or dropped. (Not
	// whether it is acknowledged yet: acks are asynchronous.)
	if ci := w.consumer(t, proto.StreamAlerts, name); ci.NumPending != 0 || ci.Delivered.Consumer != n {
		t.Fatalf("after the replay: %d not delivered, %d delivered; want 0, %d", ci.NumPending, ci.Delivered.Consumer, n)
	}
	m.Close()
	return rs
}

func seenLog(cfg client.Config) string { return filepath.Join(cfg.StateDir, "seen.log") }

// TestReplayedAlertIsShownOnce: an alert the mission has read, delivered
// again by the relay after the mission restarted, is dropped; a mission
// without the seen-set (a fresh state directory) would show it, so the
// replay really reached the client.
//
// Not tested: two copies of one id in a single fetched batch. The relay
// cannot be made to store them: within the dedup window (at least a minute)
// JetStream drops the second copy, and after it the ingest refuses the
// envelope as stale; clients cannot publish into a stream directly.
func TestReplayedAlertIsShownOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	def := w.open(t, newDefender(t))
	nl := w.openParty(t, w.Keyrings["nl-kampala"], filepath.Join(t.TempDir(), "state"))
	sent, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAlerts(t, nl.Client, 1); got[0].ID != sent.ID {
		t.Fatalf("got %s, want %s", got[0].ID, sent.ID)
	}
	nl.Close()
	def.Close()

	if rs := replayAll(t, w, nl.cfg, 1); len(rs) != 0 {
		t.Fatalf("replayed alert shown again after a restart: %d", len(rs))
	}

	fresh := nl.cfg
	fresh.StateDir = t.TempDir()
	if rs := replayAll(t, w, fresh, 1); len(rs) != 1 || rs[0].ID != sent.ID {
		t.Fatalf("control: a mission without the seen-set got %d, want the alert", len(rs))
	}
}

// TestSeenSetAtRestIsEncrypted checks both sides' seen-sets: a mission's
// (alert ids) and a defender's (ids of acks received). Neither holds an id
// in the clear, hex or raw, and both are private files in private
// directories.
func TestSeenSetAtRestIsEncrypted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	def := w.openParty(t, newDefender(t), filepath.Join(t.TempDir(), "def"))
	nl := w.openParty(t, w.Keyrings["nl-kampala"], filepath.Join(t.TempDir(), "nl"))
	def.waitConnected(t)
	sent, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport"))
	if err != nil {
		t.Fatal(err)
	}
	rs := readAlerts(t, nl.Client, 1)
	ack, err := nl.Acknowledge(ctx(t), rs[0], "Political officer", "Calling the police station")
	if err != nil {
		t.Fatal(err)
	}
	if got := readInbox(t, def.Client, 1); got[0].ID != ack.ID {
		t.Fatalf("defender got %s, want the ack %s", got[0].ID, ack.ID)
	}

	for _, c := range []struct {
		p  *party
		id routing.ID
	}{{nl, sent.ID}, {def, ack.ID}} {
		path := seenLog(c.p.cfg)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Fatalf("%s is empty: nothing recorded", path)
		}
		if found := containsAny(b, []byte(c.id.String()), []byte(strings.ToUpper(c.id.String())), c.id[:]); len(found) > 0 {
			t.Errorf("%s holds the delivered id in the clear: %v", path, found)
		}
		for _, f := range []string{path, c.p.cfg.StateDir} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			want := os.FileMode(0o600)
			if fi.IsDir() {
				want = 0o700
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s has mode %v, want %v", f, fi.Mode().Perm(), want)
			}
		}
	}
}

// TestDefenderInboxReplayIsDropped: the defender's side of the seen-set. A
// mission's reply, delivered again after the defender restarted and lost
// its mailbox consumer, is dropped.
func TestDefenderInboxReplayIsDropped(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	kr := newDefender(t)
	h := relaytest.StartHostile(t, w.Dir.Raw)
	// A genuine reply from nl-kampala, which the hostile relay offers on
	// every fetch, settled or not.
	caseID := routing.NewID()
	reply := sealReply(t, w.Keyrings["nl-kampala"], kr.Identity.Public(), caseID, "A diplomat is on the way.")
	h.Set(func(h *relaytest.Hostile) {
		h.Fetch = func(routing.Mailbox, proto.Source, proto.FetchRequest) []relaytest.HostileMsg {
			return []relaytest.HostileMsg{{Data: reply, Subject: "bcn.mbox.x", Settle: "mbox.1", Seq: 1}}
		}
	})
	cfg := client.Config{URLs: []string{h.URL}, Keyring: kr, Root: w.Root.Public().Fingerprint(), StateDir: t.TempDir(), Directory: w.Dir.Raw}
	def := reopen(t, cfg)
	def.waitConnected(t)
	if got, err := def.ReadMailbox(ctx(t), client.FetchOptions{}); err != nil || len(got) != 1 {
		t.Fatalf("first delivery: %d (err %v)", len(got), err)
	}
	def.Close()

	// After a restart (no cursor), the relay replays it.
	def2 := reopen(t, cfg)
	def2.waitConnected(t)
	got, err := def2.ReadMailbox(ctx(t), client.FetchOptions{})
	if err != nil || len(got) != 0 {
		t.Fatalf("replayed reply shown again: %d (err %v)", len(got), err)
	}
	// It was offered (and settled, as a drop).
	for range 2 {
		if toks := <-h.Settled; len(toks) != 1 || toks[0] != "mbox.1" {
			t.Fatalf("settled %q", toks)
		}
	}
	cs, err := def2.Cases()
	if err != nil || len(cs) != 1 || len(cs[0].Thread) != 1 {
		t.Fatalf("cases = %+v (err %v), want one case with the reply once", cs, err)
	}
}

// TestSeenSetTornTailDoesNotPreventOpen: a crash in the middle of appending
// to seen.log leaves a partial record; the client still opens, and what was
// recorded before is still refused.
func TestSeenSetTornTailDoesNotPreventOpen(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	def := w.open(t, newDefender(t))
	nl := w.openParty(t, w.Keyrings["nl-kampala"], "")
	if _, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport")); err != nil {
		t.Fatal(err)
	}
	readAlerts(t, nl.Client, 1)
	nl.Close()
	def.Close()
	appendJunk(t, seenLog(nl.cfg))

	m, err := client.Open(nl.cfg)
	if err != nil {
		t.Fatalf("Open with a torn seen.log: %v", err)
	}
	m.Close()
	if rs := replayAll(t, w, nl.cfg, 1); len(rs) != 0 {
		t.Fatalf("alert recorded before the torn record shown again: %d", len(rs))
	}
}

// TestSeenSetRecordsAfterTornTailSurvive: after a torn record, the ids
// recorded next must survive the next restart too. store.loadSeen skips the
// partial record but keeps the file open for appending after it, so every
// later record is misaligned, fails to decrypt on the next load and is
// silently forgotten: the alerts it recorded can then be replayed.
func TestSeenSetRecordsAfterTornTailSurvive(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	def := w.open(t, newDefender(t))
	nl := w.openParty(t, w.Keyrings["nl-kampala"], "")
	if _, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport")); err != nil {
		t.Fatal(err)
	}
	readAlerts(t, nl.Client, 1)
	nl.Close()
	appendJunk(t, seenLog(nl.cfg))

	nl2 := reopen(t, nl.cfg)
	second, err := def.SendAlert(ctx(t), ugAlert("Moved to another station"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAlerts(t, nl2.Client, 1); got[0].ID != second.ID {
		t.Fatalf("got %s, want %s", got[0].ID, second.ID)
	}
	nl2.Close()
	def.Close()

	if rs := replayAll(t, w, nl.cfg, 2); len(rs) != 0 {
		for _, r := range rs {
			t.Errorf("replayed alert %s shown again (the second alert is %s)", r.ID, second.ID)
		}
	}
}

// appendJunk appends a partial record to path, as a crash mid-append would.
func appendJunk(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCasesLogTornTailDoesNotBreakOpen: cases.log is a log of
// length-prefixed sealed records. After a crash mid-append, readLog stops at
// the torn record, but the next appendLog writes after it; from then on the
// torn record's length swallows the start of the new one, it fails to
// decrypt, readLog returns an error and Open fails: the defender's client
// no longer starts, and its cases are unreadable.
func TestCasesLogTornTailDoesNotBreakOpen(t *testing.T) {
	t.Parallel()
	def, state := offlineDefender(t)
	first, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport"))
	if err != nil {
		t.Fatal(err)
	}
	def.Close()
	// A record whose 4-byte length made it to disk, and 10 of its 200 bytes.
	f, err := os.OpenFile(filepath.Join(state, "cases.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(append([]byte{0, 0, 0, 200}, make([]byte, 10)...)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	def2, err := client.Open(def.cfg)
	if err != nil {
		t.Fatalf("Open with a torn cases.log: %v", err)
	}
	second, err := def2.SendAlert(ctx(t), ugAlert("Moved to another station"))
	if err != nil {
		def2.Close()
		t.Fatal(err)
	}
	def2.Close()

	def3, err := client.Open(def.cfg)
	if err != nil {
		t.Fatalf("Open after writing past a torn cases.log record: %v", err)
	}
	defer def3.Close()
	cs, err := def3.Cases()
	if err != nil || len(cs) != 2 || cs[0].ID != second.ID || cs[1].ID != first.ID {
		t.Fatalf("cases = %d (err %v), want both alerts", len(cs), err)
	}
}
