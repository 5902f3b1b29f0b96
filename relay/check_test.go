package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay"
)

// onlyProblem checks that err holds exactly one problem, with the field,
// wrapping target (if not nil) and saying text.
func onlyProblem(t *testing.T, err error, field string, target error, text string) {
	t.Helper()
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %T is not config.Errors: %v", err, err)
	}
	if len(es) != 1 {
		t.Fatalf("%d problems, want one (%s):\n%v", len(es), field, err)
	}
	e := es[0]
	if e.Field != field {
		t.Errorf("field %q, want %q: %v", e.Field, field, e)
	}
	if target != nil && !errors.Is(e, target) {
		t.Errorf("%v does not wrap %v", e, target)
	}
	if !strings.Contains(e.Error(), text) {
		t.Errorf("%q does not say %q", e.Error(), text)
	}
}

// TestValidateTLSRules: a listener off loopback must say how it is
// protected; configs/relay.yaml documents the rule.
func TestValidateTLSRules(t *testing.T) {
	tlsFiles := &relay.TLSConfig{Cert: "/c.pem", Key: "/k.pem"}
	mutual := &relay.MutualTLSConfig{Cert: "/c.pem", Key: "/k.pem", CA: "/ca.pem"}
	cluster := func(listen string, tc *relay.MutualTLSConfig) func(*relay.Config) {
		return func(c *relay.Config) {
			c.Cluster = &relay.ClusterConfig{Name: "b", Listen: listen, Routes: []string{"nats://" + listen}, TLS: tc}
		}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*relay.Config)
		field string // "" for a valid config
	}{
		{"loopback", func(c *relay.Config) {}, ""},
		{"localhost", func(c *relay.Config) { c.Listen = "localhost:4222" }, ""},
		{"ipv6 loopback", func(c *relay.Config) { c.Listen = "[::1]:4222" }, ""},
		{"every interface", func(c *relay.Config) { c.Listen = "0.0.0.0:4222" }, "listen"},
		{"every interface v6", func(c *relay.Config) { c.Listen = "[::]:4222" }, "listen"},
		{"a host name", func(c *relay.Config) { c.Listen = "relay.example:4222" }, "listen"},
		{"public with tls", func(c *relay.Config) { c.Listen, c.TLS = "0.0.0.0:4222", tlsFiles }, ""},
		{"websocket behind a proxy", func(c *relay.Config) {
			c.WebSocket = &relay.WebSocketConfig{Listen: "0.0.0.0:8080", NoTLS: true}
		}, ""},
		{"websocket with neither", func(c *relay.Config) {
			c.WebSocket = &relay.WebSocketConfig{Listen: "127.0.0.1:8080"}
		}, "websocket"},
		{"websocket with both", func(c *relay.Config) {
			c.WebSocket = &relay.WebSocketConfig{Listen: "0.0.0.0:8080", TLS: tlsFiles, NoTLS: true}
		}, "websocket.no_tls"},
		{"monitor loopback", func(c *relay.Config) { c.Monitor = "127.0.0.1:8222" }, ""},
		{"monitor public", func(c *relay.Config) { c.Monitor = "0.0.0.0:8222" }, "monitor"},
		{"monitor public with mutual tls", func(c *relay.Config) { c.Monitor, c.MonitorTLS = "0.0.0.0:8222", mutual }, ""},
		{"monitor tls without ca", func(c *relay.Config) {
			c.Monitor, c.MonitorTLS = "0.0.0.0:8222", &relay.MutualTLSConfig{Cert: "/c", Key: "/k"}
		}, "monitor_tls.ca"},
		{"monitor tls without monitor", func(c *relay.Config) { c.MonitorTLS = mutual }, "monitor_tls"},
		{"cluster loopback", cluster("127.0.0.1:6222", nil), ""},
		{"cluster public", cluster("10.0.0.1:6222", nil), "cluster.listen"},
		{"cluster public with tls", cluster("10.0.0.1:6222", mutual), ""},
		{"cluster tls without key", cluster("10.0.0.1:6222", &relay.MutualTLSConfig{Cert: "/c", CA: "/ca"}), "cluster.tls.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := relay.DefaultConfig(t.TempDir())
			tc.edit(c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			onlyProblem(t, err, tc.field, nil, "")
			// New validates: a relay with this config does not start.
			if _, nerr := relay.New(c); nerr == nil || !strings.Contains(nerr.Error(), tc.field) {
				t.Errorf("New = %v; want it refused for %s", nerr, tc.field)
			}
		})
	}
}

