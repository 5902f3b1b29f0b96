package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestConfirmOn: only a plain "yes" confirms; anything else, an empty line
// or a closed terminal refuses.
func TestConfirmOn(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"yes\n", true},
		{"  yes \r\n", true},
		{"yes", true},
		{"y\n", false},
		{"YES please\n", false},
		{"\n", false},
		{"", false},
	} {
		var out bytes.Buffer
		err := confirmOn(strings.NewReader(tc.in), &out, "Type yes: ")
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errNotConfirmed)) {
			t.Errorf("answer %q: %v, want confirmed %v", tc.in, err, tc.ok)
		}
		if out.String() != "Type yes: " {
			t.Errorf("prompt %q", out.String())
		}
	}
}
