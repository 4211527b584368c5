package qwen2_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"purpcode/checkpoint"
	"purpcode/dist"
	"purpcode/engine"
	"purpcode/engine/cuda"
	"purpcode/internal/testref"
	"purpcode/model/qwen2"
	"purpcode/plan"
)

// shardDirs are HF directories to load shards from, with the whole model
// each holds: the embedded base model (one F32 file) and tpModels' random
// model saved as BF16 in several shard files (so slices are converted and
// cross files), loaded back whole for the reference.
func shardDirs(t *testing.T) map[string]string {
	t.Helper()
	rnd := tpModels(t)["random"]
	dir := filepath.Join(t.TempDir(), "random-bf16")
	if err := rnd.Save(dir, qwen2.SaveOptions{DType: engine.BF16, MaxShardBytes: 20000}); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"base": "../../testdata/base-model", "random-bf16": dir}
}

// eachRank runs fn on tp ranks of a local group, failing on any error.
func eachRank(t *testing.T, tp int, fn func(ctx context.Context, c dist.Comm) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	comms, err := dist.ConnectLocal(ctx, tp, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, tp)
	var wg sync.WaitGroup
	for r := range tp {
		wg.Go(func() {
			defer comms[r].Close()
			errs[r] = fn(ctx, comms[r])
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

func sameBits(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestLoadShardEqualsShard: every rank's LoadShard is Load + Shard, bit
// for bit, at TP 2 and 4.
func TestLoadShardEqualsShard(t *testing.T) {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	for name, dir := range shardDirs(t) {
		full, err := qwen2.Load(dir, cpu)
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range []int{2, 4} {
			t.Run(fmt.Sprintf("%s/tp%d", name, tp), func(t *testing.T) {
				split := planSplit(t, full.Cfg, tp)
				eachRank(t, tp, func(ctx context.Context, c dist.Comm) error {
					want, err := full.Shard(ctx, cpu, c, split)
					if err != nil {
						return err
					}
					got, err := qwen2.LoadShard(ctx, dir, cpu, c, split)
					if err != nil {
						return err
					}
					if i := sameBits(got.P.Flat, want.P.Flat); i >= 0 {
						return fmt.Errorf("weights differ from Shard's at flat index %d of %d", i, len(want.P.Flat))
					}
					for i, p := range got.P.List {
						if q := want.P.List[i]; p.Name != q.Name || !slices.Equal(p.W.Shape, q.W.Shape) {
							return fmt.Errorf("parameter %d: %s %v, Shard's %s %v", i, p.Name, p.W.Shape, q.Name, q.W.Shape)
						}
					}
					return nil
				})
			})
		}
	}
}

// mergeRuns sorts byte runs by file and offset and joins adjacent ones, so
// that two descriptions of the same bytes compare equal.
func mergeRuns(rs []plan.ByteRange) []plan.ByteRange {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].File != rs[j].File {
			return rs[i].File < rs[j].File
		}
		return rs[i].Offset < rs[j].Offset
	})
	var out []plan.ByteRange
	for _, r := range rs {
		if r.Length == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].File == r.File && out[n-1].Offset+out[n-1].Length == r.Offset {
			out[n-1].Length += r.Length
			continue
		}
		out = append(out, r)
	}
	return out
}

// TestLoadShardReadsExactlyItsRanges records every byte run each rank's
// loader copies out of the checkpoint files and compares it with plan's
// byte ranges of the rank's slices (plan.Layout.Reads): the same bytes,
// none twice, nothing else.
func TestLoadShardReadsExactlyItsRanges(t *testing.T) {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	for name, dir := range shardDirs(t) {
		cfg, err := qwen2.LoadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range []int{1, 2, 4} {
			t.Run(fmt.Sprintf("%s/tp%d", name, tp), func(t *testing.T) {
				layout, err := plan.NewLayout(cfg, tp)
				if err != nil {
					t.Fatal(err)
				}
				split := planSplit(t, cfg, tp)
				eachRank(t, tp, func(ctx context.Context, c dist.Comm) error {
					r, err := checkpoint.Open(dir)
					if err != nil {
						return err
					}
					defer r.Close()
					var mu sync.Mutex
					var got []plan.ByteRange
					tr := checkpoint.Traced{Reader: r, OnRead: func(file string, off, n int64) {
						mu.Lock()
						got = append(got, plan.ByteRange{File: file, Offset: off, Length: n})
						mu.Unlock()
					}}
					if _, err := qwen2.LoadShardFrom(ctx, cfg, tr, cpu, c, split); err != nil {
						return err
					}
					reads, err := layout.Reads(r.Info, c.Rank())
					if err != nil {
						return err
					}
					var want []plan.ByteRange
					var wantBytes, gotBytes int64
					for _, rd := range reads {
						want = append(want, rd.Ranges...)
						wantBytes += rd.Bytes()
					}
					for _, g := range got {
						gotBytes += g.Length
					}
					if gotBytes != wantBytes {
						return fmt.Errorf("read %d bytes, plan's ranges hold %d", gotBytes, wantBytes)
					}
					if g, w := mergeRuns(got), mergeRuns(want); !slices.Equal(g, w) {
						return fmt.Errorf("read %d runs that differ from plan's %d ranges (first read %+v, first range %+v)", len(g), len(w), g[0], w[0])
					}
					return nil
				})
			})
		}
	}
}

// TestLoadFromAndRefusals: LoadFrom reads a whole model equal to Load's,
// and a checkpoint that does not match the config is refused before any
// data is read, naming the tensors.
func TestLoadFromAndRefusals(t *testing.T) {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	dir := shardDirs(t)["random-bf16"]
	full, err := qwen2.Load(dir, cpu)
	if err != nil {
		t.Fatal(err)
	}
	r, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := qwen2.LoadFrom(full.Cfg, r, cpu)
	if err != nil {
		t.Fatal(err)
	}
	if i := sameBits(got.P.Flat, full.P.Flat); i >= 0 {
		t.Fatalf("LoadFrom differs from Load at %d", i)
	}
	deeper := *full.Cfg
	deeper.Layers++
	var read atomic.Bool
	tr := checkpoint.Traced{Reader: r, OnRead: func(string, int64, int64) { read.Store(true) }}
	split := planSplit(t, &deeper, 2)
	eachRank(t, 2, func(ctx context.Context, c dist.Comm) error {
		_, err := qwen2.LoadShardFrom(ctx, &deeper, tr, cpu, c, split)
		if err == nil || !strings.Contains(err.Error(), "missing tensors: model.layers.2.") {
			return fmt.Errorf("a checkpoint with fewer layers: %v", err)
		}
		return nil
	})
	if read.Load() {
		t.Error("a refused checkpoint's data was read")
	}
}

// TestLoadShardOnEmulatedDevice: shards loaded onto the emulated CUDA
// device hold the CPU shards' weights (read back from device memory).
// Loading runs no collective, so the ranks load one after the other on
// one device.
func TestLoadShardOnEmulatedDevice(t *testing.T) {
	dev, err := cuda.Open(cuda.Emulated, cuda.Options{})
	if err != nil {
		testref.Missing(t, testref.NeedNVRTC, err.Error())
		t.Fatal(err)
	}
	defer dev.Close()
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	dir := "../../testdata/base-model"
	cfg, err := qwen2.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	comms, err := dist.ConnectLocal(ctx, 2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	split := planSplit(t, cfg, 2)
	for _, c := range comms {
		want, err := qwen2.LoadShard(ctx, dir, cpu, c, split)
		if err != nil {
			t.Fatal(err)
		}
		got, err := qwen2.LoadShard(ctx, dir, dev, c, split)
		if err != nil {
			t.Fatal(err)
		}
		clear(got.P.Flat)
		got.P.Pull()
		if i := sameBits(got.P.Flat, want.P.Flat); i >= 0 {
			t.Errorf("rank %d: device weight %d differs from the CPU shard's", c.Rank(), i)
		}
		c.Close()
	}
}
