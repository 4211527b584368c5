package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"purpcode/checkpoint"
	"purpcode/dist"
	"purpcode/engine"
	"purpcode/internal/yamlconf"
	"purpcode/model/qwen2"
	"purpcode/train/optim"
)

// tokenizerFiles are copied from the base model into every checkpoint so
// that it loads unchanged in transformers and vLLM.
var tokenizerFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
	"vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
}

// WriteMetricsRow appends one JSON line.
func WriteMetricsRow(f *os.File, row any) error {
	b, err := json.Marshal(row)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return err
}

// ReopenMetrics truncates metrics.jsonl back to the rows of steps <= step
// (dropping rows logged after the checkpoint and any torn last line), so
// that a resumed run's file equals an uninterrupted run's, and opens it for
// appending.
func ReopenMetrics(path string, step int64) (*os.File, error) {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var keep bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(old))
	sc.Buffer(make([]byte, 1<<16), 1<<26)
	for sc.Scan() {
		var r struct {
			Step *int64 `json:"step"`
		}
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Step == nil || *r.Step > step {
			break
		}
		keep.Write(sc.Bytes())
		keep.WriteByte('\n')
	}
	if err := checkpoint.AtomicWriteFile(path, keep.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
}

// CheckFreshOut refuses to start a new run over an existing one, so that
// nothing already saved is overwritten.
func CheckFreshOut(out, metricsFile string) error {
	cks, err := List(out)
	if err != nil {
		return err
	}
	if len(cks) > 0 {
		return fmt.Errorf("output dir %s already holds checkpoints (newest %s); pass --resume to continue that run or choose another --out", out, cks[len(cks)-1].Dir)
	}
	if _, err := os.Stat(filepath.Join(out, metricsFile)); err == nil {
		return fmt.Errorf("output dir %s already holds %s; pass --resume to continue that run or choose another --out", out, metricsFile)
	}
	return nil
}

// OptimizerConfig selects and configures the optimizer of a run.
type OptimizerConfig struct {
	Name                  string // adamw | sgd
	Beta1, Beta2, Eps     float64
	WeightDecay, Momentum float64
	// ZeRO 1 shards AdamW's state and fp32 master over the data-parallel
	// ranks (optim.ZeRO1); Offload keeps those shards in host memory.
	ZeRO    int
	Offload bool
}

// Check adds the problems of the sharding keys (zero, optimizer_offload)
// to p, under their config-file names.
func (cfg OptimizerConfig) Check(p *Problems) {
	switch {
	case cfg.ZeRO != 0 && cfg.ZeRO != 1:
		p.Add("zero", "%d: want 0 (off) or 1 (optimizer state sharded over the data-parallel ranks)", cfg.ZeRO)
	case cfg.ZeRO == 1 && cfg.Name == "sgd":
		p.Add("zero", "1 shards AdamW only; optimizer is sgd")
	}
	if cfg.Offload && cfg.ZeRO != 1 {
		p.Add("optimizer_offload", "needs zero: 1 (the offloaded state is the rank's ZeRO-1 shard)")
	}
}

// Storage is what a rank of dp keeps of a model's parameters on its
// device under these settings: with ZeRO 1 only the rank's chunk of the
// fp32 master, the one optim.ZeRO1 updates (none of it with Offload, the
// chunk then living in host memory); everything otherwise.
func (cfg OptimizerConfig) Storage(dp DP) qwen2.Storage {
	if cfg.ZeRO != 1 {
		return qwen2.Storage{}
	}
	return qwen2.Storage{ZeRO: true, Ranks: dp.Size(), Rank: dp.Rank(), Offload: cfg.Offload}
}

// NewOptimizer builds the configured optimizer over m's parameters, on m's
// backend, for one process.
func NewOptimizer(cfg OptimizerConfig, m *qwen2.Model) (optim.Optimizer, error) {
	return newOptimizer(cfg, m, DP{})
}

