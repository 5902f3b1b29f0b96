package country

import "testing"

func TestKnown(t *testing.T) {
	if n := len(All()); n != 249 {
		t.Fatalf("All() has %d codes, want the 249 assigned ones", n)
	}
	for _, cc := range []string{"ug", "ke", "nl", "ss", "ps"} {
		if !Known(cc) {
			t.Errorf("Known(%q) = false", cc)
		}
	}
	for _, cc := range []string{"", "u", "UG", "Ug", "uga", "xk", "zz", "aa", "eu", "u\x00"} {
		if Known(cc) {
			t.Errorf("Known(%q) = true", cc)
		}
	}
	if Name("ug") != "Uganda" || Name("zz") != "" {
		t.Errorf("Name: got %q, %q", Name("ug"), Name("zz"))
	}
}
