package main

import (
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
			"mkroster": cmdMkroster,
			"mkworld":  cmdMkworld,
			"relay":    cmdRelay,
			"mission":  cmdMission,
			"rootfp":   cmdRootFP,
			"capture":  cmdCapture,
			"hostile":  cmdHostile,
			"nextdir":  cmdNextdir,
		},
	})
}
