package sft

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/plan"
	"purpcode/tokenizer"
	"purpcode/train"
	"purpcode/train/data"
	"purpcode/train/optim"
)

// MetricsFile is the per-step log written in the output directory.
const MetricsFile = "metrics.jsonl"

// seedStream separates the data-order generator from other uses of the
// run's seed.
const seedStream = 0x73667464617461 // "sftdata"

// Metrics is one row of metrics.jsonl, written after every optimizer step.
// TokensPerS and ElapsedS are wall-clock measurements; every other field is
// reproducible (a resumed run writes the same values as an uninterrupted
// one).
type Metrics struct {
	Step         int64    `json:"step"`
	Epoch        float64  `json:"epoch"` // epochs completed, fractional
	Loss         float64  `json:"loss"`
	LR           float64  `json:"lr"`
	GradNorm     float64  `json:"grad_norm"` // before clipping
	TargetTokens int      `json:"target_tokens"`
	Tokens       int      `json:"tokens"` // non-padding input tokens
	TokensPerS   float64  `json:"tokens_per_s"`
	ElapsedS     float64  `json:"elapsed_s"`
	EvalLoss     *float64 `json:"eval_loss,omitempty"`
	// DevicePeak is the device memory held at its peak so far, by category
	// (device backends only; see engine.MemoryReporter).
	DevicePeak map[string]int64 `json:"device_peak_bytes,omitempty"`
}

// DataEvent is the first row of metrics.jsonl (step 0): what loading kept,
// truncated and skipped.
type DataEvent struct {
	Step  int64       `json:"step"`
	Event string      `json:"event"` // "data"
	Train data.Stats  `json:"train"`
	Eval  *data.Stats `json:"eval,omitempty"`
}

// Hooks are test seams; nil members do nothing.
type Hooks struct {
	// AfterLog runs right after a step's metrics row is written.
	AfterLog func(step int64)
	// Save runs at the stages of a checkpoint save (see train.SaveOptions).
	Save func(stage string)
}

// Options are the run's non-config inputs.
type Options struct {
	Backend engine.Backend // nil: engine.NewDefaultCPU
	Log     io.Writer      // run log; nil discards
	OnStep  func(row Metrics, totalSteps int64)
	Hooks   Hooks

	// OnStart is called once before the first step with the step the run
	// starts from (past 0 when resumed) and the run's total.
	OnStart func(step, totalSteps int64)

	// DP, when its group has several ranks, makes this process one rank of
	// a data-parallel run: every rank runs Run with the same config, takes
	// its Share of each step's micro-batches, and the gradients and losses
	// are summed over the ranks before clipping, so every rank applies the
	// same update. Only rank 0 writes metrics.jsonl and checkpoints
	// (sharded ones under TP: see there).
	DP train.DP

	// TP, when not nil, is this rank's tensor-parallel group: its ranks
	// hold the shards of one model replica (cfg.TensorParallel must equal
	// its size) and run the same micro-batches; replica 0's ranks each
	// write their shard of every checkpoint (train.Policy.SaveGroup). DP
	// then groups the ranks with the same TP rank of every replica. TP
	// rank 0 of DP rank 0 writes metrics.jsonl and the run's log lines.
	TP dist.Comm
}

// Result summarises a finished run.
type Result struct {
	Steps      int64
	Loss       float64 // last step's loss
	EvalLoss   *float64
	Checkpoint string       // newest checkpoint
	Model      *qwen2.Model // the trained weights, in memory (this rank's shard under TP)
	Train      data.Stats
	Eval       *data.Stats
}

