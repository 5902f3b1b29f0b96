package relay

import (
	"encoding/base64"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"beacon/envelope"
	"beacon/keys"
	"beacon/relay/proto"
)

// A principal is who a connection key belongs to.
type principal struct {
	role      keys.Role
	id        string   // directory id; empty for a walk-in defender
	countries []string // missions and partners
	identity  *keys.PublicIdentity
	mbox      string
}

// authenticator is the server's CustomClientAuthentication. Every
// connection must present an NKey and sign the server's nonce; the key
// decides the role: the relay's own key, one listed in the directory, or
// any other valid key as a walk-in defender. There is no anonymous user
// and no identity is taken from a header.
type authenticator struct {
	cfg *Config
	now func() time.Time

	// internal is the relay's own connection key, generated at start and
	// never written anywhere.
	internal    nkeys.KeyPair
	internalPub string

	mu     sync.RWMutex
	dir    *keys.Directory
	byNKey map[string]*principal
	byMbox map[string]*principal
	byFP   map[keys.Fingerprint]*principal
}

var _ server.Authentication = (*authenticator)(nil)

func newAuthenticator(cfg *Config, now func() time.Time) (*authenticator, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	a := &authenticator{cfg: cfg, now: now, internal: kp, internalPub: pub}
	if _, err := a.reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// reload loads and verifies the directory file and swaps the principal
// tables. It returns the NKeys whose role changed.
func (a *authenticator) reload() (map[string]bool, error) {
	byNKey := map[string]*principal{}
	var dir *keys.Directory
	if dc := a.cfg.Directory; dc != nil {
		fp, err := keys.ParseFingerprint(dc.RootFingerprint)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(dc.File)
		if err != nil {
			return nil, fmt.Errorf("relay: directory: %w", err)
		}
		a.mu.RLock()
		var seen *keys.Seen
		if a.dir != nil {
			seen = &keys.Seen{Serial: a.dir.Serial, Hash: a.dir.Hash}
		}
		a.mu.RUnlock()
		if dir, err = keys.VerifyDirectory(data, fp, a.now(), seen); err != nil {
			return nil, fmt.Errorf("relay: directory %s: %w", dc.File, err)
		}
		for _, m := range dir.Missions {
			byNKey[m.NKey] = &principal{role: keys.RoleMission, id: m.ID, countries: m.Countries, identity: m.Identity}
		}
		for _, p := range dir.Partners {
			byNKey[p.NKey] = &principal{role: keys.RolePartner, id: p.ID, countries: p.Countries, identity: p.Identity}
		}
		for _, b := range dir.Bridges {
			byNKey[b.NKey] = &principal{role: keys.RoleBridge, id: b.ID, identity: b.Identity}
		}
	}
	byMbox := map[string]*principal{}
	byFP := map[keys.Fingerprint]*principal{}
	for nk, p := range byNKey {
		p.mbox = envelope.MailboxFor(nk).String()
		byMbox[p.mbox] = p
		byFP[p.identity.Fingerprint()] = p
	}
	a.mu.Lock()
	changed := map[string]bool{}
	for nk, old := range a.byNKey {
		if p, ok := byNKey[nk]; !ok || p.role != old.role || p.id != old.id || !equalStrings(p.countries, old.countries) {
			changed[nk] = true
		}
	}
	for nk := range byNKey {
		if _, ok := a.byNKey[nk]; !ok && a.byNKey != nil {
			changed[nk] = true // was a walk-in defender, now has a role
		}
	}
	a.dir, a.byNKey, a.byMbox, a.byFP = dir, byNKey, byMbox, byFP
	a.mu.Unlock()
	return changed, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (a *authenticator) serial() uint64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.dir == nil {
		return 0
	}
	return a.dir.Serial
}

// directory returns the verified directory, or nil.
func (a *authenticator) directory() *keys.Directory {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.dir
}

// principalByMailbox returns the directory principal owning mbox, or a
// walk-in defender.
func (a *authenticator) principalByMailbox(mbox string) *principal {
	a.mu.RLock()
	p := a.byMbox[mbox]
	a.mu.RUnlock()
	if p == nil {
		return &principal{role: keys.RoleDefender, mbox: mbox}
	}
	return p
}

// principalByFingerprint returns the directory principal with that
// identity, or nil.
func (a *authenticator) principalByFingerprint(fp keys.Fingerprint) *principal {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.byFP[fp]
}

// Check authenticates one connection: a valid user NKey whose signature
// over the server's nonce verifies. It then registers the connection with
// the permissions of the key's role.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false
	}
	o := c.GetOpts()
	if o == nil || o.Nkey == "" || o.Sig == "" || o.Username != "" || o.Token != "" || o.JWT != "" {
		return false
	}
	if !nkeys.IsValidPublicUserKey(o.Nkey) {
		return false
	}
	pub, err := nkeys.FromPublicKey(o.Nkey)
	if err != nil {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(o.Sig)
	if err != nil {
		if sig, err = base64.StdEncoding.DecodeString(o.Sig); err != nil {
			return false
		}
	}
	nonce := c.GetNonce()
	if len(nonce) == 0 || len(sig) != 64 || pub.Verify(nonce, sig) != nil {
		return false
	}
	user := &server.User{Username: o.Nkey}
	if o.Nkey != a.internalPub {
		a.mu.RLock()
		p := a.byNKey[o.Nkey]
		a.mu.RUnlock()
		mbox := envelope.MailboxFor(o.Nkey).String()
		if p == nil {
			p = &principal{role: keys.RoleDefender, mbox: mbox}
		}
		user.Permissions = permissionsFor(p)
	}
	c.RegisterUser(user)
	return true
}