// newOptimizer is NewOptimizer for a rank of dp: with cfg.ZeRO 1 the
// optimizer shards its state over dp's ranks.
func newOptimizer(cfg OptimizerConfig, m *qwen2.Model, dp DP) (optim.Optimizer, error) {
	segs := Segments(m.P)
	p := NewProblems("optimizer config")
	cfg.Check(p)
	if err := p.Err(); err != nil {
		return nil, err
	}
	if cfg.ZeRO == 1 {
		return optim.NewZeRO1(m.Backend(), segs, m.P.Count(), optim.AdamWConfig{Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps, WeightDecay: cfg.WeightDecay}, dp.Comm, cfg.Offload)
	}
	if cfg.Name == "sgd" {
		if m.P.Weights.Master.OnDevice() {
			return nil, fmt.Errorf("optimizer sgd runs on the CPU backend only (device %s); use adamw", m.Backend().Name())
		}
		return optim.NewSGD(segs, m.P.Count(), optim.SGDConfig{Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay}), nil
	}
	return optim.NewAdamW(m.Backend(), segs, m.P.Count(), optim.AdamWConfig{Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps, WeightDecay: cfg.WeightDecay}), nil
}

// Segments describes a model's parameters inside Params.Flat for the
// optimizers.
func Segments(ps *qwen2.Params) []optim.Segment {
	segs := make([]optim.Segment, len(ps.List))
	off := 0
	for i, p := range ps.List {
		n := p.W.Numel()
		segs[i] = optim.Segment{Name: p.Name, Off: off, N: n, Decay: p.Decay}
		off += n
	}
	return segs
}

// OptimizerTensors views the optimizer buffers per parameter
// ("exp_avg/model.layers.0.mlp.up_proj.weight"), shaped like the weights.
func OptimizerTensors(opt optim.Optimizer, m *qwen2.Model) []checkpoint.Named {
	var out []checkpoint.Named
	for _, b := range opt.State() {
		off := 0
		for _, p := range m.P.List {
			n := p.W.Numel()
			out = append(out, checkpoint.Named{Name: b.Name + "/" + p.Name, T: engine.FromF32(b.Data[off:off+n:off+n], p.W.Shape...)})
			off += n
		}
	}
	return out
}

// readTokenizerFiles reads the tokenizer and generation files of a model
// directory that exist, to copy them into checkpoints.
func readTokenizerFiles(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, name := range tokenizerFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("copy tokenizer files: %w", err)
		}
		files[name] = b
	}
	return files, nil
}

// Begin decides between a fresh run and a resumed one before anything in
// out changes. With resume it returns the newest complete checkpoint's
// state (nil when there is none yet: the run starts from the beginning),
// after checking it was written by trainer with the same settings; without
// resume it refuses an out that already holds a run.
func Begin(out, trainer, metricsFile string, resume bool, settings map[string]string) (*State, Checkpoint, error) {
	if !resume {
		return nil, Checkpoint{}, CheckFreshOut(out, metricsFile)
	}
	ck, ok, err := Latest(out)
	if err != nil || !ok {
		return nil, Checkpoint{}, err
	}
	st, err := LoadState(ck.Dir)
	if err != nil {
		return nil, Checkpoint{}, err
	}
	if st.Trainer != trainer {
		return nil, Checkpoint{}, fmt.Errorf("resume %s: checkpoint of trainer %q, not %s", ck.Dir, st.Trainer, trainer)
	}
	if err := st.CheckCompatible(settings); err != nil {
		return nil, Checkpoint{}, fmt.Errorf("resume %s: %w", ck.Dir, err)
	}
	return st, ck, nil
}

// LoadYAMLFile decodes a YAML run config into cfg (a pointer to a config
// struct): keys not in the file keep cfg's values, unknown keys are errors
// so that a typo is not silently ignored, and every error names the key and
// line as written in the file.
func LoadYAMLFile(path string, cfg any) error { return yamlconf.DecodeFile(path, cfg) }

