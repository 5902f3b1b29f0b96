package routing

import (
	"errors"
	"strings"
	"testing"
)

func TestIDTextForm(t *testing.T) {
	id := NewID()
	if id.IsZero() {
		t.Fatal("NewID returned zero")
	}
	got, err := ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(String()) = %v, %v; want %v", got, err, id)
	}
	for _, bad := range []string{"", strings.Repeat("0", 32), strings.Repeat("A", 32), strings.Repeat("a", 31), strings.Repeat("a", 33), strings.Repeat("g", 32)} {
		if _, err := ParseID(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseID(%q) = %v, want ErrSyntax", bad, err)
		}
	}
	var back ID
	b, _ := id.MarshalText()
	if err := back.UnmarshalText(b); err != nil || back != id {
		t.Fatalf("text round trip: %v %v", back, err)
	}
}

func TestMailboxTextForm(t *testing.T) {
	m := Mailbox(NewID())
	got, err := ParseMailbox(m.String())
	if err != nil || got != m {
		t.Fatalf("ParseMailbox(String()) = %v, %v", got, err)
	}
	if _, err := ParseMailbox(strings.Repeat("0", 32)); !errors.Is(err, ErrSyntax) {
		t.Fatalf("zero mailbox: %v", err)
	}
}

func TestPriority(t *testing.T) {
	for i, p := range Priorities {
		if uint8(p) != uint8(i+1) || !p.Valid() {
			t.Fatalf("priority %d is %d", i, p)
		}
		got, err := ParsePriority(p.String())
		if err != nil || got != p {
			t.Fatalf("ParsePriority(%q) = %v, %v", p, got, err)
		}
	}
	for _, bad := range []string{"", "Urgent", "low", "priority(0)"} {
		if _, err := ParsePriority(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParsePriority(%q) = %v", bad, err)
		}
	}
	if _, err := Priority(0).MarshalText(); err == nil {
		t.Fatal("priority 0 marshalled")
	}
	if Priority(4).Valid() {
		t.Fatal("priority 4 valid")
	}
}

func TestParseRefusals(t *testing.T) {
	const good = "0123456789abcdef0123456789abcdef"
	for _, s := range []string{
		"0123456789ABCDEF0123456789abcdef", good[:31], good + "0", good[:30], "",
		strings.Repeat("0", 32), " " + good[1:], "0x23456789abcdef0123456789abcdef", "g123456789abcdef0123456789abcdef",
	} {
		if _, err := ParseID(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseID(%q) = %v, want ErrSyntax", s, err)
		}
		if _, err := ParseMailbox(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseMailbox(%q) = %v, want ErrSyntax", s, err)
		}
	}
	for _, s := range []string{"URGENT", "1"} {
		if _, err := ParsePriority(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParsePriority(%q) = %v", s, err)
		}
	}
}
