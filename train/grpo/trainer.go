package grpo

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/generate"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/plan"
	"purpcode/tokenizer"
	"purpcode/train"
	"purpcode/train/data"
	"purpcode/train/optim"
)

// MetricsFile is the per-step log in the output directory.
const MetricsFile = "metrics.jsonl"

// seedStream separates the prompt-order generator from other seed uses.
const seedStream = 0x67727030 // "grp0"

// Metrics is one row of metrics.jsonl. RolloutS, ScoreWaitS, UpdateS,
// TokensPerS and ElapsedS are wall-clock measurements; every other field
// is reproducible from the seed (a resumed run logs the same values).
type Metrics struct {
	Step          int64              `json:"step"`
	LR            float64            `json:"lr"`
	Drawn         int                `json:"drawn"`          // prompts rolled out
	UsableGroups  int                `json:"usable_groups"`  // groups with reward variance
	UsableFrac    float64            `json:"usable_frac"`    // usable / drawn (sizes the next draw)
	TrainedGroups int                `json:"trained_groups"` // groups in the update
	Reward        float64            `json:"reward"`         // mean over all samples drawn
	RewardOracle  map[string]float64 `json:"reward_by_oracle"`
	FormatRate    float64            `json:"format_rate"`
	ResponseLen   float64            `json:"response_len"` // mean tokens per sample
	Loss          float64            `json:"loss"`         // token mean of -obj + kl_coef*kl - entropy_coef*H
	PGObj         float64            `json:"pg_obj"`       // token mean of the clipped objective
	KL            float64            `json:"kl"`           // token mean k3 KL to the reference
	ClipFrac      float64            `json:"clip_frac"`    // tokens whose clipped term was active
	Entropy       float64            `json:"entropy"`      // token mean policy entropy
	GradNorm      float64            `json:"grad_norm"`    // before clipping (last update of the step)
	// RolloutLogpDiff is the largest |log-prob| difference of a response
	// token between the rollout engine (paged KV decode) and the trainer's
	// forward pass of the same policy: both should be the same function,
	// so this measures the numerical gap between the two code paths.
	RolloutLogpDiff float64 `json:"rollout_logp_max_abs_diff"`
	// DevicePeak is the device memory held at its peak so far, by category
	// (device backends only; see engine.MemoryReporter).
	DevicePeak  map[string]int64 `json:"device_peak_bytes,omitempty"`
	TrainTokens int              `json:"train_tokens"` // response tokens trained on
	RolloutS    float64          `json:"rollout_s"`
	ScoreWaitS  float64          `json:"score_wait_s"` // scoring left after the last sample finished
	UpdateS     float64          `json:"update_s"`
	TokensPerS  float64          `json:"tokens_per_s"` // sampled tokens per rollout second
	ElapsedS    float64          `json:"elapsed_s"`
}

// Hooks are test seams; nil members do nothing.
type Hooks struct {
	AfterLog func(step int64)
	Save     func(stage string)
}

// Options are the run's non-config inputs.
type Options struct {
	// Backend runs the policy, its rollouts and the reference model; nil:
	// engine.NewDefaultCPU.
	Backend engine.Backend
	Log     io.Writer
	OnStep  func(row Metrics, total int64)
	// Judge decides general-safety and noreject rows; nil uses the
	// heuristic classifier.
	Judge oracle.Judge
	// Scorer replaces the oracles altogether (tests and custom tasks with
	// a programmatic reward); nil builds them from the prompts' oracles.
	Scorer Scorer
	Hooks  Hooks

	// OnStart is called once before the first step with the step the run
	// starts from (past 0 when resumed) and the run's total.
	OnStart func(step, total int64)
	// OnRollout, when set, is called as each prompt's group of samples
	// is complete during step's rollouts (a step may take minutes), with
	// the groups done and drawn in this rollout round.
	OnRollout func(step int64, done, total int)

	// DP, when its group has several ranks, makes this process one rank
	// of a data-parallel run: every rank runs Run with the same config and
	// draws the same prompts; each rolls out and scores its Share of them,
	// and the groups (tokens, rollout log-probs, rewards) are gathered so
	// that every rank makes the same sampling decisions. In the update each
	// rank runs forward and backward on its share of each mini-batch's
	// packed rows, and the gradients are summed over the ranks before
	// clipping. Only rank 0 writes metrics.jsonl and checkpoints.
	DP train.DP

	// TP, when not nil, is this rank's tensor-parallel group: its ranks
	// hold the shards of one policy replica and of the reference model
	// (cfg.TensorParallel must equal its size), roll out the same prompts
	// on their shards in lockstep, and train on the same packed rows; TP
	// rank 0 scores the samples and sends the rewards to the others (see
	// tp.go), and each rank saves its own checkpoint shard. DP then groups
	// the ranks with the same TP rank of every replica. TP rank 0 of DP
	// rank 0 writes metrics.jsonl and the log.
	TP dist.Comm
}

// Result summarises a run.
type Result struct {
	Steps      int64
	Last       Metrics
	Checkpoint string
	Model      *qwen2.Model
	Prompts    int            // prompts in the pool
	Skipped    map[string]int // prompts left out, by reason
}

