package engine

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// A short entropy slice is reported before any log-prob is written: the
// log-prob slots keep what the caller put there.
func TestLMHeadTokenStatsChecksBeforeWriting(t *testing.T) {
	c := testCPU()
	r := rand.New(rand.NewPCG(17, 18))
	n, ch, vocab := 3, 4, 5
	h, w := randT(r, 1, n, ch), randT(r, 1, vocab, ch)
	targets := []int32{1, 2, 3}
	st := TokenStats{LogProb: []float32{7, 7, 7}, Entropy: make([]float32, n-1)}
	msg := func() (msg string) {
		defer func() { msg = fmt.Sprint(recover()) }()
		c.LMHeadTokenStats(h, w, targets, st)
		return "no panic"
	}()
	if !strings.Contains(msg, "engine.LMHeadTokenStats: 3 log-prob and 2 entropy slots for 3 targets") {
		t.Fatalf("panic %q, want the length check's message", msg)
	}
	for i, v := range st.LogProb {
		if v != 7 {
			t.Errorf("log-prob slot %d written (%v) before the length check", i, v)
		}
	}
}

// Rows without a target get 0, whatever the slots held before.
func TestLMHeadTokenStatsZeroesIgnoredRows(t *testing.T) {
	c := testCPU()
	r := rand.New(rand.NewPCG(19, 20))
	n, ch, vocab := 4, 3, 6
	h, w := randT(r, 1, n, ch), randT(r, 1, vocab, ch)
	targets := []int32{IgnoreIndex, 2, IgnoreIndex, 5}
	st := TokenStats{LogProb: []float32{7, 7, 7, 7}, Entropy: []float32{7, 7, 7, 7}}
	c.LMHeadTokenStats(h, w, targets, st)
	for _, i := range []int{0, 2} {
		if st.LogProb[i] != 0 || st.Entropy[i] != 0 {
			t.Errorf("ignored row %d: log-prob %v entropy %v, want 0", i, st.LogProb[i], st.Entropy[i])
		}
	}
	for _, i := range []int{1, 3} {
		if st.LogProb[i] >= 0 || st.Entropy[i] <= 0 {
			t.Errorf("row %d: log-prob %v entropy %v, want a negative log-prob and a positive entropy", i, st.LogProb[i], st.Entropy[i])
		}
	}
}
