package qwen2

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"purpcode/checkpoint"
	"purpcode/dist"
	"purpcode/engine"
)

// LoadShard reads rank comm.Rank()'s tensor-parallel shard of the Hugging
// Face model directory dir (config.json plus model.safetensors or a
// sharded index): the rank reads only the byte ranges of its slices of
// each tensor (see checkpoint.Reader.ReadSlice), converted to the model's
// float32 storage, so no process ever holds the whole model. The result is
// the model Load followed by Shard would give, bit for bit.
func LoadShard(ctx context.Context, dir string, be engine.Backend, comm dist.Comm, split SplitFunc) (*Model, error) {
	return LoadShardWith(ctx, dir, be, comm, split, Storage{})
}

// LoadShardFrom is LoadShard from an open checkpoint (an HF directory, a
// sharded training checkpoint, or a traced reader in tests). The tensors
// are checked against cfg first, like Load checks them, so a mismatched
// checkpoint fails before any rank reads a byte of data.
func LoadShardFrom(ctx context.Context, cfg *Config, src checkpoint.Slicer, be engine.Backend, comm dist.Comm, split SplitFunc) (*Model, error) {
	return LoadShardFromWith(ctx, cfg, src, be, comm, split, Storage{})
}

// LoadFrom reads a whole (unsharded) model of configuration cfg from src,
// tensor by tensor: how a sharded training checkpoint is loaded back into
// one process.
func LoadFrom(cfg *Config, src checkpoint.Slicer, be engine.Backend) (*Model, error) {
	return LoadFromWith(cfg, src, be, Storage{})
}

// slicerSource reads parameter slices from src, converting them to float32.
func slicerSource(src checkpoint.Slicer) SliceSource {
	return func(name string, shape []int, dim, lo, hi int, dst []float32) error {
		t, err := src.ReadSlice(name, dim, lo, hi)
		if err != nil {
			return err
		}
		if t.Numel() != len(dst) {
			return fmt.Errorf("tensor %s: slice [%d, %d) of dimension %d has %d values, want %d", name, lo, hi, dim, t.Numel(), len(dst))
		}
		if t.DType == engine.F32 {
			copy(dst, t.F32)
		} else {
			copy(dst, t.ToF32())
		}
		return nil
	}
}

// checkTensors compares src's tensors with cfg's parameters the way Load
// does (names, shapes, dtypes), naming every problem in one error.
func checkTensors(cfg *Config, src checkpoint.Slicer) error {
	want := map[string][]int{}
	for _, p := range ParamSpecs(cfg) {
		want[p.Name] = p.Shape
	}
	var missing, unexpected, bad []string
	seen := map[string]bool{}
	for _, name := range src.Names() {
		shape, ok := want[name]
		if !ok {
			if name == "lm_head.weight" && cfg.TieEmbeddings || ignoredTensor(name) || strings.Contains(name, "/") {
				// Tied heads some exporters write, buffers that are not
				// parameters, and optimizer state ("exp_avg/<name>") of a
				// training checkpoint are not the model's.
				continue
			}
			unexpected = append(unexpected, name)
			continue
		}
		seen[name] = true
		info, _ := src.Info(name)
		switch {
		case !engine.SameShape(info.Shape, shape):
			bad = append(bad, fmt.Sprintf("%s: shape %s in %s, config wants %s", name, engine.ShapeString(info.Shape), info.File, engine.ShapeString(shape)))
		case !info.Supported:
			bad = append(bad, fmt.Sprintf("%s: unsupported dtype %s in %s", name, info.RawDType, info.File))
		}
	}
	for name := range want {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing)+len(unexpected)+len(bad) == 0 {
		return nil
	}
	sort.Strings(missing)
	sort.Strings(unexpected)
	sort.Strings(bad)
	var msg []string
	if len(bad) > 0 {
		msg = append(msg, "bad tensors: "+strings.Join(bad, "; "))
	}
	if len(missing) > 0 {
		msg = append(msg, fmt.Sprintf("%d missing tensors: %s", len(missing), listNames(missing)))
	}
	if len(unexpected) > 0 {
		msg = append(msg, fmt.Sprintf("%d unexpected tensors: %s", len(unexpected), listNames(unexpected)))
	}
	return fmt.Errorf("model_type %s, %d layers: %s", cfg.ModelType, cfg.Layers, strings.Join(msg, "; "))
}