// TestCheck: each problem a start would hit is caught by Check, as a
// distinct error on its field, and a start of the same config does fail.
func TestCheck(t *testing.T) {
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "m1", Countries: []string{"ug"}})
	pki := newPKI(t)
	goodCert, goodKey := pki.valid(t, "relay")
	otherCert, _ := pki.valid(t, "other")
	expiredCert, expiredKey := pki.leaf(t, "expired", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	futureCert, futureKey := pki.leaf(t, "future", time.Now().Add(time.Hour), time.Now().Add(48*time.Hour))
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)

	resign := func(t *testing.T, edit func(*keys.Roster)) string {
		r := w.Dir.Roster
		edit(&r)
		signed, err := keys.SignDirectory(&r, w.Root)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "directory.yaml")
		if err := os.WriteFile(path, signed, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	otherRoot, _ := keys.GenerateIdentity()

	for _, tc := range []struct {
		name   string
		edit   func(t *testing.T, c *relay.Config)
		field  string
		target error
		text   string
	}{
		{"directory missing", func(t *testing.T, c *relay.Config) {
			c.Directory.File = filepath.Join(t.TempDir(), "nowhere.yaml")
		}, "directory.file", fs.ErrNotExist, "nowhere.yaml"},
		{"directory expired", func(t *testing.T, c *relay.Config) {
			c.Directory.File = resign(t, func(r *keys.Roster) {
				r.Issued, r.Expires = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
			})
		}, "directory.file", keys.ErrExpired, "expired at"},
		{"directory tampered", func(t *testing.T, c *relay.Config) {
			data, _ := os.ReadFile(w.DirFile)
			path := filepath.Join(t.TempDir(), "tampered.yaml")
			os.WriteFile(path, []byte(strings.Replace(string(data), "name: Mission m1", "name: Mission m2", 1)), 0o644)
			c.Directory.File = path
		}, "directory.file", keys.ErrBadSignature, "bad signature"},
		{"wrong root", func(t *testing.T, c *relay.Config) {
			c.Directory.RootFingerprint = otherRoot.Public().Fingerprint().String()
		}, "directory.root_fingerprint", keys.ErrUntrustedRoot, "not signed by the pinned root"},
		{"older than served", func(t *testing.T, c *relay.Config) {
			os.MkdirAll(c.DataDir, 0o700)
			os.WriteFile(filepath.Join(c.DataDir, "directory.version"), fmt.Appendf(nil, "7 sha256:%s\n", strings.Repeat("ab", 32)), 0o600)
		}, "directory.file", keys.ErrRollback, "already accepted 7"},
		{"tls cert unreadable", func(t *testing.T, c *relay.Config) {
			c.TLS = &relay.TLSConfig{Cert: filepath.Join(t.TempDir(), "missing.crt"), Key: goodKey}
		}, "tls.cert", fs.ErrNotExist, "missing.crt"},
		{"tls key unreadable", func(t *testing.T, c *relay.Config) {
			c.TLS = &relay.TLSConfig{Cert: goodCert, Key: filepath.Join(t.TempDir(), "missing.key")}
		}, "tls.key", fs.ErrNotExist, "missing.key"},
		{"tls key does not match", func(t *testing.T, c *relay.Config) {
			c.TLS = &relay.TLSConfig{Cert: otherCert, Key: goodKey}
		}, "tls", nil, "private key does not match public key"},
		{"tls not PEM", func(t *testing.T, c *relay.Config) {
			c.TLS = &relay.TLSConfig{Cert: notPEM, Key: goodKey}
		}, "tls", nil, "failed to find any PEM data"},
		{"tls expired", func(t *testing.T, c *relay.Config) {
			c.TLS = &relay.TLSConfig{Cert: expiredCert, Key: expiredKey}
		}, "tls.cert", nil, "expired at"},
		{"tls not yet valid", func(t *testing.T, c *relay.Config) {
			c.TLS = &relay.TLSConfig{Cert: futureCert, Key: futureKey}
		}, "tls.cert", nil, "not valid before"},
		{"websocket tls mismatched", func(t *testing.T, c *relay.Config) {
			c.WebSocket = &relay.WebSocketConfig{Listen: "127.0.0.1:0", TLS: &relay.TLSConfig{Cert: otherCert, Key: goodKey}}
		}, "websocket.tls", nil, "does not match"},
		{"monitor ca not PEM", func(t *testing.T, c *relay.Config) {
			c.Monitor = "127.0.0.1:0"
			c.MonitorTLS = &relay.MutualTLSConfig{Cert: goodCert, Key: goodKey, CA: notPEM}
		}, "monitor_tls.ca", nil, "no PEM certificate"},
		{"cluster ca unreadable", func(t *testing.T, c *relay.Config) {
			c.Cluster = &relay.ClusterConfig{Name: "b", Listen: "127.0.0.1:0",
				TLS: &relay.MutualTLSConfig{Cert: goodCert, Key: goodKey, CA: filepath.Join(t.TempDir(), "ca.crt")}}
		}, "cluster.tls.ca", fs.ErrNotExist, "ca.crt"},
		{"data dir is a file", func(t *testing.T, c *relay.Config) {
			c.DataDir = notPEM
		}, "data_dir", nil, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := relaytest.Config(t)
			w.Configure(c)
			if err := relay.Check(c); err != nil {
				t.Fatalf("the config before the change: %v", err)
			}
			tc.edit(t, c)
			err := relay.Check(c)
			onlyProblem(t, err, tc.field, tc.target, tc.text)

			// A start fails on the same problem.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, serr := relay.New(c)
			if serr == nil {
				if serr = r.Start(ctx); serr == nil {
					r.Shutdown(ctx)
				}
			}
			if serr == nil {
				t.Fatalf("the relay started; Check said: %v", err)
			}
			if tc.target != nil && !errors.Is(serr, tc.target) {
				t.Errorf("start failed with %v; want %v as Check said", serr, tc.target)
			}
		})
	}
}

