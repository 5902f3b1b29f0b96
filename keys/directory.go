package keys

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"

	"github.com/hrdbeacon/beacon/country"
	"github.com/hrdbeacon/beacon/routing"
)

// Directory limits.
const (
	// MaxDirectorySize bounds a signed directory: a country-sized
	// deployment lists hundreds of missions, each a few KB of keys.
	MaxDirectorySize = 8 << 20
	// MaxNameLength bounds display names.
	MaxNameLength = 200
	// DirectoryClockSkew is how far in the future a directory's issue time
	// may be, for clients whose clocks run slow.
	DirectoryClockSkew = 10 * time.Minute

	signatureTrailer = "# beacon-directory-signature: "
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// A Roster is the directory before it is signed: who exists, their keys,
// which countries they cover and how fast they promise to answer.
type Roster struct {
	Serial uint64    `yaml:"serial,omitempty"`
	Issued time.Time `yaml:"issued,omitempty"`
	// Expires is when clients stop trusting this version.
	Expires time.Time `yaml:"expires,omitempty"`
	// Previous is "sha256:" and the hex hash of the previous signed
	// version, empty only for serial 1.
	Previous string `yaml:"previous,omitempty"`
	// Root is the identity that signs the directory; SignDirectory sets it.
	Root     *PublicIdentity `yaml:"root,omitempty"`
	Missions []Mission       `yaml:"missions"`
	Partners []Partner       `yaml:"partners,omitempty"`
	Bridges  []Bridge        `yaml:"bridges,omitempty"`
	// Headquarters are the foreign ministries' headquarters of the posts
	// listed; each oversees its own posts.
	Headquarters []Headquarters `yaml:"headquarters,omitempty"`
	Relays       []RelayEntry   `yaml:"relays,omitempty"`
}

// A Mission is an embassy or consulate that receives alerts for its
// countries.
type Mission struct {
	ID        string           `yaml:"id"`
	Name      string           `yaml:"name"`
	Countries []string         `yaml:"countries"`
	Identity  *PublicIdentity  `yaml:"identity"`
	NKey      string           `yaml:"nkey"`
	InboxKeys []SignedInboxKey `yaml:"inbox_keys"`
	// Response is the acknowledgement time the mission commits to, per
	// priority; past it an alert escalates.
	Response ResponseTargets `yaml:"response_targets"`
	// Escalation is the id of the mission or partner an unacknowledged
	// alert escalates to; empty for none.
	Escalation string `yaml:"escalation,omitempty"`
	// Offers is what else the post commits to: meetings, trial
	// observation, an emergency contact.
	Offers Offers `yaml:"offers,omitempty"`
	// Escalate lists the priorities whose alerts escalate when no one
	// acknowledges them within Response; empty means urgent only.
	Escalate []routing.Priority `yaml:"escalate,omitempty"`
	// Quorum is how many acknowledgements stop an escalation before each
	// tier is released: Quorum[0] before the escalation target, [1]
	// before headquarters, [2] before partner governments. A tier not
	// listed needs one. See [Directory.Escalation].
	Quorum []int `yaml:"quorum,omitempty"`
}

// ResponseTargets are acknowledgement deadlines per priority.
type ResponseTargets struct {
	Urgent  time.Duration `yaml:"urgent"`
	High    time.Duration `yaml:"high"`
	Routine time.Duration `yaml:"routine"`
}

// A Partner is a partner government that receives shared alerts through
// the bridge.
type Partner struct {
	ID        string           `yaml:"id"`
	Name      string           `yaml:"name"`
	Countries []string         `yaml:"countries"`
	Identity  *PublicIdentity  `yaml:"identity"`
	NKey      string           `yaml:"nkey"`
	InboxKeys []SignedInboxKey `yaml:"inbox_keys,omitempty"`
}

// A Bridge carries shared alerts to partner relays.
type Bridge struct {
	ID       string          `yaml:"id"`
	Name     string          `yaml:"name"`
	Identity *PublicIdentity `yaml:"identity"`
	NKey     string          `yaml:"nkey"`
}

// A Headquarters oversees the posts it lists: it reads their response
// reports, receives their encrypted case reports, and is the last tier of
// their escalation. Missions seal to its inbox keys.
type Headquarters struct {
	ID        string           `yaml:"id"`
	Name      string           `yaml:"name"`
	Identity  *PublicIdentity  `yaml:"identity"`
	NKey      string           `yaml:"nkey"`
	InboxKeys []SignedInboxKey `yaml:"inbox_keys"`
	// Missions are the ids of the posts it oversees.
	Missions []string `yaml:"missions"`
}

// A RelayEntry is a relay clients may connect to.
type RelayEntry struct {
	ID       string          `yaml:"id"`
	Name     string          `yaml:"name"`
	URLs     []string        `yaml:"urls"`
	Identity *PublicIdentity `yaml:"identity,omitempty"`
}

// A Directory is a roster whose signature, root and freshness have been
// verified.
type Directory struct {
	Roster
	// Hash is the SHA-256 of the signed file: the next version's Previous.
	Hash [32]byte
	// Raw is the signed file as verified, to store and hand on.
	Raw []byte
}

// A DirVersion names one signed version of the directory: its serial and
// the hash of the signed file. A client and a relay each remember the
// newest version they accepted, so that an older one is refused even
// after the newest has expired. Its text form, [DirVersion.String], is
// the one encoding it is stored in.
type DirVersion struct {
	Serial uint64
	Hash   [32]byte
}

// Version returns the directory's version.
func (d *Directory) Version() DirVersion { return DirVersion{Serial: d.Serial, Hash: d.Hash} }

// String returns "<serial> sha256:<64 hex digits>".
func (v DirVersion) String() string {
	return strconv.FormatUint(v.Serial, 10) + " " + HashString(v.Hash)
}

// MarshalText implements encoding.TextMarshaler with [DirVersion.String].
func (v DirVersion) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText parses the text form, with or without a final newline.
func (v *DirVersion) UnmarshalText(b []byte) error {
	p, err := ParseDirVersion(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}

// ParseDirVersion parses the text form made by [DirVersion.String]; one
// final newline is allowed, as in a file.
func ParseDirVersion(s string) (DirVersion, error) {
	s = strings.TrimSuffix(s, "\n")
	serial, hash, ok := strings.Cut(s, " sha256:")
	n, err := strconv.ParseUint(serial, 10, 64)
	h, herr := hex.DecodeString(hash)
	if !ok || err != nil || n == 0 || strconv.FormatUint(n, 10) != serial || herr != nil || len(h) != 32 || hex.EncodeToString(h) != hash {
		return DirVersion{}, fmt.Errorf("%w: directory version %q is not \"<serial> sha256:<64 hex digits>\"", ErrInvalidDirectory, s)
	}
	return DirVersion{Serial: n, Hash: [32]byte(h)}, nil
}

// ParseRoster strictly decodes a roster YAML: unknown fields are errors.
func ParseRoster(data []byte) (*Roster, error) {
	if len(data) > MaxDirectorySize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalidDirectory, MaxDirectorySize)
	}
	var r Roster
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDirectory, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrInvalidDirectory)
	}
	return &r, nil
}

