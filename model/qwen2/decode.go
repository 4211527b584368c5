package qwen2

import (
	"fmt"
	"math"
	"sync"

	"purpcode/engine"
)

// This file is the inference path: a paged KV cache and a batched step that
// runs prefill (many new tokens of one sequence) and decode (one new token
// of each of many sequences) through the same code. The projections and the
// MLP run as one GEMM over every new token of the step, which is what makes
// batched decode fast; attention reads the cache block by block. The CUDA
// backend is meant to supply the same three pieces: the cache layout, the
// step's op sequence and pagedAttention.

// KVCache is a pool of fixed-size blocks holding every layer's keys (after
// RoPE) and values. Sequences own lists of blocks (SeqCache), so sequences of
// different lengths share one pool and a finished sequence's blocks are
// reused at once. Full blocks can be shared between sequences (Fork), with a
// reference count per block.
//
// Layout per layer: (block, kv head, slot, head dim), so one (block, head)
// pair is a contiguous BlockSize*HeadDim run that attention streams through.
type KVCache struct {
	blockSize int
	numBlocks int
	kvHeads   int
	headDim   int
	k, v      [][]float32 // per layer, numBlocks*kvHeads*blockSize*headDim
	ref       []int32     // per block: number of sequences holding it
	free      []int32     // stack of free block ids
}

// NewKVCache allocates a pool of numBlocks blocks of blockSize tokens for a
// model with the given configuration.
func NewKVCache(cfg *Config, blockSize, numBlocks int) *KVCache {
	if blockSize <= 0 || numBlocks <= 0 {
		panic(fmt.Sprintf("qwen2.NewKVCache: block size %d and block count %d must be positive", blockSize, numBlocks))
	}
	per := numBlocks * cfg.KVHeads * blockSize * cfg.HeadDim
	c := &KVCache{
		blockSize: blockSize, numBlocks: numBlocks, kvHeads: cfg.KVHeads, headDim: cfg.HeadDim,
		ref: make([]int32, numBlocks), free: make([]int32, numBlocks),
	}
	for l := 0; l < cfg.Layers; l++ {
		c.k = append(c.k, make([]float32, per))
		c.v = append(c.v, make([]float32, per))
	}
	// Hand out low block ids first (purely cosmetic: easier debugging).
	for i := range c.free {
		c.free[i] = int32(numBlocks - 1 - i)
	}
	return c
}

// BlockSize is the number of tokens per block.
func (c *KVCache) BlockSize() int { return c.blockSize }

// NumBlocks is the pool capacity in blocks.
func (c *KVCache) NumBlocks() int { return c.numBlocks }

// FreeBlocks is the number of blocks not held by any sequence.
func (c *KVCache) FreeBlocks() int { return len(c.free) }

// BlocksFor is the number of blocks a sequence of the given length needs.
func (c *KVCache) BlocksFor(tokens int) int { return (tokens + c.blockSize - 1) / c.blockSize }

// Bytes is the memory the pool holds.
func (c *KVCache) Bytes() int64 {
	return int64(len(c.k)) * 2 * int64(len(c.ref)) * int64(c.kvHeads*c.blockSize*c.headDim) * 4
}

// SeqCache is one sequence's block table: the cached tokens' keys and values
// live in blocks[i/BlockSize] at slot i%BlockSize.
type SeqCache struct {
	blocks []int32
	n      int
}

// Len is the number of tokens cached.
func (s *SeqCache) Len() int { return s.n }

// Blocks is the number of blocks held.
func (s *SeqCache) Blocks() int { return len(s.blocks) }

// NewSeq returns an empty sequence (it holds no blocks yet).
func (c *KVCache) NewSeq() *SeqCache { return &SeqCache{} }

// reserve makes room for n more tokens of s, allocating blocks. It
// allocates all or nothing.
func (c *KVCache) reserve(s *SeqCache, n int) error {
	need := c.BlocksFor(s.n+n) - len(s.blocks)
	if need <= 0 {
		return nil
	}
	if need > len(c.free) {
		return fmt.Errorf("kv cache: %d more blocks needed for %d new tokens, %d of %d free", need, n, len(c.free), c.numBlocks)
	}
	for i := 0; i < need; i++ {
		b := c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
		c.ref[b] = 1
		s.blocks = append(s.blocks, b)
	}
	return nil
}

