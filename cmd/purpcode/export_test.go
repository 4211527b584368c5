package main

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"purpcode/checkpoint"
	"purpcode/dist"
	"purpcode/engine"
	"purpcode/engine/enginetest"
	"purpcode/internal/half"
	"purpcode/model/qwen2"
	"purpcode/train"
)

const exportBase = "../../testdata/base-model"

// shardedCheckpoint saves the base model from two tensor-parallel ranks
// as a sharded checkpoint (step 1) and returns its directory.
func shardedCheckpoint(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	comms, err := dist.ConnectLocal(ctx, 2, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := qwen2.LoadConfig(exportBase)
	if err != nil {
		t.Fatal(err)
	}
	split, err := train.TPSplit(cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			defer comms[r].Close()
			g := train.Group{TP: comms[r], Split: split}
			p, err := train.LoadPolicyGroup(ctx, exportBase, nil, train.Checkpoint{}, train.OptimizerConfig{Name: "adamw", Beta1: 0.9, Beta2: 0.99, Eps: 1e-8},
				engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), g)
			if err == nil {
				st := &train.State{Trainer: "sft", Step: 1, Config: map[string]string{}, ConfigHash: train.HashConfig(map[string]string{})}
				_, err = p.SaveGroup(ctx, out, 0, st, fixedRNG{}, nil, g)
			}
			errs[r] = err
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	dir := train.StepDir(out, 1)
	if !train.IsSharded(dir) {
		t.Fatalf("%s is not a sharded checkpoint", dir)
	}
	return dir
}

type fixedRNG []byte

func (f fixedRNG) MarshalBinary() ([]byte, error) { return f, nil }

// TestExportShardedCheckpoint: the export of a TP 2 checkpoint of the base
// model loads with qwen2.Load and equals the base model — bit for bit in
// f32, rounded to bf16 by default — with an index over several files and
// the tokenizer files.
func TestExportShardedCheckpoint(t *testing.T) {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	base, err := qwen2.Load(exportBase, cpu)
	if err != nil {
		t.Fatal(err)
	}
	ck := shardedCheckpoint(t)
	for _, dtype := range []string{"f32", ""} {
		out := filepath.Join(t.TempDir(), "hf")
		args := []string{"export", "--from", ck, "--out", out, "--max-shard-bytes", "1000000"}
		if dtype != "" {
			args = append(args, "--dtype", dtype)
		}
		code, stdout, stderr := runCLI(args...)
		if code != 0 {
			t.Fatalf("export %v: exit %d: %s", args, code, stderr)
		}
		if !strings.Contains(stdout, "exported "+ck) {
			t.Errorf("stdout %q", stdout)
		}
		for _, f := range []string{checkpoint.IndexFileName, "config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Errorf("export lacks %s: %v", f, err)
			}
		}
		if shards, _ := filepath.Glob(filepath.Join(out, "model-*-of-*.safetensors")); len(shards) < 2 {
			t.Errorf("dtype %q: %d safetensors files, want several under a 1 MB limit", dtype, len(shards))
		}
		got, err := qwen2.Load(out, cpu)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range base.P.Flat {
			want := v
			if dtype == "" {
				want = half.BF16ToF32(half.F32ToBF16(v))
			}
			if math.Float32bits(got.P.Flat[i]) != math.Float32bits(want) {
				t.Fatalf("dtype %q: weight %d = %v, want %v", dtype, i, got.P.Flat[i], want)
			}
		}
		wantDType := map[string]string{"f32": "float32", "": "bfloat16"}[dtype]
		if got.Cfg.TorchDType != wantDType {
			t.Errorf("config torch_dtype %q, want %q", got.Cfg.TorchDType, wantDType)
		}
		if dtype == "" {
			// Widening: the bf16 export, exported again as f32, holds the
			// same values.
			wide := filepath.Join(t.TempDir(), "wide")
			if code, _, stderr := runCLI("export", "--from", out, "--out", wide, "--dtype", "f32"); code != 0 {
				t.Fatalf("re-export as f32: exit %d: %s", code, stderr)
			}
			w, err := qwen2.Load(wide, cpu)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range got.P.Flat {
				if math.Float32bits(w.P.Flat[i]) != math.Float32bits(v) {
					t.Fatalf("bf16 export widened to f32: weight %d = %v, want %v", i, w.P.Flat[i], v)
				}
			}
		}
	}
}

