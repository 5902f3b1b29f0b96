package keys

import (
	"slices"
	"time"

	"github.com/hrdbeacon/beacon/routing"
)

// Escalation tiers. An alert goes first to the missions covering its
// country (tier 0); if too few of them acknowledge it within the posts'
// committed response target, it is released to the posts' escalation
// targets (tier 1), then to their headquarters (tier 2), then, where the
// defender consented to sharing, to the partner governments covering
// the country (tier 3).
const (
	TierTarget       = 1
	TierHeadquarters = 2
	TierPartners     = 3
)

// MaxQuorum bounds a tier's quorum: no tier has more recipients than an
// envelope can carry.
const MaxQuorum = 32

// maxQuorumTiers is how many quorums a post may list: one before each of
// the three tiers.
const maxQuorumTiers = 3

func checkEscalation(bad func(string, ...any), where string, m *Mission) {
	for i, p := range m.Escalate {
		if !p.Valid() {
			bad("%s: escalate[%d]: not urgent, high or routine", where, i)
		} else if slices.Index(m.Escalate, p) != i {
			bad("%s: escalate: %s listed twice", where, p)
		}
	}
	if len(m.Quorum) > maxQuorumTiers {
		bad("%s: quorum: at most %d tiers (escalation target, headquarters, partners)", where, maxQuorumTiers)
	}
	for i, q := range m.Quorum {
		if q < 1 || q > MaxQuorum {
			bad("%s: quorum[%d]: must be 1–%d", where, i, MaxQuorum)
		}
	}
}

// Escalates reports whether the post's alerts at priority p escalate.
func (m *Mission) Escalates(p routing.Priority) bool {
	if len(m.Escalate) == 0 {
		return p == routing.Urgent
	}
	return slices.Contains(m.Escalate, p)
}

// QuorumBefore is how many acknowledgements the post requires before
// tier is released (1 unless its directory entry says otherwise).
func (m *Mission) QuorumBefore(tier int) int {
	if tier >= 1 && tier <= len(m.Quorum) {
		return m.Quorum[tier-1]
	}
	return 1
}

// An EscalationPlan is how an alert for one country at one priority
// escalates, by the directory: who each tier reaches, when, and how many
// acknowledgements stop it. The defender's client seals a tier's envelope
// to its recipients and the relay releases it to them, each from its own
// copy of the directory and through this one function.
type EscalationPlan struct {
	Country  string
	Priority routing.Priority
	// Posts are the missions covering Country whose alerts at Priority
	// escalate.
	Posts []string
	// Step is the shortest response target the posts commit to at
	// Priority: each tier waits that long after the one before.
	Step time.Duration
	// Tiers are the tiers that have recipients, in order.
	Tiers []EscalationTier

	covering map[Fingerprint]bool // institutions covering Country
}

// An EscalationTier is one tier of a plan.
type EscalationTier struct {
	Tier       int // TierTarget, TierHeadquarters or TierPartners
	Recipients []Recipient
	// Quorum is how many counted acknowledgements, by the time the tier
	// falls due, stop the escalation before it is released.
	Quorum int
	// After is when the tier falls due, from the time the alert was
	// handed to the relay.
	After time.Duration
}

// A Recipient is an institution an escalation tier is sealed and
// released to.
type Recipient struct {
	ID        string
	Role      Role
	Identity  *PublicIdentity
	NKey      string
	InboxKeys []SignedInboxKey
}