// Scorer computes the reward of a response row; *oracle.Scorer is one.
type Scorer interface {
	Score(ctx context.Context, row oracle.Row) (oracle.Score, error)
}

// prompt is a loaded RL prompt.
type prompt struct {
	row oracle.Row
	ids []int
}

// group is one prompt's samples and their scores.
type group struct {
	p       *prompt
	samples []generate.Sample
	scores  []oracle.Score
	rewards []float64
}

// Run trains the policy in cfg.Model with GRPO.
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
	logf := func(format string, args ...any) { fmt.Fprintf(logw, "rl: "+format+"\n", args...) }
	tok, err := tokenizer.Load(cfg.Model)
	if err != nil {
		return nil, err
	}
	prompts, skipped, err := loadPrompts(cfg, tok)
	if err != nil {
		return nil, err
	}
	logf("%d prompts (skipped %v)", len(prompts), skipped)
	settings, err := cfg.fingerprint()
	if err != nil {
		return nil, err
	}

	st, from, err := train.Begin(cfg.Out, "grpo", MetricsFile, cfg.Resume, settings)
	if err != nil {
		return nil, err
	}
	if cfg.Resume && st == nil {
		logf("resume: no complete checkpoint in %s, starting from the beginning", cfg.Out)
	}
	dp := g.DP
	// Every rank has looked at out before any starts writing there.
	if err := g.Barrier(ctx); err != nil {
		return nil, err
	}

	be := opts.Backend
	if be == nil {
		be = engine.NewDefaultCPU(engine.CPUOptions{})
	}
	// A shard's collectives run on the context it was made with: detached
	// from the run's cancellation, so that an interrupt stops the ranks
	// where they agree to (Group.AnyTrue, generate's Agree), never one of them in
	// the middle of a forward pass. The Comm's timeouts still bound them.
	shardCtx := context.WithoutCancel(ctx)
	pol, err := train.LoadPolicyGroup(shardCtx, cfg.Model, st, from, cfg.optimizerConfig(), be, g)
	if err != nil {
		return nil, err
	}
	m, opt := pol.Model, pol.Opt
	// The trained model is the run's result; the optimizer state is not.
	defer opt.Free()
	var ref *qwen2.Model
	if cfg.KLCoef > 0 {
		// The frozen reference is sharded like the policy: each rank
		// reads only its slices of the base model. Nothing trains it, so
		// it is loaded inference-only: its compute copy alone (bf16 on a
		// device), no master and no gradients.
		if g.TP == nil {
			ref, err = qwen2.LoadInference(cfg.Model, be)
		} else {
			ref, err = qwen2.LoadShardInference(shardCtx, cfg.Model, be, g.TP, g.Split)
		}
		if err != nil {
			return nil, fmt.Errorf("reference model: %w", err)
		}
	}
	if cfg.packLen() > m.Cfg.MaxPositions {
		return nil, fmt.Errorf("max_prompt_len + max_response_len = %d exceeds the model's max_position_embeddings %d", cfg.packLen(), m.Cfg.MaxPositions)
	}
	eos, err := generate.StopTokens(cfg.Model, m.Cfg, tok)
	if err != nil {
		return nil, err
	}
	scorer := opts.Scorer
	if scorer == nil {
		rows := make([]oracle.Row, len(prompts))
		for i, p := range prompts {
			rows[i] = p.row
		}
		oc := oracle.DefaultConfig()
		oc.CodeSec.NoCodeScore = cfg.NoCodeScore
		sc, closeScorer, err := oracle.NewScorerFor(rows, opts.Judge, oc, cfg.ScoreWorkers)
		if err != nil {
			return nil, err
		}
		defer closeScorer()
		scorer = sc
	}
	eo := generate.Options{MaxBatch: cfg.RolloutBatch, EOS: eos}
	if g.TP != nil {
		// The shards' engines decode in lockstep: they stop together.
		eo.Agree = generate.AgreeOn(g.TP)
	}
	eng, err := generate.New(m, eo)
	if err != nil {
		return nil, err
	}
	defer eng.Close()

	updates := cfg.PPOEpochs * cfg.MiniBatches
	sched := optim.Schedule{Kind: cfg.Schedule, LR: cfg.LR, Warmup: cfg.Warmup, Total: cfg.Steps * updates, MinRatio: cfg.MinLRRatio}
	total := int64(cfg.Steps)
	sampler := NewDynamicSampler(cfg.PromptsPerStep, cfg.MaxRollFactor)
	rng := rand.NewPCG(cfg.Seed, seedStream)
	var step int64
	var elapsed0 float64
	stream := &promptStream{n: len(prompts)}
	if st != nil {
		if err := rng.UnmarshalBinary(st.RNG); err != nil {
			return nil, fmt.Errorf("resume %s: RNG state: %w", from.Dir, err)
		}
		step, elapsed0 = st.Step, st.ElapsedS
		stream.epoch, stream.pos, stream.seed = st.Epoch, st.MicroBatch, st.EpochSeed
		stream.order = data.Permutation(len(prompts), stream.seed)
		if u, ok := st.Extra["last_usable"]; ok {
			sampler.LastUsable = u
		}
	} else {
		stream.seed = rng.Uint64()
		stream.order = data.Permutation(len(prompts), stream.seed)
	}
	stream.rng = rng

	var mf *os.File
	if g.Leader() {
		if mf, err = train.OpenMetrics(cfg.Out, MetricsFile, st, cfg.Keep, nil); err != nil {
			return nil, err
		}
		defer mf.Close()
	}
	if st != nil {
		logf("resuming from %s (step %d of %d)", from.Dir, step, total)
	}
	policyDir := cfg.Model
	if st != nil {
		policyDir = from.Dir
	}
	logf("policy %s: %d parameters, %s; %d steps of %d prompts x %d samples (%s sampling)",
		policyDir, m.P.Count(), be.Describe(), total, cfg.PromptsPerStep, cfg.GroupSize, cfg.Sampling)
	if g.TP != nil || dp.Size() > 1 {
		// Every rank says where it stands, in its own log.
		fmt.Fprintf(rankw, "rl: %s: data-parallel rank %d of %d, tensor-parallel rank %d of %d (%d of the policy's parameters); each step's prompts and packed rows are split between the data-parallel ranks\n",
			g.Layout(), dp.Rank(), dp.Size(), g.TPRank(), g.TPSize(), m.P.Count())
	}

	newActs := m.NewActs
	if cfg.ActivationCheckpointing {
		newActs = m.NewActsRecompute
	}
	r := &runner{cfg: cfg, m: m, ref: ref, tok: tok, eng: eng, scorer: scorer, opt: opt, sched: sched, acts: newActs(1, cfg.packLen()), dp: dp, group: g, grads: train.NewGradSum(m)}
	r.onRollout = opts.OnRollout
	mem, err := train.NewMemoryCheck(rankw, "rl: ", m.Cfg, plan.Run{TP: g.TPSize(), DP: dp.Size(), TPRank: g.TPRank(), B: 1, T: cfg.packLen(),
		Recompute: cfg.ActivationCheckpointing, Optimizer: "adamw", ActDType: be.ActDType(), ZeRO: cfg.ZeRO == 1, DPRank: dp.Rank(), Offload: cfg.OptimizerOffload, Reference: ref != nil})
	if err != nil {
		return nil, err
	}
	res := &Result{Model: m, Prompts: len(prompts), Skipped: skipped}
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
			Trainer: "grpo", Step: step, Epoch: stream.epoch, MicroBatch: stream.pos, EpochSeed: stream.seed,
			ElapsedS: elapsed0 + time.Since(start).Seconds(), Config: settings, ConfigHash: train.HashConfig(settings),
			Extra: map[string]float64{"last_usable": sampler.LastUsable},
		}, rng, opts.Hooks.Save, g)
		if err != nil {
			return err
		}
		lastSaved, res.Checkpoint = step, dir
		logf("saved %s", dir)
		return nil
	}

	if opts.OnStart != nil {
		opts.OnStart(step, total)
	}
	// stop saves the policy of the last completed step (unless saved
	// already) when the run is interrupted.
	stop := func(err error) (*Result, error) {
		if step > lastSaved {
			if serr := save(); serr != nil {
				return res, errors.Join(err, serr)
			}
		}
		return res, err
	}
	for step < total {
		interrupted, err := g.AnyTrue(ctx, ctx.Err() != nil)
		if err != nil {
			return res, fmt.Errorf("step %d: %w", step+1, err)
		}
		if interrupted {
			return stop(cmp.Or(ctx.Err(), train.ErrStoppedByPeer))
		}
		before, err := stream.mark()
		if err != nil {
			return res, err
		}
		updates := opt.Steps()
		row, err := r.step(ctx, step+1, stream, prompts, sampler)
		if err != nil {
			// An interrupt cuts the rollouts short, before any update:
			// the policy is still the last step's, so it is saved with
			// the prompt position from before this step and a resumed
			// run draws this step's prompts again.
			// A rank that failed saves nothing, so neither may the others,
			// even one that was interrupted too: it would wait in the save's
			// collectives for a rank that is gone.
			if !errors.Is(err, errPeerFailed) && (ctx.Err() != nil || errors.Is(err, train.ErrStoppedByPeer)) && opt.Steps() == updates {
				err = cmp.Or(ctx.Err(), err)
				if rerr := stream.restore(before); rerr != nil {
					return res, errors.Join(err, rerr)
				}
				return stop(err)
			}
			return res, fmt.Errorf("step %d: %w", step+1, err)
		}
		step++
		row.Step = step
		row.ElapsedS = elapsed0 + time.Since(start).Seconds()
		row.DevicePeak = train.DevicePeak(m.Backend())
		mem.After(step, row.DevicePeak)
		if mf != nil {
			if err := train.WriteMetricsRow(mf, row); err != nil {
				return res, fmt.Errorf("metrics: %w", err)
			}
		}
		res.Steps, res.Last = step, row
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

// promptStream yields prompt indices in a seeded order, reshuffling each
// epoch; its position is part of the resumable state.
type promptStream struct {
	n, epoch, pos int
	seed          uint64
	order         []int
	rng           *rand.PCG
}

// streamMark is a promptStream's position and generator state.
type streamMark struct {
	epoch, pos int
	seed       uint64
	order      []int
	rng        []byte
}

// mark records the stream's position to go back to.
func (s *promptStream) mark() (streamMark, error) {
	rs, err := s.rng.MarshalBinary()
	if err != nil {
		return streamMark{}, fmt.Errorf("prompt stream: %w", err)
	}
	return streamMark{epoch: s.epoch, pos: s.pos, seed: s.seed, order: s.order, rng: rs}, nil
}

// restore goes back to a marked position (next replaces order rather than
// changing it, so the marked slice is still the epoch's order).
func (s *promptStream) restore(m streamMark) error {
	if err := s.rng.UnmarshalBinary(m.rng); err != nil {
		return fmt.Errorf("prompt stream: %w", err)
	}
	s.epoch, s.pos, s.seed, s.order = m.epoch, m.pos, m.seed, m.order
	return nil
}

func (s *promptStream) next(k int) []int {
	out := make([]int, 0, k)
	for len(out) < k {
		if s.pos >= s.n {
			s.epoch++
			s.seed = s.rng.Uint64()
			s.order = data.Permutation(s.n, s.seed)
			s.pos = 0
		}
		out = append(out, s.order[s.pos])
		s.pos++
	}
	return out
}

// runner holds what every step uses.
type runner struct {
	cfg    Config
	m, ref *qwen2.Model
	tok    *tokenizer.Tokenizer
	eng    *generate.Engine
	scorer Scorer
	opt    optim.Optimizer
	sched  optim.Schedule
	acts   *qwen2.Acts
	dp     train.DP
	group  train.Group // dp with the TP group
	grads  *train.GradSum
	// onRollout is Options.OnRollout.
	onRollout func(step int64, done, total int)
}

// step rolls out, scores, selects groups and updates the policy once.
func (r *runner) step(ctx context.Context, step int64, stream *promptStream, prompts []*prompt, ds *DynamicSampler) (Metrics, error) {
	cfg := r.cfg
	var row Metrics
	k := cfg.PromptsPerStep
	if cfg.Sampling == SamplingSingleStep {
		k = ds.Draw()
	}
	groups, timing, err := r.rolloutShared(ctx, step, 0, pick(prompts, stream.next(k)))
	if err != nil {
		return row, err
	}
	row.Drawn = len(groups)
	usable := filterUsable(groups)
	if cfg.Sampling == SamplingDAPO {
		// DAPO: roll out again until B usable groups exist (bounded by the
		// same cap on prompts per step), then keep exactly B.
		round := 1
		for len(usable) < cfg.PromptsPerStep && row.Drawn < int(cfg.MaxRollFactor*float64(cfg.PromptsPerStep)) {
			more, t, err := r.rolloutShared(ctx, step, round, pick(prompts, stream.next(cfg.PromptsPerStep)))
			if err != nil {
				return row, err
			}
			timing.add(t)
			groups = append(groups, more...)
			usable = append(usable, filterUsable(more)...)
			row.Drawn += len(more)
			round++
		}
		if len(usable) > cfg.PromptsPerStep {
			usable = usable[:cfg.PromptsPerStep]
		}
	}
	row.UsableGroups = len(filterUsable(groups))
	row.UsableFrac = float64(row.UsableGroups) / float64(row.Drawn)
	ds.Observe(row.Drawn, row.UsableGroups)
	chosen := usable
	if cfg.Sampling == SamplingNone {
		chosen = groups
	}
	row.TrainedGroups = len(chosen)
	summarizeRewards(&row, groups)
	row.RolloutS, row.ScoreWaitS = timing.rollout, timing.scoreWait
	if timing.rollout > 0 {
		row.TokensPerS = float64(timing.tokens) / timing.rollout
	}
	t1 := time.Now()
	if err := r.update(ctx, chosen, &row); err != nil {
		return row, err
	}
	row.UpdateS = time.Since(t1).Seconds()
	return row, nil
}

func pick(prompts []*prompt, idx []int) []*prompt {
	out := make([]*prompt, len(idx))
	for i, j := range idx {
		out[i] = prompts[j]
	}
	return out
}

func filterUsable(groups []*group) []*group {
	var out []*group
	for _, g := range groups {
		if Usable(g.rewards) {
			out = append(out, g)
		}
	}
	return out
}

type rolloutTiming struct {
	rollout, scoreWait float64
	tokens             int
}

func (t *rolloutTiming) add(o rolloutTiming) {
	t.rollout += o.rollout
	t.scoreWait += o.scoreWait
	t.tokens += o.tokens
}

// rollout samples GroupSize answers per prompt and scores each group as
// soon as its samples are complete, while other prompts are still decoding.
// ps are the round's prompts first..first+len(ps)-1 (the index is part of
// each request's seed).
func (r *runner) rollout(ctx context.Context, step int64, round int, ps []*prompt, first int) ([]*group, rolloutTiming, error) {
	cfg := r.cfg
	reqs := make([]generate.Request, len(ps))
	groups := make([]*group, len(ps))
	for i, p := range ps {
		groups[i] = &group{p: p}
		reqs[i] = generate.Request{
			// The id seeds the samples: the same step of a resumed run
			// draws the same tokens whatever the batch composition.
			ID: fmt.Sprintf("%s@%d.%d.%d", p.row.ID, step, round, first+i), Prompt: p.ids, N: cfg.GroupSize, Seed: cfg.Seed,
			Params: generate.SamplingParams{Temperature: cfg.Temperature, TopP: cfg.TopP, TopK: cfg.TopK, MaxNewTokens: cfg.MaxResponseLen},
		}
	}
	var timing rolloutTiming
	done := 0
	st, err := r.eng.RunScored(ctx, reqs, cfg.ScoreWorkers, func(i int, samples []generate.Sample) {
		if done++; r.onRollout != nil {
			r.onRollout(step, done, len(reqs))
		}
		g := groups[i]
		g.samples = samples
		g.scores = make([]oracle.Score, len(samples))
		g.rewards = make([]float64, len(samples))
		for _, s := range samples {
			timing.tokens += len(s.Tokens)
		}
	}, func(ctx context.Context, i int, s generate.Sample) error {
		if r.group.TPRank() != 0 {
			return nil // TP rank 0 scores and sends the rewards (shareRewards)
		}
		g := groups[i]
		row := g.p.row
		row.Response = generate.CompletionText(r.tok, cfg.Prefix, s.Tokens)
		sc, err := r.scorer.Score(ctx, row)
		if err != nil {
			return fmt.Errorf("scoring %s: %w", row.ID, err)
		}
		g.scores[s.Index], g.rewards[s.Index] = sc, sc.Reward
		return nil
	})
	timing.rollout, timing.scoreWait = st.Generate, st.ScoreWait
	if err != nil {
		return nil, timing, err
	}
	return groups, timing, nil
}

func summarizeRewards(row *Metrics, groups []*group) {
	sum, n, format, tokens := 0.0, 0, 0, 0
	byOracle := map[string]float64{}
	countOracle := map[string]int{}
	for _, g := range groups {
		for j, s := range g.scores {
			sum += g.rewards[j]
			n++
			byOracle[g.p.row.Oracle] += g.rewards[j]
			countOracle[g.p.row.Oracle]++
			if s.Format {
				format++
			}
			tokens += len(g.samples[j].Tokens)
		}
	}
	for o := range byOracle {
		byOracle[o] /= float64(countOracle[o])
	}
	row.RewardOracle = byOracle
	if n > 0 {
		row.Reward, row.FormatRate, row.ResponseLen = sum/float64(n), float64(format)/float64(n), float64(tokens)/float64(n)
	}
}

// update builds the training sequences of the selected groups and applies
// PPOEpochs x MiniBatches optimizer updates with the GRPO loss.
func (r *runner) update(ctx context.Context, groups []*group, row *Metrics) error {
	cfg := r.cfg
	var seqs []*sequence
	for _, g := range groups {
		adv := GroupAdvantages(g.rewards)
		for j, s := range g.samples {
			if len(s.Tokens) == 0 {
				continue
			}
			ids := make([]int32, 0, len(g.p.ids)+len(s.Tokens))
			for _, t := range g.p.ids {
				ids = append(ids, int32(t))
			}
			for _, t := range s.Tokens {
				ids = append(ids, int32(t))
			}
			seqs = append(seqs, &sequence{ids: ids, promptLen: len(g.p.ids), adv: adv[j], rollLogp: s.RawLogProbs})
		}
	}
	if len(seqs) == 0 {
		row.LR = r.sched.At(int(r.opt.Steps()))
		return nil
	}
	if r.grads == nil {
		r.grads = train.NewGradSum(r.m)
	}
	for _, s := range seqs {
		row.TrainTokens += s.respLen()
	}
	packLen := cfg.packLen()
	all := make([]int, len(seqs))
	for i := range all {
		all[i] = i
	}
	// Reference log-probs, and the sampling policy's when the step makes
	// more than one update (otherwise the first pass's own values serve).
	if r.ref != nil {
		if err := r.statsShared(ctx, r.ref, pack(seqs, all, packLen, 1), seqs, func(s *sequence) *[]float32 { return &s.refLogp }); err != nil {
			return err
		}
	}
	multi := cfg.PPOEpochs*cfg.MiniBatches > 1
	if multi {
		if err := r.statsShared(ctx, r.m, pack(seqs, all, packLen, 1), seqs, func(s *sequence) *[]float32 { return &s.oldLogp }); err != nil {
			return err
		}
		for _, s := range seqs {
			for ti, lp := range s.oldLogp {
				row.RolloutLogpDiff = math.Max(row.RolloutLogpDiff, s.rolloutGap(ti, float64(lp)))
			}
		}
	}
	var lossSum, objSum, klSum, entSum float64
	var tokSum, clipped int
	for epoch := 0; epoch < cfg.PPOEpochs; epoch++ {
		for mb := 0; mb < cfg.MiniBatches; mb++ {
			var idx []int
			for i := mb; i < len(seqs); i += cfg.MiniBatches {
				idx = append(idx, i)
			}
			if len(idx) == 0 {
				continue
			}
			ntok := 0
			for _, i := range idx {
				ntok += seqs[i].respLen()
			}
			r.grads.Begin()
			packs := pack(seqs, idx, packLen, 1)
			lo, hi := r.dp.Share(len(packs))
			for _, pb := range packs[lo:hi] {
				if err := r.m.Validate(pb.b); err != nil {
					return err
				}
				r.grads.Pass(func() {
					n := len(pb.b.IDs)
					logp, ent := make([]float32, n), make([]float32, n)
					r.m.Forward(r.acts, pb.b)
					r.m.TokenStats(r.acts, pb.b, engine.TokenStats{LogProb: logp, Entropy: ent})
					ca, ce := make([]float32, n), make([]float32, n)
					for p := 0; p < n; p++ {
						si := pb.seq[p]
						if si < 0 {
							continue
						}
						s, ti := seqs[si], pb.tok[p]
						lp := float64(logp[p])
						if !multi {
							row.RolloutLogpDiff = math.Max(row.RolloutLogpDiff, s.rolloutGap(int(ti), lp))
						}
						old, refLp := lp, lp
						if multi {
							old = float64(s.oldLogp[ti])
						}
						if r.ref != nil {
							refLp = float64(s.refLogp[ti])
						}
						tt := cfg.lossConfig().Token(lp, old, refLp, s.adv)
						a, e := cfg.lossConfig().Coefficients(tt, ntok)
						ca[p], ce[p] = float32(a), float32(e)
						lossSum += -tt.Obj + cfg.KLCoef*tt.KL - cfg.EntropyCoef*float64(ent[p])
						objSum += tt.Obj
						klSum += tt.KL
						entSum += float64(ent[p])
						tokSum++
						if tt.Clipped {
							clipped++
						}
					}
					if cfg.EntropyCoef == 0 {
						ce = nil
					}
					r.m.TokenGrad(r.acts, pb.b, ca, ce)
					r.m.Backward(r.acts, pb.b)
				})
			}
			// A shard's collectives of the passes above fail silently
			// (Model.Err); its gradient must not reach the optimizer.
			if err := r.m.Err(); err != nil {
				return err
			}
			if err := r.grads.End(ctx, r.dp); err != nil {
				return err
			}
			lr := r.sched.At(int(r.opt.Steps()))
			norm, err := train.ClipGrad(r.m, r.group.TP != nil, r.cfg.Clip)
			if err != nil {
				return err
			}
			if math.IsNaN(norm) || math.IsInf(norm, 0) {
				return fmt.Errorf("gradient norm is %v; stopping; %s", norm, train.DescribeLastCheckpoint(cfg.Out))
			}
			if err := optim.StepContext(context.WithoutCancel(ctx), r.opt, r.m.P.Weights, lr); err != nil {
				return fmt.Errorf("optimizer step: %w", err)
			}
			row.LR, row.GradNorm = lr, norm
		}
	}
	tokF, clipF := float64(tokSum), float64(clipped)
	if err := r.dp.SumF64(ctx, &lossSum, &objSum, &klSum, &entSum, &tokF, &clipF); err != nil {
		return err
	}
	if err := r.dp.MaxF64(ctx, &row.RolloutLogpDiff); err != nil {
		return err
	}
	tokSum, clipped = int(tokF), int(clipF)
	if tokSum > 0 {
		f := float64(tokSum)
		row.Loss, row.PGObj, row.KL, row.Entropy, row.ClipFrac = lossSum/f, objSum/f, klSum/f, entSum/f, float64(clipped)/f
	}
	return nil
}

// stats runs a forward pass of model over a packed batch and stores each
// response token's log-prob into the slice chosen by dst.
func (r *runner) stats(model *qwen2.Model, pb *packedBatch, seqs []*sequence, dst func(*sequence) *[]float32) {
	n := len(pb.b.IDs)
	logp := make([]float32, n)
	model.Forward(r.acts, pb.b)
	model.TokenStats(r.acts, pb.b, engine.TokenStats{LogProb: logp})
	for p := 0; p < n; p++ {
		si := pb.seq[p]
		if si < 0 {
			continue
		}
		s := seqs[si]
		d := dst(s)
		if *d == nil {
			*d = make([]float32, s.respLen())
		}
		(*d)[pb.tok[p]] = logp[p]
	}
}

// statsShared is stats over every packed batch of packs, split between
// the ranks of a data-parallel group: each rank runs its Share of the
// batches, then sends the log-probs of the sequences they hold (each
// sequence lies in one batch) to the others, as raw bits, so every rank
// ends with the same values as one process running them all.
func (r *runner) statsShared(ctx context.Context, model *qwen2.Model, packs []*packedBatch, seqs []*sequence, dst func(*sequence) *[]float32) error {
	lo, hi := r.dp.Share(len(packs))
	for _, pb := range packs[lo:hi] {
		r.stats(model, pb, seqs, dst)
	}
	if err := model.Err(); err != nil {
		return err
	}
	if r.dp.Size() == 1 {
		return nil
	}
	var mine []byte
	for _, si := range seqsIn(packs[lo:hi]) {
		for _, v := range *dst(seqs[si]) {
			mine = binary.LittleEndian.AppendUint32(mine, math.Float32bits(v))
		}
	}
	got, err := r.dp.GatherBytes(ctx, mine)
	if err != nil {
		return err
	}
	for rank, b := range got {
		rlo, rhi := r.dp.ShareOf(len(packs), rank)
		for _, si := range seqsIn(packs[rlo:rhi]) {
			s := seqs[si]
			if len(b) < 4*s.respLen() {
				return fmt.Errorf("log-probs from rank %d: %d bytes short", rank, 4*s.respLen()-len(b))
			}
			v := make([]float32, s.respLen())
			for i := range v {
				v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
			*dst(s), b = v, b[4*len(v):]
		}
	}
	return nil
}

// seqsIn lists the sequences with targets in packs, in order of first
// appearance.
func seqsIn(packs []*packedBatch) []int32 {
	var out []int32
	seen := map[int32]bool{}
	for _, pb := range packs {
		for _, si := range pb.seq {
			if si >= 0 && !seen[si] {
				seen[si] = true
				out = append(out, si)
			}
		}
	}
	return out
}

func (c *Config) lossConfig() LossConfig {
	return LossConfig{ClipLow: c.ClipLow, ClipHigh: c.ClipHigh, ClipRatioC: c.ClipRatioC, KLCoef: c.KLCoef, EntropyCoef: c.EntropyCoef}
}

// loadPrompts reads the prompt files, drops skip-listed ids and prompts
// longer than MaxPromptLen, and tokenizes the rest.
func loadPrompts(cfg Config, tok *tokenizer.Tokenizer) ([]*prompt, map[string]int, error) {
	skip := map[string]bool{}
	if cfg.SkipIDs != "" {
		raw, err := os.ReadFile(cfg.SkipIDs)
		if err != nil {
			return nil, nil, fmt.Errorf("skip_ids: %w", err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if id := strings.TrimSpace(line); id != "" && !strings.HasPrefix(id, "#") {
				skip[id] = true
			}
		}
	}
	skipped := map[string]int{}
	var out []*prompt
	seen := map[string]string{}
	for _, path := range cfg.Data {
		rows, err := oracle.ReadRows(path)
		if err != nil {
			return nil, nil, err
		}
		for _, row := range rows {
			if prev, dup := seen[row.ID]; dup {
				return nil, nil, fmt.Errorf("%s: prompt id %q also in %s", path, row.ID, prev)
			}
			seen[row.ID] = path
			if skip[row.ID] {
				skipped["skip_list"]++
				continue
			}
			msgs := make([]tokenizer.Message, len(row.Messages))
			for i, m := range row.Messages {
				msgs[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
			}
			ids, _, err := generate.BuildPrompt(tok, generate.PromptSpec{Messages: msgs, Prompt: row.Prompt, Prefix: cfg.Prefix})
			if err != nil {
				return nil, nil, fmt.Errorf("%s: prompt %q: %w", path, row.ID, err)
			}
			if len(ids) > cfg.MaxPromptLen {
				skipped["too_long"]++
				continue
			}
			out = append(out, &prompt{row: row, ids: ids})
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("no usable prompts in %v (skipped %v)", cfg.Data, skipped)
	}
	return out, skipped, nil
}

// optimizerConfig is the run's AdamW (optionally ZeRO-1 sharded).
func (c *Config) optimizerConfig() train.OptimizerConfig {
	return train.OptimizerConfig{Name: "adamw", Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay,
		ZeRO: c.ZeRO, Offload: c.OptimizerOffload}
}

// fingerprint lists the settings that determine the run's numbers.
func (c *Config) fingerprint() (map[string]string, error) {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	hash := func(paths ...string) (string, error) {
		h := sha256.New()
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				return "", err
			}
			h.Write(b)
		}
		return hex.EncodeToString(h.Sum(nil)[:8]), nil
	}
	mc, err := hash(filepath.Join(c.Model, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	dh, err := hash(c.Data...)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	sk := ""
	if c.SkipIDs != "" {
		if sk, err = hash(c.SkipIDs); err != nil {
			return nil, fmt.Errorf("skip_ids: %w", err)
		}
	}
	files := append([]string(nil), c.Data...)
	sort.Strings(files)
	return map[string]string{
		"model_config": mc, "data": strings.Join(files, ",") + " sha256:" + dh, "skip_ids": sk, "judge_model": c.JudgeModel,
		"steps": strconv.Itoa(c.Steps), "prompts_per_step": strconv.Itoa(c.PromptsPerStep), "group_size": strconv.Itoa(c.GroupSize),
		"sampling": c.Sampling, "max_roll_factor": f(c.MaxRollFactor), "temperature": f(c.Temperature), "top_p": f(c.TopP),
		"top_k": strconv.Itoa(c.TopK), "max_prompt_len": strconv.Itoa(c.MaxPromptLen), "max_response_len": strconv.Itoa(c.MaxResponseLen),
		"prefix": c.Prefix, "lr": f(c.LR), "schedule": c.Schedule, "warmup": strconv.Itoa(c.Warmup), "min_lr_ratio": f(c.MinLRRatio),
		"weight_decay": f(c.WeightDecay), "beta1": f(c.Beta1), "beta2": f(c.Beta2), "eps": f(c.Eps), "clip": f(c.Clip),
		"clip_low": f(c.ClipLow), "clip_high": f(c.ClipHigh), "clip_ratio_c": f(c.ClipRatioC), "kl_coef": f(c.KLCoef), "entropy_coef": f(c.EntropyCoef),
		"ppo_epochs": strconv.Itoa(c.PPOEpochs), "mini_batches": strconv.Itoa(c.MiniBatches), "pack_len": strconv.Itoa(c.packLen()),
		"no_code_score": f(c.NoCodeScore), "seed": strconv.FormatUint(c.Seed, 10),
	}, nil
}

// wireSample is what the other ranks need of a sample: the update's
// inputs and the reward metrics' (see summarizeRewards).
type wireSample struct {
	Tokens      []int
	RawLogProbs []float32
	Reward      float64
	Format      bool
}

// rolloutShared is rollout over a TP×DP group: the TP ranks of each
// replica roll out the replica's Share of ps together (TP rank 0 scores
// them and sends the rewards to the others), and every rank gets every
// group, in ps's order, rebuilt from what the replicas sent (so all ranks
// hold the same values). When any rank's rollout fails or is interrupted,
// every rank returns an error at the same point: its own, or
// train.ErrStoppedByPeer when another rank was interrupted, or
// errPeerFailed when another rank failed, so that all stop at the same
// step and only an interrupt leads to a save (which every rank of a
// sharded policy joins).
func (r *runner) rolloutShared(ctx context.Context, step int64, round int, ps []*prompt) ([]*group, rolloutTiming, error) {
	if r.dp.Size() == 1 && r.group.TP == nil {
		return r.rollout(ctx, step, round, ps, 0)
	}
	lo, hi := r.dp.Share(len(ps))
	var mine []*group
	var timing rolloutTiming
	var err error
	if hi > lo {
		mine, timing, err = r.rollout(ctx, step, round, ps[lo:hi], lo)
	}
	if errors.Is(err, generate.ErrStoppedByPeer) {
		// Another shard's engine stopped: that rank says why below.
		err = train.ErrStoppedByPeer
	}
	stopped := err != nil && (ctx.Err() != nil || errors.Is(err, train.ErrStoppedByPeer))
	failed := err != nil && !stopped
	n, cerr := r.group.CountTrue(ctx, stopped, failed)
	switch {
	case failed:
		return nil, timing, err
	case cerr != nil:
		return nil, timing, errors.Join(err, cerr)
	case n[1] > 0:
		return nil, timing, errPeerFailed
	case err != nil:
		return nil, timing, err
	case n[0] > 0:
		return nil, timing, train.ErrStoppedByPeer
	}
	if r.group.TP != nil {
		// Only a rank whose tokens differ from its TP rank 0's fails
		// here; the others learn of it rather than wait for it in the
		// next collective.
		err := r.shareRewards(ctx, mine)
		n, cerr := r.group.CountTrue(ctx, err != nil)
		switch {
		case err != nil:
			return nil, timing, err
		case cerr != nil:
			return nil, timing, cerr
		case n[0] > 0:
			return nil, timing, errPeerFailed
		}
	}
	if r.dp.Size() == 1 {
		return mine, timing, nil
	}
	wire := make([][]wireSample, len(mine))
	for i, g := range mine {
		wire[i] = make([]wireSample, len(g.samples))
		for j, s := range g.samples {
			wire[i][j] = wireSample{Tokens: s.Tokens, RawLogProbs: s.RawLogProbs, Reward: g.rewards[j], Format: g.scores[j].Format}
		}
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(wire); err != nil {
		return nil, timing, fmt.Errorf("encode rollouts: %w", err)
	}
	all, err := r.dp.GatherBytes(ctx, buf.Bytes())
	if err != nil {
		return nil, timing, err
	}
	groups := make([]*group, 0, len(ps))
	for rank, b := range all {
		var gs [][]wireSample
		if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&gs); err != nil {
			return nil, timing, fmt.Errorf("rollouts of rank %d: %w", rank, err)
		}
		if rlo, rhi := r.dp.ShareOf(len(ps), rank); len(gs) != rhi-rlo {
			return nil, timing, fmt.Errorf("rank %d sent %d groups, want %d", rank, len(gs), rhi-rlo)
		}
		for _, ws := range gs {
			g := &group{p: ps[len(groups)], samples: make([]generate.Sample, len(ws)), scores: make([]oracle.Score, len(ws)), rewards: make([]float64, len(ws))}
			for j, w := range ws {
				g.samples[j] = generate.Sample{Index: j, Tokens: w.Tokens, RawLogProbs: w.RawLogProbs}
				g.scores[j] = oracle.Score{Reward: w.Reward, Format: w.Format}
				g.rewards[j] = w.Reward
			}
			groups = append(groups, g)
		}
	}
	return groups, timing, nil
}
