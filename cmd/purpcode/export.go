package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"purpcode/checkpoint"
	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/train"
)

// exportAbout is export's help paragraph.
const exportAbout = "Consolidates a training checkpoint — sharded (manifest.json and one file per tensor-parallel\n" +
	"rank) or plain — into a Hugging Face model directory that transformers and vLLM load: config.json,\n" +
	"model-0000i-of-0000N.safetensors with model.safetensors.index.json (or one model.safetensors), and\n" +
	"the tokenizer files. A sharded checkpoint is verified in full (every file's size and SHA-256) first;\n" +
	"an incomplete one, or a non-empty --out, is refused. Tensors are assembled from their slices,\n" +
	"converted and written one at a time, so memory holds one tensor (and its conversion), never the model."

// runExport writes a consolidated HF directory from a checkpoint.
func runExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", stderr)
	from := fs.String("from", "", "checkpoint directory (checkpoint-STEP, sharded or plain)")
	out := fs.String("out", "", "output model directory (must not exist or be empty)")
	dtype := fs.String("dtype", "bf16", "storage dtype of the weights: bf16 or f32")
	maxShard := fs.Int64("max-shard-bytes", 5_000_000_000, "largest safetensors file (transformers' default 5GB); 0: one file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" || *out == "" {
		fmt.Fprintln(stderr, "purpcode export: --from and --out are required")
		return errUsage
	}
	var dt engine.DType
	switch strings.ToLower(*dtype) {
	case "bf16", "bfloat16":
		dt = engine.BF16
	case "f32", "fp32", "float32":
		dt = engine.F32
	default:
		return fmt.Errorf("--dtype %q: want bf16 or f32", *dtype)
	}
	if *maxShard < 0 {
		return fmt.Errorf("--max-shard-bytes %d is negative", *maxShard)
	}
	if err := checkEmptyOut(*out); err != nil {
		return err
	}
	src, closeSrc, err := openCheckpoint(*from)
	if err != nil {
		return err
	}
	defer closeSrc()
	cfg, err := qwen2.LoadConfig(filepath.Join(*from, "config.json"))
	if err != nil {
		return fmt.Errorf("export %s: %w", *from, err)
	}
	plan, err := planExport(cfg, src, dt)
	if err != nil {
		return fmt.Errorf("export %s: %w", *from, err)
	}
	files, err := train.TokenizerFiles(*from)
	if err != nil {
		return err
	}
	c := *cfg
	c.TorchDType = map[engine.DType]string{engine.BF16: "bfloat16", engine.F32: "float32"}[dt]
	conf, err := c.JSON()
	if err != nil {
		return fmt.Errorf("export: config: %w", err)
	}
	files["config.json"] = conf
	opts := checkpoint.WriteOptions{MaxShardBytes: *maxShard, Files: files}
	if err := checkpoint.WriteDirStream(*out, plan.specs, plan.tensor, opts); err != nil {
		return fmt.Errorf("export %s: %w", *from, err)
	}
	fmt.Fprintf(stdout, "exported %s to %s: %d tensors, %d bytes of %s weights\n", *from, *out, len(plan.specs), plan.bytes, dt)
	return nil
}

// checkEmptyOut refuses an --out that holds anything, so that an export
// never replaces a model directory.
func checkEmptyOut(out string) error {
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--out %s: %w", out, err)
	case len(entries) > 0:
		return fmt.Errorf("--out %s is not empty (%d entries); choose a new directory", out, len(entries))
	}
	return nil
}

// openCheckpoint opens a sharded checkpoint (after verifying every file's
// size and hash) or a plain model directory.
func openCheckpoint(dir string) (checkpoint.Slicer, func() error, error) {
	if train.IsSharded(dir) {
		m, err := checkpoint.ReadManifest(dir)
		if err != nil {
			return nil, nil, err
		}
		if err := m.CheckFiles(dir, true); err != nil {
			return nil, nil, err
		}
		sr, err := checkpoint.OpenSharded(dir)
		if err != nil {
			return nil, nil, err
		}
		return sr, sr.Close, nil
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, train.ShardFilePattern)); len(matches) > 0 {
		return nil, nil, fmt.Errorf("export %s: incomplete sharded checkpoint: %d shard files but no %s (the save did not finish)", dir, len(matches), checkpoint.ManifestFileName)
	}
	r, err := checkpoint.Open(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("export %s: %w", dir, err)
	}
	return r, r.Close, nil
}

// exportPlan is an export's output: every parameter of the model declared
// up front (HF order, the export dtype), each read from src and converted
// only when the writer reaches it. A 32B model's tensors together are ~65
// GB in bf16; one at a time they are at most a few GB.
type exportPlan struct {
	specs []checkpoint.TensorSpec
	src   checkpoint.Slicer
	dt    engine.DType
	bytes int64 // data bytes of all tensors in dt
}

// planExport declares every parameter of cfg, checking that src holds each
// one with the shape config.json gives, so that a mismatch is reported
// before anything is written; optimizer state and other tensors are left
// out.
func planExport(cfg *qwen2.Config, src checkpoint.Slicer, dt engine.DType) (*exportPlan, error) {
	plan := &exportPlan{src: src, dt: dt}
	for _, p := range qwen2.ParamSpecs(cfg) {
		info, ok := src.Info(p.Name)
		if !ok {
			return nil, fmt.Errorf("no tensor %s", p.Name)
		}
		if !engine.SameShape(info.Shape, p.Shape) {
			return nil, fmt.Errorf("tensor %s has shape %v, config.json wants %v", p.Name, info.Shape, p.Shape)
		}
		if !info.Supported {
			return nil, fmt.Errorf("tensor %s has dtype %s, want F32, BF16 or F16", p.Name, info.RawDType)
		}
		plan.specs = append(plan.specs, checkpoint.TensorSpec{Name: p.Name, DType: dt, Shape: p.Shape})
		plan.bytes += int64(engine.Numel(p.Shape) * dt.Size())
	}
	return plan, nil
}

// tensor reads one parameter whole (a sharded checkpoint assembles it from
// its ranks' slices) and converts it to the export dtype. It is the
// writer's fill: nothing here keeps the tensor, so it is garbage once its
// bytes are written.
func (e *exportPlan) tensor(name string) (*engine.Tensor, error) {
	t, err := e.src.ReadSlice(name, -1, 0, 0)
	if err != nil {
		return nil, err
	}
	switch {
	case t.DType == e.dt:
		return t, nil
	case e.dt == engine.F32:
		// ToF32 already makes the widened copy; Convert would copy it again.
		return &engine.Tensor{DType: engine.F32, Shape: t.Shape, F32: t.ToF32()}, nil
	}
	return t.Convert(e.dt), nil
}
