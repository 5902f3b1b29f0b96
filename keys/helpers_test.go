package keys_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/keys"
)

// update rewrites the golden files under testdata from the fixed secrets
// committed beside them: go test ./keys -run Golden -update. The secrets
// themselves (fixed-*.txt, fixed-mission.nkey) were generated once with
// GenerateIdentity, GenerateInboxKey and nkeys.CreateUser and are never
// regenerated: changing them would hide the change the goldens exist to
// catch.
var update = flag.Bool("update", false, "rewrite golden files in testdata")

// wantErr fails the test unless err matches target with errors.Is.
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func isMalformed(err error) bool { return errors.Is(err, keys.ErrMalformedKey) }

func mustIdentity(t testing.TB) *keys.Identity {
	t.Helper()
	id, err := keys.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustInbox(t testing.TB) *keys.InboxKey {
	t.Helper()
	k, err := keys.GenerateInboxKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// readTestdata returns a testdata file without its trailing newline.
func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(filepath.Join("testdata", name), []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want := readTestdata(t, name); got != want {
		t.Errorf("%s changed: a derivation or wire format moved.\n got: %q\nwant: %q", name, got, want)
	}
}

func fixedIdentity(t testing.TB, name string) *keys.Identity {
	t.Helper()
	id, err := keys.ParseIdentity(readTestdata(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return id
}

// parties are the keyrings of a small deployment, generated once per test
// binary: generating X-Wing keys is cheap, but there is no need to redo it
// for every roster.
type parties struct {
	root                   *keys.Identity
	ug1, ug2, ke           *keys.Keyring
	partner, bridge, relay *keys.Keyring
}

var (
	partiesOnce sync.Once
	theParties  parties
	partiesErr  error
)

func testParties(t testing.TB) parties {
	t.Helper()
	partiesOnce.Do(func() {
		var p parties
		if p.root, partiesErr = keys.GenerateIdentity(); partiesErr != nil {
			return
		}
		for _, x := range []struct {
			kr   **keys.Keyring
			role keys.Role
		}{{&p.ug1, keys.RoleMission}, {&p.ug2, keys.RoleMission}, {&p.ke, keys.RoleMission},
			{&p.partner, keys.RolePartner}, {&p.bridge, keys.RoleBridge}, {&p.relay, keys.RoleRelay}} {
			if *x.kr, partiesErr = keys.NewKeyring(x.role); partiesErr != nil {
				return
			}
		}
		theParties = p
	})
	if partiesErr != nil {
		t.Fatal(partiesErr)
	}
	return theParties
}

var targets = keys.ResponseTargets{Urgent: 15 * time.Minute, High: 2 * time.Hour, Routine: 72 * time.Hour}

func missionOf(id, name string, kr *keys.Keyring, ccs ...string) keys.Mission {
	return keys.Mission{
		ID: id, Name: name, Countries: ccs,
		Identity: kr.Identity.Public(), NKey: kr.NKeyPublic(),
		InboxKeys: []keys.SignedInboxKey{kr.Inboxes[0].Signed},
		Response:  targets,
	}
}

// testRoster builds a fresh, valid roster: two missions for "ug", one for
// "ke", a partner, a bridge and a relay. issued is the issue time; it expires
// 30 days later.
func testRoster(t testing.TB, serial uint64, issued time.Time) *keys.Roster {
	t.Helper()
	p := testParties(t)
	return &keys.Roster{
		Serial:  serial,
		Issued:  issued,
		Expires: issued.Add(30 * 24 * time.Hour),
		Missions: []keys.Mission{
			missionOf("ug-kampala-a", "Embassy A, Kampala", p.ug1, "ug"),
			missionOf("ug-kampala-b", "Embassy B, Kampala", p.ug2, "ug", "ss"),
			missionOf("ke-nairobi", "Embassy C, Nairobi", p.ke, "ke"),
		},
		Partners: []keys.Partner{{
			ID: "partner-x", Name: "Partner government X", Countries: []string{"ug", "ke"},
			Identity: p.partner.Identity.Public(), NKey: p.partner.NKeyPublic(),
			InboxKeys: []keys.SignedInboxKey{p.partner.Inboxes[0].Signed},
		}},
		Bridges: []keys.Bridge{{ID: "bridge-1", Name: "Bridge", Identity: p.bridge.Identity.Public(), NKey: p.bridge.NKeyPublic()}},
		Relays: []keys.RelayEntry{{ID: "relay-1", Name: "Relay", URLs: []string{"tls://relay.example.org:4222", "wss://relay.example.org/ws"},
			Identity: p.relay.Identity.Public()}},
	}
}

// now is the clock of directory tests, whole seconds as SignDirectory keeps.
func testNow() time.Time { return time.Now().UTC().Truncate(time.Second) }
