package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/keys"
)

// Headquarters keeps the roster as a YAML file and edits it with dir add
// and dir remove, which take a mission's "beacon keys show" output as it
// was sent and rewrite the file through yaml.Node, so that the comments
// headquarters wrote stay where they were. Every edit is validated as dir
// sign would validate it before the file is replaced.

// maxShowSize bounds the "keys show" output dir add reads: one identity
// and a few inbox keys are a few KB.
const maxShowSize = 64 << 10

type dirAddCmd struct {
	Roster     string        `arg:"" help:"Roster YAML to add to (created if it does not exist)." predictor:"file"`
	Keys       string        `arg:"" optional:"" help:"The entity's 'beacon keys show' output, as it was printed (default: standard input)." predictor:"file"`
	ID         string        `required:"" help:"Directory id: 1–64 of a-z, 0-9 and -, e.g. nl-kampala."`
	Name       string        `required:"" help:"Display name, e.g. 'Embassy of the Netherlands, Kampala'."`
	Role       string        `help:"mission, partner or bridge (default: the role in the keys show output)."`
	Countries  []string      `sep:"," help:"Countries covered, ISO 3166-1 codes, comma separated (missions and partners)." placeholder:"CC,CC"`
	Urgent     time.Duration `default:"15m" help:"A mission's committed acknowledgement time for urgent alerts."`
	High       time.Duration `default:"4h" help:"The same for high priority."`
	Routine    time.Duration `default:"72h" help:"The same for routine messages."`
	Escalation string        `help:"The id of the mission or partner an alert this mission does not acknowledge in time escalates to." placeholder:"ID"`
	Oversees   []string      `sep:"," help:"Headquarters: the ids of the missions it oversees, comma separated." placeholder:"ID,ID"`
}

func (c *dirAddCmd) Run(e *env) error {
	show, err := c.readShow(e)
	if err != nil {
		return err
	}
	role, err := c.role(show)
	if err != nil {
		return err
	}
	var entry any
	switch role {
	case keys.RoleMission:
		entry = keys.Mission{ID: c.ID, Name: c.Name, Countries: c.Countries, Identity: show.Identity, NKey: show.NKey,
			InboxKeys: show.InboxKeys, Escalation: c.Escalation,
			Response: keys.ResponseTargets{Urgent: c.Urgent, High: c.High, Routine: c.Routine}}
	case keys.RolePartner:
		entry = keys.Partner{ID: c.ID, Name: c.Name, Countries: c.Countries, Identity: show.Identity, NKey: show.NKey,
			InboxKeys: show.InboxKeys}
	case keys.RoleBridge:
		entry = keys.Bridge{ID: c.ID, Name: c.Name, Identity: show.Identity, NKey: show.NKey}
	case keys.RoleHeadquarters:
		if len(c.Oversees) == 0 {
			return withHint(errors.New("headquarters: --oversees: at least one post"), "give the ids of the missions it oversees, e.g. --oversees nl-kampala,nl-nairobi")
		}
		entry = keys.Headquarters{ID: c.ID, Name: c.Name, Identity: show.Identity, NKey: show.NKey, InboxKeys: show.InboxKeys,
			Missions: c.Oversees}
	}
	if role != keys.RoleHeadquarters && len(c.Oversees) > 0 {
		return fmt.Errorf("--oversees is for headquarters, not a %s", role)
	}
	if role != keys.RoleMission && c.Escalation != "" {
		return fmt.Errorf("--escalation is for missions, not a %s", role)
	}
	if role == keys.RoleBridge && len(c.Countries) > 0 {
		return errors.New("a bridge covers no countries: it carries what partners are sent")
	}
	var node yaml.Node
	if err := node.Encode(entry); err != nil {
		return err
	}
	doc, perm, created, err := readRosterNode(c.Roster)
	if err != nil {
		return err
	}
	seq := rosterSection(doc, sectionOf(role))
	seq.Style = 0 // block style, even where an empty list was written []
	seq.Content = append(seq.Content, &node)
	if err := writeRoster(c.Roster, doc, perm); err != nil {
		return err
	}
	verb := "added %s %s (%s) to %s\n"
	if created {
		verb = "created %[4]s with %[1]s %[2]s (%[3]s)\n"
	}
	fmt.Fprintf(e.stdout, verb, role, c.ID, c.Name, c.Roster)
	fmt.Fprintf(e.stdout, "fingerprint:   %s\nsafety number: %s\n", show.Identity.Fingerprint(), show.Identity.SafetyNumber())
	fmt.Fprintln(e.stdout, "before you sign, compare the safety number with the one its holder reads from its own key (beacon keys show), in person or over a channel you trust")
	return nil
}

