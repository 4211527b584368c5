package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"purpcode/checkpoint"
	"purpcode/dist"
	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/train/optim"
)

const shardBase = "../testdata/base-model"

// SaveGroup gathers a ZeRO-1 optimizer's pieces through optim.Collective.
var _ optim.Collective = (*optim.ZeRO1)(nil)

var shardOpt = OptimizerConfig{Name: "adamw", Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}

// groups runs fn on every rank of a tp × dp grid of in-process ranks (tp
// innermost), each with its Group. A rank whose fn calls runtime.Goexit
// (a simulated crash) closes its comms on the way out, as a dead process
// would. It returns every rank's error.
func groups(t *testing.T, tp, dp int, fn func(ctx context.Context, g Group) error) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var tps, dps []dist.Comm
	for range dp {
		if tp > 1 {
			cs, err := dist.ConnectLocal(ctx, tp, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				tps = append(tps, c)
			}
		} else {
			tps = append(tps, nil)
		}
	}
	dps = make([]dist.Comm, tp*dp)
	if dp > 1 {
		for r := range tp {
			cs, err := dist.ConnectLocal(ctx, dp, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for d := range dp {
				dps[d*tp+r] = cs[d]
			}
		}
	}
	var split qwen2.SplitFunc
	if tp > 1 {
		cfg, err := qwen2.LoadConfig(shardBase)
		if err != nil {
			t.Fatal(err)
		}
		if split, err = TPSplit(cfg, tp); err != nil {
			t.Fatal(err)
		}
	}
	errs := make([]error, tp*dp)
	var wg sync.WaitGroup
	for w := range tp * dp {
		wg.Go(func() {
			g := Group{Split: split}
			if tps[w] != nil {
				g.TP = tps[w]
				defer tps[w].Close()
			}
			if dps[w] != nil {
				g.DP = DP{Comm: dps[w]}
				defer dps[w].Close()
			}
			errs[w] = fmt.Errorf("rank %d exited (simulated crash)", w)
			errs[w] = fn(ctx, g)
		})
	}
	wg.Wait()
	return errs
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

// step applies one AdamW update with a gradient that is a fixed function
// of each element's index in the whole model, so every layout computes
// the same update of the same element and the optimizer state is not
// zero.
func step(p *Policy) {
	r := rand.New(rand.NewPCG(uint64(len(p.Model.P.Grad)), 9))
	for i := range p.Model.P.Grad {
		p.Model.P.Grad[i] = float32(r.NormFloat64())
	}
	p.Opt.Step(p.Model.P.Weights, 1e-3)
}

// snapshot is one rank's weights and optimizer buffers.
type snapshot struct {
	flat  []float32
	opt   map[string][]float32
	steps int64
}

func snap(p *Policy) snapshot {
	s := snapshot{flat: append([]float32(nil), p.Model.P.Flat...), opt: map[string][]float32{}, steps: p.Opt.Steps()}
	p.Opt.PullState()
	for _, n := range OptimizerTensors(p.Opt, p.Model) {
		s.opt[n.Name] = append([]float32(nil), n.T.F32...)
	}
	return s
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func testState(step int64) *State {
	cfg := map[string]string{"lr": "1"}
	return &State{Trainer: "test", Step: step, Config: cfg, ConfigHash: HashConfig(cfg)}
}

type fixedRNG []byte

func (f fixedRNG) MarshalBinary() ([]byte, error) { return f, nil }

// saveTP2 loads the base model at TP 2, takes one optimizer step and
// saves it as step s in out; it returns each rank's state.
func saveTP2(t *testing.T, out string, s int64, dp int) []snapshot {
	t.Helper()
	snaps := make([]snapshot, 2*dp)
	var mu sync.Mutex
	noErrors(t, groups(t, 2, dp, func(ctx context.Context, g Group) error {
		p, err := LoadPolicyGroup(ctx, shardBase, nil, Checkpoint{}, shardOpt, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), g)
		if err != nil {
			return err
		}
		step(p)
		dir, err := p.SaveGroup(ctx, out, 0, testState(s), fixedRNG{7}, nil, g)
		if err != nil {
			return err
		}
		if dir != StepDir(out, s) {
			return fmt.Errorf("SaveGroup returned %s", dir)
		}
		mu.Lock()
		snaps[g.DP.Rank()*2+g.TPRank()] = snap(p)
		mu.Unlock()
		return nil
	}))
	return snaps
}

// resume loads checkpoint ck at the given layout and returns each rank's
// state.
func resume(t *testing.T, ck Checkpoint, tp int) []snapshot {
	t.Helper()
	st, err := LoadState(ck.Dir)
	if err != nil {
		t.Fatal(err)
	}
	snaps := make([]snapshot, tp)
	noErrors(t, groups(t, tp, 1, func(ctx context.Context, g Group) error {
		p, err := LoadPolicyGroup(ctx, shardBase, st, ck, shardOpt, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), g)
		if err != nil {
			return err
		}
		snaps[g.TPRank()] = snap(p)
		return nil
	}))
	return snaps
}