// Fork returns a new sequence with the same cached tokens as s. Full blocks
// are shared (never written again: a sequence only writes at its end); a
// partly filled last block is copied, so the fork costs at most one block.
// This is how n samples of one prompt share the prompt's prefill.
func (c *KVCache) Fork(s *SeqCache) (*SeqCache, error) {
	full := s.n / c.blockSize
	partial := s.n%c.blockSize != 0
	if partial && len(c.free) == 0 {
		return nil, fmt.Errorf("kv cache: no free block to fork a sequence of %d tokens (%d blocks in the pool)", s.n, c.numBlocks)
	}
	f := &SeqCache{blocks: make([]int32, 0, len(s.blocks)+1), n: s.n}
	for _, b := range s.blocks[:full] {
		c.ref[b]++
		f.blocks = append(f.blocks, b)
	}
	if partial {
		src := s.blocks[full]
		dst := c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
		c.ref[dst] = 1
		per := c.kvHeads * c.blockSize * c.headDim
		for l := range c.k {
			copy(c.k[l][int(dst)*per:(int(dst)+1)*per], c.k[l][int(src)*per:(int(src)+1)*per])
			copy(c.v[l][int(dst)*per:(int(dst)+1)*per], c.v[l][int(src)*per:(int(src)+1)*per])
		}
		f.blocks = append(f.blocks, dst)
	}
	return f, nil
}

// Free releases s's blocks (shared blocks return to the pool when their last
// holder frees them) and empties s.
func (c *KVCache) Free(s *SeqCache) {
	for _, b := range s.blocks {
		c.ref[b]--
		switch {
		case c.ref[b] == 0:
			c.free = append(c.free, b)
		case c.ref[b] < 0:
			panic(fmt.Sprintf("qwen2.KVCache.Free: block %d freed more often than held", b))
		}
	}
	s.blocks = s.blocks[:0]
	s.n = 0
}

// writeKV stores the (rows, kvHeads*headDim) keys and values of new tokens
// at the given cache positions of s.
func (c *KVCache) writeKV(layer int, s *SeqCache, pos0 int, k, v []float32) {
	d, bs := c.headDim, c.blockSize
	w := c.kvHeads * d
	rows := len(k) / w
	for r := 0; r < rows; r++ {
		p := pos0 + r
		blk, slot := int(s.blocks[p/bs]), p%bs
		for h := 0; h < c.kvHeads; h++ {
			off := ((blk*c.kvHeads+h)*bs + slot) * d
			copy(c.k[layer][off:off+d], k[r*w+h*d:r*w+(h+1)*d])
			copy(c.v[layer][off:off+d], v[r*w+h*d:r*w+(h+1)*d])
		}
	}
}

// StepSeq is one sequence's share of a Step: Tokens are appended to Seq at
// positions Seq.Len(), Seq.Len()+1, ...
type StepSeq struct {
	Seq    *SeqCache
	Tokens []int32
}

// attnRow is one new token for pagedAttention: its sequence's block table
// and its position (it attends to cached positions 0..pos). skip marks rows
// of a fresh prefill, whose attention the GEMM path already computed.
type attnRow struct {
	blocks []int32
	pos    int
	skip   bool
}

// view is a reusable tensor header over a growable buffer, so the step's
// scratch tensors change their row count without allocating.
type view struct {
	t     engine.Tensor
	shape [2]int
	data  []float32
	cols  int
}

func (b *view) rows(n int) *engine.Tensor {
	if cap(b.data) < n*b.cols {
		b.data = make([]float32, n*b.cols)
	}
	b.shape = [2]int{n, b.cols}
	b.t = engine.Tensor{DType: engine.F32, Shape: b.shape[:], F32: b.data[:n*b.cols]}
	return &b.t
}

// Decoder runs inference steps of a model against a KV cache. Its scratch
// grows to the largest step seen and is reused, and decode attention runs on
// a fixed set of worker goroutines, so the steady state of decoding does
// not allocate in attention. A Decoder is not safe for concurrent use; Close
// stops its workers.
type Decoder struct {
	m  *Model
	kv *KVCache

	x, ln, q, k, v, att, mid, ln2, gate, up, act, rstd view
	hl, hn, hr, logits, lse                            view
	qv, kvw, vvw, av                                   engine.Tensor // sub-row views for fresh prefill

	ids, pos []int32
	rows     []attnRow
	lastRow  []int
	all      bool

	// pagedAttention parameters of the current call, read by the workers.
	curLayer int
	curQ     []float32
	curOut   []float32
	scores   [][]float32 // per worker
	pool     workPool
}