// readShow reads and checks the "keys show" output: strictly, and its
// fingerprint and safety number must be those of its identity, so that an
// output altered on its way to headquarters is refused.
func (c *dirAddCmd) readShow(e *env) (*publicView, error) {
	var r io.Reader = e.stdin
	name := "standard input"
	if c.Keys != "" && c.Keys != "-" {
		f, err := os.Open(c.Keys)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, c.Keys
	}
	data, err := io.ReadAll(io.LimitReader(r, maxShowSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxShowSize {
		return nil, fmt.Errorf("%s: larger than %d bytes; not a keys show output", name, maxShowSize)
	}
	var v publicView
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&v); err != nil {
		return nil, withHint(fmt.Errorf("%s: %w", name, err), "give the output of 'beacon keys show KEYFILE' exactly as it was printed")
	}
	switch {
	case v.Identity == nil:
		return nil, fmt.Errorf("%s: no identity", name)
	case !v.Fingerprint.Equal(v.Identity.Fingerprint()):
		return nil, withHint(fmt.Errorf("%s: the fingerprint is not the identity's: the output was altered", name),
			"ask the mission for its keys show output again, over a channel you trust")
	case v.SafetyNumber != v.Identity.SafetyNumber():
		return nil, withHint(fmt.Errorf("%s: the safety number is not the identity's: the output was altered", name),
			"ask the mission for its keys show output again, over a channel you trust")
	}
	return &v, nil
}

func (c *dirAddCmd) role(show *publicView) (keys.Role, error) {
	role := show.Role
	if c.Role != "" {
		r, err := keys.ParseRole(c.Role)
		if err != nil {
			return "", err
		}
		if show.Role != "" && r != show.Role {
			return "", withHint(fmt.Errorf("--role %s, but the key is a %s key", r, show.Role),
				"each role has its own key: the entity generates one with beacon keys gen --role %s", r)
		}
		role = r
	}
	switch role {
	case keys.RoleMission, keys.RolePartner, keys.RoleBridge, keys.RoleHeadquarters:
		return role, nil
	case "":
		return "", errors.New("the keys show output names no role: give --role mission, partner, bridge or headquarters")
	}
	return "", fmt.Errorf("a %s key is not listed in the roster: only missions, partners, bridges and headquarters are", role)
}

type dirRemoveCmd struct {
	Roster string `arg:"" help:"Roster YAML." predictor:"file"`
	ID     string `arg:"" help:"The id of the mission, partner, bridge or relay to remove."`
}

func (c *dirRemoveCmd) Run(e *env) error {
	doc, perm, created, err := readRosterNode(c.Roster)
	if err != nil {
		return err
	}
	if created {
		return fmt.Errorf("%s: %w", c.Roster, fs.ErrNotExist)
	}
	for _, section := range []string{"missions", "partners", "bridges", "headquarters", "relays"} {
		seq := rosterSection(doc, section)
		for i, n := range seq.Content {
			if _, v := mappingValue(n, "id"); v != nil && v.Value == c.ID {
				seq.Content = slices.Delete(seq.Content, i, i+1)
				if err := writeRoster(c.Roster, doc, perm); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "removed %s %s from %s\n", map[string]string{"missions": "mission", "partners": "partner",
					"bridges": "bridge", "headquarters": "headquarters", "relays": "relay"}[section], c.ID, c.Roster)
				return nil
			}
		}
	}
	return fmt.Errorf("%s lists no mission, partner, bridge or relay %q", c.Roster, c.ID)
}

