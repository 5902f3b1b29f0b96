package envelope

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hrdbeacon/beacon/keys"
)

// Run without -race: go test -run='^$' -bench=. -benchtime=2s ./envelope
//
// The Raw benchmarks measure, in the same run, the primitives one envelope
// is made of, so that Seal and Open can be read against them.

const benchBody = 1024

func benchSetup(b *testing.B, n int) (*keys.Identity, []*keys.Identity, []Recipient) {
	from := newIdentity(b)
	rs := newIdentities(b, n)
	return from, rs, to(rs...)
}

func BenchmarkSeal(b *testing.B) {
	body := make([]byte, benchBody)
	for _, c := range []struct {
		n    int
		auth Auth
	}{{1, Deniable}, {3, Deniable}, {10, Deniable}, {1, Signed}} {
		b.Run(fmt.Sprintf("%v-%d", c.auth, c.n), func(b *testing.B) {
			from, _, rs := benchSetup(b, c.n)
			h := testHeader()
			var env []byte
			b.SetBytes(benchBody)
			for b.Loop() {
				env, _ = Seal(h, body, from, c.auth, rs...)
			}
			b.ReportMetric(float64(len(env)), "envelope-bytes")
		})
	}
	// Cold: each Seal is to a recipient the sender has not computed a DH
	// secret with (the cache holds 4096 peers; the pool is larger), as for
	// a defender's first alert to a mission.
	b.Run("deniable-1-cold", func(b *testing.B) {
		from := newIdentity(b)
		pool := newIdentities(b, 5000)
		h := testHeader()
		i := 0
		for b.Loop() {
			Seal(h, body, from, Deniable, To(pool[i%len(pool)].Public()))
			i++
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	body := make([]byte, benchBody)
	for _, c := range []struct {
		n    int
		auth Auth
	}{{1, Deniable}, {3, Deniable}, {10, Deniable}, {1, Signed}} {
		from, rs, rcpts := benchSetup(b, c.n)
		env := mustSeal(b, testHeader(), body, from, c.auth, rcpts...)
		// The last recipient tries every stanza: the worst case.
		b.Run(fmt.Sprintf("%v-%d", c.auth, c.n), func(b *testing.B) {
			b.SetBytes(benchBody)
			for b.Loop() {
				if _, err := Open(env, rs[c.n-1]); err != nil {
					b.Fatal(err)
				}
			}
		})
		if c.n == 10 {
			b.Run(fmt.Sprintf("%v-%d-first", c.auth, c.n), func(b *testing.B) {
				for b.Loop() {
					Open(env, rs[0])
				}
			})
		}
	}
	// A non-recipient pays a failed trial decryption of every stanza: the
	// cost of a hostile envelope with MaxRecipients stanzas.
	b.Run("not-for-me-32", func(b *testing.B) {
		from, _, rcpts := benchSetup(b, MaxRecipients)
		env := mustSeal(b, testHeader(), body, from, Deniable, rcpts...)
		stranger := newIdentity(b)
		for b.Loop() {
			Open(env, stranger)
		}
	})
}

func BenchmarkRaw(b *testing.B) {
	msg := make([]byte, benchBody)
	kem := hpke.MLKEM768X25519()
	kdf, aead := hpke.HKDFSHA256(), hpke.ChaCha20Poly1305()
	priv, err := kem.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("xwing-seal-1KiB", func(b *testing.B) {
		for b.Loop() {
			hpke.Seal(priv.PublicKey(), kdf, aead, []byte("info"), msg)
		}
	})
	ct, _ := hpke.Seal(priv.PublicKey(), kdf, aead, []byte("info"), msg)
	b.Run("xwing-open-1KiB", func(b *testing.B) {
		for b.Loop() {
			if _, err := hpke.Open(priv, kdf, aead, []byte("info"), ct); err != nil {
				b.Fatal(err)
			}
		}
	})
	_, sk, _ := ed25519.GenerateKey(rand.Reader)
	b.Run("ed25519-sign-1KiB", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(sk, msg)
		}
	})
	sig := ed25519.Sign(sk, msg)
	pk := sk.Public().(ed25519.PublicKey)
	b.Run("ed25519-verify-1KiB", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(pk, msg, sig) {
				b.Fatal("bad signature")
			}
		}
	})
	x1, _ := ecdh.X25519().GenerateKey(rand.Reader)
	x2, _ := ecdh.X25519().GenerateKey(rand.Reader)
	b.Run("x25519-ecdh", func(b *testing.B) {
		for b.Loop() {
			x1.ECDH(x2.PublicKey())
		}
	})
	key := make([]byte, 32)
	b.Run("hmac-sha256-1KiB", func(b *testing.B) {
		for b.Loop() {
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			m.Sum(nil)
		}
	})
	payload := make([]byte, 1<<minSizeClass)
	c, _ := chacha20poly1305.New(key)
	nonce := make([]byte, c.NonceSize())
	b.Run("chacha20poly1305-2KiB", func(b *testing.B) {
		out := make([]byte, 0, len(payload)+tagSize)
		for b.Loop() {
			c.Seal(out[:0], nonce, payload, nil)
		}
	})
}
