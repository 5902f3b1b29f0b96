package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/routing"
)

// cmdMkroster is the testscript command
//
//	mkroster OUT ENTRY...
//
// where ENTRY is mission:ID:CC[,CC]:SHOW, partner:ID:CC[,CC]:SHOW or
// bridge:ID:SHOW and SHOW is the output of "beacon keys show". It writes the
// roster YAML headquarters would write by hand.
func cmdMkroster(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: mkroster OUT ENTRY...")
	}
	var r keys.Roster
	for _, a := range args[1:] {
		parts := strings.Split(a, ":")
		show := func(path string) publicView {
			var v publicView
			if err := yaml.Unmarshal([]byte(ts.ReadFile(path)), &v); err != nil {
				ts.Fatalf("%s: %v", path, err)
			}
			return v
		}
		switch {
		case (parts[0] == "mission" || parts[0] == "partner") && len(parts) == 4:
			addToRoster(&r, parts[0], parts[1], parts[2], show(parts[3]))
		case parts[0] == "bridge" && len(parts) == 3:
			addToRoster(&r, parts[0], parts[1], "", show(parts[2]))
		default:
			ts.Fatalf("mkroster: bad entry %q", a)
		}
	}
	out, err := yaml.Marshal(&r)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	if err := os.WriteFile(ts.MkAbs(args[0]), out, 0o644); err != nil {
		ts.Fatalf("%v", err)
	}
	fmt.Fprintf(ts.Stdout(), "roster with %d missions\n", len(r.Missions))
}

// addToRoster adds a mission, partner or bridge with the public keys v, as
// headquarters would.
func addToRoster(r *keys.Roster, kind, id, countries string, v publicView) {
	switch kind {
	case "mission":
		r.Missions = append(r.Missions, keys.Mission{ID: id, Name: "Mission " + id,
			Countries: strings.Split(countries, ","), Identity: v.Identity, NKey: v.NKey, InboxKeys: v.InboxKeys,
			Response: keys.ResponseTargets{Urgent: 15 * time.Minute, High: 4 * time.Hour, Routine: 72 * time.Hour}})
	case "partner":
		r.Partners = append(r.Partners, keys.Partner{ID: id, Name: "Partner " + id,
			Countries: strings.Split(countries, ","), Identity: v.Identity, NKey: v.NKey, InboxKeys: v.InboxKeys})
	case "bridge":
		r.Bridges = append(r.Bridges, keys.Bridge{ID: id, Name: "Bridge " + id, Identity: v.Identity, NKey: v.NKey})
	}
}

// cmdMkworld is the testscript command
//
//	mkworld DIRFILE ENTRY...
//
// where ENTRY is mission:ID:CC[,CC] or partner:ID:CC[,CC]. It generates a
// keyring for each, written to ID.key (passphrase from BEACON_PASSPHRASE),
// and a root key that signs DIRFILE, a directory listing them (serial 1,
// valid for a day), and sets ROOT_FP to the root's fingerprint. It does in
// one step, with one argon2id run per key file, what keys gen, keys show,
// mkroster and dir sign do in dir.txt and init.txt.
func cmdMkworld(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: mkworld DIRFILE ENTRY...")
	}
	h := harnessOf(ts)
	root, err := keys.GenerateIdentity()
	ts.Check(err)
	now := time.Now()
	r := keys.Roster{Serial: 1, Issued: now.Add(-time.Minute), Expires: now.Add(24 * time.Hour)}
	for _, a := range args[1:] {
		parts := strings.Split(a, ":")
		if len(parts) != 3 || (parts[0] != "mission" && parts[0] != "partner") {
			ts.Fatalf("mkworld: bad entry %q", a)
		}
		kr, err := keys.NewKeyring(keys.Role(parts[0]))
		ts.Check(err)
		path := ts.MkAbs(parts[1] + ".key")
		ts.Check(keys.WriteKeyFile(path, kr, []byte(ts.Getenv("BEACON_PASSPHRASE")), false))
		h.keyrings[path] = kr
		v := publicView{Identity: kr.Identity.Public(), NKey: kr.NKeyPublic()}
		for _, in := range kr.Inboxes {
			v.InboxKeys = append(v.InboxKeys, in.Signed)
		}
		addToRoster(&r, parts[0], parts[1], parts[2], v)
	}
	signed, err := keys.SignDirectory(&r, root)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), signed, 0o644))
	ts.Setenv("ROOT_FP", root.Public().Fingerprint().String())
	h.roots[root.Public().Fingerprint()] = root
}

