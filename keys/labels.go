package keys

// Protocol constants: sizes fixed by the primitives, text prefixes, and the
// domain-separation labels that keep one use of a key from being replayed as
// another. Changing any of these is a wire-format change.

const (
	// SigningKeySize is the size of an Ed25519 public key.
	SigningKeySize = 32
	// DHKeySize is the size of an X25519 public key.
	DHKeySize = 32
	// KEMKeySize is the size of an X-Wing (MLKEM768-X25519) encapsulation key:
	// 1184 bytes of ML-KEM-768 followed by 32 bytes of X25519.
	KEMKeySize = 1184 + 32
	// KEMSeedSize is the size of an X-Wing decapsulation key, which X-Wing
	// stores as a 32-byte seed.
	KEMSeedSize = 32
	// PublicIdentitySize is the size of a public identity's binary form:
	// signing key, then DH key, then KEM key.
	PublicIdentitySize = SigningKeySize + DHKeySize + KEMKeySize
	// secretIdentitySize is the binary form of a secret identity: the Ed25519
	// seed, the X25519 scalar and the X-Wing seed.
	secretIdentitySize = 32 + 32 + KEMSeedSize
	// FingerprintSize is the size of a public identity's fingerprint.
	FingerprintSize = 32
)

// Text prefixes. A public form is lower case, a secret one upper case, and no
// prefix is a prefix of another, so no text can parse as two kinds of key.
const (
	publicIdentityPrefix = "bcn-id:"
	secretIdentityPrefix = "BCN-SECRET-ID:"
	inboxPublicPrefix    = "bcn-inbox:"
	inboxSecretPrefix    = "BCN-SECRET-INBOX:"
	fingerprintPrefix    = "bcn-fp:"
)

// Domain-separation labels.
const (
	fingerprintLabel  = "beacon.keys.v1/fingerprint"
	safetyNumberLabel = "beacon.keys.v1/safety-number"
	inboxKeyLabel     = "beacon.keys.v1/inbox-key"
	directoryLabel    = "beacon.keys.v1/directory"
	keyFileLabel      = "beacon.keys.v1/key-file"
)
