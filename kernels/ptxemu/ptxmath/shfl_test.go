package ptxmath

import (
	"strings"
	"testing"
)

func TestShflSource(t *testing.T) {
	cases := []struct {
		name       string
		mode       ShflMode
		lane, b, c uint32
		src        uint32
		ok         bool
	}{
		// Full-warp butterfly (c = 0x1F: clamp 31, no segments): lane ^ b.
		{"bfly 16", ShflBfly, 3, 16, 0x1F, 19, true},
		{"bfly 1", ShflBfly, 30, 1, 0x1F, 31, true},
		// down: lane 31 + 1 = 32 > maxLane 31 → own lane, p false.
		{"down edge", ShflDown, 31, 1, 0x1F, 31, false},
		{"down", ShflDown, 4, 3, 0x1F, 7, true},
		// up uses c = 0 for a full warp: maxLane 0, p = lane-b >= 0.
		{"up edge", ShflUp, 0, 1, 0, 0, false},
		{"up", ShflUp, 5, 2, 0, 3, true},
		{"idx", ShflIdx, 9, 5, 0x1F, 5, true},
		{"idx ignores high b", ShflIdx, 9, 37, 0x1F, 5, true},
		// Width-8 segments: c = (32-8)<<8 | 0x1F = 0x181F, segmask 0x18.
		{"seg bfly", ShflBfly, 3, 4, 0x181F, 7, true},
		// lane 5 down 4: maxLane = (5&0x18)|(0x1F&^0x18) = 7; 9 > 7.
		{"seg down out", ShflDown, 5, 4, 0x181F, 5, false},
		{"seg down in", ShflDown, 13, 2, 0x181F, 15, true},
		// idx in segment 1 (lanes 8..15): minLane 8 | (2 &^ 0x18) = 10.
		{"seg idx", ShflIdx, 13, 2, 0x181F, 10, true},
		// up in segments uses c = (32-w)<<8 (clamp 0): maxLane = lane&segmask.
		{"seg up out", ShflUp, 9, 2, 0x1800, 9, false},
		{"seg up in", ShflUp, 11, 2, 0x1800, 9, true},
		// A smaller clamp: bfly with c = 0x0F keeps lanes ≤ 15.
		{"clamp", ShflBfly, 3, 16, 0x0F, 3, false},
	}
	for _, c := range cases {
		src, ok := ShflSource(c.mode, c.lane, c.b, c.c)
		if src != c.src || ok != c.ok {
			t.Errorf("shfl.%v %s: lane %d b=%d c=%#x → (%d, %v), want (%d, %v)", c.mode, c.name, c.lane, c.b, c.c, src, ok, c.src, c.ok)
		}
	}
}

func TestShflWarp(t *testing.T) {
	var a, b, c [32]uint32
	for i := range a {
		a[i] = 100 + uint32(i)
		b[i] = 16
		c[i] = 0x1F
	}
	d, p, err := ShflWarp(ShflBfly, 0xFFFFFFFF, &a, &b, &c)
	if err != nil {
		t.Fatal(err)
	}
	for lane := range 32 {
		if d[lane] != 100+uint32(lane^16) || !p[lane] {
			t.Fatalf("lane %d got %d %v", lane, d[lane], p[lane])
		}
	}
	// Lanes outside the mask are untouched; lanes inside reading outside it fail.
	if _, _, err := ShflWarp(ShflBfly, 0x0000FFFF, &a, &b, &c); err == nil || !strings.Contains(err.Error(), "lane 0 reads lane 16") {
		t.Errorf("bfly reading a lane outside membermask: err = %v", err)
	}
	for i := range b {
		b[i] = 1
	}
	d, p, err = ShflWarp(ShflDown, 0x0000000F, &a, &b, &c)
	if err == nil || !strings.Contains(err.Error(), "lane 3 reads lane 4") {
		t.Errorf("down past the member lanes: err = %v (d=%v p=%v)", err, d[:4], p[:4])
	}
	// Half-warp mask with width-16 segments is fine.
	for i := range c {
		c[i] = 0x101F
		b[i] = 8
	}
	d, p, err = ShflWarp(ShflBfly, 0x0000FFFF, &a, &b, &c)
	if err != nil || d[0] != 108 || d[16] != 0 || p[16] {
		t.Errorf("half-warp bfly: %v d0=%d d16=%d p16=%v", err, d[0], d[16], p[16])
	}
	for _, s := range []string{"up", ".down", "bfly", "idx"} {
		m, err := ParseShflMode(s)
		if err != nil || "."+m.String() != s && m.String() != s {
			t.Errorf("ParseShflMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseShflMode("xor"); err == nil {
		t.Error("ParseShflMode accepted xor")
	}
}