// harnessKey finds a script's harness among its testscript values.
type harnessKey struct{}

// A harness is what the relay and mission commands of one script share:
// its relays, the directory they serve, and the missions' keyrings and
// last alerts. Commands of one script run one at a time.
type harness struct {
	work     string
	relays   map[string]*scriptRelay
	dirFile  string           // the directory of the relay started last
	root     keys.Fingerprint // its root
	keyrings map[string]*keys.Keyring
	last     map[string]*client.Received         // the last alert each mission read, by key file
	roots    map[keys.Fingerprint]*keys.Identity // the roots mkworld made, to sign later versions
	hostiles map[string]*scriptHostile
}

// A scriptRelay keeps its data directory and ports across a stop and a
// start, so clients reconnect to the same URL and find what it stored.
type scriptRelay struct {
	r                *relay.Relay
	dataDir          string
	listen, wsListen string
}

func newHarness(work string) *harness {
	return &harness{work: work, relays: map[string]*scriptRelay{}, keyrings: map[string]*keys.Keyring{},
		last: map[string]*client.Received{}, roots: map[keys.Fingerprint]*keys.Identity{}, hostiles: map[string]*scriptHostile{}}
}

func harnessOf(ts *testscript.TestScript) *harness { return ts.Value(harnessKey{}).(*harness) }

// cmdRelay is the testscript command
//
//	relay start NAME DIRFILE
//	relay stop NAME
//
// start runs a real relay in the test process: loopback, a port chosen the
// first time and kept after, data under $WORK/.relay-NAME, the signed
// directory DIRFILE pinned to the root named in it. It sets RELAY_URL
// (nats://) and RELAY_WS (ws://). stop shuts it down, keeping its data.
// Relays still running when the script ends are stopped.
func cmdRelay(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("relay does not support !")
	}
	h := harnessOf(ts)
	switch {
	case len(args) == 3 && args[0] == "start":
		h.startRelay(ts, args[1], args[2])
	case len(args) == 2 && args[0] == "stop":
		sr := h.relays[args[1]]
		if sr == nil || sr.r == nil {
			ts.Fatalf("relay %s is not running", args[1])
		}
		ts.Check(stopRelay(sr))
	default:
		ts.Fatalf("usage: relay start NAME DIRFILE | relay stop NAME")
	}
}

func (h *harness) startRelay(ts *testscript.TestScript, name, dirFile string) {
	sr := h.relays[name]
	if sr == nil {
		sr = &scriptRelay{dataDir: filepath.Join(h.work, ".relay-"+name), listen: "127.0.0.1:0", wsListen: "127.0.0.1:0"}
		h.relays[name] = sr
		ts.Defer(func() { stopRelay(sr) }) // the script has ended: nowhere to report to
	}
	if sr.r != nil {
		ts.Fatalf("relay %s is already running", name)
	}
	dirFile = ts.MkAbs(dirFile)
	root := directoryRoot(ts, dirFile)
	cfg := relay.DefaultConfig(sr.dataDir)
	cfg.ServerName = "script-" + name
	cfg.Listen = sr.listen
	cfg.WebSocket = &relay.WebSocketConfig{Listen: sr.wsListen, NoTLS: true}
	cfg.Storage.MaxBytes = 64 << 20
	cfg.Limits.PublishRate, cfg.Limits.PublishBurst = 1000, 1000
	cfg.Directory = &relay.DirectoryConfig{File: dirFile, RootFingerprint: root.String()}
	r, err := relay.New(cfg)
	if err != nil {
		ts.Fatalf("relay %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		ts.Fatalf("relay %s: %v", name, err)
	}
	sr.r = r
	for _, a := range []struct {
		u    string
		addr *string
	}{{r.ClientURL(), &sr.listen}, {r.WebSocketURL(), &sr.wsListen}} {
		u, err := url.Parse(a.u)
		if err != nil {
			ts.Fatalf("relay %s: %v", name, err)
		}
		*a.addr = u.Host
	}
	h.dirFile, h.root = dirFile, root
	ts.Setenv("RELAY_URL", r.ClientURL())
	ts.Setenv("RELAY_WS", r.WebSocketURL())
	ts.Logf("relay %s ready at %s and %s", name, r.ClientURL(), r.WebSocketURL())
}

func stopRelay(sr *scriptRelay) error {
	if sr.r == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := sr.r.Shutdown(ctx)
	sr.r = nil
	return err
}

// directoryRoot returns the fingerprint of the root a signed directory
// file names. The relay and the missions of a script trust it; the
// defender pins the one the script gives it.
func directoryRoot(ts *testscript.TestScript, path string) keys.Fingerprint {
	data := ts.ReadFile(path)
	body, _, ok := strings.Cut(data, "# beacon-directory-signature: ")
	if !ok {
		ts.Fatalf("%s: not a signed directory", path)
	}
	r, err := keys.ParseRoster([]byte(body))
	if err != nil || r.Root == nil {
		ts.Fatalf("%s: no root: %v", path, err)
	}
	return r.Root.Fingerprint()
}

// cmdRootFP is the testscript command
//
//	rootfp ROOTKEY
//
// It opens the key file (passphrase from BEACON_PASSPHRASE) and sets
// ROOT_FP to its fingerprint, as headquarters would hand it out.
func cmdRootFP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: rootfp ROOTKEY")
	}
	kr := harnessOf(ts).keyring(ts, args[0])
	ts.Setenv("ROOT_FP", kr.Identity.Public().Fingerprint().String())
}