// NewDecoder returns a decoder for m over kv. The decoder's KV cache and
// paged attention are host code: m must be on the CPU backend (generate
// refuses other devices before it gets here).
func (m *Model) NewDecoder(kv *KVCache) *Decoder {
	cfg := m.Cfg
	if m.CPU() == nil {
		panic("qwen2.NewDecoder: model on " + m.be.Name() + "; the decoder runs on the CPU backend only")
	}
	if kv.kvHeads != cfg.KVHeads || kv.headDim != cfg.HeadDim || len(kv.k) != cfg.Layers {
		panic(fmt.Sprintf("qwen2.NewDecoder: cache for %d layers x %d kv heads x %d dims, model has %d x %d x %d",
			len(kv.k), kv.kvHeads, kv.headDim, cfg.Layers, cfg.KVHeads, cfg.HeadDim))
	}
	c, i := cfg.Hidden, cfg.Intermediate
	d := &Decoder{m: m, kv: kv}
	for _, s := range []struct {
		v    *view
		cols int
	}{
		{&d.x, c}, {&d.ln, c}, {&d.q, m.attDim}, {&d.k, m.kvDim}, {&d.v, m.kvDim}, {&d.att, m.attDim},
		{&d.mid, c}, {&d.ln2, c}, {&d.gate, i}, {&d.up, i}, {&d.act, i}, {&d.rstd, 1},
		{&d.hl, c}, {&d.hn, c}, {&d.hr, 1}, {&d.logits, cfg.Vocab}, {&d.lse, 1},
	} {
		s.v.cols = s.cols
	}
	workers := max(1, m.CPU().Workers())
	d.scores = make([][]float32, workers)
	d.pool.start(workers, d.attnRange)
	return d
}

// Cache is the KV pool the decoder writes to.
func (d *Decoder) Cache() *KVCache { return d.kv }

// Close stops the decoder's worker goroutines. The decoder must not be used
// afterwards.
func (d *Decoder) Close() { d.pool.stop() }

// Step appends every sequence's new tokens to the cache and returns logits:
// one row per sequence for its last new token, in seqs order (all false), or
// one row per new token, sequence after sequence (all true). The returned
// tensor is scratch valid until the next Step. On error (ids out of range,
// positions beyond max_position_embeddings, a full pool) nothing has
// changed.
func (d *Decoder) Step(seqs []StepSeq, all bool) (*engine.Tensor, error) {
	m, cfg := d.m, d.m.Cfg
	n := 0
	need := 0
	for i, s := range seqs {
		if len(s.Tokens) == 0 {
			return nil, fmt.Errorf("decode step: sequence %d has no new tokens", i)
		}
		if end := s.Seq.n + len(s.Tokens); end > cfg.MaxPositions {
			return nil, fmt.Errorf("decode step: sequence %d would reach %d tokens, beyond max_position_embeddings %d", i, end, cfg.MaxPositions)
		}
		for j, id := range s.Tokens {
			if id < 0 || int(id) >= cfg.Vocab {
				return nil, fmt.Errorf("decode step: sequence %d token %d: id %d outside vocab_size %d", i, j, id, cfg.Vocab)
			}
		}
		for k := 0; k < i; k++ {
			if seqs[k].Seq == s.Seq {
				return nil, fmt.Errorf("decode step: sequence %d appears twice (also at %d)", i, k)
			}
		}
		n += len(s.Tokens)
		need += max(0, d.kv.BlocksFor(s.Seq.n+len(s.Tokens))-len(s.Seq.blocks))
	}
	if n == 0 {
		return nil, fmt.Errorf("decode step: no sequences")
	}
	if need > len(d.kv.free) {
		return nil, fmt.Errorf("decode step: %d KV blocks needed, %d of %d free", need, len(d.kv.free), d.kv.numBlocks)
	}
	for _, s := range seqs {
		if err := d.kv.reserve(s.Seq, len(s.Tokens)); err != nil {
			panic("qwen2.Decoder.Step: reservation failed after the capacity check: " + err.Error())
		}
	}

	d.ids, d.pos, d.rows, d.lastRow = d.ids[:0], d.pos[:0], d.rows[:0], d.lastRow[:0]
	for _, s := range seqs {
		fresh := freshPrefill(s)
		for j, id := range s.Tokens {
			d.ids = append(d.ids, id)
			d.pos = append(d.pos, int32(s.Seq.n+j))
			d.rows = append(d.rows, attnRow{blocks: s.Seq.blocks, pos: s.Seq.n + j, skip: fresh})
		}
		d.lastRow = append(d.lastRow, len(d.ids)-1)
	}

	c, ps := m.CPU(), m.P
	x, ln, rstd := d.x.rows(n), d.ln.rows(n), d.rstd.rows(n)
	q, k, v, att := d.q.rows(n), d.k.rows(n), d.v.rows(n), d.att.rows(n)
	mid, ln2 := d.mid.rows(n), d.ln2.rows(n)
	gate, up, act := d.gate.rows(n), d.up.rows(n), d.act.rows(n)
	c.EmbeddingForward(x, ps.embed.W, d.ids)
	for l := range ps.layers {
		lp := &ps.layers[l]
		c.RMSNormForward(ln, rstd, x, lp.ln1.W, cfg.RMSNormEps)
		c.LinearForward(q, ln, lp.q.W, weightOrNil(lp.qb))
		c.LinearForward(k, ln, lp.k.W, weightOrNil(lp.kb))
		c.LinearForward(v, ln, lp.v.W, weightOrNil(lp.vb))
		c.RoPE(q, d.pos, cfg.Heads, m.ropeC, m.ropeS, false)
		c.RoPE(k, d.pos, cfg.KVHeads, m.ropeC, m.ropeS, false)
		r0 := 0
		for _, s := range seqs {
			t := len(s.Tokens)
			d.kv.writeKV(l, s.Seq, s.Seq.n, k.F32[r0*m.kvDim:(r0+t)*m.kvDim], v.F32[r0*m.kvDim:(r0+t)*m.kvDim])
			r0 += t
		}
		d.attention(l, seqs, q, k, v, att)
		c.LinearForward(mid, att, lp.o.W, nil)
		c.Add(mid, mid, x)
		c.RMSNormForward(ln2, rstd, mid, lp.ln2.W, cfg.RMSNormEps)
		c.LinearForward(gate, ln2, lp.gate.W, nil)
		c.LinearForward(up, ln2, lp.up.W, nil)
		c.SwiGLUForward(act, nil, gate, up)
		c.LinearForward(x, act, lp.down.W, nil)
		c.Add(x, x, mid)
	}
	for _, s := range seqs {
		s.Seq.n += len(s.Tokens)
	}

	// Final norm and head only on the rows whose logits are wanted.
	h := x
	if !all {
		h = d.hl.rows(len(seqs))
		cc := cfg.Hidden
		for i, r := range d.lastRow {
			copy(h.F32[i*cc:(i+1)*cc], x.F32[r*cc:(r+1)*cc])
		}
	}
	rows := h.Shape[0]
	hn := d.hn.rows(rows)
	c.RMSNormForward(hn, d.hr.rows(rows), h, ps.norm.W, cfg.RMSNormEps)
	out := d.logits.rows(rows)
	c.LinearForward(out, hn, ps.head.W, nil)
	return out, nil
}

