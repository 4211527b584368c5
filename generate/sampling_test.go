package generate

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// bruteDistribution is the sampling distribution written the slow, obvious
// way: softmax at temperature, sort every token by (probability desc, id
// asc), keep the top k, keep the shortest prefix reaching top_p of the kept
// mass, renormalise. Tokens outside the support get 0.
func bruteDistribution(logits []float32, sp SamplingParams) []float64 {
	v := len(logits)
	p := make([]float64, v)
	mx := math.Inf(-1)
	for _, x := range logits {
		mx = math.Max(mx, float64(x))
	}
	var z float64
	for i, x := range logits {
		p[i] = math.Exp((float64(x) - mx) / sp.Temperature)
		z += p[i]
	}
	for i := range p {
		p[i] /= z
	}
	order := make([]int, v)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case p[a] > p[b]:
			return -1
		case p[a] < p[b]:
			return 1
		}
		return a - b
	})
	keep := order
	if sp.TopK > 0 && sp.TopK < v {
		keep = keep[:sp.TopK]
	}
	if sp.TopP > 0 && sp.TopP < 1 {
		var total, cum float64
		for _, i := range keep {
			total += p[i]
		}
		for j, i := range keep {
			cum += p[i]
			if cum >= sp.TopP*total {
				keep = keep[:j+1]
				break
			}
		}
	}
	out := make([]float64, v)
	var s float64
	for _, i := range keep {
		s += p[i]
	}
	for _, i := range keep {
		out[i] = p[i] / s
	}
	return out
}

// chiSquareCritical approximates the chi-square quantile with df degrees of
// freedom at standard-normal quantile z (Wilson-Hilferty).
func chiSquareCritical(df int, z float64) float64 {
	k := float64(df)
	a := 2 / (9 * k)
	return k * math.Pow(1-a+z*math.Sqrt(a), 3)
}

// TestSamplerFrequencies draws many tokens from a fixed logits vector (with
// ties) and compares the frequencies with the renormalised target
// distribution by a chi-square test; it also checks that nothing outside
// the support is ever drawn and that the reported log-probs are exact.
func TestSamplerFrequencies(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	logits := make([]float32, 60)
	for i := range logits {
		logits[i] = float32(math.Round(r.NormFloat64()*4) / 2) // many ties
	}
	cases := []SamplingParams{
		{Temperature: 1},
		{Temperature: 0.7, TopK: 7},
		{Temperature: 1.2, TopP: 0.8},
		{Temperature: 1.5, TopK: 12, TopP: 0.85},
		{Temperature: 2, TopK: 1},
		{Temperature: 1, TopP: 1e-9},
	}
	const draws = 100000
	for _, sp := range cases {
		want := bruteDistribution(logits, sp)
		counts := make([]int, len(logits))
		var s sampler
		rng := rand.New(rand.NewPCG(1234, 5678))
		for range draws {
			tok, lp, raw := s.draw(logits, &sp, rng)
			counts[tok]++
			if want[tok] == 0 {
				t.Fatalf("%+v: drew token %d outside the support", sp, tok)
			}
			if d := math.Abs(lp - math.Log(want[tok])); d > 1e-12 {
				t.Fatalf("%+v: token %d log-prob %v, want %v", sp, tok, lp, math.Log(want[tok]))
			}
			if d := math.Abs(raw - (float64(logits[tok]) - logSumExp(logits))); d > 1e-12 {
				t.Fatalf("%+v: raw log-prob %v", sp, raw)
			}
		}
		var chi2 float64
		support := 0
		for i, q := range want {
			if q == 0 {
				continue
			}
			support++
			e := q * draws
			chi2 += (float64(counts[i]) - e) * (float64(counts[i]) - e) / e
		}
		if support == 1 {
			t.Logf("%+v: support 1", sp)
			if counts[slices.IndexFunc(want, func(q float64) bool { return q > 0 })] != draws {
				t.Errorf("%+v: single-token support not always drawn", sp)
			}
			continue
		}
		crit := chiSquareCritical(support-1, 4.26) // p ~ 1e-5
		t.Logf("%+v: support %d, chi2 %.1f (critical %.1f)", sp, support, chi2, crit)
		if chi2 > crit {
			t.Errorf("%+v: chi-square %.1f > %.1f with %d degrees of freedom", sp, chi2, crit, support-1)
		}
	}
}

