package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// configsDir is the repository's configs/, which scripts use as shipped.
var configsDir, _ = filepath.Abs("../../configs")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"beacon": func() { main() },
	})
}

// TestScripts runs the command-line scenarios in testdata/*.txt against the
// real binary (re-executed in-process by testscript). The custom commands
// (mkroster, mkworld, relay, mission, rootfp, capture) run in the test
// process; see roster_test.go.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(e *testscript.Env) error {
			e.Setenv("HOME", e.WorkDir+"/home")
			e.Setenv("BEACON_HOME", e.WorkDir+"/.beacon")
			e.Setenv("CONFIGS", configsDir)
			// A binary built with -race sleeps 1s at exit by default, and a
			// script runs beacon dozens of times.
			if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
				e.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
			}
			e.Values[harnessKey{}] = newHarness(e.WorkDir)
			return os.MkdirAll(e.WorkDir+"/home", 0o700)
		},
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"mkroster":           cmdMkroster,
			"mkworld":            cmdMkworld,
			"relay":              cmdRelay,
			"mission":            cmdMission,
			"rootfp":             cmdRootFP,
			"capture":            cmdCapture,
			"hostile":            cmdHostile,
			"nextdir":            cmdNextdir,
			"readme-walkthrough": cmdReadme,
		},
	})
}

// walkthroughMarker introduces the README block that walkthrough.txt runs.
const walkthroughMarker = "<!-- walkthrough: the next block is run by cmd/beacon/testdata/walkthrough.txt -->"

// cmdReadme is the testscript command
//
//	readme-walkthrough FILE
//
// It writes the README's walkthrough, the shell block after
// walkthroughMarker, to FILE, byte for byte.
func cmdReadme(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: readme-walkthrough FILE")
	}
	block, err := readmeWalkthrough("../../README.md")
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(block), 0o644))
}

func readmeWalkthrough(readme string) (string, error) {
	b, err := os.ReadFile(readme)
	if err != nil {
		return "", err
	}
	_, rest, ok := strings.Cut(string(b), walkthroughMarker+"\n```sh\n")
	if !ok {
		return "", fmt.Errorf("%s: no walkthrough block after %q", readme, walkthroughMarker)
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		return "", fmt.Errorf("%s: the walkthrough block does not end", readme)
	}
	return block + "\n", nil
}