// Policy is the model and optimizer a trainer continues from.
type Policy struct {
	Model *qwen2.Model
	Opt   optim.Optimizer
	// Files are the base model's tokenizer and generation files, copied
	// into every checkpoint so each one is a complete model directory.
	Files map[string][]byte
}

// LoadPolicy loads the model to train — from the resumed checkpoint when st
// is not nil, else from baseDir — builds the optimizer and restores its
// state, and reads baseDir's tokenizer files for the checkpoints. A
// checkpoint whose model shape differs from baseDir's is refused.
func LoadPolicy(baseDir string, st *State, from Checkpoint, oc OptimizerConfig, be engine.Backend) (*Policy, error) {
	return loadPolicy(baseDir, st, from, oc, be, DP{})
}

// loadPolicy is LoadPolicy for a rank of dp (see newOptimizer).
func loadPolicy(baseDir string, st *State, from Checkpoint, oc OptimizerConfig, be engine.Backend, dp DP) (*Policy, error) {
	dir := baseDir
	if st != nil {
		dir = from.Dir
	}
	m, err := qwen2.LoadWith(dir, be, oc.Storage(dp))
	if err != nil {
		return nil, err
	}
	if st != nil {
		if err := sameModel(m.Cfg, baseDir, from); err != nil {
			return nil, err
		}
	}
	files, err := readTokenizerFiles(baseDir)
	if err != nil {
		return nil, err
	}
	opt, err := newOptimizer(oc, m, dp)
	if err != nil {
		return nil, err
	}
	p := &Policy{Model: m, Opt: opt, Files: files}
	if st != nil {
		if st.Optimizer != p.Opt.Name() {
			return nil, fmt.Errorf("resume %s: optimizer %s in checkpoint, %s configured", from.Dir, st.Optimizer, p.Opt.Name())
		}
		if err := LoadOptimizer(from.Dir, OptimizerTensors(p.Opt, m)); err != nil {
			return nil, err
		}
		p.Opt.PushState()
		optim.ReleaseState(p.Opt)
		p.Opt.SetSteps(st.OptimizerSteps)
	}
	return p, nil
}

// sameModel refuses to resume from a checkpoint whose model (cfg) is not
// the run's base model's shape.
func sameModel(cfg *qwen2.Config, baseDir string, from Checkpoint) error {
	base, err := qwen2.LoadConfig(baseDir)
	if err != nil {
		return err
	}
	if cfg.Vocab != base.Vocab || cfg.Hidden != base.Hidden || cfg.Layers != base.Layers {
		return fmt.Errorf("resume %s: checkpoint model differs from %s", from.Dir, baseDir)
	}
	return nil
}

// Save writes the policy as checkpoint st.Step in out: the model (F32, with
// p.Files copied in), st with the optimizer's name and step count and rng's
// state filled in, and the optimizer buffers; then it prunes out to the
// newest keep checkpoints. hook is SaveOptions.Hook. It returns the
// checkpoint directory.
func (p *Policy) Save(out string, keep int, st *State, rng encoding.BinaryMarshaler, hook func(string)) (string, error) {
	st.Optimizer, st.OptimizerSteps = p.Opt.Name(), p.Opt.Steps()
	p.Opt.PullState()
	rs, err := rng.MarshalBinary()
	if err != nil {
		return "", fmt.Errorf("save %s: random state: %w", out, err)
	}
	st.RNG = rs
	dir, err := Save(out, SaveOptions{
		WriteModel: func(dir string) error {
			return p.Model.Save(dir, qwen2.SaveOptions{DType: engine.F32, Files: p.Files})
		},
		State: st, Optimizer: OptimizerTensors(p.Opt, p.Model), Hook: hook,
	})
	if err != nil {
		return "", err
	}
	return dir, Prune(out, keep)
}

