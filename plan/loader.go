package plan

import (
	"fmt"
	"slices"

	"purpcode/checkpoint"
	"purpcode/model/qwen2"
)

// TensorRead is what one rank reads of one parameter: its slice and the
// byte ranges of the checkpoint file holding it.
type TensorRead struct {
	Name   string
	Slice  Slice
	Shape  []int // of the slice
	Ranges []ByteRange
}

// Bytes is the total length of the ranges.
func (t TensorRead) Bytes() int64 {
	var n int64
	for _, r := range t.Ranges {
		n += r.Length
	}
	return n
}

// Reads lists, in HF order, the slices rank loads and their byte ranges.
// info describes a checkpoint tensor (checkpoint.Reader.Info, or
// PackedInfo for a shapes-only dry run); a missing tensor, or one whose
// shape differs from the config's, is an error.
func (l *Layout) Reads(info func(name string) (checkpoint.TensorInfo, bool), rank int) ([]TensorRead, error) {
	var out []TensorRead
	for _, p := range qwen2.ParamSpecs(l.Cfg) {
		ti, ok := info(p.Name)
		if !ok {
			return nil, fmt.Errorf("plan: checkpoint has no tensor %q", p.Name)
		}
		if !slices.Equal(ti.Shape, p.Shape) {
			return nil, fmt.Errorf("plan: tensor %q has shape %v in %s, the config wants %v", p.Name, ti.Shape, ti.File, p.Shape)
		}
		s, err := l.Shard(p.Name, p.Shape, rank)
		if err != nil {
			return nil, err
		}
		rs, err := SliceRanges(ti, s)
		if err != nil {
			return nil, err
		}
		out = append(out, TensorRead{Name: p.Name, Slice: s, Shape: s.Shape(p.Shape), Ranges: rs})
	}
	return out, nil
}

// PackedInfo describes cfg's tensors as if stored back to back in one
// file of the given element size (2 for bf16): the layout a shapes-only
// dry run computes byte ranges against.
func PackedInfo(cfg *qwen2.Config, elemBytes int64) func(string) (checkpoint.TensorInfo, bool) {
	infos := map[string]checkpoint.TensorInfo{}
	off := int64(0)
	for _, p := range qwen2.ParamSpecs(cfg) {
		n := elemBytes * Slice{Dim: -1}.Numel(p.Shape)
		infos[p.Name] = checkpoint.TensorInfo{Name: p.Name, Shape: p.Shape, File: "(packed)", Bytes: n, Offset: off}
		off += n
	}
	return func(name string) (checkpoint.TensorInfo, bool) {
		ti, ok := infos[name]
		return ti, ok
	}
}

// ReadSummary totals what one rank reads.
type ReadSummary struct {
	Rank   int
	Bytes  int64
	Ranges int
	Files  int
}

// Summarize totals reads of one rank.
func Summarize(rank int, reads []TensorRead) ReadSummary {
	s := ReadSummary{Rank: rank}
	files := map[string]bool{}
	for _, t := range reads {
		s.Bytes += t.Bytes()
		s.Ranges += len(t.Ranges)
		for _, r := range t.Ranges {
			files[r.File] = true
		}
	}
	s.Files = len(files)
	return s
}
