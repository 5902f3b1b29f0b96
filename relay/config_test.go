package relay_test

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/config"
	"github.com/hrdbeacon/beacon/relay"
)

// TestShippedConfigs checks that the example configs under configs/ load
// and validate as shipped, and say what their comments promise.
func TestShippedConfigs(t *testing.T) {
	t.Run("relay.yaml", func(t *testing.T) {
		c, err := relay.LoadConfig("../configs/relay.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if c.Storage.Sync != relay.SyncAlways || c.Storage.Replicas != 1 || c.Cluster != nil {
			t.Errorf("single node: sync %q, replicas %d, cluster %v; want always, 1, none",
				c.Storage.Sync, c.Storage.Replicas, c.Cluster)
		}
		if c.Storage.MaxBytes != 1<<30 || c.Storage.Retention != 720*time.Hour || c.Storage.DedupWindow != 24*time.Hour {
			t.Errorf("storage = %+v", c.Storage)
		}
		if !filepath.IsAbs(c.DataDir) || strings.HasPrefix(c.DataDir, "~") {
			t.Errorf("data_dir %q: ~/ not expanded to an absolute path", c.DataDir)
		}
		assertLoopback(t, "listen", c.Listen)
		assertLoopback(t, "websocket.listen", c.WebSocket.Listen)
		assertLoopback(t, "monitor", c.Monitor)
	})

	t.Run("cluster", func(t *testing.T) {
		names := map[string]bool{}
		ports := map[string]string{}
		var routes []string
		for i := 1; i <= 3; i++ {
			file := fmt.Sprintf("../configs/cluster/node%d.yaml", i)
			c, err := relay.LoadConfig(file)
			if err != nil {
				t.Fatal(err)
			}
			if c.Storage.Replicas != 3 || c.Cluster == nil || c.Cluster.Name != "beacon" {
				t.Fatalf("%s: replicas %d, cluster %+v; want 3 replicas in cluster beacon", file, c.Storage.Replicas, c.Cluster)
			}
			if names[c.ServerName] {
				t.Errorf("%s: server_name %q used twice", file, c.ServerName)
			}
			names[c.ServerName] = true
			for what, addr := range map[string]string{"listen": c.Listen, "monitor": c.Monitor, "cluster.listen": c.Cluster.Listen} {
				assertLoopback(t, file+": "+what, addr)
				if other, dup := ports[addr]; dup {
					t.Errorf("%s: %s %s is also %s", file, what, addr, other)
				}
				ports[addr] = file + " " + what
			}
			if !slices.Contains(c.Cluster.Routes, "nats://"+c.Cluster.Listen) {
				t.Errorf("%s: routes %v do not include this node's cluster.listen %s", file, c.Cluster.Routes, c.Cluster.Listen)
			}
			if routes == nil {
				routes = c.Cluster.Routes
			} else if !slices.Equal(routes, c.Cluster.Routes) {
				t.Errorf("%s: routes %v differ from node1's %v", file, c.Cluster.Routes, routes)
			}
		}
		if len(routes) != 3 {
			t.Errorf("routes %v: want the three nodes", routes)
		}
	})
}

func assertLoopback(t *testing.T, what, addr string) {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s %q: %v", what, addr, err)
		return
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Errorf("%s %q does not bind loopback", what, addr)
	}
}

// wantErr is one expected problem: the field's dotted path, its line (0
// for a missing field) and a piece of the message.
type wantErr struct {
	field string
	line  int
	text  string
}

// assertConfigErrors checks that err lists exactly the problems in want,
// one *config.Error each, with the field and line, for file.
func assertConfigErrors(t *testing.T, file string, err error, want []wantErr) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s accepted; want %d errors", file, len(want))
	}
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("%s: error %T is not config.Errors: %v", file, err, err)
	}
	got := map[string]*config.Error{}
	for _, e := range es {
		k := fmt.Sprintf("%s@%d", e.Field, e.Line)
		if got[k] != nil {
			t.Errorf("reported twice: %v", e)
		}
		got[k] = e
		if e.File != file {
			t.Errorf("%v: File = %q, want %q", e, e.File, file)
		}
	}
	for _, w := range want {
		k := fmt.Sprintf("%s@%d", w.field, w.line)
		e := got[k]
		if e == nil {
			t.Errorf("missing: field %q at line %d (%s)", w.field, w.line, w.text)
			continue
		}
		delete(got, k)
		msg := e.Error()
		if !strings.Contains(msg, w.field) || !strings.Contains(msg, w.text) {
			t.Errorf("%q: want the field %q and %q named", msg, w.field, w.text)
		}
	}
	for _, e := range got {
		t.Errorf("unexpected: field %q at line %d: %v", e.Field, e.Line, e)
	}
	if t.Failed() {
		t.Logf("all errors for %s:\n%v", file, err)
	}
}