// attention computes att for every new token of the step. A sequence
// prefilled from empty attends only to its own new tokens, so it takes the
// engine's GEMM-based causal attention over its rows; everything else
// (decode tokens, prefill continuing a cached prefix) reads the paged cache.
func (d *Decoder) attention(layer int, seqs []StepSeq, q, k, v, att *engine.Tensor) {
	m := d.m
	cfg := m.Cfg
	paged := false
	r0 := 0
	for _, s := range seqs {
		t := len(s.Tokens)
		if freshPrefill(s) {
			sh := engine.AttnShape{B: 1, T: t, Hq: cfg.Heads, Hk: cfg.KVHeads, D: cfg.HeadDim}
			sub := func(dst *engine.Tensor, src *engine.Tensor, cols int) *engine.Tensor {
				*dst = engine.Tensor{DType: engine.F32, Shape: []int{t, cols}, F32: src.F32[r0*cols : (r0+t)*cols]}
				return dst
			}
			m.CPU().AttentionForward(sub(&d.av, att, m.attDim), d.lse.rows(t*cfg.Heads),
				sub(&d.qv, q, m.attDim), sub(&d.kvw, k, m.kvDim), sub(&d.vvw, v, m.kvDim), nil, sh)
		} else {
			paged = true
		}
		r0 += t
	}
	if !paged {
		return
	}
	maxCtx := 0
	for _, s := range seqs {
		maxCtx = max(maxCtx, s.Seq.n+len(s.Tokens))
	}
	group := cfg.Heads / cfg.KVHeads
	for w := range d.scores {
		if cap(d.scores[w]) < group*maxCtx {
			d.scores[w] = make([]float32, group*maxCtx)
		}
	}
	d.curLayer, d.curQ, d.curOut = layer, q.F32, att.F32
	d.pool.run(len(d.rows) * cfg.KVHeads)
}

// freshPrefill reports whether s is a prefill of an empty sequence, whose
// attention stays within its own new tokens.
func freshPrefill(s StepSeq) bool { return s.Seq.n == 0 && len(s.Tokens) > 1 }

