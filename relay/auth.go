package relay

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/hrdbeacon/beacon/keys"
	"github.com/hrdbeacon/beacon/relay/proto"
	"github.com/hrdbeacon/beacon/routing"
)

// A principal is who a connection key belongs to.
type principal struct {
	role      keys.Role
	id        string   // directory id; empty for a walk-in defender
	countries []string // missions and partners
	identity  *keys.PublicIdentity
	mbox      routing.Mailbox
}

// authenticator is the server's CustomClientAuthentication. Every
// connection must present an NKey and sign the server's nonce; the key
// decides the role: the relay's own key, one listed in the directory, or
// any other valid key as a walk-in defender. There is no anonymous user
// and no identity is taken from a header.
type authenticator struct {
	cfg   *Config
	clock clockwork.Clock

	// internal is the relay's own connection key, generated at start and
	// never written anywhere.
	internal    nkeys.KeyPair
	internalPub string

	// serving is set once the streams and the ingest are up. Until then
	// clients are refused: one let in earlier would publish into nothing
	// ("no responders") and wait out its retry.
	serving atomic.Bool

	// sys is the relay's key in the system account, where it hears of
	// disconnections; srv is the server, for its connection count.
	sys    nkeys.KeyPair
	sysPub string
	srv    atomic.Pointer[server.Server]
	conns  *connTracker

	mu     sync.RWMutex
	dir    *keys.Directory
	byNKey map[string]*principal
	byMbox map[routing.Mailbox]*principal
}

var _ server.Authentication = (*authenticator)(nil)

func newAuthenticator(cfg *Config, clock clockwork.Clock) (*authenticator, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	sys, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	sysPub, _ := sys.PublicKey()
	a := &authenticator{cfg: cfg, clock: clock, internal: kp, internalPub: pub, sys: sys, sysPub: sysPub,
		conns: newConnTracker(cfg.Admission, clock)}
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
		a.mu.RLock()
		var prev *keys.DirVersion
		if a.dir != nil {
			v := a.dir.Version()
			prev = &v
		}
		a.mu.RUnlock()
		var err error
		if prev == nil {
			// The newest version this data directory has served survives
			// restarts, so an older file cannot be slipped in later.
			if prev, err = readServedVersion(a.cfg.DataDir); err != nil {
				return nil, fmt.Errorf("relay: %w", err)
			}
		}
		// The same reading and verification as Check's.
		if dir, err = loadDirectory(dc, a.clock.Now(), prev); err != nil {
			return nil, fmt.Errorf("relay: directory %w", err)
		}
		path := filepath.Join(a.cfg.DataDir, servedVersionFile)
		if err := keys.WriteFileAtomic(path, []byte(dir.Version().String()+"\n"), 0o600, true); err != nil {
			return nil, err
		}
		for _, e := range dir.Institutions() {
			byNKey[e.NKey] = &principal{role: e.Role, id: e.ID, countries: e.Countries, identity: e.Identity}
		}
	}
	for _, o := range a.cfg.Operators {
		if byNKey[o.NKey] == nil {
			byNKey[o.NKey] = &principal{role: roleOperator, id: o.Name}
		}
	}
	byMbox := map[routing.Mailbox]*principal{}
	for nk, p := range byNKey {
		p.mbox = proto.MailboxFor(nk)
		byMbox[p.mbox] = p
	}
	a.mu.Lock()
	changed := map[string]bool{}
	for nk, old := range a.byNKey {
		if p, ok := byNKey[nk]; !ok || p.role != old.role || p.id != old.id || !slices.Equal(p.countries, old.countries) {
			changed[nk] = true
		}
	}
	for nk := range byNKey {
		if _, ok := a.byNKey[nk]; !ok && a.byNKey != nil {
			changed[nk] = true // was a walk-in defender, now has a role
		}
	}
	a.dir, a.byNKey, a.byMbox = dir, byNKey, byMbox
	a.mu.Unlock()
	return changed, nil
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
func (a *authenticator) principalByMailbox(mbox routing.Mailbox) *principal {
	a.mu.RLock()
	p := a.byMbox[mbox]
	a.mu.RUnlock()
	if p == nil {
		return &principal{role: keys.RoleDefender, mbox: mbox}
	}
	return p
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
	switch o.Nkey {
	case a.internalPub:
	case a.sysPub:
		srv := a.srv.Load()
		if srv == nil || srv.SystemAccount() == nil {
			return false
		}
		user.Account = srv.SystemAccount()
		user.Permissions = &server.Permissions{Publish: &server.SubjectPermission{Deny: []string{">"}},
			Subscribe: &server.SubjectPermission{Allow: []string{disconnectEvents}}}
	default:
		if !a.serving.Load() {
			return false
		}
		a.mu.RLock()
		p := a.byNKey[o.Nkey]
		a.mu.RUnlock()
		mbox := proto.MailboxFor(o.Nkey)
		if p == nil {
			p = &principal{role: keys.RoleDefender, mbox: mbox}
			if !a.admitWalkIn(c) {
				return false
			}
		}
		user.Permissions = permissionsFor(p)
	}
	c.RegisterUser(user)
	return true
}

// permissionsFor returns what a principal may publish and subscribe to.
// Everything not listed is denied, the JetStream API included: a
// connection publishes only under its own ingest prefix and reads only its
// own inbox prefix. What it may do under its prefix is the ingest's and
// the services' business, decided by role.
func permissionsFor(p *principal) *server.Permissions {
	mb := p.mbox
	var pub []string
	switch p.role {
	case keys.RoleDefender:
		pub = []string{proto.Ingest(mb, "to.*.*"), proto.Ingest(mb, "share.*.*"), proto.Ingest(mb, "svc.>"), proto.Ingest(mb, proto.HoldTargets)}
	case roleOperator:
		pub = []string{proto.Ingest(mb, "svc.>")}
	default:
		pub = []string{proto.IngestWildcard(mb)}
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{proto.ReplyPrefix(mb) + ".>"}},
	}
}
