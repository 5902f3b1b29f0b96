package envelope

import (
	"errors"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

func TestAckToken(t *testing.T) {
	m, _ := keys.GenerateIdentity()
	other, _ := keys.GenerateIdentity()
	alert := routing.NewID()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	b := SignAck(alert, m, now)
	if len(b) != AckTokenSize {
		t.Fatalf("token is %d bytes, want %d", len(b), AckTokenSize)
	}
	tok, err := ParseAck(b)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Alert != alert || !tok.Created.Equal(now) || !tok.Signer.Equal(m.Public().Fingerprint()) {
		t.Fatalf("parsed %+v", tok)
	}
	if err := tok.Verify(m.Public()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := tok.Verify(other.Public()); !errors.Is(err, ErrBadAuthentication) {
		t.Fatalf("Verify by another identity: %v", err)
	}
	// Every bit of the token matters: a flip either breaks parsing or the
	// signature.
	for i := range len(b) * 8 {
		c := append([]byte(nil), b...)
		c[i/8] ^= 1 << (i % 8)
		tok, err := ParseAck(c)
		if err == nil {
			err = tok.Verify(m.Public())
		}
		if err == nil {
			t.Fatalf("bit %d flipped: token still verifies", i)
		}
	}
	for n := range len(b) {
		if _, err := ParseAck(b[:n]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := ParseAck(append(b, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("one byte longer: %v", err)
	}
}

func TestPublic(t *testing.T) {
	m, _ := keys.GenerateIdentity()
	other, _ := keys.GenerateIdentity()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"kind":"broadcast"}`)
	b, err := SignPublic("ug", body, m, now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePublic(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Country != "ug" || string(p.Body) != string(body) || !p.Created.Equal(now) || p.ID.IsZero() {
		t.Fatalf("parsed %+v", p)
	}
	if err := p.Verify(m.Public()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := p.Verify(other.Public()); !errors.Is(err, ErrBadAuthentication) {
		t.Fatalf("Verify by another identity: %v", err)
	}
	for i := range len(b) * 8 {
		c := append([]byte(nil), b...)
		c[i/8] ^= 1 << (i % 8)
		p, err := ParsePublic(c)
		if err == nil {
			err = p.Verify(m.Public())
		}
		if err == nil {
			t.Fatalf("bit %d flipped: message still verifies", i)
		}
	}
	for n := range len(b) {
		if _, err := ParsePublic(b[:n]); err == nil {
			t.Fatalf("truncated to %d: parsed", n)
		}
	}
	if _, err := ParsePublic(append(b, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("one byte longer: %v", err)
	}
	if _, err := SignPublic("UG", body, m, now); !errors.Is(err, ErrMalformed) {
		t.Fatalf("upper-case country: %v", err)
	}
	if _, err := SignPublic("ug", make([]byte, MaxPublicBody+1), m, now); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized body: %v", err)
	}
	if _, err := SignPublic("ug", make([]byte, MaxPublicBody), m, now); err != nil {
		t.Fatalf("largest body: %v", err)
	}
}

func FuzzParseSigned(f *testing.F) {
	m, _ := keys.GenerateIdentity()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Add(SignAck(routing.NewID(), m, now))
	p, _ := SignPublic("ke", []byte("hello"), m, now)
	f.Add(p)
	// Every known-answer case, valid or not, is a seed.
	for _, v := range readVectorDir(f, "testdata/signed", "kind") {
		f.Add(v.Input)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if tok, err := ParseAck(b); err == nil && tok.Verify(m.Public()) == nil && len(b) != AckTokenSize {
			t.Fatal("accepted a token of the wrong size")
		}
		if p, err := ParsePublic(b); err == nil && len(p.Body) > MaxPublicBody {
			t.Fatal("accepted an oversized body")
		}
	})
}
