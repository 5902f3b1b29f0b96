// Package receipt is the bridge's signed receipt: the statement "partner
// P's relay stored the shared envelope with id X, by time T", which the
// bridge sends to the sender's reply mailbox and to the sending network's
// relay (for the roll-up), and which a defender's client, a mission and a
// headquarters verify against their directory.
//
// # Wire form
//
// A receipt is an envelope.Public message signed by the bridge's identity:
// the country is the shared alert's, the body a [message.Receipt] (kind
// "receipt": ref, partner, stored_at). It travels in the clear because
// whoever sent the alert cannot be known to the bridge — the alert is
// sealed to the partners, sender included — so it cannot be sealed to
// the sender. What it tells the sending network's relay is what that
// relay could see already (the bridge publishing to that mailbox right
// after reading the alert from SHARED) and one thing more: which partner
// stored it. SECURITY.md says so.
//
// A receipt is at least once, like the delivery it reports: after a
// crash the bridge may send it again, under a new public-message id. Its
// [Signed.Key] — derived from the alert and the partner — is the same
// every time, and readers keep one receipt per key.
package receipt

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/hrdbeacon/beacon/envelope"
	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/message"
	"github.com/hrdbeacon/beacon/routing"
)

// ErrInvalid is wrapped by every refusal of a receipt.
var ErrInvalid = errors.New("receipt: not a valid receipt")

// keyLabel separates the derivation of a receipt's key from every other
// use of SHA-256.
const keyLabel = "beacon.receipt.v1/key"

// Sign returns the wire form of bridge's receipt that partner stored the
// envelope with id ref (country cc) at storedAt.
func Sign(ref routing.ID, cc, partner string, storedAt time.Time, bridge *keys.Identity) ([]byte, error) {
	body, err := message.Marshal(&message.Receipt{Ref: ref, Partner: partner, StoredAt: storedAt})
	if err != nil {
		return nil, err
	}
	return envelope.SignPublic(cc, body, bridge, storedAt)
}

// A Signed is a parsed receipt, not yet verified.
type Signed struct {
	*message.Receipt
	Country string
	Created time.Time
	Signer  keys.Fingerprint
	pm      envelope.Public
}

// Parse checks a receipt's structure and body. It does not verify the
// signature: see [Signed.Verify].
func Parse(b []byte) (*Signed, error) {
	pm, err := envelope.ParsePublic(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	m, err := message.Unmarshal(pm.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	r, ok := m.(*message.Receipt)
	if !ok {
		return nil, fmt.Errorf("%w: a %s, not a receipt", ErrInvalid, m.Kind())
	}
	return &Signed{Receipt: r, Country: pm.Country, Created: pm.Created, Signer: pm.Signer, pm: pm}, nil
}

// Verify checks that a bridge of d signed the receipt and that the
// partner it names is a partner of d covering the receipt's country. It
// returns the bridge's directory id.
func (s *Signed) Verify(d *keys.Directory) (string, error) {
	var bridge *keys.Bridge
	for i := range d.Bridges {
		if d.Bridges[i].Identity.Fingerprint().Equal(s.Signer) {
			bridge = &d.Bridges[i]
		}
	}
	if bridge == nil {
		return "", fmt.Errorf("%w: not signed by a bridge in the directory", ErrInvalid)
	}
	if err := s.pm.Verify(bridge.Identity); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, p := range d.PartnersFor(s.Country) {
		if p.ID == s.Partner {
			return bridge.ID, nil
		}
	}
	return "", fmt.Errorf("%w: %q is not a partner covering %s in the directory", ErrInvalid, s.Partner, s.Country)
}

// Key is the same for every copy of a receipt for one envelope and
// partner: readers keep one receipt per key.
func (s *Signed) Key() routing.ID { return Key(s.Ref, s.Partner) }

// Key derives the key of the receipts for envelope ref at partner.
func Key(ref routing.ID, partner string) routing.ID {
	h := sha256.New()
	h.Write([]byte(keyLabel))
	h.Write(ref[:])
	h.Write([]byte(partner))
	var id routing.ID
	copy(id[:], h.Sum(nil))
	return id
}
