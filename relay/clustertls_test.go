package relay_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/internal/relaytest"
	"github.com/hrdbeacon/beacon/relay"
)

// TestClusterTLS: with cluster.tls the nodes form a cluster over mutually
// authenticated routes, and a peer whose certificate the cluster's CA did
// not sign cannot complete the route's TLS handshake.
func TestClusterTLS(t *testing.T) {
	t.Parallel()
	w := relaytest.NewWorld(t, relaytest.MissionSpec{ID: "m1", Countries: []string{"ug"}})
	pki := newPKI(t)
	cfgs := clusterConfigs(t, w)
	for _, c := range cfgs {
		cert, key := pki.valid(t, c.ServerName)
		c.Cluster.TLS = &relay.MutualTLSConfig{Cert: cert, Key: key, CA: pki.CAFile}
		if err := relay.Check(c); err != nil {
			t.Fatal(err)
		}
	}
	nodes := startNodes(t, cfgs...) // returns once JetStream has a meta leader: the routes are up
	for _, n := range nodes {
		if n.Server().NumRoutes() == 0 {
			t.Fatalf("%s has no route", n.Server().Name())
		}
	}

	addr := nodes[0].ClusterAddr().String()
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(pki.CAFile)
	pool.AppendCertsFromPEM(ca)
	member, memberKey := pki.valid(t, "member")
	outsider := newPKI(t)
	stranger, strangerKey := outsider.valid(t, "stranger")
	for _, tc := range []struct {
		name      string
		cert, key string
		ok        bool
	}{
		{"a certificate of the cluster's CA", member, memberKey, true},
		{"a certificate of another CA", stranger, strangerKey, false},
		{"no certificate", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc2 := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
			if tc.cert != "" {
				kp, err := tls.LoadX509KeyPair(tc.cert, tc.key)
				if err != nil {
					t.Fatal(err)
				}
				tc2.Certificates = []tls.Certificate{kp}
			}
			err := routeHandshake(t, addr, tc2)
			if tc.ok && err != nil {
				t.Fatalf("handshake with %s: %v", tc.name, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("handshake with %s succeeded", tc.name)
			}
		})
	}
}

// routeHandshake does what a dialling node does: a TLS handshake first
// (the route port speaks nothing before it), then it reads what the
// server sends next: its INFO if it accepted the certificate (TLS 1.3
// delivers the server's verdict on it only after the handshake), an alert
// if it did not.
func routeHandshake(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	info, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(info, "INFO ") {
		t.Fatalf("route said %q after the handshake; want its INFO", info)
	}
	return nil
}
