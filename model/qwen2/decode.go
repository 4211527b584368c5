package qwen2

import (
	"fmt"

	"purpcode/engine"
)

// This file is the inference path: a paged KV cache and a batched step that
// runs prefill (many new tokens of one sequence) and decode (one new token
// of each of many sequences) through the same code, on the model's backend.
// The projections and the MLP run as one GEMM over every new token of the
// step, which is what makes batched decode fast; attention reads the cache
// block by block (engine.Backend.PagedAttention), except a prefill from
// empty, which takes the training attention kernel over its own tokens.

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
	be        engine.Backend
	k, v      []*engine.Tensor // per layer, (numBlocks*kvHeads*blockSize*headDim) in the backend's ActDType
	ref       []int32          // per block: number of sequences holding it
	free      []int32          // stack of free block ids
}

// NewKVCache allocates a pool of numBlocks blocks of blockSize tokens for
// the model m, on its backend.
func (m *Model) NewKVCache(blockSize, numBlocks int) *KVCache {
	cfg := m.lc // a shard caches its own KV heads
	if blockSize <= 0 || numBlocks <= 0 {
		panic(fmt.Sprintf("qwen2.NewKVCache: block size %d and block count %d must be positive", blockSize, numBlocks))
	}
	per := numBlocks * cfg.KVHeads * blockSize * cfg.HeadDim
	c := &KVCache{
		blockSize: blockSize, numBlocks: numBlocks, kvHeads: cfg.KVHeads, headDim: cfg.HeadDim, be: m.be,
		ref: make([]int32, numBlocks), free: make([]int32, numBlocks),
	}
	be := engine.Tagged(m.be, engine.MemKVCache)
	for l := 0; l < cfg.Layers; l++ {
		c.k = append(c.k, be.Alloc(be.ActDType(), per))
		c.v = append(c.v, be.Alloc(be.ActDType(), per))
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
	return int64(len(c.k)) * 2 * int64(len(c.ref)) * int64(c.kvHeads*c.blockSize*c.headDim) * int64(c.be.ActDType().Size())
}

// Close frees the pool's device memory (a no-op on the CPU, whose pool the
// garbage collector reclaims). The cache must not be used afterwards.
func (c *KVCache) Close() {
	for l := range c.k {
		c.be.Free(c.k[l])
		c.be.Free(c.v[l])
	}
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
			c.be.Copy(c.k[l].View(int(dst)*per, per), c.k[l].View(int(src)*per, per))
			c.be.Copy(c.v[l].View(int(dst)*per, per), c.v[l].View(int(src)*per, per))
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

// StepSeq is one sequence's share of a Step: Tokens are appended to Seq at
// positions Seq.Len(), Seq.Len()+1, ...
type StepSeq struct {
	Seq    *SeqCache
	Tokens []int32
}

// scratch is a step buffer on the backend that grows to the largest step
// seen; rows views its first n rows.
type scratch struct {
	t    *engine.Tensor
	rows int
	cols int
	dt   engine.DType
}

func (d *Decoder) rows(s *scratch, n int) *engine.Tensor {
	if s.rows < n {
		d.m.be.Free(s.t)
		s.rows = max(n, 2*s.rows)
		s.t = engine.Tagged(d.m.be, engine.MemDecode).Alloc(s.dt, s.rows, s.cols)
	}
	return s.t.View(0, n, s.cols)
}

// Decoder runs inference steps of a model against a KV cache on the
// model's backend. Its scratch grows to the largest step seen and is
// reused. A Decoder is not safe for concurrent use; Close frees its
// scratch.
type Decoder struct {
	m  *Model
	kv *KVCache

	x, ln, q, k, v, att, mid, ln2, gate, up, act, rstd scratch
	hl, hn, hr, logits, lse                            scratch
	host                                               []float32 // logits downloaded from a device, or gathered from shards

	ids, pos []int32
	lastRow  []int
	paged    engine.PagedRows
}

// NewDecoder returns a decoder for m over kv.
func (m *Model) NewDecoder(kv *KVCache) *Decoder {
	cfg := m.lc
	if kv.kvHeads != cfg.KVHeads || kv.headDim != cfg.HeadDim || len(kv.k) != cfg.Layers || kv.be != m.be {
		panic(fmt.Sprintf("qwen2.NewDecoder: cache for %d layers x %d kv heads x %d dims on %s, model has %d x %d x %d on %s",
			len(kv.k), kv.kvHeads, kv.headDim, kv.be.Name(), cfg.Layers, cfg.KVHeads, cfg.HeadDim, m.be.Name()))
	}
	c, i := cfg.Hidden, cfg.Intermediate
	act, f32 := m.be.ActDType(), engine.F32
	d := &Decoder{m: m, kv: kv}
	for _, s := range []struct {
		s    *scratch
		cols int
		dt   engine.DType
	}{
		{&d.x, c, act}, {&d.ln, c, act}, {&d.q, m.attDim, act}, {&d.k, m.kvDim, act}, {&d.v, m.kvDim, act}, {&d.att, m.attDim, act},
		{&d.mid, c, act}, {&d.ln2, c, act}, {&d.gate, i, act}, {&d.up, i, act}, {&d.act, i, act}, {&d.rstd, 1, f32},
		{&d.hl, c, act}, {&d.hn, c, act}, {&d.hr, 1, f32}, {&d.logits, cfg.Vocab, f32}, {&d.lse, 1, f32},
	} {
		s.s.cols, s.s.dt = s.cols, s.dt
	}
	d.paged = engine.PagedRows{Hq: cfg.Heads, Hk: cfg.KVHeads, D: cfg.HeadDim, BlockSize: kv.blockSize}
	return d
}

// Cache is the KV pool the decoder writes to.
func (d *Decoder) Cache() *KVCache { return d.kv }

// Close frees the decoder's scratch. The decoder must not be used
// afterwards.
func (d *Decoder) Close() {
	for _, s := range []*scratch{&d.x, &d.ln, &d.q, &d.k, &d.v, &d.att, &d.mid, &d.ln2, &d.gate, &d.up, &d.act, &d.rstd,
		&d.hl, &d.hn, &d.hr, &d.logits, &d.lse} {
		d.m.be.Free(s.t)
		*s = scratch{cols: s.cols, dt: s.dt}
	}
}

// Step appends every sequence's new tokens to the cache and returns logits
// on the host: one row per sequence for its last new token, in seqs order
// (all false), or one row per new token, sequence after sequence (all
// true). The returned tensor is scratch valid until the next Step. On error
// (ids out of range, positions beyond max_position_embeddings, a full pool)
// nothing has changed.
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
	d.layout(seqs)

	be, ps := m.be, m.P
	x, ln, rstd := d.rows(&d.x, n), d.rows(&d.ln, n), d.rows(&d.rstd, n)
	q, k, v, att := d.rows(&d.q, n), d.rows(&d.k, n), d.rows(&d.v, n), d.rows(&d.att, n)
	mid, ln2 := d.rows(&d.mid, n), d.rows(&d.ln2, n)
	gate, up, act := d.rows(&d.gate, n), d.rows(&d.up, n), d.rows(&d.act, n)
	m.embedForward(x, d.ids)
	for l := range ps.layers {
		lp := &ps.layers[l]
		be.RMSNormForward(ln, rstd, x, lp.ln1.cw, cfg.RMSNormEps)
		be.LinearForward(q, ln, lp.q.cw, weightOrNil(lp.qb))
		be.LinearForward(k, ln, lp.k.cw, weightOrNil(lp.kb))
		be.LinearForward(v, ln, lp.v.cw, weightOrNil(lp.vb))
		be.RoPE(q, d.pos, m.lc.Heads, m.ropeC, m.ropeS, false)
		be.RoPE(k, d.pos, m.lc.KVHeads, m.ropeC, m.ropeS, false)
		be.PagedKVWrite(d.kv.k[l], d.kv.v[l], k, v, d.paged)
		d.attention(l, seqs, q, k, v, att)
		be.LinearForward(mid, att, lp.o.cw, nil)
		m.tp.allReduce(mid)
		be.Add(mid, mid, x)
		be.RMSNormForward(ln2, rstd, mid, lp.ln2.cw, cfg.RMSNormEps)
		be.LinearForward(gate, ln2, lp.gate.cw, nil)
		be.LinearForward(up, ln2, lp.up.cw, nil)
		be.SwiGLUForward(act, nil, gate, up)
		be.LinearForward(x, act, lp.down.cw, nil)
		m.tp.allReduce(x)
		be.Add(x, x, mid)
	}
	for _, s := range seqs {
		s.Seq.n += len(s.Tokens)
	}

	// Final norm and head only on the rows whose logits are wanted.
	h := x
	if !all {
		h = d.rows(&d.hl, len(seqs))
		be.GatherRows(h, x, d.lastRow)
	}
	rows := h.Shape[0]
	hn := d.rows(&d.hn, rows)
	be.RMSNormForward(hn, d.rows(&d.hr, rows), h, ps.norm.cw, cfg.RMSNormEps)
	out := d.rows(&d.logits, rows)
	be.LinearForward(out, hn, ps.head.cw, nil)
	if m.tp != nil {
		return d.gatherLogits(out)
	}
	if !out.OnDevice() {
		return out, nil
	}
	if cap(d.host) < out.Numel() {
		d.host = make([]float32, out.Numel())
	}
	host := engine.FromF32(d.host[:out.Numel()], out.Shape...)
	be.Download(host.F32, out)
	return host, nil
}

// layout fills the step's token ids, positions, last rows and the paged
// attention description: block tables padded to the longest, each row's
// sequence and position, and which rows are a prefill from empty.
func (d *Decoder) layout(seqs []StepSeq) {
	p := &d.paged
	p.MaxBlocks = 0
	for _, s := range seqs {
		p.MaxBlocks = max(p.MaxBlocks, len(s.Seq.blocks))
	}
	d.ids, d.pos, d.lastRow = d.ids[:0], d.pos[:0], d.lastRow[:0]
	p.Tables, p.Seq, p.Skip = p.Tables[:0], p.Seq[:0], p.Skip[:0]
	for i, s := range seqs {
		p.Tables = append(p.Tables, s.Seq.blocks...)
		for range p.MaxBlocks - len(s.Seq.blocks) {
			p.Tables = append(p.Tables, 0)
		}
		fresh := freshPrefill(s)
		for j, id := range s.Tokens {
			d.ids = append(d.ids, id)
			d.pos = append(d.pos, int32(s.Seq.n+j))
			p.Seq = append(p.Seq, int32(i))
			p.Skip = append(p.Skip, fresh)
		}
		d.lastRow = append(d.lastRow, len(d.ids)-1)
	}
	p.Pos = d.pos
}

// attention computes att for every new token of the step. A sequence
// prefilled from empty attends only to its own new tokens, so it takes the
// backend's training attention over its rows; everything else (decode
// tokens, prefill continuing a cached prefix) reads the paged cache.
func (d *Decoder) attention(layer int, seqs []StepSeq, q, k, v, att *engine.Tensor) {
	m := d.m
	cfg := m.lc
	paged := false
	r0 := 0
	for _, s := range seqs {
		t := len(s.Tokens)
		if freshPrefill(s) {
			sh := engine.AttnShape{B: 1, T: t, Hq: cfg.Heads, Hk: cfg.KVHeads, D: cfg.HeadDim}
			m.be.AttentionForward(att.View(r0*m.attDim, t, m.attDim), d.rows(&d.lse, t*cfg.Heads).View(0, t*cfg.Heads),
				q.View(r0*m.attDim, t, m.attDim), k.View(r0*m.kvDim, t, m.kvDim), v.View(r0*m.kvDim, t, m.kvDim), nil, sh)
		} else {
			paged = true
		}
		r0 += t
	}
	if paged {
		m.be.PagedAttention(att, q, d.kv.k[layer], d.kv.v[layer], d.paged)
	}
}

// freshPrefill reports whether s is a prefill of an empty sequence, whose
// attention stays within its own new tokens.
func freshPrefill(s StepSeq) bool { return s.Seq.n == 0 && len(s.Tokens) > 1 }