// SignDirectory validates r, sets its root to root's identity and returns the
// signed directory file: the roster YAML followed by a signature line.
func SignDirectory(r *Roster, root *Identity) ([]byte, error) {
	signed := *r
	signed.Root = root.Public()
	signed.Issued = signed.Issued.UTC().Truncate(time.Second)
	signed.Expires = signed.Expires.UTC().Truncate(time.Second)
	if err := signed.Validate(); err != nil {
		return nil, err
	}
	body, err := yaml.Marshal(&signed)
	if err != nil {
		return nil, err
	}
	sig := root.Sign(append([]byte(directoryLabel), body...))
	out := append(body, signatureTrailer...)
	out = append(out, base64.RawURLEncoding.EncodeToString(sig)...)
	return append(out, '\n'), nil
}

// VerifyDirectory checks a signed directory file against the pinned root
// fingerprint: the root named inside must match it ([ErrUntrustedRoot]), the
// signature must verify ([ErrBadSignature]), the roster must be valid
// ([ErrInvalidDirectory]), it must not have expired at now ([ErrExpired]),
// and its serial must not be older than the newest version accepted
// before, prev, nor equal with other contents ([ErrRollback]). prev is nil
// on first use.
func VerifyDirectory(data []byte, root Fingerprint, now time.Time, prev *DirVersion) (*Directory, error) {
	if len(data) > MaxDirectorySize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalidDirectory, MaxDirectorySize)
	}
	i := bytes.LastIndex(data, []byte(signatureTrailer))
	if i < 0 || (i > 0 && data[i-1] != '\n') || data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("%w: no signature line", ErrBadSignature)
	}
	body := data[:i]
	// Exactly 86 characters and one final newline: the decoder skips CR
	// and LF, and a second spelling of the same file would change its hash.
	sigText := string(data[i+len(signatureTrailer) : len(data)-1])
	if len(sigText) != base64.RawURLEncoding.EncodedLen(64) || strings.ContainsAny(sigText, "\r\n") {
		return nil, fmt.Errorf("%w: signature line is not 86 base64url characters", ErrBadSignature)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(sigText)
	if err != nil {
		return nil, fmt.Errorf("%w: signature line: %v", ErrBadSignature, err)
	}
	r, err := ParseRoster(body)
	if err != nil {
		return nil, err
	}
	if r.Root == nil {
		return nil, fmt.Errorf("%w: no root identity", ErrInvalidDirectory)
	}
	if !r.Root.Fingerprint().Equal(root) {
		return nil, fmt.Errorf("%w: signed by %s, pinned %s", ErrUntrustedRoot, r.Root.Fingerprint(), root)
	}
	if !r.Root.Verify(append([]byte(directoryLabel), body...), sig) {
		return nil, ErrBadSignature
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	d := &Directory{Roster: *r, Hash: sha256.Sum256(data), Raw: bytes.Clone(data)}
	switch {
	case !now.Before(d.Expires):
		return nil, fmt.Errorf("%w: directory serial %d expired at %s", ErrExpired, d.Serial, d.Expires.Format(time.RFC3339))
	case d.Issued.After(now.Add(DirectoryClockSkew)):
		return nil, fmt.Errorf("%w: issued at %s, in the future", ErrInvalidDirectory, d.Issued.Format(time.RFC3339))
	}
	if prev != nil {
		switch {
		case d.Serial < prev.Serial:
			return nil, fmt.Errorf("%w: serial %d, already accepted %d", ErrRollback, d.Serial, prev.Serial)
		case d.Serial == prev.Serial && d.Hash != prev.Hash:
			return nil, fmt.Errorf("%w: serial %d accepted before with other contents", ErrRollback, d.Serial)
		case d.Serial == prev.Serial+1 && d.Previous != HashString(prev.Hash):
			return nil, fmt.Errorf("%w: serial %d does not follow the version seen (previous hash differs)", ErrRollback, d.Serial)
		}
	}
	return d, nil
}

// HashString formats a directory hash as it appears in Previous.
func HashString(h [32]byte) string { return "sha256:" + hex.EncodeToString(h[:]) }

// Validate checks every field of the roster and reports all problems at once.
func (r *Roster) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.Serial == 0 {
		bad("serial: must be 1 or more")
	}
	if r.Issued.IsZero() || r.Expires.IsZero() || !r.Expires.After(r.Issued) {
		bad("issued/expires: expires must be after issued")
	}
	if r.Previous == "" && r.Serial > 1 {
		bad("previous: required after serial 1 (the hash of the previous version)")
	} else if r.Previous != "" && !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(r.Previous) {
		bad("previous: want sha256: and 64 hex digits")
	}
	ids := map[string]string{}
	nks := map[string]string{}
	idents := map[Fingerprint]string{}
	entity := func(kind, id, name string, ident *PublicIdentity, nk string, needNKey bool) string {
		where := fmt.Sprintf("%s %q", kind, id)
		if !idPattern.MatchString(id) {
			bad("%s: id must be 1–64 of a-z, 0-9 and -", where)
		} else if other, dup := ids[id]; dup {
			bad("%s: id already used by a %s", where, other)
		}
		ids[id] = kind
		if err := checkName(name); err != nil {
			bad("%s: name: %v", where, err)
		}
		if ident == nil {
			bad("%s: identity: required", where)
		} else if other, dup := idents[ident.Fingerprint()]; dup {
			bad("%s: identity already used by %s", where, other)
		} else {
			idents[ident.Fingerprint()] = where
		}
		if nk != "" || needNKey {
			if !nkeys.IsValidPublicUserKey(nk) {
				bad("%s: nkey: not a user NKey (U…)", where)
			} else if other, dup := nks[nk]; dup {
				bad("%s: nkey already used by %s", where, other)
			}
			nks[nk] = where
		}
		return where
	}
	countries := func(where string, ccs []string) {
		if len(ccs) == 0 {
			bad("%s: countries: at least one", where)
		}
		for i, cc := range ccs {
			if !country.Known(cc) {
				bad("%s: countries[%d]: %q is not a lower-case ISO 3166-1 code", where, i, cc)
			} else if slices.Index(ccs, cc) != i {
				bad("%s: countries: %q listed twice", where, cc)
			}
		}
	}
	inboxes := func(where string, owner *PublicIdentity, list []SignedInboxKey, need bool) {
		if need && len(list) == 0 {
			bad("%s: inbox_keys: at least one", where)
		}
		for i, k := range list {
			if owner == nil {
				break
			}
			// Expiry is not checked here: senders skip expired keys, and an
			// expired key does not make the rest of the directory wrong.
			if err := k.Verify(owner, k.Expires.Add(-time.Second)); err != nil {
				bad("%s: inbox_keys[%d]: %v", where, i, err)
			}
		}
	}
	if len(r.Missions) == 0 {
		bad("missions: at least one")
	}
	for _, m := range r.Missions {
		where := entity("mission", m.ID, m.Name, m.Identity, m.NKey, true)
		countries(where, m.Countries)
		inboxes(where, m.Identity, m.InboxKeys, true)
		if m.Response.Urgent <= 0 || m.Response.High <= 0 || m.Response.Routine <= 0 {
			bad("%s: response_targets: urgent, high and routine must each be positive", where)
		}
		errs = append(errs, m.Offers.validate(where)...)
		checkEscalation(bad, where, &m)
	}
	for _, p := range r.Partners {
		where := entity("partner", p.ID, p.Name, p.Identity, p.NKey, true)
		countries(where, p.Countries)
		inboxes(where, p.Identity, p.InboxKeys, false)
	}
	for _, b := range r.Bridges {
		entity("bridge", b.ID, b.Name, b.Identity, b.NKey, true)
	}
	overseen := map[string]string{}
	for _, h := range r.Headquarters {
		where := entity("headquarters", h.ID, h.Name, h.Identity, h.NKey, true)
		inboxes(where, h.Identity, h.InboxKeys, true)
		if len(h.Missions) == 0 {
			bad("%s: missions: at least one post it oversees", where)
		}
		for i, id := range h.Missions {
			if other, dup := overseen[id]; dup {
				bad("%s: missions[%d]: %q is already overseen by %s", where, i, id, other)
			}
			overseen[id] = where
		}
	}
	for _, rl := range r.Relays {
		where := fmt.Sprintf("relay %q", rl.ID)
		if !idPattern.MatchString(rl.ID) {
			bad("%s: id must be 1–64 of a-z, 0-9 and -", where)
		} else if other, dup := ids[rl.ID]; dup {
			bad("%s: id already used by a %s", where, other)
		}
		ids[rl.ID] = "relay"
		if err := checkName(rl.Name); err != nil {
			bad("%s: name: %v", where, err)
		}
		if len(rl.URLs) == 0 {
			bad("%s: urls: at least one", where)
		}
		for i, u := range rl.URLs {
			pu, err := url.Parse(u)
			if err != nil || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme) || pu.Host == "" {
				bad("%s: urls[%d]: %q is not a nats://, tls://, ws:// or wss:// URL", where, i, u)
			}
		}
	}
	for _, h := range r.Headquarters {
		for i, id := range h.Missions {
			if ids[id] != "mission" {
				bad("headquarters %q: missions[%d]: %q is not a mission in the directory", h.ID, i, id)
			}
		}
	}
	for _, m := range r.Missions {
		if m.Escalation == "" {
			continue
		}
		if kind := ids[m.Escalation]; kind != "mission" && kind != "partner" || m.Escalation == m.ID {
			bad("mission %q: escalation: %q is not another mission or partner in the directory", m.ID, m.Escalation)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidDirectory, errors.Join(errs...))
	}
	return nil
}

