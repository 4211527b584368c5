package cuda_test

// Tensor parallelism on the CUDA backend (issue 16): the embedded base
// model loaded as two TP shards (qwen2.LoadShard, each rank reading its
// byte ranges) onto two devices, ranks as goroutines over loopback TCP
// (dist.ConnectLocal), against the unsharded model on the CPU backend. The
// devices are the PTX emulator by default and the first GPU, twice, with
// -cuda-device=real (scripts/gpu-check.sh runs this file in its
// engine/cuda step). The collectives are the CPU backend's here; the NCCL
// backend is dist's TestNCCL* on a GPU.
//
// Tolerances are model_test.go's (bf16 activations and compute weights
// on the device): sharding changes only the order in which the shards'
// fp32 partial sums are added, far below bf16 rounding.
//
//	forward logits   max |Δ| <= 2e-2 of max |logit|
//	loss             relative 5e-3
//	every gradient   relative L2 norm 3e-2 (k_proj.bias against the global norm)
//	greedy rollout   the ranks' tokens identical; against the CPU identical, or
//	                 the first divergence at a near-tie of the CPU's logits;
//	                 chosen-token log-probs within 0.2 nats

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/engine/cuda"
	"purpcode/generate"
	"purpcode/model/qwen2"
	"purpcode/train"
)

// tpSizes are the group sizes tested: 2 splits the base model's 2 KV
// heads, 4 holds each on two ranks (their gradients summed over the
// holders).
var tpSizes = []int{2, 4}