// OpenMetrics prepares the output directory (creating it, removing the
// temp dirs of an interrupted save and, when resuming, checkpoints beyond
// the newest keep) and opens its metrics log: truncated back to the
// resumed step when st is not nil, else new, starting with first when
// first is not nil.
func OpenMetrics(out, metricsFile string, st *State, keep int, first any) (*os.File, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	if err := CleanStale(out); err != nil {
		return nil, err
	}
	path := filepath.Join(out, metricsFile)
	if st != nil {
		// A crash between a save's rename and its pruning leaves one
		// checkpoint more than keep, which no later save prunes when the
		// run resumes at its last step. The newest, which every rank
		// resumes from, is never pruned.
		if err := Prune(out, keep); err != nil {
			return nil, err
		}
		f, err := ReopenMetrics(path, st.Step)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		return f, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err == nil && first != nil {
		if err = WriteMetricsRow(f, first); err != nil {
			f.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return f, nil
}

// DP is a trainer's place in a data-parallel group: every rank holds the
// whole model, computes the gradients of its share of a step's data, and
// the gradients are summed across ranks (in rank order, so every rank gets
// the same bits) before clipping, so every rank applies the same update.
// The zero value is a single process.
type DP struct {
	// Comm is the group; nil for a single process.
	Comm dist.Comm
}

// Size is the number of ranks (1 for a single process).
func (d DP) Size() int {
	if d.Comm == nil {
		return 1
	}
	return d.Comm.Size()
}

// Rank is this process's rank (0 for a single process).
func (d DP) Rank() int {
	if d.Comm == nil {
		return 0
	}
	return d.Comm.Rank()
}

// Leader reports whether this rank writes the run's files (metrics,
// checkpoints): rank 0.
func (d DP) Leader() bool { return d.Rank() == 0 }

// Share is the [lo, hi) range of n items this rank works on: contiguous
// ranges in rank order, so the concatenation over ranks is 0..n in order
// (some ranks get none when n < Size()).
func (d DP) Share(n int) (lo, hi int) { return dist.ChunkRange(n, d.Size(), d.Rank()) }

// collectiveCtx detaches the collectives from the run's cancellation: an
// interrupt must end every rank at the same step, which the trainers agree
// on with AnyTrue, rather than break the group mid-call. A deadline ctx
// carries is kept (see saveContext); otherwise the Comm's own per-call
// timeout bounds every call.
func collectiveCtx(ctx context.Context) context.Context {
	d, ok := ctx.Deadline()
	detached := context.WithoutCancel(ctx)
	if !ok {
		return detached
	}
	return deadlineOnly{Context: detached, deadline: d}
}

// deadlineOnly is a context that reports a deadline but is never
// cancelled: the Comm turns the deadline into its socket deadlines.
type deadlineOnly struct {
	context.Context
	deadline time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.deadline, true }

// SaveTimeout bounds each collective of a checkpoint save. The ranks that
// do not write (and the writers waiting for the leader to publish and
// prune) wait inside one collective while multi-gigabyte shard files are
// written and hashed: a 32B shard at TP 8 is ~49 GB, far past the Comm's
// default per-call timeout of minutes. A dead rank is still noticed at
// once (its connections close); only a hung one waits this long.
const SaveTimeout = time.Hour

// saveContext is the context of a save's collectives: detached from the
// run's cancellation (an interrupt is what asks for the save) and bounded
// by SaveTimeout.
func saveContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), SaveTimeout)
}

// SumGrad replaces g (a backend tensor) with the sum of every rank's g.
// host is a scratch buffer of g's length used to stage a device tensor
// (on the CPU backend g's own memory is summed in place).
func (d DP) SumGrad(ctx context.Context, be engine.Backend, g *engine.Tensor, host []float32) error {
	if d.Size() == 1 {
		return nil
	}
	buf, staged := g.F32, g.OnDevice() || g.F32 == nil
	if staged {
		if len(host) != g.Numel() {
			return fmt.Errorf("data parallel: gradient staging buffer of %d values for %d", len(host), g.Numel())
		}
		be.Download(host, g)
		buf = host
	}
	if err := d.Comm.AllReduceSum(collectiveCtx(ctx), buf); err != nil {
		return fmt.Errorf("data parallel: gradient all-reduce: %w", err)
	}
	if staged {
		be.Upload(g, buf)
	}
	return nil
}