func checkName(s string) error {
	if s == "" || len([]rune(s)) > MaxNameLength {
		return fmt.Errorf("must be 1–%d characters", MaxNameLength)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
		return errors.New("control or formatting characters are not allowed")
	}
	return nil
}

// MissionsFor returns the missions covering cc, in directory order.
func (d *Directory) MissionsFor(cc string) []Mission {
	var out []Mission
	for _, m := range d.Missions {
		if slices.Contains(m.Countries, cc) {
			out = append(out, m)
		}
	}
	return out
}

// Lookup finds an institution by its identity: its directory id and
// role, or "" and RoleDefender for an identity the directory does not
// list (defenders are not listed).
func (d *Directory) Lookup(id *PublicIdentity) (string, Role) {
	for _, e := range d.Institutions() {
		if e.Identity.Equal(id) {
			return e.ID, e.Role
		}
	}
	return "", RoleDefender
}

// An Institution is what a reader of the directory needs to know of a
// listed entity: its id, its connection key, its role, its identity and
// the countries it covers.
type Institution struct {
	ID        string
	NKey      string
	Role      Role
	Identity  *PublicIdentity
	Countries []string
}

// Institutions lists every mission, partner, bridge and headquarters.
func (d *Directory) Institutions() []Institution {
	var out []Institution
	for _, m := range d.Missions {
		out = append(out, Institution{m.ID, m.NKey, RoleMission, m.Identity, m.Countries})
	}
	for _, p := range d.Partners {
		out = append(out, Institution{p.ID, p.NKey, RolePartner, p.Identity, p.Countries})
	}
	for _, b := range d.Bridges {
		out = append(out, Institution{b.ID, b.NKey, RoleBridge, b.Identity, nil})
	}
	for _, h := range d.Headquarters {
		out = append(out, Institution{h.ID, h.NKey, RoleHeadquarters, h.Identity, nil})
	}
	return out
}