// TestExportRefusals: a non-empty --out, a checkpoint missing a shard or
// its manifest, and a damaged shard are refused, naming the problem; a
// plain model directory exports.
func TestExportRefusals(t *testing.T) {
	ck := shardedCheckpoint(t)
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), []byte("x"), 0o644)
	if code, _, stderr := runCLI("export", "--from", ck, "--out", full); code != 1 || !strings.Contains(stderr, "is not empty") {
		t.Errorf("non-empty out: exit %d %q", code, stderr)
	}
	if code, _, stderr := runCLI("export", "--from", ck, "--out", filepath.Join(t.TempDir(), "o"), "--dtype", "f16"); code != 1 || !strings.Contains(stderr, "want bf16 or f32") {
		t.Errorf("--dtype f16: exit %d %q", code, stderr)
	}

	shard := filepath.Join(ck, "tp-00001-of-00002.safetensors")
	b, err := os.ReadFile(shard)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	os.WriteFile(shard, b, 0o644)
	if code, _, stderr := runCLI("export", "--from", ck, "--out", filepath.Join(t.TempDir(), "o")); code != 1 || !strings.Contains(stderr, "tp-00001-of-00002.safetensors has SHA-256") {
		t.Errorf("damaged shard: exit %d %q", code, stderr)
	}
	os.Remove(shard)
	if code, _, stderr := runCLI("export", "--from", ck, "--out", filepath.Join(t.TempDir(), "o")); code != 1 || !strings.Contains(stderr, "tp-00001-of-00002.safetensors listed in the manifest is missing") {
		t.Errorf("missing shard: exit %d %q", code, stderr)
	}
	os.Remove(filepath.Join(ck, checkpoint.ManifestFileName))
	if code, _, stderr := runCLI("export", "--from", ck, "--out", filepath.Join(t.TempDir(), "o")); code != 1 || !strings.Contains(stderr, "incomplete sharded checkpoint") {
		t.Errorf("no manifest: exit %d %q", code, stderr)
	}

	out := filepath.Join(t.TempDir(), "plain")
	if code, _, stderr := runCLI("export", "--from", exportBase, "--out", out, "--dtype", "f32", "--max-shard-bytes", "0"); code != 0 {
		t.Fatalf("plain export: exit %d %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, checkpoint.SingleFileName)); err != nil {
		t.Error(err)
	}
}

// trackingSlicer records every tensor the export reads from the checkpoint.
type trackingSlicer struct {
	checkpoint.Slicer
	live *enginetest.Liveness
}

func (s trackingSlicer) ReadSlice(name string, dim, lo, hi int) (*engine.Tensor, error) {
	t, err := s.Slicer.ReadSlice(name, dim, lo, hi)
	if err == nil {
		s.live.Track(t)
	}
	return t, err
}

// TestExportHoldsOneTensorAtATime: export's fill path, fed to the streaming
// writer as runExport feeds it, never has more than one tensor alive — each
// assembled from the TP 2 checkpoint's slices, converted (bf16) or not
// (f32), and written before the next is read — and reads each parameter
// once.
func TestExportHoldsOneTensorAtATime(t *testing.T) {
	ck := shardedCheckpoint(t)
	src, closeSrc, err := openCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSrc()
	cfg, err := qwen2.LoadConfig(filepath.Join(ck, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range []engine.DType{engine.BF16, engine.F32} {
		var live enginetest.Liveness
		plan, err := planExport(cfg, trackingSlicer{Slicer: src, live: &live}, dt)
		if err != nil {
			t.Fatal(err)
		}
		most, calls := 0, 0
		fill := func(name string) (*engine.Tensor, error) {
			calls++
			x, err := plan.tensor(name)
			if err == nil {
				live.Track(x)
				most = max(most, live.Count())
			}
			return x, err
		}
		out := filepath.Join(t.TempDir(), "hf")
		if err := checkpoint.WriteDirStream(out, plan.specs, fill, checkpoint.WriteOptions{MaxShardBytes: 1_000_000}); err != nil {
			t.Fatal(err)
		}
		if calls != len(qwen2.ParamSpecs(cfg)) || most != 1 {
			t.Errorf("%s: %d tensors read for %d parameters; at most %d tensors alive at once, want 1",
				dt, calls, len(qwen2.ParamSpecs(cfg)), most)
		}
	}
}