// SumF64Slice replaces buf with the element-wise sum of every rank's buf
// (float64, in rank order; the same bits on every rank).
func (d DP) SumF64Slice(ctx context.Context, buf []float64) error {
	if d.Size() == 1 {
		return nil
	}
	if err := d.Comm.AllReduceSumF64(collectiveCtx(ctx), buf); err != nil {
		return fmt.Errorf("data parallel: all-reduce: %w", err)
	}
	return nil
}

// gather returns every rank's vals (all ranks pass the same length), in
// rank order: each rank broadcasts its raw float64 bits in turn, so the
// values arrive exactly (the Comm's sums are fp32).
func (d DP) gather(ctx context.Context, vals []float64) ([][]float64, error) {
	out := make([][]float64, d.Size())
	if d.Size() == 1 {
		out[0] = vals
		return out, nil
	}
	buf := make([]byte, 8*len(vals))
	for r := range out {
		if r == d.Rank() {
			for i, v := range vals {
				binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
			}
		}
		if err := d.Comm.Broadcast(collectiveCtx(ctx), buf, r); err != nil {
			return nil, fmt.Errorf("data parallel: gather from rank %d: %w", r, err)
		}
		out[r] = make([]float64, len(vals))
		for i := range vals {
			out[r][i] = math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:]))
		}
	}
	return out, nil
}

// SumF64 replaces each of vals with its sum over the ranks, added in rank
// order in float64 (exact for counts), the same bits on every rank.
func (d DP) SumF64(ctx context.Context, vals ...*float64) error {
	if d.Size() == 1 {
		return nil
	}
	mine := make([]float64, len(vals))
	for i, v := range vals {
		mine[i] = *v
	}
	all, err := d.gather(ctx, mine)
	if err != nil {
		return err
	}
	for i, v := range vals {
		*v = 0
		for _, r := range all {
			*v += r[i]
		}
	}
	return nil
}

// AnyTrue reports whether b is true on any rank (e.g. "this rank was
// interrupted"), so that all ranks take the same branch.
func (d DP) AnyTrue(ctx context.Context, b bool) (bool, error) {
	v := 0.0
	if b {
		v = 1
	}
	if err := d.SumF64(ctx, &v); err != nil {
		return false, err
	}
	return v > 0, nil
}

// Barrier waits for every rank (a no-op for a single process).
func (d DP) Barrier(ctx context.Context) error {
	if d.Size() == 1 {
		return nil
	}
	if err := d.Comm.Barrier(collectiveCtx(ctx)); err != nil {
		return fmt.Errorf("data parallel: barrier: %w", err)
	}
	return nil
}

// GradSum accumulates a step's gradients over several backward passes
// (micro-batches, packed rows) and, under data parallelism, over the ranks.
//
// When the gradients live in host memory each pass's gradient is computed
// from zero and added in float64, where sums of a few fp32 terms are exact,
// and the step's gradient is rounded to fp32 once. Its value then does not
// depend on how the passes are grouped: ranks that each sum their share and
// then sum the ranks' partial sums (AllReduceSumF64) get the same bits as
// one process summing them all. That matters beyond the last bit: Adam
// divides each gradient by its own running magnitude, so parameters whose
// true gradient is zero (the k_proj bias, which softmax cancels) are driven
// by rounding noise, and fp32 sums grouped differently move them
// differently. On a device the gradients accumulate in place, as the
// backward passes write them, and are summed over ranks in fp32 through a
// host copy.
type GradSum struct {
	m      *qwen2.Model
	exact  bool      // gradients in host memory: sum in float64
	acc    []float64 // the running sum, once there are two terms
	passes int       // passes since Begin
	stage  []float32 // host copy of device gradients, for the all-reduce
}