// permissionsFor returns what a principal may publish and subscribe to.
// Everything not listed is denied. A connection publishes only under its
// own ingest prefix, reads only its own inbox prefix, and reaches the
// JetStream API only for consumers whose names and filters are fixed here.
func permissionsFor(p *principal) *server.Permissions {
	mb := p.mbox
	pub := []string{}
	add := func(s ...string) { pub = append(pub, s...) }
	consumer := func(stream, name, filter string) {
		add("$JS.API.CONSUMER.CREATE."+stream+"."+name+"."+filter,
			"$JS.API.CONSUMER.INFO."+stream+"."+name,
			"$JS.API.CONSUMER.MSG.NEXT."+stream+"."+name,
			"$JS.API.CONSUMER.DELETE."+stream+"."+name,
			"$JS.ACK."+stream+"."+name+".>")
	}
	// Everyone: the directory, its own mailbox and the public broadcasts.
	add(proto.DirectorySubject)
	consumer(proto.StreamMailbox, proto.MailboxConsumer(mb), proto.MailboxSubject(mb))
	consumer(proto.StreamBroadcasts, proto.BroadcastConsumer(mb), ">")
	switch p.role {
	case keys.RoleDefender:
		add(proto.Ingest(mb, "to.*.*"), proto.Ingest(mb, "share.*.*"))
	case keys.RoleMission:
		add(proto.IngestWildcard(mb))
		for _, cc := range p.countries {
			consumer(proto.StreamAlerts, proto.AlertConsumer(p.id, cc), proto.AlertFilter(cc))
		}
	case keys.RolePartner:
		add(proto.IngestWildcard(mb))
	case keys.RoleBridge:
		add(proto.IngestWildcard(mb))
		add("$JS.API.CONSUMER.CREATE."+proto.StreamShared+".>",
			"$JS.API.CONSUMER.INFO."+proto.StreamShared+".*",
			"$JS.API.CONSUMER.MSG.NEXT."+proto.StreamShared+".*",
			"$JS.ACK."+proto.StreamShared+".>")
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{proto.InboxPrefix(mb) + ".>"}},
	}
}
