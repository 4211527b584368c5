package generate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"

	"purpcode/dist"
	"purpcode/model/qwen2"
)

// Request asks for N samples of one prompt.
type Request struct {
	ID     string // names the prompt in results and seeds its samples
	Prompt []int  // token ids, at least one
	N      int    // number of samples; 0 means 1
	Params SamplingParams
	Seed   uint64
}

// Finish reasons.
const (
	FinishStop   = "stop"   // an EOS or stop token, or a stop string
	FinishLength = "length" // max new tokens or max_position_embeddings
)

// Sample is one completion.
type Sample struct {
	RequestID string
	Index     int   // sample index within the request, 0..N-1
	Tokens    []int // generated tokens (a final stop token included)
	// LogProbs holds each token's log-prob under the distribution it was
	// drawn from: after temperature, top-k and top-p, renormalised. For
	// greedy decoding it equals RawLogProbs.
	LogProbs []float32
	// RawLogProbs holds log-softmax of the model's raw logits (temperature
	// 1, no filtering) at each token: what a forward pass of the trainer
	// computes.
	RawLogProbs []float32
	// TopLogProbs holds, when Params.TopLogProbs > 0, that many most
	// likely tokens of the raw distribution at each token.
	TopLogProbs  [][]TokenLogProb
	FinishReason string
}

// Options configure an Engine.
type Options struct {
	// MaxBatch is the most samples decoding at once (default 32).
	MaxBatch int
	// BlockSize is the KV cache block in tokens (default 16).
	BlockSize int
	// KVBlocks is the KV pool capacity in blocks (default: MaxBatch
	// sequences of min(max_position_embeddings, 2048) tokens). Requests
	// wait for room; one that cannot fit even alone is an error.
	KVBlocks int
	// MaxStepTokens bounds the tokens of one step (decode tokens plus
	// prefill chunks); longer prompts are prefilled in chunks (default 512,
	// raised to MaxBatch+1 when smaller).
	MaxStepTokens int
	// EOS ends every sample (see StopTokens). The stop token is kept.
	EOS []int
	// Decode renders token ids as text for stop strings (e.g. the
	// tokenizer's Decode with special tokens skipped). Needed only when a
	// request has stop strings.
	Decode func(ids []int) string
	// Agree, when set, makes the decision to stop common to a group of
	// engines that must run in lockstep: it is called once per scheduling
	// step with whether this engine's context has ended and returns
	// whether any engine of the group stops (AgreeOn builds it over a
	// dist.Comm). Engines on the tensor-parallel shards of one model
	// (qwen2.Model.Shard) need it: every decode step is a collective, so
	// one that stops alone leaves the others blocked in it. Everything else
	// the engine decides is already the same on every shard (see
	// doc.go), so no other agreement is needed.
	Agree func(stop bool) (bool, error)
}

// ErrStoppedByPeer ends Run on an engine whose own context is live when
// another engine of its Agree group stopped (at the same step).
var ErrStoppedByPeer = errors.New("generate: stopped because another engine of the lockstep group stopped")

// AgreeOn is an Options.Agree over comm: one float64 all-reduce of the
// stop flags per scheduling step (small next to a step's collectives:
// two all-reduces per layer and the logits' all-gather). It runs detached
// from the run's cancellation, since a cancelled engine must still tell
// the others; comm's own per-call timeout bounds it.
func AgreeOn(comm dist.Comm) func(stop bool) (bool, error) {
	return func(stop bool) (bool, error) {
		v := []float64{0}
		if stop {
			v[0] = 1
		}
		if err := comm.AllReduceSumF64(context.Background(), v); err != nil {
			return false, fmt.Errorf("generate: agreeing on stopping with the group: %w", err)
		}
		return v[0] > 0, nil
	}
}

// Engine samples from one model. It holds the KV pool and a decoder; it is
// not safe for concurrent use (one Run at a time). Close releases it.
type Engine struct {
	m    *qwen2.Model
	opts Options
	kv   *qwen2.KVCache
	dec  *qwen2.Decoder
	samp []sampler
}

// New returns an engine for m, allocating its KV pool up front.
func New(m *qwen2.Model, opts Options) (*Engine, error) {
	cfg := m.Cfg
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 32
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = 16
	}
	if opts.MaxStepTokens == 0 {
		opts.MaxStepTokens = 512
	}
	if opts.MaxBatch < 0 || opts.BlockSize < 0 || opts.KVBlocks < 0 || opts.MaxStepTokens < 0 {
		return nil, fmt.Errorf("generate: negative option in %+v", opts)
	}
	opts.MaxStepTokens = max(opts.MaxStepTokens, opts.MaxBatch+1)
	if opts.KVBlocks == 0 {
		per := (min(cfg.MaxPositions, 2048) + opts.BlockSize - 1) / opts.BlockSize
		opts.KVBlocks = opts.MaxBatch * per
	}
	for _, id := range opts.EOS {
		if id < 0 || id >= cfg.Vocab {
			return nil, fmt.Errorf("generate: EOS id %d outside vocab_size %d", id, cfg.Vocab)
		}
	}
	kv := m.NewKVCache(opts.BlockSize, opts.KVBlocks)
	// Sampling runs on the host, one sampler per goroutine.
	workers := runtime.GOMAXPROCS(0)
	return &Engine{m: m, opts: opts, kv: kv, dec: m.NewDecoder(kv), samp: make([]sampler, workers)}, nil
}