// NewGradSum returns an accumulator for m's gradients.
func NewGradSum(m *qwen2.Model) *GradSum {
	g := m.P.Weights.Grad
	return &GradSum{m: m, exact: !g.OnDevice() && g.F32 != nil}
}

// Begin zeroes the gradients and the running sum.
func (s *GradSum) Begin() {
	s.m.P.ZeroGrad()
	s.passes = 0
}

// Pass runs one pass that adds into the model's gradients (forward, loss
// and backward: the loss may write the lm head's gradient itself) and adds
// its gradient to the sum. The first pass's gradient stays where the pass
// wrote it (a step of one pass costs nothing extra); the float64 sum starts
// with the second.
func (s *GradSum) Pass(pass func()) {
	if !s.exact {
		pass()
		return
	}
	if s.passes == 1 {
		s.load()
	}
	if s.passes > 0 {
		s.m.P.ZeroGrad()
	}
	pass()
	if s.passes > 0 {
		for i, v := range s.m.P.Weights.Grad.F32 {
			s.acc[i] += float64(v)
		}
	}
	s.passes++
}

// load starts the float64 sum from the gradients.
func (s *GradSum) load() {
	if s.acc == nil {
		s.acc = make([]float64, s.m.P.Count())
	}
	for i, v := range s.m.P.Weights.Grad.F32 {
		s.acc[i] = float64(v)
	}
}

// End sums the gradients over dp's ranks (nothing to sum for one process)
// and leaves the step's gradient in the model's fp32 gradients, the same
// bits on every rank.
func (s *GradSum) End(ctx context.Context, dp DP) error {
	if !s.exact {
		if dp.Size() > 1 && s.stage == nil {
			s.stage = make([]float32, s.m.P.Count())
		}
		return dp.SumGrad(ctx, s.m.Backend(), s.m.P.Weights.Grad, s.stage)
	}
	if s.passes <= 1 {
		if dp.Size() == 1 {
			return nil // the one term is the sum
		}
		s.load()
	}
	if err := dp.SumF64Slice(ctx, s.acc); err != nil {
		return err
	}
	g := s.m.P.Weights.Grad.F32
	for i, v := range s.acc {
		g[i] = float32(v)
	}
	return nil
}

// ErrStoppedByPeer ends a data-parallel rank that was not interrupted (or
// did not fail) itself when another rank was: every rank stops at the same
// step, and rank 0 saves that step.
var ErrStoppedByPeer = errors.New("stopped: another rank of the data-parallel group was interrupted or failed")

// MaxF64 replaces *v with its largest value over the ranks.
func (d DP) MaxF64(ctx context.Context, v *float64) error {
	all, err := d.gather(ctx, []float64{*v})
	if err != nil {
		return err
	}
	for _, r := range all {
		*v = max(*v, r[0])
	}
	return nil
}

// GatherBytes returns every rank's b (lengths may differ), in rank order.
func (d DP) GatherBytes(ctx context.Context, b []byte) ([][]byte, error) {
	lens, err := d.gather(ctx, []float64{float64(len(b))})
	if err != nil || d.Size() == 1 {
		return [][]byte{b}, err
	}
	out := make([][]byte, d.Size())
	for r := range out {
		buf := b
		if r != d.Rank() {
			buf = make([]byte, int(lens[r][0]))
		}
		if err := d.Comm.Broadcast(collectiveCtx(ctx), buf, r); err != nil {
			return nil, fmt.Errorf("data parallel: gather from rank %d: %w", r, err)
		}
		out[r] = buf
	}
	return out, nil
}

// ShareOf is Share for rank r.
func (d DP) ShareOf(n, r int) (lo, hi int) { return dist.ChunkRange(n, d.Size(), r) }

// DevicePeak is be's measured peak memory by category when be accounts
// its allocations (a device backend), else nil.
func DevicePeak(be engine.Backend) map[string]int64 {
	if mr, ok := be.(engine.MemoryReporter); ok {
		return mr.PeakBytes()
	}
	return nil
}

