package grpo

import (
	"testing"

	"purpcode/engine"
)

func TestPackTargetsAndBoundaries(t *testing.T) {
	seqs := []*sequence{
		{ids: []int32{1, 2, 3, 4, 5}, promptLen: 3}, // response 4, 5
		{ids: []int32{6, 7, 8}, promptLen: 1},       // response 7, 8
		{ids: []int32{9, 10, 11, 12}, promptLen: 2}, // response 11, 12
	}
	bs := pack(seqs, []int{0, 1, 2}, 8, 1)
	if len(bs) != 2 {
		t.Fatalf("%d micro-batches, want 2 (5+3 fill the first row)", len(bs))
	}
	b := bs[0]
	wantTargets := []int32{-100, -100, 4, 5, -100, 7, 8, -100}
	wantPos := []int32{0, 1, 2, 3, 4, 0, 1, 2}
	for i := range wantTargets {
		if b.b.Targets[i] != wantTargets[i] || b.b.Pos[i] != wantPos[i] {
			t.Fatalf("position %d: target %d pos %d, want %d %d", i, b.b.Targets[i], b.b.Pos[i], wantTargets[i], wantPos[i])
		}
	}
	if b.seq[2] != 0 || b.tok[2] != 0 || b.seq[3] != 0 || b.tok[3] != 1 || b.seq[5] != 1 || b.tok[5] != 0 {
		t.Fatalf("position map seq %v tok %v", b.seq, b.tok)
	}
	if b.b.Seg[4] == b.b.Seg[5] {
		t.Fatal("sequences share a segment")
	}
	last := bs[1]
	if last.b.Targets[1] != 11 || last.b.Targets[2] != 12 || last.b.Targets[3] != engine.IgnoreIndex || last.b.Seg[5] != -1 {
		t.Fatalf("second batch targets %v seg %v", last.b.Targets, last.b.Seg)
	}
}
