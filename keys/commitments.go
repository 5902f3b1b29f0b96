package keys

import "fmt"

// Offers is what a post commits to offer defenders beside its response
// targets: part of the signed directory, so a defender reads the same
// commitments whichever post or officer answers (`beacon missions CC`
// and the console show them).
type Offers struct {
	// Meetings: the post meets defenders who ask (a meeting request).
	Meetings bool `yaml:"meetings"`
	// TrialObservation: the post sends observers to hearings.
	TrialObservation bool `yaml:"trial_observation"`
	// EmergencyContact is how a defender reaches the post outside Beacon
	// in an emergency (a duty phone), shown as written; empty for none.
	EmergencyContact string `yaml:"emergency_contact,omitempty"`
}

// validate reports what is wrong with the offers of the mission at where.
func (o Offers) validate(where string) []error {
	if o.EmergencyContact == "" {
		return nil
	}
	if err := checkName(o.EmergencyContact); err != nil {
		return []error{fmt.Errorf("%s: offers.emergency_contact: %v", where, err)}
	}
	return nil
}

// Services lists what the offers say, for people: "meetings", "trial
// observation", "emergency contact".
func (o Offers) Services() []string {
	var out []string
	if o.Meetings {
		out = append(out, "meetings")
	}
	if o.TrialObservation {
		out = append(out, "trial observation")
	}
	if o.EmergencyContact != "" {
		out = append(out, "emergency contact")
	}
	return out
}