// Close frees the engine's KV pool and scratch (device memory under a
// device backend).
func (e *Engine) Close() {
	e.dec.Close()
	e.kv.Close()
}

// Options returns the options in effect (defaults filled in).
func (e *Engine) Options() Options { return e.opts }

// KVBytes is the size of the KV pool.
func (e *Engine) KVBytes() int64 { return e.kv.Bytes() }

// Generate runs every request to completion and returns the samples, per
// request in request order.
func (e *Engine) Generate(ctx context.Context, reqs []Request) ([][]Sample, error) {
	out := make([][]Sample, len(reqs))
	err := e.Run(ctx, reqs, func(i int, s []Sample) { out[i] = s })
	return out, err
}

// group is one request in flight: its prompt prefilled once into root, then
// forked per sample.
type group struct {
	reqIndex  int
	req       *Request
	n, maxNew int
	prompt    []int32
	maxStop   int // longest stop string in bytes
	root      *qwen2.SeqCache
	fed       int       // prompt tokens in root
	logits    []float32 // root's last-position logits once prefilled
	started   int
	running   int // samples decoding now
	finished  int
	samples   []Sample
}

// seq is one running sample.
type seq struct {
	g     *group
	cache *qwen2.SeqCache
	rng   *rand.Rand
	out   *Sample
	next  [1]int32 // the token to feed next step
	worst int      // most blocks its table can reach
	// Result of the current step's draw.
	tok           int
	logp, rawLogp float64
	top           []TokenLogProb
}

// run is the scheduler state of one Run call.
type run struct {
	e       *Engine
	groups  []*group
	pending int      // next request index to admit
	active  []*group // admitted, not all samples started
	running []*seq
	onDone  func(int, []Sample)
}

// Run generates every request, calling onDone (on Run's goroutine) with a
// request's samples, in index order, as soon as all of them have finished,
// so scoring can overlap generation. Requests are validated before any work
// starts; on error or cancellation Run returns without calling onDone
// further.
func (e *Engine) Run(ctx context.Context, reqs []Request, onDone func(reqIndex int, samples []Sample)) error {
	r := &run{e: e, onDone: onDone}
	for i := range reqs {
		g, err := e.newGroup(i, &reqs[i])
		if err != nil {
			return err
		}
		r.groups = append(r.groups, g)
	}
	defer r.release()
	done := 0
	for done < len(r.groups) {
		if err := e.stop(ctx); err != nil {
			return err
		}
		forked := r.fork()
		done += forked
		r.admit()
		n, ran, err := r.step()
		if err != nil {
			return err
		}
		done += n
		if !ran && forked == 0 && done < len(r.groups) {
			return errors.New("generate: scheduler stalled with requests left (internal error)")
		}
	}
	return nil
}

// stop returns the error that ends Run before its next step: ctx's when
// it has ended, ErrStoppedByPeer when only another engine of the Agree
// group stops, else nil.
func (e *Engine) stop(ctx context.Context) error {
	err := ctx.Err()
	if e.opts.Agree == nil {
		return err
	}
	anyStops, aerr := e.opts.Agree(err != nil)
	switch {
	case aerr != nil:
		return errors.Join(err, aerr)
	case err != nil:
		return err
	case anyStops:
		return ErrStoppedByPeer
	}
	return nil
}

