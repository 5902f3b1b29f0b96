package client_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/internal/relaytest"
)

// TestCloseDoesNotWaitForAnUnansweredRequest: a relay that stops answering
// (it crashed between taking a request and replying, or a middlebox ate the
// reply) must not hold the client. On connect the background loop asks for
// the directory with a 30 s timeout that Close does not cancel, so Close
// waits out the timeout; nats.go does not fail requests on disconnect
// either, so after a relay restart the same loop also delays queued alerts
// by up to 30 s.
//
// A Beacon relay cannot be made to withhold one reply deterministically,
// so the relay here is a bare nats-server on which the test itself
// subscribes to every subject and never answers.
func TestCloseDoesNotWaitForAnUnansweredRequest(t *testing.T) {
	t.Parallel()
	srv := relaytest.StartBare(t)
	silent, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(silent.Close)
	// Whatever the client asks, under whatever subject, goes unanswered.
	asked := make(chan *nats.Msg, 64)
	if _, err := silent.ChanSubscribe(">", asked); err != nil {
		t.Fatal(err)
	}
	if err := silent.Flush(); err != nil {
		t.Fatal(err)
	}

	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "nl-kampala", Countries: []string{"ug"}})
	c, err := client.Open(client.Config{URLs: []string{srv.ClientURL()}, Keyring: newDefender(t),
		Root: w.Root.Public().Fingerprint(), StateDir: t.TempDir(), Directory: w.Dir.Raw})
	if err != nil {
		t.Fatal(err)
	}
	var pendingReq *nats.Msg
	waitAsked := ctx(t)
	for pendingReq == nil {
		select {
		case m := <-asked:
			if m.Reply != "" {
				pendingReq = m // the background loop now waits for an answer
			}
		case <-waitAsked.Done():
			c.Close()
			t.Fatal("the client never asked the relay anything")
		}
	}

	closed := make(chan struct{})
	start := time.Now()
	go func() { c.Close(); close(closed) }()
	// Close normally takes milliseconds; 5 s is far from both that and
	// the loop's 30 s timeout.
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		// Answer (with an error) so that the loop, and Close, can finish.
		reply := nats.NewMsg(pendingReq.Reply)
		reply.Data = []byte(`{"error":{"code":"unavailable","description":"test: unblocking"}}`)
		silent.PublishMsg(reply)
		<-closed
		t.Fatalf("Close blocked for %v: it waits for the background loop's unanswered request (the loop's "+
			"30 s timeout; and when that and the 30 s ticker are both ready, select may start another round)",
			time.Since(start).Round(time.Second))
	}
}