// TestShardedSaveResume saves a TP 2 × DP 2 run (replica 0 writes) and
// resumes it at TP 2 (bit-identical weights, optimizer state and step
// count), at TP 1 and at TP 4 (resharded: every rank's weights and
// optimizer slices are the matching slices of the TP 1 load, whose
// re-slicing at TP 2 is the saved state).
func TestShardedSaveResume(t *testing.T) {
	out := t.TempDir()
	saved := saveTP2(t, out, 1, 2)
	ck, ok, err := Latest(out)
	if err != nil || !ok || ck.Step != 1 || !IsSharded(ck.Dir) {
		t.Fatalf("Latest = %+v %v %v", ck, ok, err)
	}
	if err := VerifyCheckpoint(ck); err != nil {
		t.Fatal(err)
	}
	st, gotCk, err := Begin(out, "test", "metrics.jsonl", true, map[string]string{"lr": "1"})
	if err != nil || gotCk != ck || st.Step != 1 || st.Optimizer != "adamw" || st.OptimizerSteps != 1 || string(st.RNG) != "\x07" {
		t.Fatalf("Begin = %+v %+v %v", st, gotCk, err)
	}
	for _, f := range []string{"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		if _, err := os.Stat(filepath.Join(ck.Dir, f)); err != nil {
			t.Errorf("checkpoint lacks %s: %v", f, err)
		}
	}
	for r := range 2 {
		if !sameBits(saved[r].flat, saved[2+r].flat) {
			t.Fatalf("TP rank %d: the two replicas differ before saving", r)
		}
	}

	same := resume(t, ck, 2)
	for r, got := range same {
		if !sameBits(got.flat, saved[r].flat) || got.steps != 1 {
			t.Errorf("TP 2 rank %d: weights differ from the saved ones (steps %d)", r, got.steps)
		}
		for name, v := range saved[r].opt {
			if !sameBits(got.opt[name], v) {
				t.Errorf("TP 2 rank %d: %s differs", r, name)
			}
		}
	}

	one := resume(t, ck, 1)[0]
	if one.steps != 1 {
		t.Errorf("TP 1: %d optimizer steps", one.steps)
	}
	cfg, _ := qwen2.LoadConfig(shardBase)
	specs := qwen2.ParamSpecs(cfg)
	for _, tp := range []int{2, 4} {
		var ranks []snapshot
		if tp == 2 {
			ranks = saved[:2]
		} else {
			ranks = resume(t, ck, 4)
		}
		split, err := TPSplit(cfg, tp)
		if err != nil {
			t.Fatal(err)
		}
		for r, got := range ranks {
			wantFlat, wantOpt := reslice(t, one, specs, split, r)
			if !sameBits(got.flat, wantFlat) {
				t.Errorf("TP %d rank %d: weights are not the TP 1 load's slices", tp, r)
			}
			for name, v := range wantOpt {
				if !sameBits(got.opt[name], v) {
					t.Errorf("TP %d rank %d: %s is not the TP 1 load's slice", tp, r, name)
				}
			}
			if len(got.opt) != len(wantOpt) || len(wantOpt) == 0 {
				t.Errorf("TP %d rank %d: %d optimizer buffers, want %d", tp, r, len(got.opt), len(wantOpt))
			}
		}
	}
}

// reslice cuts rank r's slices out of a whole model's snapshot.
func reslice(t *testing.T, whole snapshot, specs []qwen2.ParamSpec, split qwen2.SplitFunc, r int) ([]float32, map[string][]float32) {
	t.Helper()
	var flat []float32
	opt := map[string][]float32{}
	off := 0
	for _, s := range specs {
		n := engine.Numel(s.Shape)
		dim, lo, hi, err := split(s.Name, s.Shape, r)
		if err != nil {
			t.Fatal(err)
		}
		cutOf := func(v []float32) []float32 {
			if dim < 0 {
				return append([]float32(nil), v...)
			}
			outer, inner := engine.Numel(s.Shape[:dim]), engine.Numel(s.Shape[dim+1:])
			var out []float32
			for o := range outer {
				out = append(out, v[(o*s.Shape[dim]+lo)*inner:(o*s.Shape[dim]+hi)*inner]...)
			}
			return out
		}
		flat = append(flat, cutOf(whole.flat[off:off+n])...)
		for _, b := range []string{"exp_avg/", "exp_avg_sq/"} {
			opt[b+s.Name] = cutOf(whole.opt[b+s.Name])
		}
		off += n
	}
	return flat, opt
}