// NewGroup is a rank's Group from its DP group and TP communicator (nil
// without tensor parallelism), checked against the run's config before
// anything is written: tensorParallel (the config's tensor_parallel) must
// be tp's size (1 without tp), and cfg must split over it (TPSplit).
func NewGroup(dp DP, tp dist.Comm, tensorParallel int, cfg *qwen2.Config) (Group, error) {
	g := Group{DP: dp, TP: tp}
	if g.TPSize() != tensorParallel {
		if tp == nil {
			return g, fmt.Errorf("tensor_parallel %d: this process is not in a tensor-parallel group; start a multiple of %d ranks (purpcode launch --nproc-per-node N, torchrun or srun)", tensorParallel, tensorParallel)
		}
		return g, fmt.Errorf("tensor_parallel %d, but the tensor-parallel group has %d ranks", tensorParallel, g.TPSize())
	}
	if tp == nil {
		return g, nil
	}
	split, err := TPSplit(cfg, g.TPSize())
	if err != nil {
		return g, fmt.Errorf("tensor_parallel %d: %w", g.TPSize(), err)
	}
	g.Split = split
	return g, nil
}

// Barrier waits for every rank of g's world: all of the rank's DP group,
// then all of its TP group. A rank leaves the TP barrier only after every
// member of its TP group has left its own DP barrier, which each left only
// once its whole DP group arrived, so every rank of the world has arrived.
func (g Group) Barrier(ctx context.Context) error {
	if err := g.DP.Barrier(ctx); err != nil {
		return err
	}
	if g.TP == nil {
		return nil
	}
	if err := g.TP.Barrier(collectiveCtx(ctx)); err != nil {
		return fmt.Errorf("tensor parallel: barrier: %w", err)
	}
	return nil
}

// AnyTrue reports whether b is true on any rank of g's world (e.g. "this
// rank was interrupted"), the same answer on every rank: the DP group's
// answer, then the TP group's over those (which covers every rank, as
// Barrier's argument shows).
func (g Group) AnyTrue(ctx context.Context, b bool) (bool, error) {
	n, err := g.CountTrue(ctx, b)
	if err != nil {
		return false, err
	}
	return n[0] > 0, nil
}

// CountTrue returns, for each flag, on how many ranks of g's world it is
// true (the same answer on every rank): summed over the DP group, then
// over the TP group, which covers every rank once (TP-innermost grid).
func (g Group) CountTrue(ctx context.Context, flags ...bool) ([]int, error) {
	buf := make([]float64, len(flags))
	for i, f := range flags {
		if f {
			buf[i] = 1
		}
	}
	if err := g.DP.SumF64Slice(ctx, buf); err != nil {
		return nil, err
	}
	if g.TP != nil {
		if err := g.TP.AllReduceSumF64(collectiveCtx(ctx), buf); err != nil {
			return nil, fmt.Errorf("tensor parallel: all-reduce: %w", err)
		}
	}
	out := make([]int, len(buf))
	for i, v := range buf {
		out[i] = int(v)
	}
	return out, nil
}

// ClipGrad clips m's accumulated gradient to maxNorm (0: no clipping) by
// the whole model's norm, and returns that norm before clipping. A TP
// shard's own norm does not tell the model's, so on a shard (sharded) the
// norm is qwen2.Model.GradNorm, one all-reduce over TP, whose failure is
// returned; the scaling rule is optim.ClipGradNorm's.
func ClipGrad(m *qwen2.Model, sharded bool, maxNorm float64) (float64, error) {
	g := m.P.Weights.Grad
	if !sharded {
		return optim.ClipGradNorm(m.Backend(), g, maxNorm), nil
	}
	norm, err := m.GradNorm()
	if err != nil {
		return norm, fmt.Errorf("gradient norm: %w", err)
	}
	if maxNorm > 0 {
		if coef := maxNorm / (norm + 1e-6); coef < 1 {
			m.Backend().Scale(g, float32(coef))
		}
	}
	return norm, nil
}