func (e *Engine) newGroup(i int, req *Request) (*group, error) {
	cfg := e.m.Cfg
	bad := func(format string, args ...any) error {
		return fmt.Errorf("generate: request %d (id %q): %s", i, req.ID, fmt.Sprintf(format, args...))
	}
	if len(req.Prompt) == 0 {
		return nil, bad("empty prompt")
	}
	if len(req.Prompt) >= cfg.MaxPositions {
		return nil, bad("prompt of %d tokens leaves no room below max_position_embeddings %d", len(req.Prompt), cfg.MaxPositions)
	}
	if req.N < 0 {
		return nil, bad("n = %d samples", req.N)
	}
	if err := req.Params.validate(cfg.Vocab); err != nil {
		return nil, bad("%v", err)
	}
	if len(req.Params.StopStrings) > 0 && e.opts.Decode == nil {
		return nil, bad("stop strings need Options.Decode")
	}
	g := &group{reqIndex: i, req: req, n: max(req.N, 1), prompt: make([]int32, len(req.Prompt))}
	for j, id := range req.Prompt {
		if id < 0 || id >= cfg.Vocab {
			return nil, bad("prompt token %d: id %d outside vocab_size %d", j, id, cfg.Vocab)
		}
		g.prompt[j] = int32(id)
	}
	g.maxNew = min(req.Params.MaxNewTokens, cfg.MaxPositions-len(req.Prompt))
	for _, s := range req.Params.StopStrings {
		g.maxStop = max(g.maxStop, len(s))
	}
	if need, have := e.rootNeed(g)+e.sampleNeed(g), e.kv.NumBlocks(); need > have {
		return nil, bad("needs %d KV blocks of %d tokens (prompt %d + up to %d new tokens), the pool has %d",
			need, e.kv.BlockSize(), len(g.prompt), g.maxNew, have)
	}
	g.samples = make([]Sample, g.n)
	return g, nil
}

// rootNeed is the blocks the prompt's prefill takes.
func (e *Engine) rootNeed(g *group) int { return e.kv.BlocksFor(len(g.prompt)) }

// sampleNeed is the most blocks one sample adds: a copy of the prompt's
// partial last block, then room for all but its last token (which is never
// fed back).
func (e *Engine) sampleNeed(g *group) int {
	l := len(g.prompt)
	fork := 0
	if l%e.kv.BlockSize() != 0 {
		fork = 1
	}
	return fork + e.kv.BlocksFor(l+g.maxNew-1) - e.kv.BlocksFor(l)
}

// committed is the blocks that live sequences may still allocate: every
// root's unfinished prefill, every running sample's remaining growth, and
// one sample for every prompt with samples yet to start and none running
// (a prompt with a running sample gets at least that much back when it
// finishes). Admission and forking keep it within the free blocks, so a
// running sequence never finds the pool empty, and when nothing runs every
// admitted prompt can start a sample: no deadlock, whatever the pool size.
func (r *run) committed() int {
	e := r.e
	c := 0
	for _, g := range r.active {
		if g.root != nil {
			c += e.rootNeed(g) - g.root.Blocks()
		}
		if g.started < g.n && g.running == 0 {
			c += e.sampleNeed(g)
		}
	}
	for _, s := range r.running {
		c += s.worst - s.cache.Blocks()
	}
	return c
}

// fork starts samples of prefilled prompts while the batch and the cache
// have room. It returns the number of requests that completed (a sample can
// end on its first token).
func (r *run) fork() int {
	e := r.e
	completed := 0
	keep := r.active[:0]
	for _, g := range r.active {
		for g.logits != nil && g.started < g.n && len(r.running) < e.opts.MaxBatch {
			// With none running the reservation in committed() covers
			// this sample; otherwise it needs room of its own.
			if g.running > 0 && e.kv.FreeBlocks()-r.committed() < e.sampleNeed(g) {
				break
			}
			c, err := e.kv.Fork(g.root)
			if err != nil {
				panic("generate: fork failed within the reserved blocks: " + err.Error())
			}
			i := g.started
			g.started++
			s := &seq{
				g: g, cache: c, rng: seqRNG(g.req.Seed, g.req.ID, i), out: &g.samples[i],
				worst: e.kv.BlocksFor(len(g.prompt) + g.maxNew - 1),
			}
			*s.out = Sample{RequestID: g.req.ID, Index: i}
			s.drawNext(&e.samp[0], g.logits)
			if r.accept(s) {
				completed += r.finish(s)
			} else {
				g.running++
				r.running = append(r.running, s)
			}
		}
		if g.started == g.n {
			e.kv.Free(g.root)
			g.root, g.logits = nil, nil
			continue
		}
		keep = append(keep, g)
	}
	r.active = keep
	return completed
}

// admit starts prefilling waiting prompts, in request order, while the
// samples they commit fit the batch and their blocks fit the cache.
func (r *run) admit() {
	e := r.e
	for r.pending < len(r.groups) {
		g := r.groups[r.pending]
		committedSamples := len(r.running)
		for _, a := range r.active {
			committedSamples += a.n - a.started
		}
		if committedSamples >= e.opts.MaxBatch {
			return
		}
		if e.kv.FreeBlocks()-r.committed() < e.rootNeed(g)+e.sampleNeed(g) {
			return
		}
		g.root = e.kv.NewSeq()
		r.active = append(r.active, g)
		r.pending++
	}
}