// HeadquartersOf returns the headquarters overseeing mission id, or nil.
func (d *Directory) HeadquartersOf(id string) *Headquarters {
	for i := range d.Headquarters {
		if slices.Contains(d.Headquarters[i].Missions, id) {
			return &d.Headquarters[i]
		}
	}
	return nil
}

// PartnersFor returns the partners covering cc.
func (d *Directory) PartnersFor(cc string) []Partner {
	var out []Partner
	for _, p := range d.Partners {
		if slices.Contains(p.Countries, cc) {
			out = append(out, p)
		}
	}
	return out
}

// Countries returns every country some mission covers, sorted.
func (d *Directory) Countries() []string {
	var out []string
	for _, m := range d.Missions {
		for _, cc := range m.Countries {
			if !slices.Contains(out, cc) {
				out = append(out, cc)
			}
		}
	}
	slices.Sort(out)
	return out
}

// CurrentInbox returns the inbox key to seal to at now: of the keys not yet
// expired, the one that expires last. It returns nil if every key has
// expired.
func CurrentInbox(list []SignedInboxKey, now time.Time) *InboxPublicKey {
	var best *SignedInboxKey
	for i := range list {
		k := &list[i]
		if now.Before(k.Expires) && (best == nil || k.Expires.After(best.Expires)) {
			best = k
		}
	}
	if best == nil {
		return nil
	}
	return best.Key
}