// cmdCapture is the testscript command
//
//	capture VAR REGEXP
//
// It sets VAR to the first group of REGEXP's first match in the last
// command's stdout, so a later command can name what an earlier one
// printed (an alert's id, say).
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: capture VAR REGEXP")
	}
	re, err := regexp.Compile(`(?m)` + args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("capture: no match for %#q with a group in stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
}

// keyring opens a key file once per script: argon2id is slow on purpose.
func (h *harness) keyring(ts *testscript.TestScript, file string) *keys.Keyring {
	path := ts.MkAbs(file)
	if kr := h.keyrings[path]; kr != nil {
		return kr
	}
	kr, err := keys.LoadKeyFile(path, []byte(ts.Getenv("BEACON_PASSPHRASE")))
	if err != nil {
		ts.Fatalf("%v", err)
	}
	h.keyrings[path] = kr
	return kr
}

// cmdMission is the testscript command
//
//	mission read ID KEYFILE
//	mission await ID KEYFILE
//	mission ack KEYFILE TEXT
//	mission pending KEYFILE CC
//
// It acts as the mission whose keyring is in KEYFILE, connected to
// $RELAY_URL with the directory of the relay started last. read fetches
// what the mission has not read yet and prints one line per message (kind,
// id, content; see describeReceived); it checks that the key is mission
// ID's. await is read, but waits up to 10 seconds for a first message
// (a release from a hold). ack acknowledges the alert the mission read last, signed as the
// mission's name, and replies TEXT. pending prints how many messages for
// CC the mission has not read or not yet acknowledged to the relay.
func cmdMission(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("mission does not support !")
	}
	h := harnessOf(ts)
	out := ts.Stdout() // set even when nothing is printed: stdout is this command's
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	switch {
	case len(args) == 3 && (args[0] == "read" || args[0] == "await"):
		cl, m := h.openMission(ctx, ts, args[2])
		defer cl.Close()
		if m.ID != args[1] {
			ts.Fatalf("%s is the key of mission %s, not %s", args[2], m.ID, args[1])
		}
		// The relay stored each message before the command that sent it
		// returned, so a fetch that does not wait finds them all. Only if
		// it finds nothing while the relay counts some pending (acks of an
		// earlier read not yet processed, or a slow relay) is it worth
		// waiting, and then a fetch that waits shows which it was.
		var got []*client.Received
		drain := func() {
			for {
				rs, err := receiveAlerts(ctx, cl, client.FetchOptions{})
				ts.Check(err)
				if len(rs) == 0 {
					return
				}
				got = append(got, rs...)
			}
		}
		drain()
		if len(got) == 0 && args[0] == "await" {
			// A release from a hold reaches the alerts a moment after the
			// command that caused it returned: wait for it.
			rs, err := receiveAlerts(ctx, cl, client.FetchOptions{Wait: 10 * time.Second})
			ts.Check(err)
			got = append(got, rs...)
			drain()
		}
		if len(got) == 0 {
			var pending uint64
			for _, cc := range m.Countries {
				n, err := cl.Pending(ctx, cc)
				ts.Check(err)
				pending += n
			}
			if pending > 0 {
				rs, err := receiveAlerts(ctx, cl, client.FetchOptions{Wait: 3 * time.Second})
				ts.Check(err)
				got = append(got, rs...)
				drain()
			}
		}
		for _, r := range got {
			fmt.Fprintln(out, describeReceived(r))
			if _, ok := r.Message.(*message.Alert); ok {
				h.last[ts.MkAbs(args[2])] = r
			}
		}
	case len(args) == 3 && args[0] == "ack":
		r := h.last[ts.MkAbs(args[1])]
		if r == nil {
			ts.Fatalf("mission ack: %s has read no alert yet", args[1])
		}
		cl, m := h.openMission(ctx, ts, args[1])
		defer cl.Close()
		s, err := cl.Acknowledge(ctx, r, m.Name, "")
		ts.Check(err)
		s2, err := cl.Reply(ctx, r, args[2])
		ts.Check(err)
		if s.Queued || s2.Queued {
			ts.Fatalf("mission ack: the relay did not take the ack and the reply")
		}
		fmt.Fprintf(out, "%s acknowledged %s and replied\n", m.ID, r.Case)
	case len(args) == 3 && args[0] == "pending":
		cl, _ := h.openMission(ctx, ts, args[1])
		defer cl.Close()
		n, err := cl.Pending(ctx, args[2])
		ts.Check(err)
		fmt.Fprintf(out, "pending %d\n", n)
	default:
		ts.Fatalf("usage: mission read ID KEYFILE | mission ack KEYFILE TEXT | mission pending KEYFILE CC")
	}
}

