package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"go.yaml.in/yaml/v3"

	"beacon/keys"
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
		case parts[0] == "mission" && len(parts) == 4:
			v := show(parts[3])
			r.Missions = append(r.Missions, keys.Mission{ID: parts[1], Name: "Mission " + parts[1],
				Countries: strings.Split(parts[2], ","), Identity: v.Identity, NKey: v.NKey, InboxKeys: v.InboxKeys,
				Response: keys.ResponseTargets{Urgent: 15 * time.Minute, High: 4 * time.Hour, Routine: 72 * time.Hour}})
		case parts[0] == "partner" && len(parts) == 4:
			v := show(parts[3])
			r.Partners = append(r.Partners, keys.Partner{ID: parts[1], Name: "Partner " + parts[1],
				Countries: strings.Split(parts[2], ","), Identity: v.Identity, NKey: v.NKey, InboxKeys: v.InboxKeys})
		case parts[0] == "bridge" && len(parts) == 3:
			v := show(parts[2])
			r.Bridges = append(r.Bridges, keys.Bridge{ID: parts[1], Name: "Bridge " + parts[1], Identity: v.Identity, NKey: v.NKey})
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
