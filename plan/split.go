package plan

import (
	"fmt"
	"strings"

	"purpcode/model/qwen2"
)

// Split says how a parameter is divided among tensor-parallel ranks.
type Split int

const (
	// Replicated parameters (norm weights) are whole on every rank.
	Replicated Split = iota
	// Column-parallel parameters (q/k/v weights and biases, gate, up) are
	// split along dimension 0, their output features.
	Column
	// Row-parallel parameters (o_proj, down_proj) are split along
	// dimension 1, their input features.
	Row
	// Vocab-parallel parameters (embed_tokens, lm_head) are split along
	// dimension 0, the vocabulary.
	Vocab
)

func (s Split) String() string {
	switch s {
	case Replicated:
		return "replicated"
	case Column:
		return "column"
	case Row:
		return "row"
	case Vocab:
		return "vocab"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

// Dim is the dimension the split cuts, -1 for Replicated.
func (s Split) Dim() int {
	switch s {
	case Column, Vocab:
		return 0
	case Row:
		return 1
	}
	return -1
}

// splitSuffixes maps the tail of an HF parameter name to its split. A name
// matching none is an error, so a new kind of parameter is never silently
// replicated.
var splitSuffixes = []struct {
	suffix string
	split  Split
}{
	{"input_layernorm.weight", Replicated},
	{"post_attention_layernorm.weight", Replicated},
	{"model.norm.weight", Replicated},
	{"self_attn.q_proj.weight", Column}, {"self_attn.q_proj.bias", Column},
	{"self_attn.k_proj.weight", Column}, {"self_attn.k_proj.bias", Column},
	{"self_attn.v_proj.weight", Column}, {"self_attn.v_proj.bias", Column},
	{"mlp.gate_proj.weight", Column}, {"mlp.up_proj.weight", Column},
	{"self_attn.o_proj.weight", Row}, {"mlp.down_proj.weight", Row},
	{"model.embed_tokens.weight", Vocab}, {"lm_head.weight", Vocab},
}

// SplitOf returns the split of an HF Qwen2 parameter name.
func SplitOf(name string) (Split, error) {
	for _, s := range splitSuffixes {
		if strings.HasSuffix(name, s.suffix) {
			return s.split, nil
		}
	}
	return 0, fmt.Errorf("plan: parameter %q has no tensor-parallel split rule", name)
}

// Slice is the part of a parameter one rank holds: indices [Lo, Hi) of
// dimension Dim; Dim -1 means the whole tensor.
type Slice struct {
	Dim    int
	Lo, Hi int
}

// Numel is the number of elements of the slice of a tensor of shape.
func (s Slice) Numel(shape []int) int64 {
	n := int64(1)
	for d, v := range shape {
		if d == s.Dim {
			v = s.Hi - s.Lo
		}
		n *= int64(v)
	}
	return n
}

// Shape is the shape of the slice of a tensor of shape.
func (s Slice) Shape(shape []int) []int {
	out := append([]int(nil), shape...)
	if s.Dim >= 0 {
		out[s.Dim] = s.Hi - s.Lo
	}
	return out
}

// Layout is the tensor-parallel layout of one model at one TP degree.
type Layout struct {
	Cfg *qwen2.Config
	TP  int
	// KVHeadsPerRank is how many KV heads each rank holds (and caches).
	KVHeadsPerRank int
}

// NewLayout checks that cfg can be split tp ways: TP must divide the
// attention heads, and every split dimension must have at least tp rows.
func NewLayout(cfg *qwen2.Config, tp int) (*Layout, error) {
	if tp < 1 {
		return nil, fmt.Errorf("plan: tensor-parallel degree %d, want at least 1", tp)
	}
	if cfg.Heads%tp != 0 {
		return nil, fmt.Errorf("plan: --tp %d does not divide num_attention_heads %d (whole heads go to a rank; TP can be %s)",
			tp, cfg.Heads, joinInts(divisors(cfg.Heads)))
	}
	if cfg.Intermediate < tp || cfg.Vocab < tp {
		return nil, fmt.Errorf("plan: --tp %d exceeds intermediate_size %d or vocab_size %d", tp, cfg.Intermediate, cfg.Vocab)
	}
	l := &Layout{Cfg: cfg, TP: tp, KVHeadsPerRank: cfg.KVHeads}
	switch {
	case cfg.KVHeads%tp == 0:
		l.KVHeadsPerRank = cfg.KVHeads / tp
	case tp%cfg.KVHeads == 0:
		l.KVHeadsPerRank = 1
	}
	return l, nil
}

// part returns the rows [lo, hi) of n that rank r of tp holds: balanced,
// the first n%tp ranks one row longer.
func part(n, tp, r int) (int, int) {
	q, rem := n/tp, n%tp
	lo := r*q + min(r, rem)
	hi := lo + q
	if r < rem {
		hi++
	}
	return lo, hi
}

// kvHeads returns the KV heads [lo, hi) rank r holds.
func (l *Layout) kvHeads(r int) (int, int) {
	hk := l.Cfg.KVHeads
	switch {
	case hk%l.TP == 0:
		return part(hk, l.TP, r)
	case l.TP%hk == 0:
		// Query heads are contiguous per rank and per KV group, so all of
		// rank r's query heads read the same KV head.
		h := r * hk / l.TP
		return h, h + 1
	}
	return 0, hk
}

// Shard returns the slice of the named parameter (shape as in the HF
// checkpoint) that rank holds.
func (l *Layout) Shard(name string, shape []int, rank int) (Slice, error) {
	if rank < 0 || rank >= l.TP {
		return Slice{}, fmt.Errorf("plan: rank %d outside TP %d", rank, l.TP)
	}
	split, err := SplitOf(name)
	if err != nil {
		return Slice{}, err
	}
	dim := split.Dim()
	if dim < 0 {
		return Slice{Dim: -1}, nil
	}
	if dim >= len(shape) {
		return Slice{}, fmt.Errorf("plan: parameter %q of shape %v has no dimension %d to split", name, shape, dim)
	}
	d := l.Cfg.HeadDim
	var lo, hi int
	switch {
	case strings.Contains(name, "q_proj") || strings.Contains(name, "o_proj"):
		// o_proj's input columns are q's output rows: the same heads.
		lo, hi = part(l.Cfg.Heads, l.TP, rank)
		lo, hi = lo*d, hi*d
	case strings.Contains(name, "k_proj") || strings.Contains(name, "v_proj"):
		lo, hi = l.kvHeads(rank)
		lo, hi = lo*d, hi*d
	default:
		// gate/up rows and down columns use the same partition of the
		// intermediate size; embedding and head that of the vocabulary.
		lo, hi = part(shape[dim], l.TP, rank)
	}
	if hi > shape[dim] {
		return Slice{}, fmt.Errorf("plan: parameter %q of shape %v: rank %d's rows [%d, %d) exceed dimension %d", name, shape, rank, lo, hi, dim)
	}
	return Slice{Dim: dim, Lo: lo, Hi: hi}, nil
}

// RankParams returns the number of parameter elements rank holds, and the
// model's total.
func (l *Layout) RankParams(rank int) (held, total int64, err error) {
	for _, p := range qwen2.ParamSpecs(l.Cfg) {
		s, err := l.Shard(p.Name, p.Shape, rank)
		if err != nil {
			return 0, 0, err
		}
		held += s.Numel(p.Shape)
		total += Slice{Dim: -1}.Numel(p.Shape)
	}
	return held, total, nil
}

func divisors(n int) []int {
	var out []int
	for d := 1; d <= n; d++ {
		if n%d == 0 {
			out = append(out, d)
		}
	}
	return out
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}