// attnRange is the worker body: work items [lo, hi) of the current call.
func (d *Decoder) attnRange(w, lo, hi int) {
	cfg := d.m.Cfg
	s := pagedShape{Hq: cfg.Heads, Hk: cfg.KVHeads, D: cfg.HeadDim, BlockSize: d.kv.blockSize}
	pagedAttention(d.curOut, d.curQ, d.kv.k[d.curLayer], d.kv.v[d.curLayer], d.rows, s, d.scores[w], lo, hi)
}

// pagedShape describes the heads and cache blocks for pagedAttention.
type pagedShape struct{ Hq, Hk, D, BlockSize int }

// pagedAttention computes causal attention for work items [lo, hi), item =
// row*Hk + kv head: the query heads of that kv head group, for new token
// row, attend to cached positions 0..rows[row].pos of its sequence (rows
// marked skip are left alone). q and out are (rows, Hq*D); kc and vc are one
// layer of the cache in (block, kv head, slot, D) layout. scores is scratch
// of at least (Hq/Hk)*(maxpos+1) values. Scores are float32 dot products, the
// softmax normaliser is accumulated in float64. It does not allocate.
func pagedAttention(out, q, kc, vc []float32, rows []attnRow, s pagedShape, scores []float32, lo, hi int) {
	group := s.Hq / s.Hk
	ld := s.Hq * s.D
	scale := float32(1 / math.Sqrt(float64(s.D)))
	for item := lo; item < hi; item++ {
		row, hk := item/s.Hk, item%s.Hk
		r := rows[row]
		if r.skip {
			continue
		}
		ctx := r.pos + 1
		// Scores: one pass over the keys, all heads of the group at once.
		for j0 := 0; j0 < ctx; j0 += s.BlockSize {
			blk := int(r.blocks[j0/s.BlockSize])
			base := (blk*s.Hk + hk) * s.BlockSize * s.D
			nj := min(s.BlockSize, ctx-j0)
			for t := 0; t < nj; t++ {
				kv := kc[base+t*s.D : base+(t+1)*s.D]
				for g := 0; g < group; g++ {
					h := hk*group + g
					qh := q[row*ld+h*s.D : row*ld+(h+1)*s.D]
					scores[g*ctx+j0+t] = dot(qh, kv) * scale
				}
			}
		}
		// Softmax per head, then the weighted sum of values.
		for g := 0; g < group; g++ {
			sc := scores[g*ctx : (g+1)*ctx]
			mx := sc[0]
			for _, x := range sc {
				mx = max(mx, x)
			}
			var sum float64
			for j, x := range sc {
				e := math.Exp(float64(x - mx))
				sum += e
				sc[j] = float32(e)
			}
			inv := float32(1 / sum)
			h := hk*group + g
			o := out[row*ld+h*s.D : row*ld+(h+1)*s.D]
			clear(o)
			for j0 := 0; j0 < ctx; j0 += s.BlockSize {
				blk := int(r.blocks[j0/s.BlockSize])
				base := (blk*s.Hk + hk) * s.BlockSize * s.D
				nj := min(s.BlockSize, ctx-j0)
				for t := 0; t < nj; t++ {
					axpy(o, vc[base+t*s.D:base+(t+1)*s.D], sc[j0+t]*inv)
				}
			}
		}
	}
}

// dot is a float32 dot product with four independent partial sums.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy computes y += alpha*x.
func axpy(y, x []float32, alpha float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += alpha * x[i]
	}
}

// workPool runs fn over [0, total) split into one static contiguous chunk
// per worker, on goroutines started once, so dispatching does not allocate.
type workPool struct {
	fn    func(w, lo, hi int)
	n     int
	total int
	jobs  chan int
	wg    sync.WaitGroup
}

func (p *workPool) start(n int, fn func(w, lo, hi int)) {
	p.fn, p.n = fn, n
	p.jobs = make(chan int)
	// Workers range over their own copy: stop clears the field, possibly
	// before a worker has started.
	jobs := p.jobs
	for i := 1; i < n; i++ {
		go func() {
			for w := range jobs {
				p.chunk(w)
				p.wg.Done()
			}
		}()
	}
}

func (p *workPool) chunk(w int) {
	per := (p.total + p.n - 1) / p.n
	lo := w * per
	hi := min(lo+per, p.total)
	if lo < hi {
		p.fn(w, lo, hi)
	}
}

func (p *workPool) run(total int) {
	p.total = total
	if p.n == 1 || total < 2 {
		p.fn(0, 0, total)
		return
	}
	p.wg.Add(p.n - 1)
	for w := 1; w < p.n; w++ {
		p.jobs <- w
	}
	p.chunk(0)
	p.wg.Wait()
}

func (p *workPool) stop() {
	if p.jobs != nil {
		close(p.jobs)
		p.jobs = nil
	}
}
