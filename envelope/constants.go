package envelope

import (
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/routing"
)

// Wire-format constants (SPEC.md). Changing one is a new version.
const (
	// Version is the only envelope version this package reads and writes.
	Version = 1

	magic = "BCN"

	// MaxRecipients bounds the recipients of one envelope. An envelope is
	// addressed to the missions covering one country (a handful) or to one
	// defender; 32 leaves room for a large diplomatic community while keeping
	// the worst-case trial decryption of a hostile envelope at 32 KEM
	// decapsulations.
	MaxRecipients = 32

	fileKeySize    = 32
	encSize        = 1088 + 32 // X-Wing encapsulation: ML-KEM-768 ciphertext, X25519 share
	wrappedKeySize = fileKeySize + tagSize
	// StanzaSize is the size of one recipient stanza: the X-Wing
	// encapsulation and the content key sealed under it.
	StanzaSize = encSize + wrappedKeySize

	tagSize       = 16 // Poly1305
	headerMACSize = 32 // HMAC-SHA256

	// Routing header layout.
	offVersion  = 3
	offFlags    = 4
	offPriority = 5
	offCountry  = 6
	offID       = 8
	offCreated  = 24
	offMailbox  = 32
	// routingSize is the routing header without the optional mailbox, plus
	// the size class and recipient count bytes that end every header.
	routingSize = offMailbox + 2

	flagReplyTo = 0x01

	// Size classes: the padded inner plaintext is 2^class bytes.
	minSizeClass = 11 // 2 KiB holds a short message and the sender's identity
	maxSizeClass = 16 // 64 KiB: text only, no attachments

	// Inner plaintext layout: auth type, sender identity, body length.
	innerPrefixSize = 1 + keys.PublicIdentitySize + 4
	macSize         = 32 // HMAC-SHA256 per recipient (deniable)
	signatureSize   = 64 // Ed25519 (signed)

	// MaxBodySize is the largest body Seal accepts: what fits in the largest
	// size class with the largest authenticator.
	MaxBodySize = 1<<maxSizeClass - innerPrefixSize - MaxRecipients*macSize

	// MaxSize is the largest well-formed envelope. Anything longer is refused
	// before any other check.
	MaxSize = routingSize + routing.MailboxSize + MaxRecipients*StanzaSize + headerMACSize + 1<<maxSizeClass + tagSize
)

// Domain-separation labels.
const (
	stanzaLabel    = "beacon.envelope.v1/stanza"
	headerMACLabel = "beacon.envelope.v1/header-mac"
	payloadLabel   = "beacon.envelope.v1/payload"
	authLabel      = "beacon.envelope.v1/auth"
	deniableLabel  = "beacon.envelope.v1/deniable"
)