// Run trains according to cfg. Data and model problems are reported before
// anything in cfg.Out is written or changed. When ctx is cancelled the run
// saves a checkpoint at the current step and returns ctx.Err().
func Run(ctx context.Context, cfg Config, opts Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	mcfg, err := qwen2.LoadConfig(cfg.Model)
	if err != nil {
		return nil, err
	}
	g, err := train.NewGroup(opts.DP, opts.TP, cfg.TensorParallel, mcfg)
	if err != nil {
		return nil, err
	}
	// One rank speaks for the group: the others would repeat its lines.
	rankw := logw
	if !g.Leader() {
		logw = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(logw, "sft: "+format+"\n", args...) }
	if cfg.SeqLen == 0 {
		cfg.SeqLen = min(MaxDefaultSeqLen, mcfg.MaxPositions)
	}
	if cfg.SeqLen > mcfg.MaxPositions {
		return nil, fmt.Errorf("seq_len %d exceeds the model's max_position_embeddings %d", cfg.SeqLen, mcfg.MaxPositions)
	}
	if cfg.ChatTemplate != "" {
		if _, err := os.Stat(cfg.ChatTemplate); err != nil {
			return nil, fmt.Errorf("chat_template: %w", err)
		}
	}
	dopts := data.Options{SeqLen: cfg.SeqLen, Overlong: cfg.Overlong, TrainOn: cfg.TrainOn, Vocab: mcfg.Vocab,
		Chat: &tokChat{modelDir: cfg.Model, templatePath: cfg.ChatTemplate}}
	trainSet, err := data.Load(cfg.Data, dopts)
	if err != nil {
		return nil, err
	}
	logf("train data: %s", trainSet.Stats.String())
	var evalSet *data.Dataset
	if len(cfg.EvalData) > 0 {
		if evalSet, err = data.Load(cfg.EvalData, dopts); err != nil {
			return nil, err
		}
		logf("eval data: %s", evalSet.Stats.String())
	}
	settings, err := cfg.fingerprint()
	if err != nil {
		return nil, err
	}

	// Decide between a fresh run and a resumed one before touching out.
	st, from, err := train.Begin(cfg.Out, "sft", MetricsFile, cfg.Resume, settings)
	if err != nil {
		return nil, err
	}
	if cfg.Resume && st == nil {
		logf("resume: no complete checkpoint in %s, starting from the beginning", cfg.Out)
	}
	dp := g.DP
	// Every rank has looked at out before any starts writing there (a
	// fresh run's check would otherwise see rank 0's new metrics.jsonl).
	if err := g.Barrier(ctx); err != nil {
		return nil, err
	}

	be := opts.Backend
	if be == nil {
		be = engine.NewDefaultCPU(engine.CPUOptions{})
	}
	// The shard's collectives run under the context it is loaded with,
	// detached from the run's cancellation: an interrupt must end every
	// rank at the same step, agreed before each step, rather than break
	// the group in the middle of one (each collective's own timeout still
	// applies).
	pol, err := train.LoadPolicyGroup(context.WithoutCancel(ctx), cfg.Model, st, from, cfg.optimizerConfig(), be, g)
	if err != nil {
		return nil, err
	}
	m, opt := pol.Model, pol.Opt
	// The trained model is the run's result; the optimizer state is not.
	defer opt.Free()

	lay := data.Layout{B: cfg.MicroBatch, T: cfg.SeqLen, Pack: cfg.Pack}
	total := cfg.totalSteps(trainSet, lay)
	sched := optim.Schedule{Kind: cfg.Schedule, LR: cfg.LR, Warmup: cfg.Warmup, Total: int(total), MinRatio: cfg.MinLRRatio}

	// Data position and the generator of epoch seeds.
	rng := rand.NewPCG(cfg.Seed, seedStream)
	var step int64
	var epoch, pos int
	var epochSeed uint64
	var elapsed0 float64
	if st != nil {
		if err := rng.UnmarshalBinary(st.RNG); err != nil {
			return nil, fmt.Errorf("resume %s: RNG state: %w", from.Dir, err)
		}
		step, epoch, pos, epochSeed, elapsed0 = st.Step, st.Epoch, st.MicroBatch, st.EpochSeed, st.ElapsedS
		if step > total {
			return nil, fmt.Errorf("resume %s: checkpoint at step %d is past the run's %d steps", from.Dir, step, total)
		}
	} else {
		epochSeed = rng.Uint64()
	}
	ep := data.NewEpoch(trainSet, data.Permutation(len(trainSet.Rows), epochSeed), lay)
	if pos > ep.MicroBatches() {
		return nil, fmt.Errorf("resume %s: data position %d beyond the epoch's %d micro-batches (data changed?)", from.Dir, pos, ep.MicroBatches())
	}

	// From here on the output directory changes.
	ev := DataEvent{Event: "data", Train: trainSet.Stats}
	if evalSet != nil {
		ev.Eval = &evalSet.Stats
	}
	var mf *os.File
	if g.Leader() {
		if mf, err = train.OpenMetrics(cfg.Out, MetricsFile, st, cfg.Keep, ev); err != nil {
			return nil, err
		}
		defer mf.Close()
	}
	if st != nil {
		logf("resuming from %s (step %d of %d, epoch %d)", from.Dir, step, total, epoch)
	}
	logf("model %s: %d parameters on %s; %d steps of %d x %d micro-batches x %d accumulation, optimizer %s",
		cfg.Model, m.P.Count(), be.Describe(), total, lay.B, lay.T, cfg.GradAccum, opt.Name())
	if g.TP != nil || dp.Size() > 1 {
		// Every rank says where it stands, in its own log.
		fmt.Fprintf(rankw, "sft: %s: data-parallel rank %d of %d, tensor-parallel rank %d of %d (%d of the model's parameters); each step's micro-batches are split between the data-parallel ranks\n",
			g.Layout(), dp.Rank(), dp.Size(), g.TPRank(), g.TPSize(), m.P.Count())
	}

	tr := NewTrainer(m, opt, lay.B, lay.T, cfg.Clip)
	if cfg.ActivationCheckpointing {
		tr.Recompute()
	}
	tr.Group(g)
	mem, err := train.NewMemoryCheck(rankw, "sft: ", m.Cfg, plan.Run{TP: g.TPSize(), DP: dp.Size(), TPRank: g.TPRank(), B: lay.B, T: lay.T,
		Recompute: cfg.ActivationCheckpointing, Optimizer: cfg.Optimizer, Momentum: cfg.Momentum > 0, ActDType: be.ActDType(), ZeRO: cfg.ZeRO == 1, DPRank: dp.Rank(), Offload: cfg.OptimizerOffload})
	if err != nil {
		return nil, err
	}
	batches := make([]*qwen2.Batch, cfg.GradAccum)
	for i := range batches {
		batches[i] = lay.NewBatch()
	}
	var evalEpoch *data.Epoch
	var evalBatch *qwen2.Batch
	if evalSet != nil {
		evalEpoch = data.NewEpoch(evalSet, nil, lay)
		evalBatch = lay.NewBatch()
	}
	res := &Result{Train: trainSet.Stats, Model: m}
	if evalSet != nil {
		res.Eval = &evalSet.Stats
	}
	if st != nil {
		res.Checkpoint = from.Dir
	}
	lastSaved := int64(-1)
	if st != nil {
		lastSaved = step
	}
	start := time.Now()
	save := func() error {
		dir, err := pol.SaveGroup(ctx, cfg.Out, cfg.Keep, &train.State{
			Trainer: "sft", Step: step, Epoch: epoch, MicroBatch: pos, EpochSeed: epochSeed,
			ElapsedS: elapsed0 + time.Since(start).Seconds(), Config: settings, ConfigHash: train.HashConfig(settings),
		}, rng, opts.Hooks.Save, g)
		if err != nil {
			return err
		}
		lastSaved, res.Checkpoint = step, dir
		logf("saved %s", dir)
		return nil
	}

	if step >= total {
		logf("run already complete at step %d", step)
	}
	if opts.OnStart != nil {
		opts.OnStart(step, total)
	}
	for step < total {
		stop, err := g.AnyTrue(ctx, ctx.Err() != nil)
		if err != nil {
			return res, fmt.Errorf("step %d: %w", step+1, err)
		}
		if stop {
			err := ctx.Err()
			if err == nil {
				err = train.ErrStoppedByPeer
			}
			if step > lastSaved {
				if serr := save(); serr != nil {
					return res, errors.Join(err, serr)
				}
			}
			return res, err
		}
		if pos >= ep.MicroBatches() {
			epoch++
			epochSeed = rng.Uint64()
			ep = data.NewEpoch(trainSet, data.Permutation(len(trainSet.Rows), epochSeed), lay)
			pos = 0
		}
		n := min(cfg.GradAccum, ep.MicroBatches()-pos)
		tokens := 0
		for i := 0; i < n; i++ {
			_, tk := ep.Fill(pos+i, batches[i])
			tokens += tk
			if err := m.Validate(batches[i]); err != nil {
				return res, fmt.Errorf("step %d: %w", step+1, err)
			}
		}
		lr := sched.At(int(step))
		t0 := time.Now()
		r, err := tr.GradientsShared(ctx, batches[:n])
		if err == nil {
			err = m.Err()
		}
		if err != nil {
			return res, fmt.Errorf("step %d: %w", step+1, err)
		}
		if math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) {
			return res, fmt.Errorf("step %d: loss is %v; stopping; %s", step+1, r.Loss, train.DescribeLastCheckpoint(cfg.Out))
		}
		if r.Targets > 0 {
			r.GradNorm, err = tr.Update(ctx, lr)
			if err == nil {
				err = m.Err()
			}
			if err != nil {
				return res, fmt.Errorf("step %d: %w", step+1, err)
			}
			if math.IsNaN(r.GradNorm) || math.IsInf(r.GradNorm, 0) {
				return res, fmt.Errorf("step %d: gradient norm is %v; stopping; %s", step+1, r.GradNorm, train.DescribeLastCheckpoint(cfg.Out))
			}
		}
		dt := time.Since(t0).Seconds()
		step++
		pos += n
		row := Metrics{
			Step: step, Epoch: float64(epoch) + float64(pos)/float64(ep.MicroBatches()),
			Loss: r.Loss, LR: lr, GradNorm: r.GradNorm, TargetTokens: r.Targets, Tokens: tokens,
			TokensPerS: float64(tokens) / max(dt, 1e-9), ElapsedS: elapsed0 + time.Since(start).Seconds(),
			DevicePeak: train.DevicePeak(be),
		}
		mem.After(step, row.DevicePeak)
		if evalEpoch != nil && (step == total || (cfg.EvalEvery > 0 && step%int64(cfg.EvalEvery) == 0)) {
			var sum, cnt float64
			lo, hi := dp.Share(evalEpoch.MicroBatches())
			for b := lo; b < hi; b++ {
				evalEpoch.Fill(b, evalBatch)
				s, c := EvalLoss(m, tr.Acts(), evalBatch)
				sum, cnt = sum+s, cnt+float64(c)
			}
			if err := m.Err(); err != nil {
				return res, fmt.Errorf("step %d: eval: %w", step, err)
			}
			if err := dp.SumF64(ctx, &sum, &cnt); err != nil {
				return res, fmt.Errorf("step %d: eval: %w", step, err)
			}
			el := sum / max(cnt, 1)
			row.EvalLoss = &el
			res.EvalLoss = &el
			logf("step %d: eval loss %.6f over %.0f target tokens", step, el, cnt)
		}
		if mf != nil {
			if err := train.WriteMetricsRow(mf, row); err != nil {
				return res, fmt.Errorf("metrics: %w", err)
			}
		}
		res.Steps, res.Loss = step, row.Loss
		if opts.Hooks.AfterLog != nil {
			opts.Hooks.AfterLog(step)
		}
		if step == total || (cfg.SaveEvery > 0 && step%int64(cfg.SaveEvery) == 0) {
			if err := save(); err != nil {
				return res, err
			}
		}
		if opts.OnStep != nil {
			opts.OnStep(row, total)
		}
	}
	res.Steps = step
	return res, nil
}

