package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/keys"
)

func runIn(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return vars[k] }})
	return code, out.String(), errb.String()
}

// TestShippedRoster: configs/roster.yaml signs as shipped, with every
// entry it documents, and without a warning.
func TestShippedRoster(t *testing.T) {
	dir := t.TempDir()
	pass := "shipped-roster-test"
	root, err := keys.NewKeyring(keys.RoleRoot)
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(dir, "root.key")
	if err := keys.WriteKeyFile(rootFile, root, []byte(pass), false); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "directory.yaml")
	code, stdout, stderr := runIn(t, map[string]string{"BEACON_PASSPHRASE": pass},
		"dir", "sign", "../../configs/roster.yaml", "--root", rootFile, "--out", out)
	if code != 0 || stderr != "" {
		t.Fatalf("dir sign configs/roster.yaml: exit %d\n%s%s", code, stdout, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	d, err := keys.VerifyDirectory(data, root.Identity.Public().Fingerprint(), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Missions) != 3 || len(d.Partners) != 1 || len(d.Bridges) != 1 || len(d.Relays) != 1 {
		t.Errorf("signed %d missions, %d partners, %d bridges, %d relays; want 3, 1, 1, 1",
			len(d.Missions), len(d.Partners), len(d.Bridges), len(d.Relays))
	}
	if m := d.MissionsFor("ug"); len(m) != 2 || m[0].Escalation != "partner-no" || m[0].Response.Urgent != 15*time.Minute {
		t.Errorf("missions for ug: %+v", m)
	}
	for _, m := range d.Missions {
		if keys.CurrentInbox(m.InboxKeys, time.Now()) == nil {
			t.Errorf("mission %s: no current inbox key; regenerate the example identities", m.ID)
		}
	}
}

// TestBareCommand: "beacon" with no command prints the usage to standard
// error and exits 2, a usage error.
func TestBareCommand(t *testing.T) {
	code, stdout, stderr := runIn(t, nil)
	if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "Usage: beacon <command>") || !strings.Contains(stderr, "dir add") {
		t.Errorf("bare beacon: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestVersion: --version prints the build and exits 0.
func TestVersion(t *testing.T) {
	code, stdout, stderr := runIn(t, nil, "--version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "beacon ") || !strings.Contains(stdout, runtime.Version()) {
		t.Errorf("--version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
