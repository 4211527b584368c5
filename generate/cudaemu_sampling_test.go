package generate

// Conformance of the sampling kernels (kernels/cuda/sampling.cu) with this
// package's sampler, on the device -cuda-device names (the PTX emulator by
// default, a real GPU under scripts/gpu-check.sh). The other kernels are
// checked against their engine ops in engine/cudaemu_test.go.
//
// Tolerances:
//
//	softmax_temp_rows  1e-5 relative + 1e-9 absolute per probability: fp32
//	                   expf and an fp32 sum over V against float64
//	argmax_rows        exact (ties to the smallest id, -inf rows included)
//	sample_rows        token exact for draws u at the middle of each kept
//	                   token's interval of the CPU's cumulative mass (so the
//	                   kept set and its order must be the CPU's: a token
//	                   ranked differently or filtered differently changes
//	                   some draw), log-prob within 1e-5 + 1e-5 relative (fp32
//	                   probabilities, float64 sums); a kept token the CPU
//	                   drops with more than 1e-5 of the kept mass also moves
//	                   the log-probs past that tolerance.

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"purpcode/internal/testref"
	"purpcode/kernels/cudatest"
)

var cudaDevice = flag.String("cuda-device", cudatest.Emulated, cudatest.FlagUsage)

func newCUDAKit(t *testing.T) *cudatest.Kit {
	t.Helper()
	return cudatest.Must(t, *cudaDevice, func(detail string) { testref.Missing(t, testref.NeedNVRTC, detail) })
}

// samplingLogits draws R rows of V logits; row 1 has -inf slots (a masked
// vocabulary) and row 2 a tie for the maximum.
func samplingLogits(r *rand.Rand, R, V int) []float32 {
	z := make([]float32, R*V)
	for i := range z {
		z[i] = float32(r.NormFloat64() * 3)
	}
	if R > 1 {
		for j := 0; j < V; j += 2 {
			z[V+j] = float32(math.Inf(-1))
		}
	}
	if R > 2 {
		row := z[2*V : 3*V]
		m := slices.Max(row)
		row[V-3], row[7] = m+1, m+1
	}
	return z
}

func TestCUDASoftmaxArgmax(t *testing.T) {
	k := newCUDAKit(t)
	r := rand.New(rand.NewPCG(31, 1))
	for _, sh := range []struct {
		R, V int
		temp float64
	}{{4, 999, 1}, {3, 37, 0.6}, {1, 1, 1.7}} {
		t.Run(fmt.Sprintf("R%d_V%d_T%g", sh.R, sh.V, sh.temp), func(t *testing.T) {
			z := samplingLogits(r, sh.R, sh.V)
			pz, pp, ptok := k.Up(z), k.Alloc(4*sh.R*sh.V), k.Alloc(4*sh.R)
			k.Launch("softmax_temp_rows", cudatest.Grid(sh.R, 1), cudatest.Block(512), 0, pp, pz, int32(sh.R), int32(sh.V), float32(1/sh.temp))
			k.Launch("argmax_rows", cudatest.Grid(sh.R, 1), cudatest.Block(512), 0, ptok, pz, int32(sh.R), int32(sh.V))
			got, tok := make([]float32, sh.R*sh.V), make([]int32, sh.R)
			k.Down(got, pp)
			k.Down(tok, ptok)
			want := make([]float64, sh.V)
			var worst float64
			for row := range sh.R {
				zr := z[row*sh.V : (row+1)*sh.V]
				temperatureProbs(want, zr, sh.temp)
				for j, w := range want {
					g := float64(got[row*sh.V+j])
					if e := math.Abs(g - w); e > 1e-9+1e-5*w {
						t.Fatalf("row %d: p[%d] = %g, want %g", row, j, g, w)
					} else if w > 0 {
						worst = math.Max(worst, e/w)
					}
				}
				if a := argmax(zr); int(tok[row]) != a {
					t.Fatalf("row %d: argmax_rows %d, argmax %d", row, tok[row], a)
				}
			}
			t.Logf("softmax_temp_rows: %.2g relative", worst)
		})
	}
	// All -inf: token 0 as the CPU's argmax.
	ninf := float32(math.Inf(-1))
	ptok := k.Alloc(4)
	k.Launch("argmax_rows", cudatest.Grid(1, 1), cudatest.Block(512), 0, ptok, k.Up([]float32{ninf, ninf, ninf}), int32(1), int32(3))
	var tok [1]int32
	k.Down(tok[:], ptok)
	if tok[0] != 0 {
		t.Errorf("argmax of an all -inf row = %d, want 0", tok[0])
	}
}

