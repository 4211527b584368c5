package qwen2

import (
	"context"
	"fmt"
	"path/filepath"

	"purpcode/checkpoint"
	"purpcode/dist"
	"purpcode/engine"
)

// LoadWith is Load keeping st of the parameters on the backend (see
// Storage): LoadInference for a model that is never trained, or a ZeRO-1
// rank's master chunk.
func LoadWith(dir string, be engine.Backend, st Storage) (*Model, error) {
	return loadDir(dir, func(cfg *Config, r checkpoint.Slicer) (*Model, error) { return LoadFromWith(cfg, r, be, st) })
}

// loadDir opens the HF model directory dir (config.json and its
// safetensors) and loads it with load, naming dir in any error.
func loadDir(dir string, load func(*Config, checkpoint.Slicer) (*Model, error)) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	r, err := checkpoint.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	defer r.Close()
	m, err := load(cfg, r)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	return m, nil
}

// LoadInference loads dir for inference only: on a device only the bf16
// compute copy (2 bytes a parameter instead of the trainable model's 10:
// fp32 master, bf16 compute copy, fp32 gradients), on the CPU no gradient
// buffers. The model computes forward passes, logits and token
// statistics; Backward panics and Save fails.
func LoadInference(dir string, be engine.Backend) (*Model, error) {
	return LoadWith(dir, be, Storage{Inference: true})
}

// LoadFromWith is LoadFrom keeping st of the parameters on the backend.
func LoadFromWith(cfg *Config, src checkpoint.Slicer, be engine.Backend, st Storage) (*Model, error) {
	if _, err := st.options(0); err != nil {
		return nil, err
	}
	if err := checkTensors(cfg, src); err != nil {
		return nil, err
	}
	m := newEmpty(cfg)
	read := slicerSource(src)
	for _, p := range m.P.List {
		if err := read(p.Name, p.W.Shape, -1, 0, 0, p.W.F32); err != nil {
			return nil, err
		}
	}
	m.bind(storedOn{be, st})
	return m, nil
}

// LoadShardWith is LoadShard keeping st of the shard's parameters on the
// backend (a ZeRO-1 chunk is of the shard's flat vector).
func LoadShardWith(ctx context.Context, dir string, be engine.Backend, comm dist.Comm, split SplitFunc, st Storage) (*Model, error) {
	return loadDir(dir, func(cfg *Config, r checkpoint.Slicer) (*Model, error) {
		return LoadShardFromWith(ctx, cfg, r, be, comm, split, st)
	})
}

// LoadShardInference is LoadShard for inference only (see LoadInference):
// a sharded frozen reference holds its slices in bf16 alone.
func LoadShardInference(ctx context.Context, dir string, be engine.Backend, comm dist.Comm, split SplitFunc) (*Model, error) {
	return LoadShardWith(ctx, dir, be, comm, split, Storage{Inference: true})
}

// LoadShardFromWith is LoadShardFrom keeping st of the shard's parameters
// on the backend.
func LoadShardFromWith(ctx context.Context, cfg *Config, src checkpoint.Slicer, be engine.Backend, comm dist.Comm, split SplitFunc, st Storage) (*Model, error) {
	if _, err := st.options(0); err != nil {
		return nil, err
	}
	if err := checkTensors(cfg, src); err != nil {
		return nil, err
	}
	// NewShard binds the shard to the backend it is given: the wrapper
	// carries the storage to bind, which unwraps it; the shard's
	// collectives then run on the backend itself, as they would after
	// LoadShardFrom.
	m, err := NewShard(ctx, cfg, storedOn{be, st}, comm, split, slicerSource(src))
	if err != nil {
		return nil, err
	}
	m.tp.be = be
	return m, nil
}
