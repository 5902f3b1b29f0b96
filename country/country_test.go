package country

import (
	"os"
	"slices"
	"strings"
	"testing"
)

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

// The list in envelope/SPEC.md, which an outside implementation copies, is
// this package's.
func TestSpecListsTheCodes(t *testing.T) {
	spec, err := os.ReadFile("../envelope/SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(spec), "\n## Country codes\n")
	if !ok {
		t.Fatal("no Country codes section in envelope/SPEC.md")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var listed []string
	for _, line := range strings.Split(section, "\n") {
		if rest, ok := strings.CutPrefix(line, "    "); ok {
			listed = append(listed, strings.Fields(rest)...)
		}
	}
	if !slices.Equal(listed, All()) {
		t.Errorf("envelope/SPEC.md lists %d codes, the package knows %d, and the lists differ", len(listed), len(All()))
	}
}
