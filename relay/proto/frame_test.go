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
	for name, frame := range map[string][]byte{"too many parts": many, "target too long": long, "too many hops": hops, "empty": nil} {
		if _, err := ParseFrame(frame); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
}