// TestConfigValueErrors: values that decode but are invalid are all
// reported at once, each with its field and line.
func TestConfigValueErrors(t *testing.T) {
	const file = "testdata/bad-values.yaml"
	_, err := relay.LoadConfig(file)
	assertConfigErrors(t, file, err, []wantErr{
		{"server_name", 0, "required"},
		{"data_dir", 0, "required"},
		{"listen", 2, `"localhost" is not host:port`},
		{"websocket", 3, "tls"},
		{"directory.root_fingerprint", 7, "fingerprint"},
		{"storage.sync", 9, "sometimes"},
		{"storage.dedup_window", 11, "retention"},
		{"storage.replicas", 12, "1 or 3"},
		{"cluster.routes[1]", 18, "tls://127.0.0.1:6223"},
	})
}

// TestConfigAllErrorsAtOnce: one file with mistakes of every kind —
// unknown keys, wrong types, bad values, missing fields — is refused with
// every one of them named, each with its dotted field and its line, so an
// operator fixes the file in one pass.
func TestConfigAllErrorsAtOnce(t *testing.T) {
	const file = "testdata/bad.yaml"
	_, err := relay.LoadConfig(file)
	assertConfigErrors(t, file, err, []wantErr{
		{"server_name", 0, "required"},
		{"data_dir", 0, "required"},
		{"listen", 2, `"localhost" is not host:port`},
		{"bogus", 3, "unknown field"},
		{"websocket", 4, "tls"},
		{"directory.root_fingerprint", 8, "fingerprint"},
		{"storage.sync", 10, "sometimes"},
		{"storage.retention", 11, "soon"},
		{"storage.max_bytes", 12, "lots"},
		// retention is unusable, so the default (720h) applies.
		{"storage.dedup_window", 13, "retention"},
		{"storage.replicas", 14, "1 or 3"},
		{"cluster.routes[1]", 20, "tls://127.0.0.1:6223"},
		{"log.colour", 22, "unknown field"},
	})
}

func TestConfigNotYAML(t *testing.T) {
	for _, tc := range []struct {
		name, file, text string
	}{
		// The line of a syntax error is named, even if only in the text.
		{"syntax", "testdata/not-yaml.yaml", "line 3"},
		{"two documents", "testdata/two-documents.yaml", "more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := relay.LoadConfig(tc.file)
			var es config.Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Fatalf("LoadConfig = %v; want one config.Error", err)
			}
			if msg := es[0].Error(); !strings.Contains(msg, tc.file) || !strings.Contains(msg, tc.text) {
				t.Errorf("%q does not name the file and %q", msg, tc.text)
			}
		})
	}
	t.Run("two documents line", func(t *testing.T) {
		_, err := relay.LoadConfig("testdata/two-documents.yaml")
		var es config.Errors
		if errors.As(err, &es) && es[0].Line != 4 {
			t.Errorf("line %d, want 4 (the second ---)", es[0].Line)
		}
	})
	t.Run("binary", func(t *testing.T) {
		_, err := relay.ParseConfig("garbage.yaml", []byte("\x00\x01\x02\xff\xfe"))
		var es config.Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("ParseConfig = %v; want config.Errors", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		_, err := relay.ParseConfig("huge.yaml", []byte("# "+strings.Repeat("x", config.MaxSize)+"\n"))
		var es config.Errors
		if !errors.As(err, &es) || len(es) != 1 || !strings.Contains(es[0].Err.Error(), "larger than") {
			t.Fatalf("ParseConfig = %v; want one error about the size", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		const file = "testdata/empty.yaml"
		_, err := relay.LoadConfig(file)
		assertConfigErrors(t, file, err, []wantErr{
			{"server_name", 0, "required"},
			{"listen", 0, "required"},
			{"data_dir", 0, "required"},
		})
	})
}

// TestConfigRelativePaths: paths in a config are relative to the file.
func TestConfigRelativePaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "relay.yaml")
	c, err := relay.ParseConfig(file, []byte(`server_name: r
listen: 127.0.0.1:0
data_dir: data
directory:
  file: dir/directory.yaml
  root_fingerprint: bcn-fp:`+strings.Repeat("ab", 32)+`
`))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "data"); c.DataDir != want {
		t.Errorf("data_dir = %q, want %q", c.DataDir, want)
	}
	if want := filepath.Join(dir, "dir", "directory.yaml"); c.Directory.File != want {
		t.Errorf("directory.file = %q, want %q", c.Directory.File, want)
	}
}

// TestDefaultConfig: the built-in local trial is a valid config (it
// survives a round trip through YAML and validation unchanged) and binds
// loopback only.
func TestDefaultConfig(t *testing.T) {
	dir := t.TempDir()
	c := relay.DefaultConfig(dir)
	assertLoopback(t, "listen", c.Listen)
	if c.WebSocket == nil {
		t.Fatal("no websocket listener")
	}
	assertLoopback(t, "websocket.listen", c.WebSocket.Listen)
	if c.Monitor != "" {
		assertLoopback(t, "monitor", c.Monitor)
	}
	if c.Storage.Sync != relay.SyncAlways {
		t.Errorf("sync = %q, want always", c.Storage.Sync)
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := relay.ParseConfig(filepath.Join(dir, "default.yaml"), b)
	if err != nil {
		t.Fatalf("DefaultConfig does not validate: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", back, c)
	}
}