// tpGroup loads the base model's TP shards onto tpRanks devices and runs
// f on every rank at once; it fails the test with every rank's error (f's,
// a panic's, or a collective's through the shard's Err).
func tpGroup(t *testing.T, tpRanks int, f func(rank int, sh *qwen2.Model, comm dist.Comm) error) qwen2.SplitFunc {
	t.Helper()
	cfg, err := qwen2.LoadConfig(baseModel + "/config.json")
	if err != nil {
		t.Fatal(err)
	}
	split, err := train.TPSplit(cfg, tpRanks)
	if err != nil {
		t.Fatal(err)
	}
	devs := make([]*cuda.Backend, tpRanks)
	for r := range devs {
		devs[r] = cuda.OpenForTest(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	comms, err := dist.ConnectLocal(ctx, tpRanks, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, tpRanks)
	var wg sync.WaitGroup
	for r := range tpRanks {
		wg.Go(func() {
			defer comms[r].Close()
			defer func() {
				// A rank's panic (a device op refusing its operands)
				// fails the test, not the whole binary; closing its
				// connections (deferred above) ends the others' waits.
				if p := recover(); p != nil {
					errs[r] = fmt.Errorf("panic: %v", p)
				}
			}()
			sh, err := qwen2.LoadShard(ctx, baseModel, devs[r], comms[r], split)
			if err != nil {
				errs[r] = err
				return
			}
			if err := f(r, sh, comms[r]); err != nil {
				errs[r] = err
				// The other rank may be blocked in a collective: closing
				// this rank's connections ends it.
				comms[r].Close()
				return
			}
			errs[r] = sh.Err()
		})
	}
	wg.Wait()
	// Every rank's error: the first to fail may not be rank 0, whose
	// error may only say that a peer went away.
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return split
}

// tpStep is one rank's (or the unsharded model's) forward, loss and
// backward.
type tpStep struct {
	logits []float32 // every row's, full vocabulary (the shards gather them)
	loss   float64
	count  int
	norm   float64 // GradNorm: TP-global on a shard
	grads  map[string][]float32
}

func runTPStep(m *qwen2.Model, b *qwen2.Batch) (tpStep, error) {
	n := b.B * b.T
	a := m.NewActs(b.B, b.T)
	m.P.ZeroGrad()
	m.Forward(a, b)
	s := tpStep{logits: logits(m, a, n)}
	s.loss, s.count = m.Loss(a, b, true, 1/float32(n))
	m.Backward(a, b)
	m.P.Pull()
	s.grads = map[string][]float32{}
	for _, p := range m.P.List {
		s.grads[p.Name] = slices.Clone(p.G.F32)
	}
	var err error
	s.norm, err = m.GradNorm()
	return s, err
}

// gatherGrad places each rank's slice of a gradient at its place in the
// full shape. Ranks holding the same elements (replicated norms) must
// agree bitwise: the collectives hand every rank the same sums, and a
// replica that drifted would train a different model on each rank.
func gatherGrad(t *testing.T, p *qwen2.Param, split qwen2.SplitFunc, ranks []tpStep) []float32 {
	t.Helper()
	g := make([]float32, p.G.Numel())
	seen := make([]bool, len(g))
	for r, res := range ranks {
		dim, lo, hi, err := split(p.Name, p.G.Shape, r)
		if err != nil {
			t.Fatal(err)
		}
		src := res.grads[p.Name]
		inner, rows, outer := 1, len(g), 1
		if dim >= 0 {
			inner = engine.Numel(p.G.Shape[dim+1:])
			outer = engine.Numel(p.G.Shape[:dim])
			rows = p.G.Shape[dim]
		} else {
			lo, hi = 0, rows
		}
		run := (hi - lo) * inner
		if len(src) != outer*run {
			t.Fatalf("%s: rank %d holds %d elements, its slice [%d,%d) of dim %d has %d", p.Name, r, len(src), lo, hi, dim, outer*run)
		}
		for o := range outer {
			for k := range run {
				i, v := (o*rows+lo)*inner+k, src[o*run+k]
				if seen[i] && g[i] != v {
					t.Fatalf("%s: element %d differs between the ranks holding it: %g vs %g", p.Name, i, g[i], v)
				}
				g[i], seen[i] = v, true
			}
		}
	}
	if i := slices.Index(seen, false); i >= 0 {
		t.Fatalf("%s: element %d held by no rank", p.Name, i)
	}
	return g
}

func TestTPForwardBackwardMatchCPU(t *testing.T) {
	mc, err := qwen2.Load(baseModel, engine.NewDefaultCPU(engine.CPUOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	// TestForwardBackwardMatchCPU's batch, on which the tolerances were
	// set: at this size bf16 alone, on one unsharded device, moves an
	// attention projection's gradient by up to 4e-2 relative norm on
	// other seeds (seeds 2 and 3 measured), so the bound is this batch's.
	b := batch(mc.Cfg, 2, 24, 1)
	want, err := runTPStep(mc, b)
	if err != nil {
		t.Fatal(err)
	}
	// The unsharded model on one device, for the log: what share of the
	// difference from the CPU is bf16's, not sharding's.
	md, err := qwen2.Load(baseModel, cuda.OpenForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	one, err := runTPStep(md, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, tpRanks := range tpSizes {
		t.Run(fmt.Sprintf("tp%d", tpRanks), func(t *testing.T) { checkTPStep(t, mc, b, want, one, tpRanks) })
	}
}

// checkTPStep runs the step on tpRanks shards and checks it against the
// CPU's (want; one is the unsharded model on one device, for the log).
func checkTPStep(t *testing.T, mc *qwen2.Model, b *qwen2.Batch, want, one tpStep, tpRanks int) {
	ranks := make([]tpStep, tpRanks)
	split := tpGroup(t, tpRanks, func(r int, sh *qwen2.Model, _ dist.Comm) error {
		var err error
		ranks[r], err = runTPStep(sh, b)
		return err
	})

	var maxAbs float64
	for _, v := range want.logits {
		maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
	}
	for r, got := range ranks {
		var maxErr float64
		for i := range want.logits {
			maxErr = math.Max(maxErr, math.Abs(float64(got.logits[i])-float64(want.logits[i])))
		}
		t.Logf("rank %d: logits max |Δ| %.3g of %.3g; loss %.6f vs cpu %.6f; grad norm %.6g vs %.6g",
			r, maxErr, maxAbs, got.loss/float64(got.count), want.loss/float64(want.count), got.norm, want.norm)
		if maxErr > 2e-2*maxAbs {
			t.Errorf("rank %d: logits differ by %.3g, above 2e-2 of %.3g", r, maxErr, maxAbs)
		}
		if got.count != want.count {
			t.Fatalf("rank %d: %d targets counted, the cpu %d", r, got.count, want.count)
		}
		if rel := math.Abs(got.loss-want.loss) / want.loss; rel > 5e-3 {
			t.Errorf("rank %d: loss differs by %.3g relative, above 5e-3", r, rel)
		}
		if math.Abs(got.norm-want.norm) > 3e-2*want.norm {
			t.Errorf("rank %d: TP-global grad norm %.6g, the cpu's %.6g", r, got.norm, want.norm)
		}
	}
	for r := range ranks {
		if !slices.Equal(ranks[r].logits, ranks[0].logits) || ranks[r].loss != ranks[0].loss {
			t.Errorf("rank %d's gathered logits or loss differ from rank 0's: every rank must see the same bits", r)
		}
	}

	worst, worstName, worstOne := 0.0, "", 0.0
	var bad []string
	for _, pc := range mc.P.List {
		g := gatherGrad(t, pc, split, ranks)
		e := relNorm(g, pc.G.F32)
		e1 := relNorm(one.grads[pc.Name], pc.G.F32)
		if strings.HasSuffix(pc.Name, "k_proj.bias") {
			// Near-cancelling sum (see TestForwardBackwardMatchCPU):
			// held to the bound against the global norm.
			e = absNorm(g, pc.G.F32) / want.norm
			e1 = absNorm(one.grads[pc.Name], pc.G.F32) / want.norm
		}
		worstOne = max(worstOne, e1)
		if e > worst {
			worst, worstName = e, pc.Name
		}
		if e > 3e-2 {
			bad = append(bad, fmt.Sprintf("%s (%.3g)", pc.Name, e))
		}
	}
	t.Logf("gradients gathered from %d shards: worst relative norm %.3g (%s) over %d tensors (one device unsharded: %.3g)", tpRanks, worst, worstName, len(mc.P.List), worstOne)
	if len(bad) > 0 {
		t.Errorf("gradients differ from the cpu's by more than 3e-2 relative norm: %s", strings.Join(bad, ", "))
	}
}

// rolloutTokens is how many tokens TestTPRolloutMatchesCPU decodes.
const rolloutTokens = 12

// TestTPRolloutMatchesCPU decodes greedily through the rollout engine
// (paged KV cache, prefill and decode steps, a forked sequence) on the two
// shards in lockstep (Options.Agree over the TP group, as the GRPO trainer
// runs it) and on the unsharded CPU model.
func TestTPRolloutMatchesCPU(t *testing.T) {
	mc, err := qwen2.Load(baseModel, engine.NewDefaultCPU(engine.CPUOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int{{1533, 17, 230, 940, 12}, {1533, 400, 401, 402, 403, 404, 405, 406, 407}}
	run := func(m *qwen2.Model, agree func(bool) (bool, error)) ([][]generate.Sample, error) {
		e, err := generate.New(m, generate.Options{MaxBatch: 4, BlockSize: 4, KVBlocks: 32, MaxStepTokens: 8, Agree: agree})
		if err != nil {
			return nil, err
		}
		defer e.Close()
		var reqs []generate.Request
		for i, p := range prompts {
			reqs = append(reqs, generate.Request{ID: string(rune('a' + i)), Prompt: p, N: 1 + i,
				Params: generate.SamplingParams{Greedy: true, MaxNewTokens: rolloutTokens}})
		}
		return e.Generate(context.Background(), reqs)
	}
	want, err := run(mc, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tpRanks := range tpSizes {
		t.Run(fmt.Sprintf("tp%d", tpRanks), func(t *testing.T) {
			got := make([][][]generate.Sample, tpRanks)
			tpGroup(t, tpRanks, func(r int, sh *qwen2.Model, comm dist.Comm) error {
				var err error
				got[r], err = run(sh, generate.AgreeOn(comm))
				return err
			})
			checkRollout(t, mc, prompts, want, got)
		})
	}
}

// checkRollout compares the shards' samples (got, by rank) with the CPU's.
func checkRollout(t *testing.T, mc *qwen2.Model, prompts [][]int, want [][]generate.Sample, got [][][]generate.Sample) {

	worst := 0.0
	for i := range want {
		for j := range want[i] {
			sc := want[i][j]
			if len(sc.Tokens) != rolloutTokens {
				t.Fatalf("prompt %d sample %d: the cpu made %d tokens, want %d (no EOS set)", i, j, len(sc.Tokens), rolloutTokens)
			}
			for r := range got {
				if !slices.Equal(got[r][i][j].Tokens, got[0][i][j].Tokens) {
					t.Errorf("prompt %d sample %d: rank %d drew %v, rank 0 %v: the shards left lockstep", i, j, r, got[r][i][j].Tokens, got[0][i][j].Tokens)
				}
			}
			sd := got[0][i][j]
			if len(sd.Tokens) != len(sc.Tokens) {
				t.Errorf("prompt %d sample %d: %d tokens on the shards, %d on the cpu", i, j, len(sd.Tokens), len(sc.Tokens))
				continue
			}
			for k := range sc.Tokens {
				if sc.Tokens[k] != sd.Tokens[k] {
					gap := logGap(t, mc, prompts[i], sc.Tokens[:k])
					t.Logf("prompt %d sample %d: first divergence at token %d (cpu %d, shards %d); cpu top-2 gap %.4g", i, j, k, sc.Tokens[k], sd.Tokens[k], gap)
					if gap > 0.05 {
						t.Errorf("prompt %d sample %d: token %d differs with a clear cpu margin %.4g", i, j, k, gap)
					}
					break
				}
				worst = math.Max(worst, math.Abs(float64(sc.RawLogProbs[k]-sd.RawLogProbs[k])))
			}
		}
	}
	t.Logf("greedy %d tokens of %d prompts (one forked): max |Δ log-prob| of the chosen tokens %.3g", rolloutTokens, len(prompts), worst)
	if worst > 0.2 {
		t.Errorf("chosen-token log-probs differ by %.3g, above 0.2", worst)
	}
}
