package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/internal/relayconn"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
)

// relayGroup is "beacon relay": running one, and the operator's commands
// against a running one.
type relayGroup struct {
	Run         relayCmd            `cmd:"" default:"withargs" help:"Run a relay (the default: beacon relay -c FILE is beacon relay run -c FILE)."`
	Purge       relayPurgeCmd       `cmd:"" help:"Inspect, and with --yes purge, what a running relay holds for a country, older than an age. The relay logs every purge."`
	OperatorKey relayOperatorKeyCmd `cmd:"" name:"operator-key" help:"Make an operator's connection key: the seed goes to FILE, the public key (for the relay config's operators) to stdout."`
}

type relayPurgeCmd struct {
	Relay     string        `required:"" help:"The relay's URL (nats://, tls://)." placeholder:"URL"`
	Key       string        `required:"" help:"The operator's key file (beacon relay operator-key), listed under operators in the relay config." placeholder:"FILE" predictor:"file"`
	Stream    string        `default:"alerts" enum:"alerts,shared,mailbox,broadcasts" help:"Which stream: alerts, shared, mailbox or broadcasts."`
	Country   string        `help:"Only this country (ISO 3166-1 alpha-2); mailboxes have none." placeholder:"CC"`
	Priority  string        `help:"Only this priority (urgent, high, routine)."`
	OlderThan time.Duration `name:"older-than" help:"Only what was stored longer ago than this (e.g. 6h); 0 for everything." placeholder:"AGE"`
	Yes       bool          `help:"Purge. Without it, only show what would be purged."`
	Timeout   time.Duration `default:"30s" help:"How long to wait for the relay."`
}

// operatorKeyLimit bounds the key file read: a seed is 58 characters.
const operatorKeyLimit = 4 << 10

func (c *relayPurgeCmd) Run(e *env) error {
	seed, err := readSmallFile(c.Key, operatorKeyLimit)
	if err != nil {
		return withHint(err, "make one with beacon relay operator-key FILE and list its public key under operators in the relay config")
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		return withHint(fmt.Errorf("%s: not an NKey seed", c.Key), "the file beacon relay operator-key wrote")
	}
	req := proto.PurgeRequest{Stream: strings.ToUpper(c.Stream), Country: strings.ToLower(c.Country), Priority: c.Priority}
	if !slices.Contains(proto.PurgeStreams, req.Stream) {
		return fmt.Errorf("no stream %q", c.Stream)
	}
	if c.OlderThan < 0 {
		return errors.New("--older-than must not be negative")
	}
	if c.OlderThan > 0 {
		req.Before = time.Now().Add(-c.OlderThan)
	}
	conn, err := relayconn.Dial(relayconn.Config{URLs: []string{c.Relay}, NKey: kp, Name: "beacon-operator"})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	if err := conn.WaitConnected(ctx); err != nil {
		return withHint(err, "is the relay running at %s, and is this key listed under operators in its config?", c.Relay)
	}
	target := proto.SvcInspectTarget
	if c.Yes {
		target = proto.SvcPurgeTarget
	}
	body, _ := json.Marshal(req)
	m, err := conn.NATS().RequestWithContext(ctx, proto.Ingest(conn.Mailbox(), target), body)
	if err != nil {
		return fmt.Errorf("the relay did not answer: %w", err)
	}
	var rep proto.PurgeReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return fmt.Errorf("%w: %v", relayconn.ErrHostile, err)
	}
	if rep.Error != nil {
		return withHint(rep.Error, "only a key listed under operators in the relay config may inspect and purge")
	}
	subjects := make([]string, 0, len(rep.Subjects))
	for s := range rep.Subjects {
		subjects = append(subjects, s)
	}
	slices.Sort(subjects)
	for _, s := range subjects {
		fmt.Fprintf(e.stdout, "%-24s %d stored\n", s, rep.Subjects[s])
	}
	what := "would purge"
	if c.Yes {
		what = "purged"
	}
	fmt.Fprintf(e.stdout, "%s %d messages from %s", what, rep.Total, req.Stream)
	if req.Country != "" {
		fmt.Fprintf(e.stdout, " for %s", req.Country)
	}
	if !req.Before.IsZero() {
		fmt.Fprintf(e.stdout, " stored before %s", req.Before.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(e.stdout)
	if !c.Yes && rep.Total > 0 {
		fmt.Fprintln(e.stdout, "run again with --yes to purge them")
	}
	return nil
}

type relayOperatorKeyCmd struct {
	File string `arg:"" help:"Where to write the seed (mode 0600; it must not exist)." predictor:"file"`
}

func (c *relayOperatorKeyCmd) Run(e *env) error {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	if _, err := os.Stat(c.File); err == nil {
		return withHint(fmt.Errorf("%s exists", c.File), "choose another file; an operator key is never overwritten")
	}
	if err := keys.WriteFileAtomic(c.File, append(seed, '\n'), 0o600, true); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "operators:\n  - name: %s\n    nkey: %s\n", "CHANGE-ME", pub)
	return nil
}

// readSmallFile reads a file of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, not a key file", path, st.Size())
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: readable by others (mode %o); chmod 600 it", path, st.Mode().Perm())
	}
	return os.ReadFile(path)
}
