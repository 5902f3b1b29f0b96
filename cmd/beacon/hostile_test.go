package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// A scriptHostile is a hostile relay (relaytest.Hostile) run by a script,
// with a mailbox that behaves like a relay's until told otherwise:
// messages are offered after the reader's cursor and deleted once
// settled.
type scriptHostile struct {
	h *relaytest.Hostile

	mu      sync.Mutex
	mailbox []relaytest.HostileMsg
	seq     uint64
	refuse  *proto.Error // publishes refused with this
	refuseN int          // ... this many more times (-1: all)
	stop    chan struct{}
}

// cmdHostile is the testscript command
//
//	hostile start NAME DIRFILE
//	hostile serve NAME DIRFILE
//	hostile reply NAME KEYFILE CASE TEXT
//	hostile refuse NAME publish|fetch CODE|none [COUNT]
//	hostile gaps NAME SERVICE N [MIN...]
//	hostile published NAME
//
// start runs a hostile relay (a real nats-server whose relay services the
// test answers) serving the signed directory DIRFILE and sets RELAY_URL
// to it; serve makes it serve another. reply puts in the defender's
// mailbox (the defender of $BEACON_HOME) a reply about CASE signed by the
// keyring in KEYFILE, which need not be in any directory the relay
// serves. refuse answers the next COUNT publishes (default: all), or
// every fetch, with refusal CODE ("none" stops). gaps waits for the N-th
// request to SERVICE (fetch, directory, publish, ...) and checks that the
// i-th gap between two requests lasted at least the i-th MIN (a Go
// duration): a bound on a backoff, from below only, so a slow machine
// cannot fail it. published prints one line per publish the relay
// stored: its target.
func cmdHostile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: hostile start|serve|reply|refuse|gaps|published NAME ...")
	}
	h := harnessOf(ts)
	name := args[1]
	sh := h.hostiles[name]
	if args[0] != "start" && sh == nil {
		ts.Fatalf("hostile %s is not running", name)
	}
	switch {
	case args[0] == "start" && len(args) == 3:
		if sh != nil {
			ts.Fatalf("hostile %s is already running", name)
		}
		hr, err := relaytest.NewHostile([]byte(ts.ReadFile(args[2])), relaytest.HostileOptions{})
		ts.Check(err)
		sh = &scriptHostile{h: hr, stop: make(chan struct{})}
		ts.Defer(func() { close(sh.stop); hr.Close() })
		hr.Set(func(hr *relaytest.Hostile) {
			hr.Fetch = sh.fetch
			hr.Refuse = sh.refusePublish
		})
		go sh.settle()
		h.hostiles[name] = sh
		h.dirFile, h.root = ts.MkAbs(args[2]), directoryRoot(ts, args[2])
		ts.Setenv("RELAY_URL", hr.URL)
	case args[0] == "serve" && len(args) == 3:
		dir := []byte(ts.ReadFile(args[2]))
		sh.h.Set(func(hr *relaytest.Hostile) { hr.Directory = dir })
	case args[0] == "reply" && len(args) == 5:
		from := h.keyring(ts, args[2])
		to := h.keyring(ts, ts.Getenv("BEACON_HOME")+"/key")
		ref, err := routing.ParseID(args[3])
		ts.Check(err)
		body, err := message.Marshal(&message.Reply{Ref: ref, Text: args[4]})
		ts.Check(err)
		env, err := envelope.Seal(envelope.NewHeader("ug", routing.Urgent), body, from.Identity, envelope.Signed, envelope.To(to.Identity.Public()))
		ts.Check(err)
		sh.mu.Lock()
		sh.seq++
		sh.mailbox = append(sh.mailbox, relaytest.HostileMsg{Data: env, Subject: "bcn.mbox.hostile", Seq: sh.seq, Settle: proto.MailboxToken(sh.seq)})
		sh.mu.Unlock()
	case args[0] == "refuse" && (len(args) == 4 || len(args) == 5):
		var perr *proto.Error
		if args[3] != "none" {
			perr = &proto.Error{Code: proto.Code(args[3]), Description: "hostile relay says " + args[3]}
		}
		n := -1
		if len(args) == 5 {
			var err error
			n, err = strconv.Atoi(args[4])
			ts.Check(err)
		}
		switch args[2] {
		case "publish":
			sh.mu.Lock()
			sh.refuse, sh.refuseN = perr, n
			sh.mu.Unlock()
		case "fetch":
			sh.h.Set(func(hr *relaytest.Hostile) { hr.FetchRefusal = perr })
		default:
			ts.Fatalf("hostile refuse: publish or fetch, not %q", args[2])
		}
	case args[0] == "gaps" && len(args) >= 4:
		n, err := strconv.Atoi(args[3])
		ts.Check(err)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		at, err := sh.h.Await(ctx, proto.ServiceName(args[2]), n)
		if err != nil {
			ts.Fatalf("hostile gaps: %d requests to %s, want %d: %v", len(at), args[2], n, err)
		}
		for i, s := range args[4:] {
			min, err := time.ParseDuration(s)
			ts.Check(err)
			if i+1 >= len(at) {
				ts.Fatalf("hostile gaps: more gaps given than %d requests have", n)
			}
			gap := at[i+1].Sub(at[i])
			ts.Logf("gap %d: %v (at least %v)", i+1, gap.Round(time.Millisecond), min)
			if gap < min {
				ts.Fatalf("hostile gaps: request %d to %s came %v after the one before, want at least %v", i+2, args[2], gap, min)
			}
		}
	case args[0] == "published" && len(args) == 2:
		for {
			select {
			case p := <-sh.h.Published:
				fmt.Fprintln(ts.Stdout(), p.Target)
				continue
			default:
			}
			break
		}
	default:
		ts.Fatalf("usage: hostile start|serve|reply|refuse|gaps|published NAME ...")
	}
}