// openMission connects as the mission whose key is in file and returns its
// client and directory entry.
func (h *harness) openMission(ctx context.Context, ts *testscript.TestScript, file string) (*client.Client, *keys.Mission) {
	if h.dirFile == "" {
		ts.Fatalf("mission: no relay started")
	}
	kr := h.keyring(ts, file)
	cl, err := client.Open(client.Config{URLs: []string{ts.Getenv("RELAY_URL")}, Keyring: kr, Root: h.root,
		StateDir: filepath.Join(h.work, ".mission-"+filepath.Base(file)), Directory: []byte(ts.ReadFile(h.dirFile))})
	ts.Check(err)
	if err := cl.WaitConnected(ctx); err != nil {
		cl.Close()
		ts.Fatalf("mission: %v", err)
	}
	d, err := cl.Directory()
	ts.Check(err)
	for i, m := range d.Missions {
		if m.Identity.Equal(kr.Identity.Public()) {
			return cl, &d.Missions[i]
		}
	}
	cl.Close()
	ts.Fatalf("mission: %s is not the key of a mission in the directory", file)
	return nil, nil
}

// describeReceived renders what a mission read as one line: kind, message
// id, then the content, text quoted with %q so invisible characters show.
func describeReceived(r *client.Received) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Message.Kind(), r.ID)
	switch m := r.Message.(type) {
	case *message.Alert:
		fmt.Fprintf(&b, " %s %s %s %q", m.Country, m.Priority, m.Category, m.Summary)
		if m.Details != "" {
			fmt.Fprintf(&b, " details=%q", m.Details)
		}
		if m.Location != "" {
			fmt.Fprintf(&b, " location=%q", m.Location)
		}
		if m.Share {
			b.WriteString(" share")
		}
	case *message.Update:
		fmt.Fprintf(&b, " ref=%s %q", routing.ID(m.Ref), m.Text)
	case *message.Cancel:
		fmt.Fprintf(&b, " ref=%s %s %q", routing.ID(m.Ref), m.Reason, m.Text)
	case *message.MeetingRequest:
		var times []string
		for _, t := range m.Times {
			times = append(times, t.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(&b, " %s %s %q times=%s", m.Country, m.Place, m.Purpose, strings.Join(times, ","))
		if m.SafetyNotes != "" {
			fmt.Fprintf(&b, " notes=%q", m.SafetyNotes)
		}
	case *message.CheckIn:
		fmt.Fprintf(&b, " %s %q", m.Country, m.Text)
		if m.Exercise {
			b.WriteString(" exercise")
		}
	case *message.ObservationRequest:
		fmt.Fprintf(&b, " %s %q %q hearing=%s defendants=%q", m.Country, m.Court, m.Case,
			m.Hearing.UTC().Format(time.RFC3339), m.Defendants)
		if m.Charges != "" {
			fmt.Fprintf(&b, " charges=%q", m.Charges)
		}
	}
	return b.String()
}

// receiveAlerts receives one batch of a mission's alerts into memory (the
// script's mission keeps nothing).
func receiveAlerts(ctx context.Context, cl *client.Client, o client.FetchOptions) ([]*client.Received, error) {
	var out []*client.Received
	b, err := cl.ReceiveAlerts(ctx, o, func(_ context.Context, r *client.Received) error {
		out = append(out, r)
		return nil
	})
	if err == nil {
		err = b.Err
	}
	return out, err
}