// TestSamplerDetectsBias makes sure the chi-square check has power: a
// sampler that ignores top-k renormalisation would fail it.
func TestSamplerDetectsBias(t *testing.T) {
	logits := []float32{3, 2.5, 2, 1, 0.5, 0, -1, -2}
	sp := SamplingParams{Temperature: 1, TopK: 3}
	want := bruteDistribution(logits, sp)
	wrong := bruteDistribution(logits, SamplingParams{Temperature: 1, TopK: 4})
	const draws = 100000
	rng := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, len(logits))
	cand := []int32{0, 1, 2, 3}
	for range draws {
		tok, _ := sampleFrom(cand, wrong, rng.Float64())
		counts[tok]++
	}
	var chi2 float64
	for i, q := range want {
		if q > 0 {
			e := q * draws
			chi2 += (float64(counts[i]) - e) * (float64(counts[i]) - e) / e
		}
	}
	if chi2 < chiSquareCritical(2, 4.26) {
		t.Errorf("biased sampler passes: chi2 %.1f", chi2)
	}
}

// TestFiltersMatchSorting checks the linear-time top-k and nucleus
// selection against a full sort on random vectors with many ties.
func TestFiltersMatchSorting(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for trial := 0; trial < 2000; trial++ {
		v := 1 + r.IntN(70)
		logits := make([]float32, v)
		for i := range logits {
			logits[i] = float32(r.IntN(6))
		}
		sp := SamplingParams{Temperature: 0.5 + r.Float64(), TopK: r.IntN(v + 2), TopP: r.Float64()}
		if r.IntN(4) == 0 {
			sp.TopP = 0
		}
		want := bruteDistribution(logits, sp)
		p := make([]float64, v)
		temperatureProbs(p, logits, sp.Temperature)
		cand := make([]int32, v)
		for i := range cand {
			cand[i] = int32(i)
		}
		topK := sp.TopK > 0 && sp.TopK < v
		if topK {
			cand = topKFilter(cand, p, sp.TopK)
		}
		if sp.TopP > 0 && sp.TopP < 1 {
			cand = topPFilter(cand, p, sp.TopP, !topK)
		}
		got := make([]bool, v)
		for _, i := range cand {
			got[i] = true
		}
		for i := range want {
			if got[i] != (want[i] > 0) {
				t.Fatalf("trial %d %+v logits %v: candidates %v, brute support differs at %d", trial, sp, logits, cand, i)
			}
		}
		if (topK || (sp.TopP > 0 && sp.TopP < 1)) && !slices.IsSortedFunc(cand, cmpCand(p)) {
			t.Fatalf("trial %d: candidates not in order: %v", trial, cand)
		}
	}
}

// TestGreedy picks the first maximum and reports the raw log-prob.
func TestGreedy(t *testing.T) {
	logits := []float32{1, 4, 2, 4, -1}
	var s sampler
	for _, sp := range []SamplingParams{{Greedy: true, Temperature: 1}, {Temperature: 0}} {
		tok, lp, raw := s.draw(logits, &sp, rand.New(rand.NewPCG(0, 0)))
		if tok != 1 || lp != raw || math.Abs(raw-(4-logSumExp(logits))) > 1e-12 {
			t.Errorf("%+v: token %d log-prob %v raw %v", sp, tok, lp, raw)
		}
	}
}

// TestSeedStreams: streams depend on seed, id and index, and only on them.
func TestSeedStreams(t *testing.T) {
	a := seqRNG(1, "x", 0).Uint64()
	if a != seqRNG(1, "x", 0).Uint64() {
		t.Fatal("same inputs, different streams")
	}
	for _, b := range []uint64{seqRNG(2, "x", 0).Uint64(), seqRNG(1, "y", 0).Uint64(), seqRNG(1, "x", 1).Uint64()} {
		if a == b {
			t.Errorf("streams collide")
		}
	}
}