// fetch answers a mailbox fetch as a relay would: what is stored after
// the cursor, up to what was asked.
func (sh *scriptHostile) fetch(_ routing.Mailbox, src proto.Source, req proto.FetchRequest) []relaytest.HostileMsg {
	if src.Alerts {
		return nil
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var out []relaytest.HostileMsg
	for _, m := range sh.mailbox {
		if m.Seq > req.After && len(out) < max(req.Max, 1) {
			out = append(out, m)
		}
	}
	return out
}

// settle deletes what the reader settled, until the relay stops.
func (sh *scriptHostile) settle() {
	for {
		select {
		case toks := <-sh.h.Settled:
			sh.mu.Lock()
			sh.mailbox = slices.DeleteFunc(sh.mailbox, func(m relaytest.HostileMsg) bool { return slices.Contains(toks, m.Settle) })
			sh.mu.Unlock()
		case <-sh.stop:
			return
		}
	}
}

func (sh *scriptHostile) refusePublish(relaytest.HostilePublish) *proto.Error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.refuse == nil || sh.refuseN == 0 {
		return nil
	}
	if sh.refuseN > 0 {
		sh.refuseN--
	}
	return sh.refuse
}

// cmdNextdir is the testscript command
//
//	nextdir OUT IN [expired] [mission:ID:CC...]
//
// It signs, with the root mkworld made for IN, the version after IN: the
// same roster with serial + 1, the previous hash IN's, valid for a day
// (expired: it expired an hour ago), and the missions given added, each
// with a keyring written to ID.key as mkworld does.
func cmdNextdir(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: nextdir OUT IN [expired] [mission:ID:CC...]")
	}
	h := harnessOf(ts)
	in := []byte(ts.ReadFile(args[1]))
	root := h.roots[directoryRoot(ts, args[1])]
	if root == nil {
		ts.Fatalf("nextdir: %s was not signed by a root mkworld made", args[1])
	}
	i := bytes.LastIndex(in, []byte("\n# beacon-directory-signature: "))
	if i < 0 {
		ts.Fatalf("nextdir: %s is not signed", args[1])
	}
	r, err := keys.ParseRoster(in[:i+1])
	ts.Check(err)
	prev, err := keys.VerifyDirectory(in, root.Public().Fingerprint(), r.Expires.Add(-time.Second), nil)
	ts.Check(err)
	r.Serial, r.Previous = prev.Serial+1, keys.HashString(prev.Hash)
	now := time.Now()
	r.Issued, r.Expires = now.Add(-time.Minute), now.Add(24*time.Hour)
	rest := args[2:]
	if len(rest) > 0 && rest[0] == "expired" {
		r.Issued, r.Expires, rest = now.Add(-2*time.Hour), now.Add(-time.Hour), rest[1:]
	}
	for _, a := range rest {
		var id, cc string
		if n, _ := fmt.Sscanf(a, "mission:%s", &id); n != 1 {
			ts.Fatalf("nextdir: bad entry %q", a)
		}
		parts := bytes.Split([]byte(id), []byte(":"))
		if len(parts) != 2 {
			ts.Fatalf("nextdir: bad entry %q", a)
		}
		id, cc = string(parts[0]), string(parts[1])
		kr, err := keys.NewKeyring(keys.RoleMission)
		ts.Check(err)
		path := ts.MkAbs(id + ".key")
		ts.Check(keys.WriteKeyFile(path, kr, []byte(ts.Getenv("BEACON_PASSPHRASE")), false))
		h.keyrings[path] = kr
		v := publicView{Identity: kr.Identity.Public(), NKey: kr.NKeyPublic()}
		for _, in := range kr.Inboxes {
			v.InboxKeys = append(v.InboxKeys, in.Signed)
		}
		addToRoster(r, "mission", id, cc, v)
	}
	signed, err := keys.SignDirectory(r, root)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), signed, 0o644))
}
