package keys_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/keys"
)

func TestInboxKeyText(t *testing.T) {
	k := mustInbox(t)
	back, err := keys.ParseInboxKey(k.SecretString())
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(k) || !back.Public().Equal(k.Public()) {
		t.Error("ParseInboxKey(SecretString()) is not Equal")
	}
	if mustInbox(t).Equal(k) {
		t.Error("two generated inbox keys are Equal")
	}
	pub, err := keys.ParseInboxPublicKey(k.Public().String())
	if err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("ParseInboxPublicKey(String()) = %v", err)
	}
	text, err := k.Public().MarshalText()
	if err != nil || string(text) != k.Public().String() {
		t.Fatalf("MarshalText = %q, %v", text, err)
	}
	var u keys.InboxPublicKey
	if err := u.UnmarshalText(text); err != nil || !u.Equal(k.Public()) {
		t.Fatalf("UnmarshalText = %v", err)
	}
	if !bytes.Equal(k.Public().Bytes(), k.Public().KEMKey().Bytes()) {
		t.Error("Bytes() is not the X-Wing encapsulation key")
	}
}

func TestNewInboxPublicKeyRefuses(t *testing.T) {
	raw := mustInbox(t).Public().Bytes()
	for _, n := range []int{0, 32, keys.KEMKeySize - 1, keys.KEMKeySize + 1} {
		b := make([]byte, n)
		copy(b, raw)
		if _, err := keys.NewInboxPublicKey(b); !isMalformed(err) {
			t.Errorf("%d bytes: %v, want ErrMalformedKey", n, err)
		}
	}
	for name, span := range map[string][2]int{"all": {0, keys.KEMKeySize}, "X25519 part": {1184, keys.KEMKeySize}} {
		b := bytes.Clone(raw)
		clear(b[span[0]:span[1]])
		if _, err := keys.NewInboxPublicKey(b); !isMalformed(err) {
			t.Errorf("all-zero %s: %v, want ErrMalformedKey", name, err)
		}
	}
}

func TestSignedInboxKey(t *testing.T) {
	owner := mustIdentity(t)
	k := mustInbox(t)
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	expires := now.Add(24 * time.Hour)
	s := keys.SignInboxKey(owner, k.Public(), expires)
	if err := s.Verify(owner.Public(), now); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !s.Expires.Equal(expires) || s.Expires.Location() != time.UTC {
		t.Errorf("Expires = %v, want %v in UTC", s.Expires, expires)
	}

	t.Run("other identity", func(t *testing.T) {
		wantErr(t, s.Verify(mustIdentity(t).Public(), now), keys.ErrBadSignature)
	})
	t.Run("expired", func(t *testing.T) {
		wantErr(t, s.Verify(owner.Public(), expires), keys.ErrExpired)
		wantErr(t, s.Verify(owner.Public(), expires.Add(time.Hour)), keys.ErrExpired)
		if err := s.Verify(owner.Public(), expires.Add(-time.Second)); err != nil {
			t.Errorf("a second before expiry: %v", err)
		}
	})
	t.Run("flipped signature bit", func(t *testing.T) {
		for _, bit := range []int{0, 7, 255, 256, 511} {
			bad := s
			bad.Signature = bytes.Clone(s.Signature)
			bad.Signature[bit/8] ^= 1 << (bit % 8)
			wantErr(t, bad.Verify(owner.Public(), now), keys.ErrBadSignature)
		}
	})
	t.Run("wrong signature length", func(t *testing.T) {
		for _, n := range []int{0, 63, 65} {
			bad := s
			bad.Signature = make([]byte, n)
			copy(bad.Signature, s.Signature)
			wantErr(t, bad.Verify(owner.Public(), now), keys.ErrBadSignature)
		}
	})
	t.Run("another key under the signature", func(t *testing.T) {
		bad := s
		bad.Key = mustInbox(t).Public()
		wantErr(t, bad.Verify(owner.Public(), now), keys.ErrBadSignature)
	})
	t.Run("extended expiry", func(t *testing.T) {
		bad := s
		bad.Expires = s.Expires.Add(time.Second)
		wantErr(t, bad.Verify(owner.Public(), now), keys.ErrBadSignature)
	})
	t.Run("missing key", func(t *testing.T) {
		bad := s
		bad.Key = nil
		wantErr(t, bad.Verify(owner.Public(), now), keys.ErrMalformedKey)
	})
	t.Run("sub-second expiry is truncated before signing", func(t *testing.T) {
		s2 := keys.SignInboxKey(owner, k.Public(), expires.Add(900*time.Millisecond))
		if !s2.Expires.Equal(expires) {
			t.Errorf("Expires = %v, want %v", s2.Expires, expires)
		}
	})

	t.Run("YAML round trip", func(t *testing.T) {
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back keys.SignedInboxKey
		dec := yaml.NewDecoder(bytes.NewReader(out))
		dec.KnownFields(true)
		if err := dec.Decode(&back); err != nil {
			t.Fatalf("decoding %s: %v", out, err)
		}
		if !back.Key.Equal(s.Key) || !back.Expires.Equal(s.Expires) || !bytes.Equal(back.Signature, s.Signature) {
			t.Errorf("round trip changed the key:\n%s", out)
		}
		if err := back.Verify(owner.Public(), now); err != nil {
			t.Errorf("Verify after round trip: %v", err)
		}
		again, _ := yaml.Marshal(back)
		if !bytes.Equal(again, out) {
			t.Errorf("re-marshalled YAML differs:\n%s\n%s", out, again)
		}
		sigText, _ := s.Signature.MarshalText()
		if !strings.Contains(string(out), "signature: "+string(sigText)) || strings.ContainsAny(string(sigText), "+/=") {
			t.Errorf("signature is not unpadded base64url in:\n%s", out)
		}
	})
	t.Run("Signature text refuses bad base64", func(t *testing.T) {
		text, _ := s.Signature.MarshalText()
		for _, bad := range []string{string(text) + "=", "!!!!", string(text[:len(text)-1]) + "+"} {
			var sig keys.Signature
			if err := sig.UnmarshalText([]byte(bad)); err == nil {
				t.Errorf("UnmarshalText(%q) succeeded", bad)
			}
		}
	})
}
