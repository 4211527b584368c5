package grpo

import "testing"

func TestDynamicSamplerCounts(t *testing.T) {
	d := NewDynamicSampler(8, 4)
	if got := d.Draw(); got != 8 {
		t.Fatalf("first step draws %d, want B=8", got)
	}
	d.Observe(8, 4) // half usable -> draw 16
	if got := d.Draw(); got != 16 {
		t.Fatalf("after 50%% usable draws %d, want 16", got)
	}
	d.Observe(16, 12) // 75% -> ceil(8/0.75) = 11
	if got := d.Draw(); got != 11 {
		t.Fatalf("after 75%% usable draws %d, want 11", got)
	}
	d.Observe(11, 1) // 1/11 usable -> 88, capped at 4B = 32
	if got := d.Draw(); got != 32 {
		t.Fatalf("after 1/11 usable draws %d, want cap 32", got)
	}
	d.Observe(32, 0) // nothing usable: stay at the cap
	if got := d.Draw(); got != 32 {
		t.Fatalf("after 0 usable draws %d, want cap 32", got)
	}
	d.Observe(32, 32) // all usable: back to B
	if got := d.Draw(); got != 8 {
		t.Fatalf("after 100%% usable draws %d, want 8", got)
	}
	if f := d.LastUsable; f != 1 {
		t.Fatalf("carried usable fraction %v", f)
	}
}

func TestUsableGroups(t *testing.T) {
	for _, c := range []struct {
		r    []float64
		want bool
	}{
		{[]float64{1, 1, 1, 1}, false},
		{[]float64{0, 0, 0, 0}, false},
		{[]float64{0.8, 0.8, 0.8, 0.8 + 1e-7}, false},
		{[]float64{1, 0, 1, 1}, true},
		{[]float64{0.8, 1, 0.8, 0.8}, true},
		{[]float64{1}, false},
	} {
		if got := Usable(c.r); got != c.want {
			t.Errorf("Usable(%v) = %v, want %v", c.r, got, c.want)
		}
	}
}
