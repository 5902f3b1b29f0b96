package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"io"
	"time"
)

// A message is what a sender seals: the routing header and the plaintext.
type message struct {
	country  string
	priority byte
	id       []byte
	created  time.Time
	replyTo  []byte // nil: no reply mailbox
	from     *identity
	auth     byte
	body     []byte
	to       []recipient
	class    int // 0: the smallest class that fits, as a sender must choose
}

// A recipient is the KEM key a stanza is sealed to (an identity's own, or
// a mission's inbox key) and the identity whose DH key a deniable MAC is
// keyed with.
type recipient struct {
	id  *identity
	kem []byte
	// stanza, if not nil, writes this recipient's stanza in place of an
	// honest seal of the content key: a sender's decoy or crafted share.
	stanza func(fileKey []byte, r io.Reader) []byte
}

func to(ids ...*identity) []recipient {
	rs := make([]recipient, len(ids))
	for i, id := range ids {
		rs[i] = recipient{id: id, kem: id.kemPublic()}
	}
	return rs
}

// parts is an envelope taken apart, as its sender sees it and as any
// recipient can after opening it: a recipient knows the content key.
type parts struct {
	header  []byte // routing header, ending with size class and recipient count
	stanzas [][]byte
	fileKey []byte
	inner   []byte // the padded plaintext
	rand    io.Reader
}

func (m *message) authSize() int {
	if m.auth == authSigned {
		return signatureSize
	}
	return len(m.to) * macSize
}

// smallestClass is the size class a sender must use: the smallest whose
// 2^class bytes hold the prefix, the body and the authenticator.
func (m *message) smallestClass() int {
	n := innerPrefixSize + len(m.body) + m.authSize()
	class := minClass
	for 1<<class < n {
		class++
	}
	return class
}

// routingHeader lays out the clear header.
func (m *message) routingHeader(class int) []byte {
	var flags byte
	if m.replyTo != nil {
		flags |= flagReplyTo
	}
	h := append([]byte(magic), version, flags, m.priority)
	h = append(h, m.country...)
	h = append(h, m.id...)
	h = binary.BigEndian.AppendUint64(h, uint64(m.created.UnixMilli()))
	h = append(h, m.replyTo...)
	return append(h, byte(class), byte(len(m.to)))
}

// seal builds an envelope's parts honestly. editHeader, if not nil, edits
// the routing header before anything depends on it, as a sender who wrote
// that header would.
func seal(m message, r io.Reader, editHeader func([]byte) []byte) *parts {
	class := m.class
	if class == 0 {
		class = m.smallestClass()
	}
	p := &parts{header: m.routingHeader(class), rand: r}
	if editHeader != nil {
		p.header = editHeader(p.header)
	}
	p.fileKey = read(r, fileKeySize)
	for _, rc := range m.to {
		if rc.stanza != nil {
			p.stanzas = append(p.stanzas, rc.stanza(p.fileKey, r))
			continue
		}
		p.stanzas = append(p.stanzas, hpkeSeal(rc.kem, stanzaLabel, p.fileKey, r))
	}

	full := []byte{m.auth}
	full = append(full, m.from.pub...)
	full = binary.BigEndian.AppendUint32(full, uint32(len(m.body)))
	full = append(full, m.body...)
	ad := authData(p.headerAndStanzas(), full)
	switch m.auth {
	case authSigned:
		full = append(full, ed25519.Sign(m.from.sign, ad)...)
	default:
		for _, rc := range m.to {
			mac, err := deniableMAC(m.from.dh, rc.id.dhPublic(), m.from.dhPublic(), rc.id.dhPublic(), ad)
			if err != nil {
				panic(err)
			}
			full = append(full, mac...)
		}
	}
	// A class too small for the contents (only ever asked for on purpose)
	// cuts them.
	p.inner = make([]byte, 1<<class)
	copy(p.inner, full)
	return p
}

func (p *parts) headerAndStanzas() []byte {
	b := bytes.Clone(p.header)
	for _, st := range p.stanzas {
		b = append(b, st...)
	}
	return b
}

// bytes assembles the envelope: header and stanzas, the header MAC over
// them, and the encrypted payload.
func (p *parts) bytes() []byte {
	hs := p.headerAndStanzas()
	macKey, payloadKey := contentKeys(p.fileKey)
	seal, _ := payloadAEAD(payloadKey)
	return append(append(hs, hmacSHA256(macKey, hs)...), seal(p.inner)...)
}

// Offsets in the inner plaintext.
func (p *parts) sender() []byte { return p.inner[1 : 1+publicIdentitySize] }

func (p *parts) bodyLen() int { return int(binary.BigEndian.Uint32(p.inner[1+publicIdentitySize:])) }

// authenticator is the MACs or signature after the body.
func (p *parts) authenticator() []byte { return p.inner[innerPrefixSize+p.bodyLen():] }

// Offsets in the routing header.
const (
	offVersion  = 3
	offFlags    = 4
	offPriority = 5
	offCountry  = 6
	offID       = 8
	offCreated  = 24
	offMailbox  = 32
)
