package grpo

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"purpcode/dist"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/train"
)

// tpTol is the agreement asked of a tensor-parallel run with the single
// process: relative, on metrics and on every weight tensor. The shards add
// partial sums in another order than one GEMM, so the runs agree to
// float32 rounding, not bitwise.
const tpTol = 1e-5

// runGrid runs cfg on tp×dp ranks (goroutines of this process over
// loopback TCP, world rank = dp*tp + tp rank, split by dist.NewGrid); each
// DP replica writes to outs[its DP rank]. tweak, when set, adjusts world
// rank w's options and may use cancel, which ends w's context. It returns
// each world rank's result and error.
func runGrid(t *testing.T, cfg Config, tp, dp int, outs []string, tweak func(w int, o *Options, cancel func())) ([]*Result, []error) {
	t.Helper()
	n := tp * dp
	world, err := dist.ConnectLocal(context.Background(), n, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	res := make([]*Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range n {
		tc, dc, err := dist.NewGrid(world[w], tp)
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.Out, c.TensorParallel = outs[w/tp], tp
		opts := Options{Scorer: letterScorer{}, Backend: dpTestCPU()}
		if tp > 1 {
			opts.TP = tc
		}
		if dp > 1 {
			opts.DP = train.DP{Comm: dc}
		}
		ctx, cancel := context.WithCancel(context.Background())
		if tweak != nil {
			tweak(w, &opts, cancel)
		}
		wg.Go(func() {
			defer cancel()
			defer world[w].Close()
			res[w], errs[w] = Run(ctx, c, opts)
		})
	}
	wg.Wait()
	return res, errs
}

// gatherShards assembles the whole model's weights from the TP ranks'
// shards (shards[r] is TP rank r's), as whole's parameter names and shapes.
func gatherShards(t *testing.T, whole *qwen2.Model, shards []*qwen2.Model) map[string][]float32 {
	t.Helper()
	split, err := train.TPSplit(whole.Cfg, len(shards))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, p := range whole.P.List {
		full := make([]float32, len(p.W.F32))
		for r, sh := range shards {
			dim, lo, hi, err := split(p.Name, p.W.Shape, r)
			if err != nil {
				t.Fatal(err)
			}
			src := sh.P.Get(p.Name).W.F32
			if dim < 0 {
				copy(full, src)
				continue
			}
			inner := 1
			for _, d := range p.W.Shape[dim+1:] {
				inner *= d
			}
			outer := len(full) / (p.W.Shape[dim] * inner)
			run := (hi - lo) * inner
			for o := range outer {
				copy(full[(o*p.W.Shape[dim]+lo)*inner:], src[o*run:(o+1)*run])
			}
		}
		out[p.Name] = full
	}
	return out
}

// relDiff is the L2 norm of got-want relative to want's.
func relDiff(got, want []float32) float64 {
	var d, n float64
	for i, v := range want {
		x := float64(got[i]) - float64(v)
		d, n = d+x*x, n+float64(v)*float64(v)
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

// sameAsSingle checks a TP run (its TP ranks' models, its leader's
// metrics) against the single process's.
func sameAsSingle(t *testing.T, what string, want *Result, wantOut string, shards []*qwen2.Model, gotOut string, steps int) {
	t.Helper()
	got := gatherShards(t, want.Model, shards)
	worst := 0.0
	defer func() { t.Logf("%s: weights: largest relative difference %.3g", what, worst) }()
	for _, p := range want.Model.P.List {
		d := relDiff(got[p.Name], p.W.F32)
		worst = max(worst, d)
		if d > tpTol {
			t.Errorf("%s: %s: relative difference %.3g from the single process", what, p.Name, d)
		}
	}
	wantRows, gotRows := readMetrics(t, filepath.Join(wantOut, MetricsFile)), readMetrics(t, filepath.Join(gotOut, MetricsFile))
	if len(gotRows) != len(wantRows) || len(wantRows) != steps {
		t.Fatalf("%s: %d metrics rows, single process %d, want %d", what, len(gotRows), len(wantRows), steps)
	}
	for i, w := range wantRows {
		g := gotRows[i]
		if w.TrainTokens == 0 || w.Loss == 0 {
			t.Errorf("step %d trained on nothing: the comparison means nothing", w.Step)
		}
		// Same tokens, so the same rewards, bit for bit.
		if g.Drawn != w.Drawn || g.UsableGroups != w.UsableGroups || g.TrainedGroups != w.TrainedGroups || g.TrainTokens != w.TrainTokens || g.Reward != w.Reward || g.FormatRate != w.FormatRate {
			t.Errorf("%s: step %d: rollouts differ: %+v\nsingle process %+v", what, w.Step, g, w)
		}
		for _, f := range []struct {
			name      string
			got, want float64
		}{{"loss", g.Loss, w.Loss}, {"kl", g.KL, w.KL}, {"pg_obj", g.PGObj, w.PGObj}, {"entropy", g.Entropy, w.Entropy}, {"grad_norm", g.GradNorm, w.GradNorm}, {"clip_frac", g.ClipFrac, w.ClipFrac}} {
			if math.Abs(f.got-f.want) > tpTol*math.Abs(f.want) {
				t.Errorf("%s: step %d: %s %v, single process %v", what, w.Step, f.name, f.got, f.want)
			}
		}
		t.Logf("%s: step %d: loss %.9g (single %.9g), kl %.6g (single %.6g), reward %.6g, grad norm %.9g (single %.9g)", what, w.Step, g.Loss, w.Loss, g.KL, w.KL, g.Reward, g.GradNorm, w.GradNorm)
	}
}

// TestTensorParallelMatchesSingleProcess: the toy GRPO run of the
// data-parallel test (two steps of two updates, KL to the reference) on
// TP=2 shards rolls out the same tokens, hence the same rewards, and ends
// with the single process's weights and loss, KL and gradient-norm metrics
// to float32 rounding; both TP ranks return the same replica; only the
// leader writes metrics. On TP=2 x DP=2 (four ranks) likewise.
func TestTensorParallelMatchesSingleProcess(t *testing.T) {
	modelDir, prompts := writeToyModel(t)
	dir := t.TempDir()
	cfg := toyConfig(modelDir, prompts, "")
	cfg.Steps, cfg.MiniBatches, cfg.SaveEvery = 2, 2, 0
	// AdamW's first steps are lr*g/(|g|+eps): with the default eps 1e-8
	// that is lr*sign(g), which flips for a weight whose gradient is a
	// cancellation residue near zero when two summation orders round it
	// differently (the k bias's is all residue: softmax cancels it), and
	// the flip then spreads through the next updates (measured: 1e-4
	// relative after four updates at the toy's lr 2e-2).
	// An eps of 1e-5, under the typical |g| of 1e-3, keeps the update
	// normalised and continuous in g, and lr 2e-3 keeps the toy's steps
	// small, so the comparison measures the sharding, not that chaos
	// (largest difference then 2.6e-6, the k bias; 5.5e-7 elsewhere).
	cfg.LR, cfg.Eps = 2e-3, 1e-5
	single := cfg
	single.Out = filepath.Join(dir, "single")
	mismatched := single
	mismatched.TensorParallel = 2
	if _, err := Run(context.Background(), mismatched, Options{Scorer: letterScorer{}}); err == nil || !strings.Contains(err.Error(), "tensor_parallel 2") {
		t.Fatalf("tensor_parallel 2 without a TP group: %v", err)
	}
	if _, err := os.Stat(single.Out); !os.IsNotExist(err) {
		t.Fatalf("the refused run wrote %s (%v)", single.Out, err)
	}
	want, err := Run(context.Background(), single, Options{Scorer: letterScorer{}, Backend: dpTestCPU()})
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name   string
		tp, dp int
	}{{"tp2", 2, 1}, {"tp2xdp2", 2, 2}} {
		t.Run(c.name, func(t *testing.T) {
			outs := make([]string, c.dp)
			for i := range outs {
				outs[i] = filepath.Join(dir, c.name, "replica"+string(rune('0'+i)))
			}
			got, errs := runGrid(t, cfg, c.tp, c.dp, outs, nil)
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			for w := range got {
				if got[w].Steps != int64(cfg.Steps) {
					t.Errorf("rank %d ran %d steps", w, got[w].Steps)
				}
			}
			for d := 0; d < c.dp; d++ {
				shards := make([]*qwen2.Model, c.tp)
				for r := range shards {
					shards[r] = got[d*c.tp+r].Model
				}
				// Every replica holds the same shards, bit for bit: the
				// DP ranks apply the same summed gradient.
				for r, sh := range shards {
					if !slices.Equal(sh.P.Flat, got[r].Model.P.Flat) {
						t.Errorf("replica %d's TP rank %d differs from replica 0's", d, r)
					}
				}
				if d == 0 {
					sameAsSingle(t, c.name, want, single.Out, shards, outs[0], cfg.Steps)
				}
			}
			if ck := train.StepDir(outs[0], int64(cfg.Steps)); !train.IsSharded(ck) || got[0].Checkpoint != ck {
				t.Errorf("checkpoint %q: want %s, sharded", got[0].Checkpoint, ck)
			}
			for d := 1; d < c.dp; d++ {
				if _, err := os.Stat(outs[d]); !os.IsNotExist(err) {
					t.Errorf("replica %d wrote %s (%v); only replica 0 writes", d, outs[d], err)
				}
			}
		})
	}
}

// TestTensorParallelStopsTogether: on TP=2, an interrupt of TP rank 0
// alone (between steps, or in the middle of a step's rollouts) stops both
// ranks at the same step, rank 1 with train.ErrStoppedByPeer, instead of
// leaving rank 1 in a collective until its timeout; both save the sharded
// checkpoint of the last step, and the run resumed from it ends with an
// uninterrupted TP=2 run's metrics and shards, bit for bit. A failing
// oracle on rank 0 (the one that scores) stops rank 1 with errPeerFailed,
// and neither saves.
func TestTensorParallelStopsTogether(t *testing.T) {
	modelDir, prompts := writeToyModel(t)
	dir := t.TempDir()
	cfg := toyConfig(modelDir, prompts, "")
	cfg.Steps, cfg.SaveEvery = 3, 0
	// One prompt's group decodes at a time, so a rollout round has
	// scheduling steps left after its first group completes.
	cfg.RolloutBatch = cfg.GroupSize
	refOut := filepath.Join(dir, "uninterrupted")
	ref, errs := runGrid(t, cfg, 2, 1, []string{refOut}, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	wantRows := stripTiming(readMetrics(t, filepath.Join(refOut, MetricsFile)))

	for _, c := range []struct {
		name  string
		tweak func(o *Options, cancel func())
		// want is rank 0's error; rank 1's is wantPeer.
		want, wantPeer error
	}{
		{"between steps", func(o *Options, cancel func()) {
			o.Hooks.AfterLog = func(step int64) {
				if step == 1 {
					cancel()
				}
			}
		}, context.Canceled, train.ErrStoppedByPeer},
		{"during rollouts", func(o *Options, cancel func()) {
			o.OnRollout = func(step int64, done, _ int) {
				if step == 2 && done == 1 {
					cancel()
				}
			}
		}, context.Canceled, train.ErrStoppedByPeer},
		{"oracle fails", func(o *Options, _ func()) {
			// Step 1 scores its 4 prompts x 8 samples.
			o.Scorer = failAfter{n: 32, calls: new(atomic.Int64)}
		}, errOracle, errPeerFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, c.name)
			res, errs := runGrid(t, cfg, 2, 1, []string{out}, func(w int, o *Options, cancel func()) {
				if w == 0 {
					c.tweak(o, cancel)
				}
			})
			if !errors.Is(errs[0], c.want) || !errors.Is(errs[1], c.wantPeer) {
				t.Fatalf("rank 0 %v, rank 1 %v; want %v and %v", errs[0], errs[1], c.want, c.wantPeer)
			}
			for w, r := range res {
				if r == nil || r.Steps != 1 {
					t.Fatalf("rank %d: result %+v, want 1 step done", w, r)
				}
			}
			cks, err := train.List(out)
			if err != nil {
				t.Fatal(err)
			}
			if c.wantPeer == errPeerFailed {
				if len(cks) != 0 {
					t.Errorf("a failed run saved %v", cks)
				}
				return
			}
			if len(cks) != 1 || cks[0].Step != 1 || !train.IsSharded(cks[0].Dir) || res[0].Checkpoint != cks[0].Dir || res[1].Checkpoint != cks[0].Dir {
				t.Fatalf("checkpoints %v (rank 0 %q, rank 1 %q); want step 1's, sharded", cks, res[0].Checkpoint, res[1].Checkpoint)
			}
			resumed := cfg
			resumed.Resume = true
			got, errs := runGrid(t, resumed, 2, 1, []string{out}, nil)
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("resumed: %v", err)
			}
			if g := stripTiming(readMetrics(t, filepath.Join(out, MetricsFile))); strings.Join(g, "\n") != strings.Join(wantRows, "\n") {
				t.Errorf("resumed metrics differ:\n%s\nuninterrupted:\n%s", strings.Join(g, "\n"), strings.Join(wantRows, "\n"))
			}
			for w := range got {
				if !slices.Equal(got[w].Model.P.Flat, ref[w].Model.P.Flat) {
					t.Errorf("TP rank %d: resumed shard differs from the uninterrupted run's", w)
				}
			}
		})
	}
}

var errOracle = errors.New("oracle down")

// failAfter is letterScorer for its first n calls, then fails.
type failAfter struct {
	n     int64
	calls *atomic.Int64
}

func (f failAfter) Score(ctx context.Context, row oracle.Row) (oracle.Score, error) {
	if f.calls.Add(1) > f.n {
		return oracle.Score{}, errOracle
	}
	return letterScorer{}.Score(ctx, row)
}