// TestCheckBesideRunningRelay: Check takes no lock and binds no port, so it
// runs while the relay it checks is serving, and leaves it serving.
func TestCheckBesideRunningRelay(t *testing.T) {
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "m1", Countries: []string{"ug"}})
	c := relaytest.Config(t)
	c.Monitor = "127.0.0.1:0"
	w.Configure(c)
	relaytest.Start(t, c)
	if err := relay.Check(c); err != nil {
		t.Fatalf("Check beside the running relay: %v", err)
	}
	if _, err := relay.New(c); !errors.Is(err, relay.ErrDataDirLocked) {
		t.Fatalf("New beside the running relay = %v; want ErrDataDirLocked: the lock is still held", err)
	}
}

// TestCheckFile: the problems Check finds are named with the file and the
// line of their field, all at once.
func TestCheckFile(t *testing.T) {
	pki := newPKI(t)
	cert, _ := pki.valid(t, "a")
	_, key := pki.valid(t, "b")
	dir := t.TempDir()
	file := filepath.Join(dir, "relay.yaml")
	os.WriteFile(file, []byte(`server_name: r
listen: 127.0.0.1:0
tls:
  cert: `+cert+`
  key: `+key+`
data_dir: data
directory:
  file: missing.yaml
  root_fingerprint: bcn-fp:`+strings.Repeat("ab", 32)+`
`), 0o600)
	err := relay.CheckFile(file)
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("CheckFile = %v; want two problems", err)
	}
	want := []string{
		file + ":8: directory.file: open " + filepath.Join(dir, "missing.yaml") + ": no such file or directory",
		file + ":3: tls: tls: private key does not match public key",
	}
	for i, e := range es {
		if e.Error() != want[i] {
			t.Errorf("problem %d:\n got %s\nwant %s", i, e.Error(), want[i])
		}
	}
	// Problems of the file itself come first, and alone: the files they
	// name are not read.
	os.WriteFile(file, []byte("server_name: r\nlisten: 0.0.0.0:4222\ndata_dir: data\n"), 0o600)
	err = relay.CheckFile(file)
	if !errors.As(err, &es) || len(es) != 1 || es[0].Line != 2 || es[0].Field != "listen" {
		t.Fatalf("CheckFile = %v; want listen at line 2", err)
	}
}
