package keys

import "fmt"

// A Role is what an identity is for. It decides which rights the relay
// grants and which authentication an envelope carries (defenders write
// deniably, institutions sign).
type Role string

// Roles.
const (
	RoleDefender Role = "defender"
	RoleMission  Role = "mission"
	RolePartner  Role = "partner"
	RoleBridge   Role = "bridge"
	RoleRelay    Role = "relay"
	RoleRoot     Role = "root"
	// RoleHeadquarters is a foreign ministry's headquarters: it oversees
	// its posts (response reports, case reports) and is the last tier of
	// their escalation. It is not the root, which stays offline.
	RoleHeadquarters Role = "headquarters"
)

// Roles lists every role.
var Roles = []Role{RoleDefender, RoleMission, RolePartner, RoleBridge, RoleRelay, RoleRoot, RoleHeadquarters}

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (want defender, mission, partner, bridge, headquarters, relay or root)", s)
}
