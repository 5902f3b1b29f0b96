package relay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// TestFramePartsCheckedAlone: a bridge's frame travels as one message,
// and each part is checked, stored or refused, and answered as the same
// publish sent alone would be.
func TestFramePartsCheckedAlone(t *testing.T) {
	w, url := bridgeWorld(t)
	br := w.ConnectAs(t, url, "bridge")
	alert := routing.NewID()
	rc := signReceipt(t, w, alert, "bridge")
	forged := signReceipt(t, w, routing.NewID(), "nl-kampala")
	h := envelope.NewHeader("ug", routing.Urgent)
	env := sealAlert(t, w, h, "bridged")
	hops := func(n string) nats.Header { return nats.Header{proto.HeaderHops: []string{n}} }
	batch := []relayconn.Outgoing{
		{Target: proto.Receipt(alert, "partner").Target(), Data: rc},
		{Target: proto.MailboxTarget(proto.MailboxFor("a defender's key")), Data: rc},
		{Target: proto.Receipt(routing.NewID(), "partner").Target(), Data: forged},
		{Target: proto.FetchTarget(proto.SharedSource("partner")), Data: []byte(`{"max":1}`)},
		{Target: proto.HoldTargets[:len(proto.HoldTargets)-1] + "plan", Data: []byte("a plan")},
		{Target: proto.Bridged("bridge", "ug", routing.Urgent, h.ID, env).Target(), Data: env, Header: hops("1")},
		{Target: proto.Bridged("bridge", "ug", routing.Urgent, h.ID, env).Target(), Data: env, Header: hops("2")},
		{Target: proto.Receipt(alert, "partner").Target(), Data: rc},
	}
	before := br.Conn.Stats().OutMsgs
	rs, errs := br.Relay.PublishFrames(ctx(t), batch)
	if sent := br.Conn.Stats().OutMsgs - before; sent != 1 {
		t.Errorf("%d messages sent for a frame of %d, want 1", sent, len(batch))
	}
	for i, want := range []struct {
		stream    string
		code      proto.Code
		duplicate bool
	}{
		{stream: proto.StreamReceipts},
		{stream: proto.StreamMailbox},
		{code: proto.CodeBadSig},
		{code: proto.CodeBadTarget},
		{code: proto.CodeBadTarget},
		{stream: proto.StreamBridged},
		{code: proto.CodeForbidden},
		{stream: proto.StreamReceipts, duplicate: true},
	} {
		if want.code != "" {
			wantCode(t, "part "+batch[i].Target, errs[i], want.code)
			continue
		}
		if errs[i] != nil || rs[i].Stream != want.stream || rs[i].Duplicate != want.duplicate {
			t.Errorf("part %d (%s): %+v, %v; want stored in %s, duplicate %v", i, batch[i].Target, rs[i], errs[i], want.stream, want.duplicate)
		}
	}
}

