package proto

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	parts := []FramePart{
		{Target: "rcpt.x.partner", Data: []byte("receipt")},
		{Target: "bridged.b.ug.urgent.id.digest", Hops: 1, Data: bytes.Repeat([]byte{0xab}, 300)},
		{Target: "mbox.m", Data: []byte{}},
	}
	var frame []byte
	size := 0
	for _, p := range parts {
		frame = AppendFramePart(frame, p)
		size += FramePartSize(p)
	}
	if size != len(frame) {
		t.Errorf("FramePartSize sums to %d, the frame is %d bytes", size, len(frame))
	}
	got, err := ParseFrame(frame)
	if err != nil || len(got) != len(parts) {
		t.Fatalf("ParseFrame: %d parts, %v", len(got), err)
	}
	for i, p := range got {
		if p.Target != parts[i].Target || p.Hops != parts[i].Hops || !bytes.Equal(p.Data, parts[i].Data) {
			t.Errorf("part %d: %+v, want %+v", i, p, parts[i])
		}
	}
}

func TestFrameBounds(t *testing.T) {
	var many []byte
	for range MaxFrameParts + 1 {
		many = AppendFramePart(many, FramePart{Target: "mbox.m", Data: []byte("x")})
	}
	long := AppendFramePart(nil, FramePart{Target: string(bytes.Repeat([]byte("t"), maxFrameTarget+1)), Data: []byte("x")})
	hops := AppendFramePart(nil, FramePart{Target: "t", Hops: maxFrameHops + 1, Data: []byte("x")})
	whole := AppendFramePart(nil, FramePart{Target: "t", Data: []byte("data")})
	for name, frame := range map[string][]byte{"too many parts": many, "target too long": long, "too many hops": hops, "empty": nil,
		"data past the end": whole[:len(whole)-1], "target past the end": whole[:2]} {
		if _, err := ParseFrame(frame); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
}

// FuzzParseFrame: no input makes ParseFrame panic, and what it accepts
// encodes back to a frame it reads the same.
func FuzzParseFrame(f *testing.F) {
	whole := AppendFramePart(nil, FramePart{Target: "mbox.m", Hops: 1, Data: []byte("data")})
	for _, seed := range [][]byte{whole, whole[:len(whole)-1], whole[:2], append(whole, whole...), {0x00}, {0x01, 't', 0xff, 0xff}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := ParseFrame(b)
		if err != nil {
			return
		}
		var again []byte
		for _, p := range parts {
			again = AppendFramePart(again, p)
		}
		back, err := ParseFrame(again)
		if err != nil || len(back) != len(parts) {
			t.Fatalf("re-encoded frame: %d parts, %v; want %d", len(back), err, len(parts))
		}
		for i := range back {
			if back[i].Target != parts[i].Target || back[i].Hops != parts[i].Hops || !bytes.Equal(back[i].Data, parts[i].Data) {
				t.Fatalf("part %d changed in a round trip", i)
			}
		}
	})
}
