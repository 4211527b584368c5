package qwen2

import (
	"fmt"
	"strings"

	"purpcode/checkpoint"
	"purpcode/engine"
)

// Load reads a Hugging Face model directory (config.json plus
// model.safetensors or a sharded index) into a new model. Every tensor's
// name, shape and dtype is checked; all missing and unexpected tensors are
// named in one error. The model computes on be.
func Load(dir string, be engine.Backend) (*Model, error) {
	return LoadWith(dir, be, Storage{})
}

// ignoredTensor reports buffers some exporters save that are not parameters.
func ignoredTensor(name string) bool {
	return strings.HasSuffix(name, "rotary_emb.inv_freq")
}

// listNames keeps an error readable when a whole checkpoint mismatches.
func listNames(names []string) string {
	const show = 12
	if len(names) <= show {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:show], ", ") + fmt.Sprintf(", ... (%d more)", len(names)-show)
}

// SaveOptions controls Save.
type SaveOptions struct {
	DType         engine.DType      // storage dtype of the weights
	MaxShardBytes int64             // 0: one file
	Files         map[string][]byte // extra files for the directory (tokenizer files, ...)
}

// Save writes the model as a Hugging Face directory (config.json and
// safetensors), atomically, from the master weights (pulled from the
// device first when the model is on one).
func (m *Model) Save(dir string, opts SaveOptions) error {
	if m.tp != nil {
		return fmt.Errorf("save %s: the model is a tensor-parallel shard (rank %d of %d), not a whole model", dir, m.tp.rank, m.tp.world)
	}
	if err := m.P.Pull(); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	cfg := *m.Cfg
	switch opts.DType {
	case engine.BF16:
		cfg.TorchDType = "bfloat16"
	case engine.F16:
		cfg.TorchDType = "float16"
	default:
		cfg.TorchDType = "float32"
	}
	conf, err := cfg.JSON()
	if err != nil {
		return fmt.Errorf("save %s: config: %w", dir, err)
	}
	files := map[string][]byte{"config.json": conf}
	for k, v := range opts.Files {
		files[k] = v
	}
	tensors := make([]checkpoint.Named, 0, len(m.P.List))
	for _, p := range m.P.List {
		t := p.W
		if opts.DType != engine.F32 {
			t = p.W.Convert(opts.DType)
		}
		tensors = append(tensors, checkpoint.Named{Name: p.Name, T: t})
	}
	return checkpoint.WriteDir(dir, tensors, checkpoint.WriteOptions{
		MaxShardBytes: opts.MaxShardBytes,
		Metadata:      map[string]string{"format": "pt"},
		Files:         files,
	})
}
