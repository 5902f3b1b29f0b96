package client_test

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// awaitOutboxDrained waits until the client's background outbox loop has
// flushed everything: the loop logs "outbox flushed" after each flush that
// sent something or failed, and removes what it delivered before logging.
func awaitOutboxDrained(t *testing.T, p *party) {
	t.Helper()
	for outboxLen(t, p.Client) > 0 {
		if err := p.events.await(ctx(t), "outbox flushed"); err != nil {
			t.Fatalf("outbox still holds %d: %v", outboxLen(t, p.Client), err)
		}
	}
}

// assertStoredOnce checks, from the relay's side, that it stored the alert
// once, however often the client published it, and handed it to each
// Ugandan mission's consumer once.
func assertStoredOnce(t *testing.T, w *world) {
	t.Helper()
	if n := w.stored(t, proto.StreamAlerts); n != 1 {
		t.Errorf("the relay stored %d alerts, want 1", n)
	}
	for _, id := range []string{"nl-kampala", "se-kampala"} {
		ci := w.consumer(t, proto.StreamAlerts, proto.AlertConsumer(id, "ug"))
		if ci.Delivered.Consumer != 1 || ci.NumPending != 0 || ci.NumRedelivered != 0 {
			t.Errorf("%s: consumer delivered %d, pending %d, redelivered %d; want exactly one delivery",
				id, ci.Delivered.Consumer, ci.NumPending, ci.NumRedelivered)
		}
	}
}

func TestQueuedWhileRelayDownIsDeliveredOnce(t *testing.T) {
	t.Parallel()
	w := newRestartableWorld(t)
	def := w.openParty(t, newDefender(t), "")
	nl := w.openParty(t, w.Keyrings["nl-kampala"], "")
	se := w.openParty(t, w.Keyrings["se-kampala"], "")
	all := []*party{def, nl, se}
	for _, p := range all {
		p.waitReady(t)
	}

	w.stop(t)
	for _, p := range all {
		p.waitDisconnected(t)
	}
	sent, err := def.SendAlert(ctx(t), ugAlert("Detained at the airport"))
	if err != nil {
		t.Fatalf("SendAlert with the relay down: %v (want queued, no error)", err)
	}
	if !sent.Queued || !slices.Equal(sent.Missions, []string{"nl-kampala", "se-kampala"}) {
		t.Fatalf("sent = %+v, want queued for both Ugandan missions", sent)
	}
	// The alert, with its escalation to headquarters (the world's posts
	// name no escalation target), which is queued with it and not listed
	// apart.
	q, err := def.Outbox()
	if err != nil || len(q) != 1 || q[0].ID != sent.ID || q[0].Kind != message.KindAlert || q[0].Country != "ug" ||
		q[0].Priority != routing.Urgent || q[0].Shared || !slices.Equal(sent.Escalation, []int{2}) {
		t.Fatalf("outbox = %+v (err %v), escalation %v; want the alert, with its escalation to headquarters", q, err, sent.Escalation)
	}
	if n, err := def.Flush(ctx(t)); n != 0 || !errors.Is(err, client.ErrNotConnected) {
		t.Fatalf("Flush with the relay down = %d, %v; want 0, ErrNotConnected", n, err)
	}
	if cs, err := def.Cases(); err != nil || len(cs) != 1 || !cs[0].Thread[0].Queued {
		t.Fatalf("cases = %+v (err %v), want one case marked queued", cs, err)
	}

	w.restart(t)
	for _, p := range all {
		p.waitReady(t) // each reconnects by itself
	}
	for _, m := range []*party{nl, se} {
		got := readAlerts(t, m.Client, 1)
		if got[0].ID != sent.ID || got[0].Message.(*message.Alert).Summary != "Detained at the airport" {
			t.Fatalf("mission got %+v", got[0])
		}
	}
	awaitOutboxDrained(t, def)
	if cs, err := def.Cases(); err != nil || len(cs) != 1 || cs[0].Thread[0].Queued {
		t.Fatalf("cases = %+v (err %v), want the case no longer queued", cs, err)
	}
	// Flushing again sends nothing: the outbox is empty.
	if n, err := def.Flush(ctx(t)); n != 0 || err != nil {
		t.Fatalf("second Flush = %d, %v; want 0, nil", n, err)
	}
	for _, m := range []*party{nl, se} {
		if rs, err := receiveAlerts(m, ctx(t), client.FetchOptions{}); err != nil || len(rs) != 0 {
			t.Fatalf("mission read %d more (err %v), want none", len(rs), err)
		}
	}
	assertStoredOnce(t, w)
}

func TestQueuedMessageSurvivesClientRestart(t *testing.T) {
	t.Parallel()
	w := newRestartableWorld(t)
	def := w.openParty(t, newDefender(t), "")
	nl := w.openParty(t, w.Keyrings["nl-kampala"], "")
	se := w.openParty(t, w.Keyrings["se-kampala"], "")
	for _, p := range []*party{def, nl, se} {
		p.waitReady(t)
	}

	w.stop(t)
	for _, p := range []*party{def, nl, se} {
		p.waitDisconnected(t)
	}
	sent, err := def.SendAlert(ctx(t), ugAlert("Police at the gate"))
	if err != nil || !sent.Queued {
		t.Fatalf("SendAlert = %+v, %v; want queued", sent, err)
	}
	def.Close() // the process exits with the alert queued

	w.restart(t)
	cfg := def.cfg
	cfg.Directory = nil // the new process has only its state directory
	def2 := reopen(t, cfg)
	for _, p := range []*party{def2, nl, se} {
		p.waitReady(t)
	}
	for _, m := range []*party{nl, se} {
		if got := readAlerts(t, m.Client, 1); got[0].ID != sent.ID {
			t.Fatalf("mission got %s, want %s", got[0].ID, sent.ID)
		}
	}
	awaitOutboxDrained(t, def2)
	if cs, err := def2.Cases(); err != nil || len(cs) != 1 || cs[0].ID != sent.ID || cs[0].Thread[0].Queued {
		t.Fatalf("cases after restart = %+v (err %v)", cs, err)
	}
	if n, err := def2.Flush(ctx(t)); n != 0 || err != nil {
		t.Fatalf("Flush = %d, %v; want 0, nil", n, err)
	}
	assertStoredOnce(t, w)
}

func TestSendToUncoveredCountryQueuesNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	def := w.open(t, newDefender(t))

	a := ugAlert("Office raided")
	a.Country = "fr"
	_, err := def.SendAlert(ctx(t), a)
	var nc *client.CountryNotCoveredError
	if !errors.As(err, &nc) {
		t.Fatalf("SendAlert to fr: %v, want *CountryNotCoveredError", err)
	}
	if nc.Country != "fr" || !slices.Equal(nc.Covered, []string{"ke", "ug"}) {
		t.Fatalf("error = %+v, want fr and the covered countries [ke ug]", nc)
	}
	if n := outboxLen(t, def); n != 0 {
		t.Fatalf("outbox holds %d after a refused alert", n)
	}

	_, err = def.SendAlert(ctx(t), ugAlert(""))
	if !errors.Is(err, message.ErrInvalid) {
		t.Fatalf("SendAlert with an empty summary: %v, want message.ErrInvalid", err)
	}
	if n := outboxLen(t, def); n != 0 {
		t.Fatalf("outbox holds %d after an invalid alert", n)
	}
	if cs, err := def.Cases(); err != nil || len(cs) != 0 {
		t.Fatalf("cases = %d (err %v), want none", len(cs), err)
	}
	if n := w.stored(t, proto.StreamAlerts); n != 0 {
		t.Fatalf("a refused alert reached the relay: %d stored", n)
	}
}

// offlineDefender opens a defender whose relay is unreachable (nothing
// listens on its port), in a state directory Open creates.
func offlineDefender(t *testing.T) (p *party, state string) {
	t.Helper()
	w := relaytest.NewWorld(t,
		relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}},
		relaytest.MissionSpec{ID: "se-kampala", Countries: []string{"ug"}})
	state = filepath.Join(t.TempDir(), "state")
	url := "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(fixedPort(t)))
	p = reopen(t, client.Config{URLs: []string{url}, Keyring: newDefender(t), Root: w.Root.Public().Fingerprint(),
		StateDir: state, Directory: w.Dir.Raw})
	return p, state
}

// TestStateAtRestIsEncrypted queues a shared alert on a device whose relay
// is unreachable and looks at the state directory as someone who seized the
// device would.
func TestStateAtRestIsEncrypted(t *testing.T) {
	t.Parallel()
	def, state := offlineDefender(t)
	a := ugAlert("Summary XYZZY of the raid")
	a.Details = "Details PLUGH: they took the laptops"
	a.Location = "Ntinda FROBOZZ"
	a.Share = true
	sent, err := def.SendAlert(ctx(t), a)
	if err != nil || !sent.Queued || !slices.Equal(sent.Partners, []string{"partner"}) {
		t.Fatalf("SendAlert = %+v, %v; want queued, shared with the partner", sent, err)
	}
	if n := outboxLen(t, def.Client); n != 2 || !slices.Equal(sent.Escalation, []int{2, 3}) {
		t.Fatalf("outbox holds %d, escalation %v; want the alert and its shared copy (with its escalation to headquarters and the partner)", n, sent.Escalation)
	}

	secrets := [][]byte{[]byte("XYZZY"), []byte("PLUGH"), []byte("FROBOZZ"), []byte("nl-kampala"),
		[]byte("se-kampala"), []byte("Mission "), []byte("partner"), []byte(sent.ID.String()), sent.ID[:]}
	files := 0
	err = filepath.WalkDir(state, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(state, path)
		if d.IsDir() {
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("directory %s has mode %v, want 0700", rel, fi.Mode().Perm())
			}
			return nil
		}
		files++
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("file %s has mode %v, want 0600", rel, fi.Mode().Perm())
		}
		if rel == "directory.yaml" {
			return nil // public: the signed directory
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if found := containsAny(b, secrets...); len(found) > 0 {
			t.Errorf("%s holds in plaintext: %s", rel, strings.Join(found, ", "))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// seen.log, cases.json.enc, directory.yaml and two outbox entries.
	if files < 5 {
		t.Fatalf("found %d state files, want at least 5", files)
	}
}

// TestStateFileNamesRevealNothing: the store promises that a seized device
// shows only file sizes. The outbox names its files after the message id
// (the id the relay stores in the clear in the envelope header), with a
// "-share" suffix when the defender consented to sharing, so a queued
// alert's file name links the device to the alert on the relay.
func TestStateFileNamesRevealNothing(t *testing.T) {
	t.Parallel()
	def, state := offlineDefender(t)
	a := ugAlert("Office raided")
	a.Share = true
	sent, err := def.SendAlert(ctx(t), a)
	if err != nil || !sent.Queued {
		t.Fatalf("SendAlert = %+v, %v", sent, err)
	}
	err = filepath.WalkDir(state, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name := d.Name(); strings.Contains(name, sent.ID.String()) || strings.Contains(name, "share") {
			rel, _ := filepath.Rel(state, path)
			t.Errorf("state file name %s reveals the message id or the consent to share", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