// totalSteps is max_steps, or the optimizer steps of all epochs (each
// epoch's last step may take fewer micro-batches; epochs never share a
// step).
func (c *Config) totalSteps(d *data.Dataset, lay data.Layout) int64 {
	if c.MaxSteps > 0 {
		return int64(c.MaxSteps)
	}
	rng := rand.NewPCG(c.Seed, seedStream)
	var total int64
	for e := 0; e < c.Epochs; e++ {
		ep := data.NewEpoch(d, data.Permutation(len(d.Rows), rng.Uint64()), lay)
		total += int64((ep.MicroBatches() + c.GradAccum - 1) / c.GradAccum)
	}
	return total
}

// fingerprint lists, as canonical strings, every setting that determines
// the run's numbers; a resumed run must match it.
func (c *Config) fingerprint() (map[string]string, error) {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	files := func(paths []string) (string, error) {
		parts := make([]string, len(paths))
		for i, p := range paths {
			st, err := os.Stat(p)
			if err != nil {
				return "", err
			}
			parts[i] = fmt.Sprintf("%s (%d bytes)", p, st.Size())
		}
		return strings.Join(parts, ", "), nil
	}
	hashFile := func(p string) (string, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:8]), nil
	}
	mc, err := hashFile(filepath.Join(c.Model, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	dataFiles, err := files(c.Data)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	evalFiles, err := files(c.EvalData)
	if err != nil {
		return nil, fmt.Errorf("eval_data: %w", err)
	}
	tmpl := ""
	if c.ChatTemplate != "" {
		h, err := hashFile(c.ChatTemplate)
		if err != nil {
			return nil, fmt.Errorf("chat_template: %w", err)
		}
		tmpl = c.ChatTemplate + " sha256:" + h
	}
	return map[string]string{
		"model_config": "sha256:" + mc, "data": dataFiles, "eval_data": evalFiles,
		"seq_len": strconv.Itoa(c.SeqLen), "micro_batch": strconv.Itoa(c.MicroBatch), "grad_accum": strconv.Itoa(c.GradAccum),
		"lr": f(c.LR), "min_lr_ratio": f(c.MinLRRatio), "schedule": c.Schedule, "warmup": strconv.Itoa(c.Warmup),
		"weight_decay": f(c.WeightDecay), "beta1": f(c.Beta1), "beta2": f(c.Beta2), "eps": f(c.Eps),
		"momentum": f(c.Momentum), "clip": f(c.Clip), "epochs": strconv.Itoa(c.Epochs), "max_steps": strconv.Itoa(c.MaxSteps),
		"eval_every": strconv.Itoa(c.EvalEvery), "seed": strconv.FormatUint(c.Seed, 10), "train_on": c.TrainOn,
		"chat_template": tmpl, "optimizer": c.Optimizer, "pack": strconv.FormatBool(c.Pack), "overlong": c.Overlong,
	}, nil
}

// tokChat adapts the tokenizer's chat rendering to data.ChatEncoder,
// loading the tokenizer on first use so that pre-tokenized data needs no
// tokenizer files.
type tokChat struct {
	modelDir, templatePath string
	loaded                 bool
	tok                    *tokenizer.Tokenizer
	tmpl                   string
	err                    error
}

func (c *tokChat) EncodeChat(msgs []data.Message) (*data.Encoded, error) {
	if !c.loaded {
		c.loaded = true
		c.tok, c.err = tokenizer.Load(c.modelDir)
		if c.err == nil && c.templatePath != "" {
			c.tmpl, c.err = tokenizer.LoadTemplate(c.templatePath)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	tm := make([]tokenizer.Message, len(msgs))
	for i, m := range msgs {
		tm[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	ch, err := c.tok.ApplyChat(tm, tokenizer.ChatOptions{Template: c.tmpl})
	if err != nil {
		return nil, err
	}
	return &data.Encoded{IDs: ch.IDs, Assistant: ch.Assistant, LastAssistant: ch.LastAssistant}, nil
}

func (c *Config) optimizerConfig() train.OptimizerConfig {
	return train.OptimizerConfig{Name: c.Optimizer, Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay, Momentum: c.Momentum,
		ZeRO: c.ZeRO, Offload: c.OptimizerOffload}
}