// TestFramesSplitAtThePayload: a batch larger than the relay's maximum
// payload travels as several frames, and a walk-in may not send one.
func TestFramesSplitAtThePayload(t *testing.T) {
	w, url := bridgeWorld(t)
	br := w.ConnectAs(t, url, "bridge")
	mbox := proto.MailboxFor("a defender's key")
	// One envelope more than a frame holds: two frames.
	seal := func() []byte {
		return sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), strings.Repeat("x", 20<<10))
	}
	first := seal()
	perFrame := int(br.Conn.MaxPayload()) / (len(first) + 16)
	if perFrame < 2 {
		t.Fatalf("envelopes of %d bytes against a maximum payload of %d: not two to a frame", len(first), br.Conn.MaxPayload())
	}
	batch := []relayconn.Outgoing{{Target: proto.MailboxTarget(mbox), Data: first}}
	for range perFrame {
		batch = append(batch, relayconn.Outgoing{Target: proto.MailboxTarget(mbox), Data: seal()})
	}
	before := br.Conn.Stats().OutMsgs
	_, errs := br.Relay.PublishFrames(ctx(t), batch)
	for i, err := range errs {
		if err != nil {
			t.Errorf("envelope %d: %v", i, err)
		}
	}
	if sent := br.Conn.Stats().OutMsgs - before; sent != 2 {
		t.Errorf("%d messages sent, want 2 frames", sent)
	}

	// A walk-in may not send frames: the server refuses the publish.
	def := relaytest.Connect(t, url, nil)
	share := sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "shared")
	frame := proto.AppendFramePart(nil, proto.FramePart{Target: proto.ShareTarget("ug", routing.Urgent), Data: share})
	if err := def.PublishRequest(proto.Ingest(def.Mailbox, proto.FrameTarget), def.NewInbox(), frame); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-def.Errs:
		if !strings.Contains(err.Error(), "Permissions Violation") {
			t.Errorf("a walk-in's frame: %v, want a permissions violation", err)
		}
	case <-ctx(t).Done():
		t.Fatal("a walk-in's frame: no permissions violation")
	}
	if _, err := def.Publish(proto.ShareTarget("ug", routing.Urgent), share); err != nil {
		t.Errorf("the same share published alone: %v", err)
	}
}

// TestMalformedFrameRefused: a frame that cannot be read is refused whole
// with a clear error, and the relay keeps serving.
func TestMalformedFrameRefused(t *testing.T) {
	w, url := bridgeWorld(t)
	br := w.ConnectAs(t, url, "bridge")
	whole := proto.AppendFramePart(nil, proto.FramePart{Target: "mbox.x", Data: []byte("env")})
	var tooMany []byte
	for range proto.MaxFrameParts + 1 {
		tooMany = proto.AppendFramePart(tooMany, proto.FramePart{Target: "mbox.x", Data: []byte("e")})
	}
	for name, frame := range map[string][]byte{
		"empty":           {},
		"target past end": proto.AppendFramePart(nil, proto.FramePart{Target: "mbox.x", Data: []byte("env")})[:4],
		"data past end":   whole[:len(whole)-1],
		"no data length":  append(whole, 0x05, 'm', 'b', 'o', 'x', 0x00),
		"no target":       {0x00, 0x00, 0x00},
		"too many parts":  tooMany,
	} {
		m, err := br.Conn.Request(proto.Ingest(br.Mailbox, proto.FrameTarget), frame, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = proto.ParseReply(m.Data)
		wantCode(t, name, err, proto.CodeMalformed)
	}
	if _, err := br.Relay.PublishFrames(ctx(t), []relayconn.Outgoing{{Target: proto.MailboxTarget(proto.MailboxFor("k")),
		Data: sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "after")}}); err[0] != nil {
		t.Errorf("a good frame after the bad ones: %v", err[0])
	}
}

// TestFrameOfAnotherKeySentAlone: only bridges frame. A mission's frame is
// refused whole, and PublishFrames then sends each of its messages alone,
// so they are stored as if framing had never been tried.
func TestFrameOfAnotherKeySentAlone(t *testing.T) {
	w, url := bridgeWorld(t)
	m := w.ConnectAs(t, url, "nl-kampala")
	var batch []relayconn.Outgoing
	for range 3 {
		batch = append(batch, relayconn.Outgoing{Target: proto.MailboxTarget(proto.MailboxFor("a defender's key")),
			Data: sealAlert(t, w, envelope.NewHeader("ug", routing.Urgent), "a reply")})
	}
	before := m.Conn.Stats().OutMsgs
	rs, errs := m.Relay.PublishFrames(ctx(t), batch)
	for i := range batch {
		if errs[i] != nil || rs[i].Stream != proto.StreamMailbox {
			t.Errorf("message %d: %+v, %v; want stored in the mailbox", i, rs[i], errs[i])
		}
	}
	if sent := m.Conn.Stats().OutMsgs - before; sent != 1+uint64(len(batch)) {
		t.Errorf("%d messages sent, want the frame and then each of its %d messages", sent, len(batch))
	}
}
