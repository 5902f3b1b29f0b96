package relay_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/relay"
	"github.com/hrdbeacon/beacon/relay/proto"
)

func monitorGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := testHTTP.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestMonitorEndpoints: the monitor serves the Prometheus metrics (with
// the Go and process collectors and the build), nats-server's /varz, /jsz
// and /healthz in the JSON the NATS exporter reads, and none of the
// endpoints that list clients. Nothing it serves names a connected
// client's NKey, mailbox or address.
func TestMonitorEndpoints(t *testing.T) {
	t.Parallel()
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "m1", Countries: []string{"ug"}})
	cfg := relaytest.Config(t)
	cfg.Monitor = "127.0.0.1:0"
	w.Configure(cfg)
	r := relaytest.Start(t, cfg)
	base := "http://" + r.MonitorAddr()

	// A walk-in defender and a mission, each of which has read its
	// mailbox, and the mission its alerts: the relay now holds a consumer
	// named after the mission.
	var conns []*relaytest.Conn
	conns = append(conns, relaytest.Connect(t, r.ClientURL(), nil), w.ConnectAs(t, r.ClientURL(), "m1"))
	for _, c := range conns {
		if _, err := c.Fetch(proto.SvcFetchMbox, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conns[1].Fetch(proto.SvcFetchAlerts("ug"), 1, 0); err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for _, c := range conns {
		pub, _ := c.NKey.PublicKey()
		secrets = append(secrets, pub, c.Mailbox.String())
	}
	connz, err := r.Server().Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range connz.Conns {
		if ci.Port != 0 { // the relay's in-process connection has none
			secrets = append(secrets, net.JoinHostPort(ci.IP, strconv.Itoa(ci.Port)))
		}
	}
	if len(secrets) != 6 {
		t.Fatalf("secrets %v: want two NKeys, two mailboxes, two addresses", secrets)
	}

	bodies := map[string]string{}
	for _, path := range []string{"/metrics", "/varz", "/healthz",
		"/jsz?accounts=true&streams=true&consumers=true&direct-consumers=true&config=true&raft=true",
		"/healthz?details=true&account=%24G&stream=MAILBOX&consumer=x"} {
		code, body := monitorGet(t, base+path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		bodies[path] = body
	}

	var varz server.Varz
	if err := json.Unmarshal([]byte(bodies["/varz"]), &varz); err != nil {
		t.Fatalf("/varz is not nats-server's Varz: %v", err)
	}
	if varz.ID != r.Server().ID() || varz.Connections < 2 || varz.JetStream.Config == nil {
		t.Errorf("/varz: id %q connections %d jetstream %+v", varz.ID, varz.Connections, varz.JetStream.Config)
	}
	var jsz server.JSInfo
	for path, body := range bodies {
		if strings.HasPrefix(path, "/jsz") {
			if err := json.Unmarshal([]byte(body), &jsz); err != nil {
				t.Fatalf("/jsz is not nats-server's JSInfo: %v", err)
			}
		}
	}
	streams := map[string]bool{}
	for _, a := range jsz.AccountDetails {
		for _, s := range a.Streams {
			streams[s.Name] = true
			if len(s.Consumer) != 0 {
				t.Errorf("/jsz lists %d consumers of %s; consumers are never listed", len(s.Consumer), s.Name)
			}
		}
	}
	if !streams[proto.StreamAlerts] || !streams[proto.StreamMailbox] || jsz.Consumers == 0 {
		t.Errorf("/jsz: streams %v, %d consumers counted; want ALERTS, MAILBOX and the consumers counted", streams, jsz.Consumers)
	}
	var health struct{ Status string }
	if json.Unmarshal([]byte(bodies["/healthz"]), &health); health.Status != "ok" {
		t.Errorf("/healthz = %s", bodies["/healthz"])
	}
	for _, want := range []string{
		`beacon_build_info{goversion="go`, `go_goroutines `, `process_resident_memory_bytes `, `beacon_relay_connections 2`,
	} {
		if !strings.Contains(bodies["/metrics"], want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	for path, body := range bodies {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("GET %s names a client: %q", path, s)
			}
		}
	}

	for _, path := range []string{"/connz", "/connz?subs=detail", "/subsz", "/accountz", "/accstatz", "/routez",
		"/leafz", "/gatewayz", "/raftz", "/ipqueuesz", "/stacksz", "/expvarz", "/debug/pprof/", "/"} {
		if code, _ := monitorGet(t, base+path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
}

// TestShutdownReportsFailures: Shutdown does all of its work even when its
// context has run out, and says so; the data directory is released either
// way, and a second call has nothing left to report.
func TestShutdownReportsFailures(t *testing.T) {
	t.Parallel()
	cfg := relaytest.Config(t)
	cfg.Monitor = "127.0.0.1:0"
	r, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := r.Shutdown(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with a cancelled context = %v; want context.Canceled reported", err)
	}
	if err := r.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown = %v, want nil", err)
	}
	r2, err := relay.New(cfg)
	if err != nil {
		t.Fatalf("the data directory was not released: %v", err)
	}
	r2.Shutdown(ctx)
}

// TestMonitorTLS: with monitor_tls the monitor serves HTTPS, and only to a
// client presenting a certificate its CA signed.
func TestMonitorTLS(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	cert, key := pki.valid(t, "monitor")
	cfg := relaytest.Config(t)
	cfg.Monitor = "127.0.0.1:0"
	cfg.MonitorTLS = &relay.MutualTLSConfig{Cert: cert, Key: key, CA: pki.CAFile}
	r := relaytest.Start(t, cfg)

	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(pki.CAFile)
	pool.AppendCertsFromPEM(ca)
	get := func(certFile, keyFile string) (int, error) {
		tc := &tls.Config{RootCAs: pool}
		if certFile != "" {
			kp, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{kp}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}, Timeout: 10 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + r.MonitorAddr() + "/healthz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	scraper, scraperKey := pki.valid(t, "scraper")
	if code, err := get(scraper, scraperKey); err != nil || code != http.StatusOK {
		t.Fatalf("scraper with the CA's certificate: %d %v", code, err)
	}
	other, otherKey := newPKI(t).valid(t, "other")
	for name, files := range map[string][2]string{"no certificate": {}, "another CA's certificate": {other, otherKey}} {
		if code, err := get(files[0], files[1]); err == nil {
			t.Errorf("%s: %d, want the TLS handshake refused", name, code)
		}
	}
	if resp, err := testHTTP.Get("http://" + r.MonitorAddr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP served")
		}
	}
}

// testHTTP is the tests' HTTP client: it keeps no idle connection open, so
// none outlives the test that made it.
var testHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