// step runs one decode step over the running samples and the next prefill
// chunks, draws the next tokens and retires finished samples. It returns
// the number of requests completed and whether there was anything to run.
func (r *run) step() (int, bool, error) {
	e := r.e
	in := make([]qwen2.StepSeq, 0, len(r.running)+len(r.active))
	for _, s := range r.running {
		in = append(in, qwen2.StepSeq{Seq: s.cache, Tokens: s.next[:]})
	}
	budget := e.opts.MaxStepTokens - len(r.running)
	var prefill []*group
	for _, g := range r.active {
		if g.root == nil || g.fed == len(g.prompt) || budget == 0 {
			continue
		}
		c := min(len(g.prompt)-g.fed, budget)
		budget -= c
		in = append(in, qwen2.StepSeq{Seq: g.root, Tokens: g.prompt[g.fed : g.fed+c]})
		prefill = append(prefill, g)
	}
	if len(in) == 0 {
		return 0, false, nil
	}
	logits, err := e.dec.Step(in, false)
	if err != nil {
		return 0, true, fmt.Errorf("generate: %w", err)
	}
	v := e.m.Cfg.Vocab
	for j, g := range prefill {
		g.fed += len(in[len(r.running)+j].Tokens)
		if g.fed == len(g.prompt) {
			row := len(r.running) + j
			g.logits = append([]float32(nil), logits.F32[row*v:(row+1)*v]...)
		}
	}
	// Draw in parallel: every sample has its own generator, so the result
	// does not depend on which worker draws it.
	var wg sync.WaitGroup
	nw := min(len(e.samp), len(r.running))
	for w := 0; w < nw; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(r.running); i += nw {
				s := r.running[i]
				s.drawNext(&e.samp[w], logits.F32[i*v:(i+1)*v])
			}
		}()
	}
	wg.Wait()
	completed := 0
	keep := r.running[:0]
	for _, s := range r.running {
		if r.accept(s) {
			s.g.running--
			completed += r.finish(s)
		} else {
			keep = append(keep, s)
		}
	}
	clear(r.running[len(keep):])
	r.running = keep
	return completed, true, nil
}

// accept appends the drawn token to the sample and reports whether the
// sample is finished (setting its finish reason); otherwise the token is
// fed next step.
func (r *run) accept(s *seq) bool {
	o, g := s.out, s.g
	o.Tokens = append(o.Tokens, s.tok)
	o.LogProbs = append(o.LogProbs, float32(s.logp))
	o.RawLogProbs = append(o.RawLogProbs, float32(s.rawLogp))
	if s.top != nil {
		o.TopLogProbs = append(o.TopLogProbs, s.top)
	}
	s.next[0] = int32(s.tok)
	switch {
	case r.isStopToken(g, s.tok) || r.hitStopString(g, o.Tokens):
		o.FinishReason = FinishStop
	case len(o.Tokens) >= g.maxNew:
		o.FinishReason = FinishLength
	default:
		return false
	}
	return true
}

func (r *run) isStopToken(g *group, tok int) bool {
	for _, id := range r.e.opts.EOS {
		if id == tok {
			return true
		}
	}
	for _, id := range g.req.Params.StopIDs {
		if id == tok {
			return true
		}
	}
	return false
}

// hitStopString decodes only the tail that can hold a stop string ending
// in the newest token (every token decodes to at least one byte, plus
// slack for a multi-byte character cut at the window's start); earlier
// occurrences would have stopped the sample already.
func (r *run) hitStopString(g *group, toks []int) bool {
	if g.maxStop == 0 {
		return false
	}
	tail := r.e.opts.Decode(toks[max(0, len(toks)-g.maxStop-2):])
	for _, s := range g.req.Params.StopStrings {
		if strings.Contains(tail, s) {
			return true
		}
	}
	return false
}

// finish frees a finished sample's cache and reports its request when it
// was the last one; it returns 1 then, else 0.
func (r *run) finish(s *seq) int {
	r.e.kv.Free(s.cache)
	g := s.g
	g.finished++
	if g.finished < g.n {
		return 0
	}
	if r.onDone != nil {
		r.onDone(g.reqIndex, g.samples)
	}
	return 1
}

// release returns every block still held (after an error or cancellation)
// so the engine can run again.
func (r *run) release() {
	for _, s := range r.running {
		r.e.kv.Free(s.cache)
	}
	for _, g := range r.active {
		if g.root != nil {
			r.e.kv.Free(g.root)
		}
	}
	r.running, r.active = nil, nil
}

// seqRNG is a sample's private random stream: a function of the request's
// seed and id and the sample index only, never of scheduling.
func seqRNG(seed uint64, id string, index int) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(id))
	return rand.New(rand.NewPCG(splitmix(seed^splitmix(h.Sum64())), splitmix(uint64(index)+0x632be59bd9b4e019)))
}

// splitmix is the SplitMix64 finaliser, used to spread seed bits.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
