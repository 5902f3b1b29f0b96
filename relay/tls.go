package relay

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"time"

	"github.com/hrdbeacon/beacon/config"
)

// loadTLS loads a listener's certificate and key; field names them in
// errors ("tls", "websocket.tls").
func loadTLS(field string, t *TLSConfig, now time.Time) (*tls.Config, error) {
	cert, err := loadKeyPair(field, t.Cert, t.Key, now)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, nil
}

// loadMutualTLS loads a certificate, key and CA for connections where both
// sides present a certificate signed by the CA: cluster routes (each node
// dials and accepts) and the monitor's scrapers.
func loadMutualTLS(field string, t *MutualTLSConfig, now time.Time) (*tls.Config, error) {
	var errs config.Errors
	cert, err := loadKeyPair(field, t.Cert, t.Key, now)
	errs.AddErr("", err)
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(t.CA); err != nil {
		errs.AddErr(field+".ca", err)
	} else if !pool.AppendCertsFromPEM(pem) {
		errs.Add(field+".ca", "%s holds no PEM certificate", t.CA)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// loadKeyPair reads a PEM certificate and key and checks that they match
// and that the certificate is valid at now: a relay that starts with an
// expired certificate only fails later, at every client's handshake.
func loadKeyPair(field, certFile, keyFile string, now time.Time) (tls.Certificate, error) {
	var errs config.Errors
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		errs.AddErr(field+".cert", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		errs.AddErr(field+".key", err)
	}
	if len(errs) > 0 {
		return tls.Certificate{}, errs
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The standard library says which: no certificate, no key, or a
		// key that does not match the certificate.
		errs.AddErr(field, err)
		return tls.Certificate{}, errs
	}
	switch leaf := cert.Leaf; {
	case leaf == nil:
		errs.AddErr(field+".cert", errors.New("no certificate"))
	case now.After(leaf.NotAfter):
		errs.Add(field+".cert", "%s expired at %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		errs.Add(field+".cert", "%s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return cert, errs.Err()
}