// Escalation returns the plan for an alert in cc at priority p, or nil if
// no post covering cc escalates p. Partner governments are in it only
// with share: the defender's consent (a drill never pages a partner, so
// a client passes false for one).
func (d *Directory) Escalation(cc string, p routing.Priority, share bool) *EscalationPlan {
	plan := &EscalationPlan{Country: cc, Priority: p, covering: map[Fingerprint]bool{}}
	var posts []*Mission
	for i := range d.Missions {
		m := &d.Missions[i]
		if !slices.Contains(m.Countries, cc) {
			continue
		}
		plan.covering[m.Identity.Fingerprint()] = true
		if m.Escalates(p) {
			posts = append(posts, m)
			plan.Posts = append(plan.Posts, m.ID)
			if t := m.Response.For(p); plan.Step == 0 || t < plan.Step {
				plan.Step = t
			}
		}
	}
	for _, pt := range d.Partners {
		if slices.Contains(pt.Countries, cc) {
			plan.covering[pt.Identity.Fingerprint()] = true
		}
	}
	if len(posts) == 0 || plan.Step <= 0 {
		return nil
	}
	var tiers [TierPartners + 1][]Recipient
	add := func(tier int, r Recipient) {
		if !slices.ContainsFunc(tiers[tier], func(x Recipient) bool { return x.ID == r.ID }) {
			tiers[tier] = append(tiers[tier], r)
		}
	}
	for _, m := range posts {
		if m.Escalation != "" {
			if t, ok := d.recipient(m.Escalation); ok && (t.Role != RolePartner || share) {
				add(TierTarget, t)
			}
		}
		if h := d.HeadquartersOf(m.ID); h != nil {
			add(TierHeadquarters, Recipient{ID: h.ID, Role: RoleHeadquarters, Identity: h.Identity, NKey: h.NKey, InboxKeys: h.InboxKeys})
		}
	}
	if share {
		for _, pt := range d.PartnersFor(cc) {
			add(TierPartners, Recipient{ID: pt.ID, Role: RolePartner, Identity: pt.Identity, NKey: pt.NKey, InboxKeys: pt.InboxKeys})
		}
	}
	for tier := TierTarget; tier <= TierPartners; tier++ {
		if len(tiers[tier]) == 0 {
			continue
		}
		q := 1
		for _, m := range posts {
			q = max(q, m.QuorumBefore(tier))
		}
		plan.Tiers = append(plan.Tiers, EscalationTier{Tier: tier, Recipients: tiers[tier], Quorum: q,
			After: time.Duration(len(plan.Tiers)+1) * plan.Step})
	}
	return plan
}

// recipient finds a mission or partner by id.
func (d *Directory) recipient(id string) (Recipient, bool) {
	for _, m := range d.Missions {
		if m.ID == id {
			return Recipient{ID: m.ID, Role: RoleMission, Identity: m.Identity, NKey: m.NKey, InboxKeys: m.InboxKeys}, true
		}
	}
	for _, p := range d.Partners {
		if p.ID == id {
			return Recipient{ID: p.ID, Role: RolePartner, Identity: p.Identity, NKey: p.NKey, InboxKeys: p.InboxKeys}, true
		}
	}
	return Recipient{}, false
}

// Tier returns the plan's tier, or nil if it has none of that number.
func (p *EscalationPlan) Tier(tier int) *EscalationTier {
	for i := range p.Tiers {
		if p.Tiers[i].Tier == tier {
			return &p.Tiers[i]
		}
	}
	return nil
}

// Counts reports whether an acknowledgement signed by the identity with
// fingerprint fp counts toward the quorum that stops tier: it does from
// an institution covering the country, and from a recipient of an
// earlier tier (which was released to it); from anyone else, a mission
// of another country say, it does not.
func (p *EscalationPlan) Counts(fp Fingerprint, tier int) bool {
	if p.covering[fp] {
		return true
	}
	for _, t := range p.Tiers {
		if t.Tier >= tier {
			break
		}
		for _, r := range t.Recipients {
			if r.Identity.Fingerprint().Equal(fp) {
				return true
			}
		}
	}
	return false
}

// For returns the target for priority p.
func (t ResponseTargets) For(p routing.Priority) time.Duration {
	switch p {
	case routing.Urgent:
		return t.Urgent
	case routing.High:
		return t.High
	case routing.Routine:
		return t.Routine
	}
	return 0
}