func sectionOf(r keys.Role) string {
	return map[keys.Role]string{keys.RoleMission: "missions", keys.RolePartner: "partners", keys.RoleBridge: "bridges",
		keys.RoleHeadquarters: "headquarters"}[r]
}

// readRosterNode reads a roster as a YAML document, or starts an empty one
// if the file does not exist. It returns the mode to write it back with.
func readRosterNode(path string) (doc *yaml.Node, perm fs.FileMode, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}, 0o644, true, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, false, err
	}
	if _, err := keys.ParseRoster(data); err != nil {
		return nil, 0, false, fmt.Errorf("%s: %w", path, err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, 0, false, fmt.Errorf("%s: %w", path, err)
	}
	if len(n.Content) == 0 { // only comments
		n = yaml.Node{Kind: yaml.DocumentNode, HeadComment: n.HeadComment,
			Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	if n.Content[0].Kind != yaml.MappingNode {
		return nil, 0, false, fmt.Errorf("%s: not a roster (a YAML mapping)", path)
	}
	return &n, st.Mode().Perm(), false, nil
}

// rosterSection returns the sequence under key in the roster, adding an
// empty one if there is none.
func rosterSection(doc *yaml.Node, key string) *yaml.Node {
	m := doc.Content[0]
	if _, v := mappingValue(m, key); v != nil {
		if v.Kind != yaml.SequenceNode { // "missions:" with nothing after it
			*v = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", HeadComment: v.HeadComment, LineComment: v.LineComment}
		}
		return v
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, seq)
	return seq
}

func mappingValue(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// writeRoster encodes doc, checks the roster as dir sign would, and
// replaces the file atomically.
func writeRoster(path string, doc *yaml.Node, perm fs.FileMode) error {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	out := spaceSections(b.Bytes())
	r, err := keys.ParseRoster(out)
	if err != nil {
		return err
	}
	if err := checkRoster(r); err != nil {
		return withHint(err, "%s is unchanged", path)
	}
	return keys.WriteFileAtomic(path, out, perm, true)
}

// spaceSections puts back the blank line before each top-level comment
// block, which yaml.Node does not keep: the sections of a hand-written
// roster stay apart.
func spaceSections(b []byte) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	var out bytes.Buffer
	for i, l := range lines {
		if i > 0 && bytes.HasPrefix(l, []byte("#")) {
			if prev := lines[i-1]; len(bytes.TrimSpace(prev)) > 0 && !bytes.HasPrefix(prev, []byte("#")) {
				out.WriteByte('\n')
			}
		}
		out.Write(l)
	}
	return out.Bytes()
}

// checkRoster validates a roster as dir sign will: the serial, times and
// previous hash that dir sign fills in are filled in the same way first.
func checkRoster(r *keys.Roster) error {
	v := *r
	if v.Serial == 0 {
		v.Serial = 1
	}
	if v.Issued.IsZero() {
		v.Issued = time.Now()
	}
	if v.Expires.IsZero() {
		v.Expires = v.Issued.Add(24 * time.Hour)
	}
	if v.Previous == "" && v.Serial > 1 {
		v.Previous = keys.HashString([32]byte{}) // dir sign --previous sets it
	}
	err := v.Validate()
	if err == nil || len(v.Missions) > 0 {
		return err
	}
	// A roster being built may have no mission yet (a partner is added
	// before the mission that escalates to it); dir sign refuses it, an
	// edit does not.
	var rest []error
	for _, e := range leafErrors(err) {
		if e.Error() != noMissions {
			rest = append(rest, e)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", keys.ErrInvalidDirectory, errors.Join(rest...))
}

// noMissions is how Roster.Validate words a roster without missions.
const noMissions = "missions: at least one"

// leafErrors lists the problems in one of Roster.Validate's errors.
func leafErrors(err error) []error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		if err == keys.ErrInvalidDirectory {
			return
		}
		if u, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range u.Unwrap() {
				walk(e)
			}
			return
		}
		out = append(out, err)
	}
	walk(err)
	return out
}
