package keys_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hrdbeacon/beacon/keys"
)

// TestOffersSignedAndChecked: a post's offers travel in the signed
// directory, and an emergency contact is held to the rules of names.
func TestOffersSignedAndChecked(t *testing.T) {
	m, err := keys.NewKeyring(keys.RoleMission)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	roster := func(o keys.Offers) *keys.Roster {
		return &keys.Roster{Serial: 1, Issued: now.Add(-time.Minute), Expires: now.Add(time.Hour),
			Missions: []keys.Mission{{ID: "nl-kampala", Name: "NL Kampala", Countries: []string{"ug"}, Identity: m.Identity.Public(),
				NKey: m.NKeyPublic(), InboxKeys: []keys.SignedInboxKey{m.Inboxes[0].Signed},
				Response: keys.ResponseTargets{Urgent: time.Minute, High: time.Hour, Routine: 24 * time.Hour}, Offers: o}}}
	}
	o := keys.Offers{Meetings: true, TrialObservation: true, EmergencyContact: "+256 700 000000 (duty officer, 24h)"}
	root, _ := keys.GenerateIdentity()
	signed, err := keys.SignDirectory(roster(o), root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(signed), "      offers:\n        meetings: true\n        trial_observation: true\n        emergency_contact: +256 700 000000 (duty officer, 24h)\n") {
		t.Fatalf("offers not in the signed file:\n%s", signed)
	}
	d, err := keys.VerifyDirectory(signed, root.Public().Fingerprint(), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Missions[0].Offers != o || !slices.Equal(o.Services(), []string{"meetings", "trial observation", "emergency contact"}) {
		t.Fatalf("offers = %+v", d.Missions[0].Offers)
	}
	// A post that offers nothing writes no offers at all, so directories
	// signed before offers existed keep their form.
	plain, _ := keys.SignDirectory(roster(keys.Offers{}), root)
	if strings.Contains(string(plain), "offers") {
		t.Fatal("empty offers written")
	}
	for _, bad := range []string{"call\u202eus", "line\nbreak", strings.Repeat("9", keys.MaxNameLength+1)} {
		if err := roster(keys.Offers{EmergencyContact: bad}).Validate(); !errors.Is(err, keys.ErrInvalidDirectory) ||
			!strings.Contains(err.Error(), "offers.emergency_contact") {
			t.Errorf("emergency contact %q: %v", bad, err)
		}
	}
}