// drawPoints returns uniforms u, one at the middle of each of (at most
// max, from both ends of) the intervals the CPU's walk gives the tokens of
// cand (nil: every token in id order), plus 0 and the largest float64
// below 1.
func drawPoints(cand []int32, p []float64, most int) []float64 {
	order := cand
	if order == nil {
		order = make([]int32, len(p))
		for i := range order {
			order[i] = int32(i)
		}
	}
	var total float64
	for _, i := range order {
		total += p[i]
	}
	us := []float64{0, math.Nextafter(1, 0)}
	var acc float64
	for j, i := range order {
		if (j < most/2 || j >= len(order)-most/2) && p[i] > 0 {
			us = append(us, (acc+p[i]/2)/total)
		}
		acc += p[i]
	}
	return us
}

func TestCUDASampleRows(t *testing.T) {
	k := newCUDAKit(t)
	r := rand.New(rand.NewPCG(32, 2))
	const V = 301
	for _, c := range []struct {
		temp float64
		topK int
		topP float64
	}{{0.8, 20, 0}, {1, 0, 0.9}, {1.2, 50, 0.8}, {1, 0, 0}, {0.7, 1, 0}, {1, 0, 0.3}} {
		t.Run(fmt.Sprintf("T%g_k%d_p%g", c.temp, c.topK, c.topP), func(t *testing.T) {
			z := samplingLogits(r, 2, V)[V:] // the masked row: half the vocabulary at -inf
			if c.topK == 0 && c.topP == 0 {
				z = z[:0]
				for range V {
					z = append(z, float32(r.NormFloat64()))
				}
			}
			p := make([]float64, V)
			temperatureProbs(p, z, c.temp)
			var cand []int32
			if c.topK > 0 || c.topP > 0 {
				cand = make([]int32, V)
				for i := range cand {
					cand[i] = int32(i)
				}
				if c.topK > 0 {
					cand = topKFilter(cand, p, c.topK)
				}
				if c.topP > 0 {
					cand = topPFilter(cand, p, c.topP, c.topK == 0)
				}
			}
			us := drawPoints(cand, p, 12)
			R := len(us)
			zs, u32 := make([]float32, 0, R*V), make([]float32, R)
			for i, u := range us {
				zs = append(zs, z...)
				u32[i] = float32(u)
				us[i] = float64(u32[i]) // the CPU draws with the u the kernel gets
			}
			pp, ptok, plp := k.Alloc(4*R*V), k.Alloc(4*R), k.Alloc(4*R)
			k.Launch("softmax_temp_rows", cudatest.Grid(R, 1), cudatest.Block(512), 0, pp, k.Up(zs), int32(R), int32(V), float32(1/c.temp))
			// 128 threads: any whole number of warps is valid, and each of
			// the kernel's ~190 block-wide passes costs the emulator per
			// thread, so the draw is 4x cheaper to emulate than at 512.
			k.Launch("sample_rows", cudatest.Grid(R, 1), cudatest.Block(128), 0, ptok, plp, pp, k.Up(u32), int32(R), int32(V), int32(c.topK), float32(c.topP))
			tok, lp := make([]int32, R), make([]float32, R)
			k.Down(tok, ptok)
			k.Down(lp, plp)
			var worst float64
			for i, u := range us {
				wt, wlp := sampleFrom(cand, p, u)
				if int(tok[i]) != wt {
					t.Fatalf("u=%.9g: sample_rows drew %d, the sampler %d (candidates %d)", u, tok[i], wt, len(cand))
				}
				e := math.Abs(float64(lp[i]) - wlp)
				if e > 1e-5+1e-5*math.Abs(wlp) {
					t.Fatalf("u=%.9g token %d: log-prob %.7g, the sampler %.7g", u, wt, lp[i], wlp)
				}
				worst = math.Max(worst, e)
			}
			kept := fmt.Sprintf("%d candidates", len(cand))
			if cand == nil {
				kept = "no filter, id order"
			}
			t.Logf("sample_rows: %d draws (%s) exact, log-prob within %.2g", R, kept, worst)
		})
	}
}
