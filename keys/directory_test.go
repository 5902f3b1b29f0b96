package keys_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/keys"
)

// Wire constants of the signed directory, written out here so that a change
// to them breaks a test.
const (
	directoryLabel   = "beacon.keys.v1/directory"
	signatureTrailer = "# beacon-directory-signature: "
)

// signRaw signs body exactly as SignDirectory does, without validating it:
// it makes validly signed files with invalid contents.
func signRaw(body []byte, root *keys.Identity) []byte {
	sig := root.Sign(append([]byte(directoryLabel), body...))
	out := append(bytes.Clone(body), signatureTrailer...)
	out = append(out, base64.RawURLEncoding.EncodeToString(sig)...)
	return append(out, '\n')
}

func mustSign(t *testing.T, r *keys.Roster, root *keys.Identity) []byte {
	t.Helper()
	data, err := keys.SignDirectory(r, root)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// bodyOf splits a signed directory into its body and signature line.
func bodyOf(t *testing.T, data []byte) []byte {
	t.Helper()
	i := bytes.LastIndex(data, []byte(signatureTrailer))
	if i < 0 {
		t.Fatalf("no signature line in:\n%s", data)
	}
	return data[:i]
}

func TestDirectorySignVerify(t *testing.T) {
	p := testParties(t)
	now := testNow()
	r := testRoster(t, 1, now)
	data := mustSign(t, r, p.root)
	pin := p.root.Public().Fingerprint()

	if !bytes.HasSuffix(data, []byte("\n")) || !bytes.Contains(data, []byte("\n"+signatureTrailer)) {
		t.Fatalf("signed file does not end with a signature line:\n%s", data)
	}
	if !bytes.Equal(signRaw(bodyOf(t, data), p.root), data) {
		t.Fatal("SignDirectory's output is not the body followed by the label-prefixed Ed25519 signature line")
	}
	if r.Root != nil {
		t.Error("SignDirectory modified the caller's roster")
	}

	d, err := keys.VerifyDirectory(data, pin, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Root.Equal(p.root.Public()) || d.Serial != 1 || !d.Issued.Equal(now) {
		t.Errorf("verified directory: root, serial or issued wrong: %+v", d.Roster)
	}
	if d.Hash != sha256.Sum256(data) || !bytes.Equal(d.Raw, data) {
		t.Error("Hash/Raw are not the SHA-256 and bytes of the signed file")
	}
	if &d.Raw[0] == &data[0] {
		t.Error("Raw aliases the caller's buffer")
	}

	ug := d.MissionsFor("ug")
	if len(ug) != 2 || ug[0].ID != "ug-kampala-a" || ug[1].ID != "ug-kampala-b" {
		t.Errorf("MissionsFor(ug) = %v, want ug-kampala-a, ug-kampala-b", ids(ug))
	}
	if ke := d.MissionsFor("ke"); len(ke) != 1 || ke[0].ID != "ke-nairobi" {
		t.Errorf("MissionsFor(ke) = %v", ids(ke))
	}
	if tz := d.MissionsFor("tz"); len(tz) != 0 {
		t.Errorf("MissionsFor(tz) = %v, want none", ids(tz))
	}
	if ps := d.PartnersFor("ke"); len(ps) != 1 || ps[0].ID != "partner-x" {
		t.Errorf("PartnersFor(ke) = %v", ps)
	}
	if ps := d.PartnersFor("ss"); len(ps) != 0 {
		t.Errorf("PartnersFor(ss) = %v, want none", ps)
	}
	if cc := d.Countries(); !slices.Equal(cc, []string{"ke", "ss", "ug"}) {
		t.Errorf("Countries() = %q, want [ke ss ug]", cc)
	}
	m := d.MissionsFor("ug")[0]
	if !m.Identity.Equal(p.ug1.Identity.Public()) || m.NKey != p.ug1.NKeyPublic() || m.Response != targets {
		t.Error("mission fields did not survive signing and verifying")
	}
	if k := keys.CurrentInbox(m.InboxKeys, now); k == nil || !k.Equal(p.ug1.Inboxes[0].Key.Public()) {
		t.Error("CurrentInbox of the mission is not its inbox key")
	}
}

func ids(ms []keys.Mission) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestCurrentInbox(t *testing.T) {
	owner := mustIdentity(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	k1, k3, k2 := mustInbox(t).Public(), mustInbox(t).Public(), mustInbox(t).Public()
	list := []keys.SignedInboxKey{
		keys.SignInboxKey(owner, k1, t0.Add(1*time.Hour)),
		keys.SignInboxKey(owner, k3, t0.Add(3*time.Hour)),
		keys.SignInboxKey(owner, k2, t0.Add(2*time.Hour)),
	}
	for _, c := range []struct {
		at   time.Duration
		want *keys.InboxPublicKey
	}{{0, k3}, {90 * time.Minute, k3}, {150 * time.Minute, k3}, {3*time.Hour - time.Second, k3}, {3 * time.Hour, nil}, {10 * time.Hour, nil}} {
		got := keys.CurrentInbox(list, t0.Add(c.at))
		if (got == nil) != (c.want == nil) || got != nil && !got.Equal(c.want) {
			t.Errorf("at +%v: CurrentInbox = %v, want %v", c.at, got, c.want)
		}
	}
	if keys.CurrentInbox(nil, t0) != nil {
		t.Error("CurrentInbox(nil) is not nil")
	}
	// The newest key is preferred only while it is valid: with the longest
	// key gone, the next one.
	if got := keys.CurrentInbox(list[:1:1], t0); got == nil || !got.Equal(k1) {
		t.Error("CurrentInbox of one valid key is not that key")
	}
	if got := keys.CurrentInbox([]keys.SignedInboxKey{list[0], list[2]}, t0.Add(90*time.Minute)); got == nil || !got.Equal(k2) {
		t.Error("CurrentInbox skipped the one unexpired key")
	}
}

func TestVerifyDirectoryRefuses(t *testing.T) {
	p := testParties(t)
	now := testNow()
	pin := p.root.Public().Fingerprint()
	data := mustSign(t, testRoster(t, 1, now), p.root)
	body := bodyOf(t, data)
	verify := func(b []byte) error {
		t.Helper()
		d, err := keys.VerifyDirectory(b, pin, now, nil)
		if err != nil && d != nil {
			t.Errorf("VerifyDirectory returned a directory with error %v", err)
		}
		return err
	}

	t.Run("changed mission name", func(t *testing.T) {
		b := bytes.Replace(data, []byte("Embassy A, Kampala"), []byte("Embassy Z, Kampala"), 1)
		if bytes.Equal(b, data) {
			t.Fatal("name not found")
		}
		wantErr(t, verify(b), keys.ErrBadSignature)
	})
	t.Run("signature line removed", func(t *testing.T) {
		wantErr(t, verify(body), keys.ErrBadSignature)
	})
	t.Run("signature line garbled", func(t *testing.T) {
		for name, b := range map[string][]byte{
			"not base64":       append(bytes.Clone(body), signatureTrailer+"!!!!\n"...),
			"empty":            append(bytes.Clone(body), signatureTrailer+"\n"...),
			"one char short":   append(bytes.Clone(data[:len(data)-2]), '\n'),
			"no final newline": data[:len(data)-1],
			"padded":           append(bytes.Clone(data[:len(data)-1]), "==\n"...),
			"flipped bit":      flipSigBit(data),
			"other signer":     signRaw(body, mustIdentity(t)),
			"trailer mid-line": append(bytes.Clone(body[:len(body)-1]), " "+signatureTrailer+"AAAA\n"...),
		} {
			t.Run(name, func(t *testing.T) { wantErr(t, verify(b), keys.ErrBadSignature) })
		}
	})
	// A signed directory must have exactly one byte form: its hash is what
	// the next version names as Previous, so a relay that serves a variant
	// (a CR or LF the base64 decoder skips) would make clients refuse the
	// next legitimate version as a rollback.
	t.Run("signature line is not malleable", func(t *testing.T) {
		sigLine := data[len(body):]
		mid := len(signatureTrailer) + 20
		for name, b := range map[string][]byte{
			"extra final LF":   append(bytes.Clone(data), '\n'),
			"CRLF line ending": append(bytes.Clone(data[:len(data)-1]), "\r\n"...),
			"LF inside":        append(append(bytes.Clone(data[:len(body)+mid]), '\n'), sigLine[mid:]...),
		} {
			t.Run(name, func(t *testing.T) {
				d, err := keys.VerifyDirectory(b, pin, now, nil)
				if err == nil {
					t.Errorf("a variant of the signed file verifies (hash %x, canonical %x)", d.Hash, sha256.Sum256(data))
				} else {
					wantErr(t, err, keys.ErrBadSignature)
				}
			})
		}
	})
	t.Run("other pinned root", func(t *testing.T) {
		_, err := keys.VerifyDirectory(data, mustIdentity(t).Public().Fingerprint(), now, nil)
		wantErr(t, err, keys.ErrUntrustedRoot)
	})
	t.Run("signed by another root naming itself", func(t *testing.T) {
		other := mustIdentity(t)
		_, err := keys.VerifyDirectory(mustSign(t, testRoster(t, 1, now), other), pin, now, nil)
		wantErr(t, err, keys.ErrUntrustedRoot)
	})
	t.Run("expired", func(t *testing.T) {
		r := testRoster(t, 1, now)
		for _, at := range []time.Time{r.Expires, r.Expires.Add(time.Hour)} {
			_, err := keys.VerifyDirectory(data, pin, at, nil)
			wantErr(t, err, keys.ErrExpired)
		}
		if _, err := keys.VerifyDirectory(data, pin, r.Expires.Add(-time.Second), nil); err != nil {
			t.Errorf("a second before expiry: %v", err)
		}
	})
	t.Run("issued in the future", func(t *testing.T) {
		future := mustSign(t, testRoster(t, 1, now.Add(keys.DirectoryClockSkew+time.Second)), p.root)
		_, err := keys.VerifyDirectory(future, pin, now, nil)
		wantErr(t, err, keys.ErrInvalidDirectory)
		edge := mustSign(t, testRoster(t, 1, now.Add(keys.DirectoryClockSkew)), p.root)
		if _, err := keys.VerifyDirectory(edge, pin, now, nil); err != nil {
			t.Errorf("issued exactly DirectoryClockSkew ahead: %v", err)
		}
	})
	t.Run("unknown field", func(t *testing.T) {
		wantErr(t, verify(append([]byte("extra: 1\n"), data...)), keys.ErrInvalidDirectory)
		wantErr(t, verify(signRaw(append([]byte("extra: 1\n"), body...), p.root)), keys.ErrInvalidDirectory)
	})
	t.Run("two YAML documents", func(t *testing.T) {
		wantErr(t, verify(signRaw(append(bytes.Clone(body), "---\nserial: 9\n"...), p.root)), keys.ErrInvalidDirectory)
		wantErr(t, verify(signRaw(append([]byte("serial: 9\n---\n"), body...), p.root)), keys.ErrInvalidDirectory)
	})
	t.Run("signed but invalid roster", func(t *testing.T) {
		b := bytes.Replace(body, []byte("- ug\n"), []byte("- zz\n"), 1)
		wantErr(t, verify(signRaw(b, p.root)), keys.ErrInvalidDirectory)
	})
	t.Run("no root", func(t *testing.T) {
		var y map[string]any
		if err := yaml.Unmarshal(body, &y); err != nil {
			t.Fatal(err)
		}
		delete(y, "root")
		b, _ := yaml.Marshal(y)
		wantErr(t, verify(signRaw(b, p.root)), keys.ErrInvalidDirectory)
	})
	t.Run("larger than MaxDirectorySize", func(t *testing.T) {
		big := append(bytes.Repeat([]byte("#\n"), keys.MaxDirectorySize/2), data...)
		wantErr(t, verify(big), keys.ErrInvalidDirectory)
		_, err := keys.ParseRoster(big)
		wantErr(t, err, keys.ErrInvalidDirectory)
	})
	t.Run("empty", func(t *testing.T) {
		if err := verify(nil); err == nil {
			t.Error("empty directory verifies")
		}
	})
}

func flipSigBit(data []byte) []byte {
	i := bytes.LastIndex(data, []byte(signatureTrailer)) + len(signatureTrailer)
	sig, _ := base64.RawURLEncoding.DecodeString(string(data[i : len(data)-1]))
	sig[10] ^= 0x04
	out := append(bytes.Clone(data[:i]), base64.RawURLEncoding.EncodeToString(sig)...)
	return append(out, '\n')
}

func TestDirectoryRollback(t *testing.T) {
	p := testParties(t)
	now := testNow()
	pin := p.root.Public().Fingerprint()
	d1, err := keys.VerifyDirectory(mustSign(t, testRoster(t, 1, now), p.root), pin, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := &keys.DirVersion{Serial: d1.Serial, Hash: d1.Hash}
	version := func(serial uint64, previous string) []byte {
		r := testRoster(t, serial, now)
		r.Previous = previous
		return mustSign(t, r, p.root)
	}
	wrongPrev := keys.HashString(sha256.Sum256([]byte("not the previous version")))
	if rightPrev := keys.HashString(d1.Hash); !strings.HasPrefix(rightPrev, "sha256:") || len(rightPrev) != 7+64 {
		t.Fatalf("HashString = %q", rightPrev)
	}

	t.Run("same version again", func(t *testing.T) {
		if _, err := keys.VerifyDirectory(d1.Raw, pin, now, seen); err != nil {
			t.Errorf("re-verifying the seen version: %v", err)
		}
	})
	t.Run("older serial", func(t *testing.T) {
		d2, err := keys.VerifyDirectory(version(2, keys.HashString(d1.Hash)), pin, now, seen)
		if err != nil {
			t.Fatal(err)
		}
		_, err = keys.VerifyDirectory(d1.Raw, pin, now, &keys.DirVersion{Serial: d2.Serial, Hash: d2.Hash})
		wantErr(t, err, keys.ErrRollback)
	})
	t.Run("same serial, other contents", func(t *testing.T) {
		r := testRoster(t, 1, now)
		r.Missions[0].Name = "Embassy A, Kampala (new)"
		_, err := keys.VerifyDirectory(mustSign(t, r, p.root), pin, now, seen)
		wantErr(t, err, keys.ErrRollback)
	})
	t.Run("next serial, wrong previous", func(t *testing.T) {
		_, err := keys.VerifyDirectory(version(2, wrongPrev), pin, now, seen)
		wantErr(t, err, keys.ErrRollback)
	})
	t.Run("next serial, right previous", func(t *testing.T) {
		d2, err := keys.VerifyDirectory(version(2, keys.HashString(d1.Hash)), pin, now, seen)
		if err != nil {
			t.Fatal(err)
		}
		if d2.Previous != keys.HashString(d1.Hash) || d2.Serial != 2 {
			t.Errorf("Previous = %q, serial %d", d2.Previous, d2.Serial)
		}
	})
	t.Run("serial jump, any previous", func(t *testing.T) {
		if _, err := keys.VerifyDirectory(version(6, wrongPrev), pin, now, seen); err != nil {
			t.Errorf("serial seen+5: %v", err)
		}
	})
	t.Run("previous required after serial 1", func(t *testing.T) {
		_, err := keys.SignDirectory(testRoster(t, 2, now), p.root)
		wantErr(t, err, keys.ErrInvalidDirectory)
		r := testRoster(t, 2, now)
		r.Previous = "sha256:ABC"
		_, err = keys.SignDirectory(r, p.root)
		wantErr(t, err, keys.ErrInvalidDirectory)
	})
}

// TestValidateReportsEveryProblem builds one roster with many faults and
// expects each in the one error.
func TestValidateReportsEveryProblem(t *testing.T) {
	p := testParties(t)
	now := testNow()
	r := testRoster(t, 1, now)
	extra := func(kr *keys.Keyring, id string) keys.Mission { return missionOf(id, "Mission "+id, kr, "tz") }
	var krs []*keys.Keyring
	for range 11 {
		kr, err := keys.NewKeyring(keys.RoleMission)
		if err != nil {
			t.Fatal(err)
		}
		krs = append(krs, kr)
	}
	dup := extra(krs[0], "ug-kampala-a")
	zz := extra(krs[1], "m-zz")
	zz.Countries = []string{"zz"}
	upper := extra(krs[2], "m-upper")
	upper.Countries = []string{"UG"}
	noName := extra(krs[3], "m-noname")
	noName.Name = ""
	bidi := extra(krs[4], "m-bidi")
	bidi.Name = "Embassy \u202egnp.exe"
	badNKey := extra(krs[5], "m-nkey")
	badNKey.NKey = "UNOT-AN-NKEY"
	noIdent := extra(krs[6], "m-noident")
	noIdent.Identity = nil
	noInbox := extra(krs[7], "m-noinbox")
	noInbox.InboxKeys = nil
	foreign := extra(krs[8], "m-foreign")
	foreign.InboxKeys = []keys.SignedInboxKey{keys.SignInboxKey(p.root, krs[8].Inboxes[0].Key.Public(), now.Add(time.Hour))}
	noTargets := extra(krs[9], "m-notargets")
	noTargets.Response = keys.ResponseTargets{}
	escNone := extra(krs[10], "m-escnone")
	escNone.Escalation = "nobody"
	r.Missions[1].Escalation = "ug-kampala-b" // itself
	r.Missions[2].Escalation = "partner-x"    // fine
	r.Missions = append(r.Missions, dup, zz, upper, noName, bidi, badNKey, noIdent, noInbox, foreign, noTargets, escNone)
	r.Relays[0].URLs = append(r.Relays[0].URLs, "http://relay.example.org:4222")

	err := r.Validate()
	wantErr(t, err, keys.ErrInvalidDirectory)
	msg := err.Error()
	for problem, want := range map[string]string{
		"duplicate id":              `mission "ug-kampala-a": id already used by a mission`,
		"unknown country":           `mission "m-zz": countries[0]: "zz" is not a lower-case ISO 3166-1 code`,
		"upper-case country":        `mission "m-upper": countries[0]: "UG" is not a lower-case ISO 3166-1 code`,
		"empty name":                `mission "m-noname": name: must be 1–200 characters`,
		"bidi control in name":      `mission "m-bidi": name: control or formatting characters are not allowed`,
		"bad nkey":                  `mission "m-nkey": nkey: not a user NKey`,
		"missing identity":          `mission "m-noident": identity: required`,
		"no inbox keys":             `mission "m-noinbox": inbox_keys: at least one`,
		"inbox key signed by other": `mission "m-foreign": inbox_keys[0]: bad signature`,
		"zero response targets":     `mission "m-notargets": response_targets: urgent, high and routine must each be positive`,
		"escalation to nobody":      `mission "m-escnone": escalation: "nobody" is not another mission or partner`,
		"escalation to itself":      `mission "ug-kampala-b": escalation: "ug-kampala-b" is not another mission or partner`,
		"relay URL scheme http":     `relay "relay-1": urls[2]: "http://relay.example.org:4222" is not a nats://, tls://, ws:// or wss:// URL`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("%s: error does not contain %q", problem, want)
		}
	}
	if strings.Contains(msg, `mission "ke-nairobi": escalation`) {
		t.Error("escalation to a partner reported as a problem")
	}
	if t.Failed() {
		t.Logf("error:\n%s", msg)
	}
	if _, err := keys.SignDirectory(r, p.root); !strings.Contains(errString(err), "m-bidi") {
		t.Errorf("SignDirectory of an invalid roster: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestValidateTopLevel(t *testing.T) {
	now := testNow()
	r := testRoster(t, 0, now)
	r.Expires = r.Issued
	r.Missions = nil
	err := r.Validate()
	wantErr(t, err, keys.ErrInvalidDirectory)
	for _, want := range []string{"serial: must be 1 or more", "issued/expires: expires must be after issued", "missions: at least one"} {
		if !strings.Contains(errString(err), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if err := testRoster(t, 1, now).Validate(); err != nil {
		t.Errorf("valid roster: %v", err)
	}
}

func TestRosterYAMLRoundTrip(t *testing.T) {
	p := testParties(t)
	r := testRoster(t, 1, testNow())
	r.Root = p.root.Public()
	r.Missions[0].Escalation = "partner-x"
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := keys.ParseRoster(out)
	if err != nil {
		t.Fatalf("ParseRoster: %v\n%s", err, out)
	}
	again, err := yaml.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, out) {
		t.Errorf("round trip changed the roster:\n%s\n---\n%s", out, again)
	}
	if err := back.Validate(); err != nil {
		t.Errorf("round-tripped roster: %v", err)
	}
	if !back.Missions[1].Identity.Equal(r.Missions[1].Identity) || back.Missions[0].Response != targets {
		t.Error("identity or response targets changed")
	}
}

func TestParseRosterStrict(t *testing.T) {
	r := testRoster(t, 1, testNow())
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"unknown top-level field": append([]byte("colour: blue\n"), out...),
		"unknown mission field":   bytes.Replace(out, []byte("    name: "), []byte("    nickname: x\n    name: "), 1),
		"two documents":           append(bytes.Clone(out), "---\nserial: 2\n"...),
		"empty second document":   append(bytes.Clone(out), "---\n"...),
		"broken second document":  append(bytes.Clone(out), "---\n: : [\n"...),
		"malformed identity":      bytes.Replace(out, []byte("identity: bcn-id:"), []byte("identity: bcn-id:A"), 1),
		"not YAML":                []byte("{{{"),
		"empty":                   nil,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := keys.ParseRoster(b)
			wantErr(t, err, keys.ErrInvalidDirectory)
		})
	}
}

// TestGoldenDirectory pins the signed directory's byte form: a fixed roster
// signed with the fixed root must give testdata/fixed-directory.golden byte
// for byte (Ed25519 and the YAML encoder are deterministic), and that file
// must verify.
func TestGoldenDirectory(t *testing.T) {
	root := fixedIdentity(t, "fixed-identity.txt")
	mission := fixedIdentity(t, "fixed-mission.txt")
	inbox, err := keys.ParseInboxKey(readTestdata(t, "fixed-inbox.txt"))
	if err != nil {
		t.Fatal(err)
	}
	issued := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &keys.Roster{
		Serial: 1, Issued: issued, Expires: issued.Add(90 * 24 * time.Hour),
		Missions: []keys.Mission{{
			ID: "ug-kampala", Name: "Embassy, Kampala", Countries: []string{"ug"},
			Identity: mission.Public(), NKey: readTestdata(t, "fixed-mission.nkey"),
			InboxKeys: []keys.SignedInboxKey{keys.SignInboxKey(mission, inbox.Public(), issued.Add(180*24*time.Hour))},
			Response:  targets,
		}},
		Relays: []keys.RelayEntry{{ID: "relay-1", Name: "Relay", URLs: []string{"tls://relay.example.org:4222"}}},
	}
	data := mustSign(t, r, root)
	golden(t, "fixed-directory.golden", strings.TrimSuffix(string(data), "\n"))

	stored := []byte(readTestdata(t, "fixed-directory.golden") + "\n")
	d, err := keys.VerifyDirectory(stored, root.Public().Fingerprint(), issued, nil)
	if err != nil {
		t.Fatalf("golden directory does not verify: %v", err)
	}
	if len(d.Missions) != 1 || !d.Missions[0].Identity.Equal(mission.Public()) {
		t.Error("golden directory lists the wrong mission")
	}
}

// FuzzVerifyDirectory: never panics, and nothing verifies unless it names
// the pinned root, is exactly the bytes it reports, and is signed by it.
func FuzzVerifyDirectory(f *testing.F) {
	root, err := keys.ParseIdentity(readTestdata(f, "fixed-identity.txt"))
	if err != nil {
		f.Fatal(err)
	}
	golden := []byte(readTestdata(f, "fixed-directory.golden") + "\n")
	pin := root.Public().Fingerprint()
	now := time.Date(2030, 1, 3, 0, 0, 0, 0, time.UTC)
	f.Add(golden)
	f.Add(golden[:len(golden)-1])
	f.Add([]byte(signatureTrailer + "\n"))
	f.Add([]byte("serial: 1\n" + signatureTrailer + "AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := keys.VerifyDirectory(data, pin, now, nil)
		if err != nil {
			if d != nil {
				t.Fatal("directory returned with an error")
			}
			return
		}
		if d.Root == nil || !d.Root.Fingerprint().Equal(pin) || !d.Root.Equal(root.Public()) {
			t.Fatal("a directory verified under another root")
		}
		if !bytes.Equal(d.Raw, data) || d.Hash != sha256.Sum256(data) {
			t.Fatal("Raw/Hash are not the verified bytes")
		}
		i := bytes.LastIndex(data, []byte(signatureTrailer))
		if i < 0 || !bytes.Equal(signRaw(data[:i], root), data) {
			t.Fatalf("verified bytes are not the one canonical signed form; signature line: %q", data[max(i, 0):])
		}
	})
}

func TestDirVersionTextForm(t *testing.T) {
	v := keys.DirVersion{Serial: 42, Hash: [32]byte{1, 2, 3}}
	got, err := keys.ParseDirVersion(v.String() + "\n")
	if err != nil || got != v {
		t.Fatalf("ParseDirVersion(String()) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "42", "42 sha256:", "042 " + keys.HashString(v.Hash), "0 " + keys.HashString(v.Hash),
		"42  " + keys.HashString(v.Hash), "42 " + strings.ToUpper(keys.HashString(v.Hash)), v.String() + "\n\n", "-1 " + keys.HashString(v.Hash)} {
		if _, err := keys.ParseDirVersion(bad); !errors.Is(err, keys.ErrInvalidDirectory) {
			t.Errorf("ParseDirVersion(%q) = %v", bad, err)
		}
	}
}

// TestHeadquartersOversee: a headquarters lists the missions it oversees;
// each is a mission of the directory, overseen once.
func TestHeadquartersOversee(t *testing.T) {
	mk := func(role keys.Role) *keys.Keyring {
		kr, err := keys.NewKeyring(role)
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	m, h, h2 := mk(keys.RoleMission), mk(keys.RoleHeadquarters), mk(keys.RoleHeadquarters)
	now := time.Now()
	base := func() *keys.Roster {
		return &keys.Roster{Serial: 1, Issued: now.Add(-time.Minute), Expires: now.Add(time.Hour),
			Missions: []keys.Mission{{ID: "nl-kampala", Name: "NL Kampala", Countries: []string{"ug"}, Identity: m.Identity.Public(),
				NKey: m.NKeyPublic(), InboxKeys: []keys.SignedInboxKey{m.Inboxes[0].Signed},
				Response: keys.ResponseTargets{Urgent: time.Minute, High: time.Hour, Routine: 24 * time.Hour}}}}
	}
	hq := func(kr *keys.Keyring, id string, missions ...string) keys.Headquarters {
		return keys.Headquarters{ID: id, Name: "HQ " + id, Identity: kr.Identity.Public(), NKey: kr.NKeyPublic(),
			InboxKeys: []keys.SignedInboxKey{kr.Inboxes[0].Signed}, Missions: missions}
	}
	good := base()
	good.Headquarters = []keys.Headquarters{hq(h, "nl-mfa", "nl-kampala")}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	root, _ := keys.GenerateIdentity()
	signed, err := keys.SignDirectory(good, root)
	if err != nil {
		t.Fatal(err)
	}
	d, err := keys.VerifyDirectory(signed, root.Public().Fingerprint(), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.HeadquartersOf("nl-kampala"); got == nil || got.ID != "nl-mfa" {
		t.Fatalf("HeadquartersOf = %+v", got)
	}
	if d.HeadquartersOf("se-kampala") != nil {
		t.Fatal("an unknown post has a headquarters")
	}
	for name, hqs := range map[string][]keys.Headquarters{
		"no missions":        {hq(h, "nl-mfa")},
		"unknown mission":    {hq(h, "nl-mfa", "se-kampala")},
		"overseen twice":     {hq(h, "nl-mfa", "nl-kampala"), hq(h2, "se-mfa", "nl-kampala")},
		"id of the mission":  {hq(h, "nl-kampala", "nl-kampala")},
		"same key as a post": {{ID: "nl-mfa", Name: "x", Identity: m.Identity.Public(), NKey: h.NKeyPublic(), InboxKeys: []keys.SignedInboxKey{m.Inboxes[0].Signed}, Missions: []string{"nl-kampala"}}},
	} {
		r := base()
		r.Headquarters = hqs
		if err := r.Validate(); !errors.Is(err, keys.ErrInvalidDirectory) {
			t.Errorf("%s: %v, want ErrInvalidDirectory", name, err)
		}
	}
}