// TestShardedSaveCrashKeepsPrevious: a rank that dies after writing its
// shard, or a leader that dies with the manifest written but before the
// rename, leaves the previous checkpoint the latest (and intact); a later
// save of the same step succeeds over the leftovers.
func TestShardedSaveCrashKeepsPrevious(t *testing.T) {
	out := t.TempDir()
	saveTP2(t, out, 1, 1)
	for _, crash := range []struct {
		rank  int
		stage string
	}{{1, "model"}, {0, "model"}, {0, "state"}} {
		errs := groups(t, 2, 1, func(ctx context.Context, g Group) error {
			p, err := LoadPolicyGroup(ctx, shardBase, nil, Checkpoint{}, shardOpt, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), g)
			if err != nil {
				return err
			}
			hook := func(stage string) {
				if g.TPRank() == crash.rank && stage == crash.stage {
					runtime.Goexit()
				}
			}
			_, err = p.SaveGroup(ctx, out, 0, testState(2), fixedRNG{1}, hook, g)
			return err
		})
		other := 1 - crash.rank
		if errs[other] == nil {
			t.Errorf("crash of rank %d at %q: rank %d's save succeeded", crash.rank, crash.stage, other)
		}
		ck, ok, err := Latest(out)
		if err != nil || !ok || ck.Step != 1 {
			t.Fatalf("crash of rank %d at %q: latest %+v %v %v, want step 1", crash.rank, crash.stage, ck, ok, err)
		}
		if err := VerifyCheckpoint(ck); err != nil {
			t.Fatalf("crash of rank %d at %q: %v", crash.rank, crash.stage, err)
		}
	}
	saveTP2(t, out, 2, 1)
	if ck, _, _ := Latest(out); ck.Step != 2 {
		t.Fatalf("after a clean save: latest %+v", ck)
	}
	if err := CleanStale(out); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 2 {
		t.Errorf("out holds %d entries, want the two checkpoints", len(entries))
	}
}

// TestShardedCheckpointDamage: a sharded checkpoint missing a shard file
// is not listed and fails verification naming the file; one with a
// changed byte is listed (sizes agree) but fails verification on its
// hash, and LastIntact falls back to the previous one.
func TestShardedCheckpointDamage(t *testing.T) {
	out := t.TempDir()
	saveTP2(t, out, 1, 1)
	saveTP2(t, out, 2, 1)
	dir := StepDir(out, 2)
	shard := filepath.Join(dir, shardFileName(1, 2))
	b, err := os.ReadFile(shard)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x40
	if err := os.WriteFile(shard, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if ck, _, _ := Latest(out); ck.Step != 2 {
		t.Errorf("a damaged shard of the same size: latest %+v", ck)
	}
	err = VerifyCheckpoint(Checkpoint{Dir: dir, Step: 2})
	if err == nil || !strings.Contains(err.Error(), "file "+shardFileName(1, 2)+" has SHA-256") {
		t.Errorf("verify a damaged shard: %v", err)
	}
	if ck, ok, err := LastIntact(out); err != nil || !ok || ck.Step != 1 {
		t.Errorf("LastIntact = %+v %v %v, want step 1", ck, ok, err)
	}
	os.Remove(shard)
	if ck, _, _ := Latest(out); ck.Step != 1 {
		t.Errorf("a missing shard: latest %+v, want step 1", ck)
	}
	err = VerifyCheckpoint(Checkpoint{Dir: dir, Step: 2})
	if err == nil || !strings.Contains(err.Error(), shardFileName(1, 2)+" listed in the manifest is missing") {
		t.Errorf("verify a missing shard: %v", err)
	}
	if _, err := LoadState(dir); err != nil {
		t.Errorf("LoadState of a sharded dir: %v", err)
	}
}

// TestSaveGroupWithoutTP: data parallelism alone saves a plain checkpoint
// from rank 0, and every rank returns its directory; resuming it at TP 2
// slices the whole tensors of the model and optimizer files.
func TestSaveGroupWithoutTP(t *testing.T) {
	out := t.TempDir()
	var saved snapshot
	noErrors(t, groups(t, 1, 2, func(ctx context.Context, g Group) error {
		p, err := LoadPolicyGroup(ctx, shardBase, nil, Checkpoint{}, shardOpt, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), g)
		if err != nil {
			return err
		}
		step(p)
		if g.DP.Leader() {
			saved = snap(p)
		}
		dir, err := p.SaveGroup(ctx, out, 0, testState(3), fixedRNG{1}, nil, g)
		if err != nil {
			return err
		}
		if dir != StepDir(out, 3) {
			return fmt.Errorf("dir %s", dir)
		}
		// Every rank returns only once the checkpoint is visible.
		if _, err := os.Stat(filepath.Join(dir, StateDir, StateFile)); err != nil {
			return err
		}
		return nil
	}))
	if ck, _, _ := Latest(out); ck.Step != 3 || IsSharded(ck.Dir) {
		t.Fatalf("latest %+v", ck)
	}
	if _, err := checkpoint.Open(StepDir(out, 3)); err != nil {
		t.Fatal(err)
	}
	cfg, _ := qwen2.LoadConfig(shardBase)
	split, err := TPSplit(cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	for r, got := range resume(t, Checkpoint{Dir: StepDir(out, 3), Step: 3}, 2) {
		wantFlat, wantOpt := reslice(t, saved, qwen2.ParamSpecs(cfg), split, r)
		if !sameBits(got.flat, wantFlat) || got.steps != 1 {
			t.Errorf("TP 2 rank %d from a plain checkpoint: weights are not the saved model's slices", r)
		}
		for name, v := range wantOpt {
			if !sameBits(got.opt[name], v) {
				t.Errorf("TP 2 rank %d from a plain checkpoint: %s is not the saved slice", r, name)
			}
		}
	}
}
