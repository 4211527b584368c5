package plan

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"purpcode/checkpoint"
	"purpcode/engine"
	"purpcode/model/qwen2"
)

// writeSharded writes cfg's parameters with random bf16 values as an HF
// directory sharded like the 32B checkpoint (model-0000i-of-0000N files
// and model.safetensors.index.json), shards of at most maxShard bytes.
func writeSharded(t *testing.T, cfg *qwen2.Config, maxShard int64) string {
	t.Helper()
	r := rand.New(rand.NewPCG(16, 1))
	var named []checkpoint.Named
	for _, p := range qwen2.ParamSpecs(cfg) {
		n := Slice{Dim: -1}.Numel(p.Shape)
		half := make([]uint16, n)
		for i := range half {
			half[i] = uint16(r.Uint32()) & 0x7f7f // finite bf16 bit patterns
		}
		named = append(named, checkpoint.Named{Name: p.Name, T: &engine.Tensor{DType: engine.BF16, Shape: p.Shape, Half: half}})
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := checkpoint.WriteDir(dir, named, checkpoint.WriteOptions{MaxShardBytes: maxShard}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// recorder is an io.ReaderAt that remembers every byte range read.
type recorder struct {
	f     *os.File
	mu    sync.Mutex
	reads []ByteRange
}

func (r *recorder) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.reads = append(r.reads, ByteRange{File: r.f.Name(), Offset: off, Length: int64(len(p))})
	r.mu.Unlock()
	return r.f.ReadAt(p, off)
}

// sliceBytes extracts slice s of a row-major bf16 tensor by walking its
// indices, as little-endian bytes (the reference the ranges must match).
func sliceBytes(half []uint16, shape []int, s Slice) []byte {
	var out []byte
	idx := make([]int, len(shape))
	for flat, h := range half {
		rem := flat
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d] = rem % shape[d]
			rem /= shape[d]
		}
		if s.Dim < 0 || (idx[s.Dim] >= s.Lo && idx[s.Dim] < s.Hi) {
			out = binary.LittleEndian.AppendUint16(out, h)
		}
	}
	return out
}

// TestPlanLoaderReadsExactlyItsRanges loads every rank's slices of a small
// sharded checkpoint through ReadRanges on a recording file and checks
// that the bytes equal the slice taken from the whole tensor and that
// nothing but the computed ranges was read.
func TestPlanLoaderReadsExactlyItsRanges(t *testing.T) {
	// 4 q / 2 kv heads of 4, FFN 20, vocab 37 (uneven at TP 2 and 4).
	cfg := tinyConfig(t, 16, 4, 2, 20, 37, 3)
	dir := writeSharded(t, cfg, 3000)
	if _, err := os.Stat(filepath.Join(dir, checkpoint.IndexFileName)); err != nil {
		t.Fatalf("checkpoint not sharded: %v", err)
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	shards := map[string]bool{}
	for _, n := range ck.Names() {
		info, _ := ck.Info(n)
		shards[info.File] = true
	}
	if len(shards) < 3 {
		t.Fatalf("%d shard files, want several", len(shards))
	}
	files := map[string]*recorder{}
	for f := range shards {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		files[f] = &recorder{f: fh}
	}

	for _, tp := range []int{1, 2, 4} {
		l, err := NewLayout(cfg, tp)
		if err != nil {
			t.Fatal(err)
		}
		for rank := 0; rank < tp; rank++ {
			reads, err := l.Reads(ck.Info, rank)
			if err != nil {
				t.Fatal(err)
			}
			for _, rd := range reads {
				info, _ := ck.Info(rd.Name)
				rec := files[info.File]
				rec.reads = nil
				got, err := ReadRanges(rec, rd.Ranges, nil)
				if err != nil {
					t.Fatal(err)
				}
				full, err := ck.Tensor(rd.Name)
				if err != nil {
					t.Fatal(err)
				}
				want := sliceBytes(full.Half, info.Shape, rd.Slice)
				if !bytes.Equal(got, want) {
					t.Fatalf("tp %d rank %d %s %+v: bytes differ from the tensor's slice", tp, rank, rd.Name, rd.Slice)
				}
				checkReads(t, rec.reads, info, int64(len(want)))
				checkRangeCount(t, rd, info, tp)
			}
		}
	}
}

// checkReads: every read lies inside the tensor's data and no byte is read
// twice; the total is the slice's size.
func checkReads(t *testing.T, reads []ByteRange, info checkpoint.TensorInfo, size int64) {
	t.Helper()
	sort.Slice(reads, func(i, j int) bool { return reads[i].Offset < reads[j].Offset })
	var total int64
	for i, r := range reads {
		if r.Offset < info.Offset || r.Offset+r.Length > info.Offset+info.Bytes {
			t.Fatalf("%s: read [%d, %d) outside its data [%d, %d)", info.Name, r.Offset, r.Offset+r.Length, info.Offset, info.Offset+info.Bytes)
		}
		if i > 0 && reads[i-1].Offset+reads[i-1].Length > r.Offset {
			t.Fatalf("%s: overlapping reads", info.Name)
		}
		total += r.Length
	}
	if total != size {
		t.Fatalf("%s: read %d bytes, the slice has %d", info.Name, total, size)
	}
}

// checkRangeCount: column and vocab slices are one range; a row-parallel
// slice of a 2-D weight is one per row unless it spans whole rows.
func checkRangeCount(t *testing.T, rd TensorRead, info checkpoint.TensorInfo, tp int) {
	t.Helper()
	want := 1
	if rd.Slice.Dim == 1 && tp > 1 {
		want = info.Shape[0]
	}
	if len(rd.Ranges) != want {
		t.Errorf("tp %d %s (%v, split dim %d): %d ranges, want %d", tp, rd.Name, info.Shape, rd.Slice.Dim, len(rd.Ranges), want)
	}
	if rd.Slice.Dim == 1 && len(rd.Ranges) > 1 {
		elem := info.Bytes / Slice{Dim: -1}.Numel(info.Shape)
		rowBytes := int64(info.Shape[1]) * elem
		for i, r := range rd.Ranges {
			if r.Offset != info.Offset+int64(i)*rowBytes+int64(rd.Slice.Lo)*elem {
				t.Fatalf("%s row %d starts at %d", rd.Name, i, r.Offset)
			}
		}
	}
}

func TestPlanReadsRefuseMismatchedCheckpoint(t *testing.T) {
	cfg := tinyConfig(t, 16, 4, 2, 20, 37, 2)
	dir := writeSharded(t, cfg, 0)
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	bigger := tinyConfig(t, 16, 4, 2, 24, 37, 2)
	l, _ := NewLayout(bigger, 2)
	if _, err := l.Reads(ck.Info, 0); err == nil || !strings.Contains(err.Error(), "the config wants [24 16]") {
		t.Errorf("shape mismatch: %v", err)
	}
	deeper := tinyConfig(t, 16, 4, 2, 20, 37, 3)
	l, _ = NewLayout(deeper, 2)
	if _, err := l.Reads(ck.Info, 0); err == nil || !strings.Contains(err.Error(), `no tensor "model.layers.2.`) {
		t.Errorf("missing layer: %v", err)
	}
}

// TestPlanDryRun32B computes every TP rank's ranges of the 32B against a
// packed layout: each rank reads exactly its parameters' bf16 bytes, in
// one range per column/vocab slice and one per row of o_proj and
// down_proj.
func TestPlanDryRun32B(t *testing.T) {
	if testing.Short() {
		t.Skip("computes 5 M ranges")
	}
	cfg := preset(t, "qwen2.5-32b")
	l, err := NewLayout(cfg, 8)
	if err != nil {
		t.Fatal(err)
	}
	info := PackedInfo(cfg, 2)
	for _, rank := range []int{0, 7} {
		reads, err := l.Reads(info, rank)
		if err != nil {
			t.Fatal(err)
		}
		s := Summarize(rank, reads)
		held, _, _ := l.RankParams(rank)
		// Per layer: 2 norms, q/k/v weights and biases, gate, up = 10
		// single ranges, plus 5120 rows of o_proj and of down_proj.
		wantRanges := 64*(10+2*5120) + 3
		if s.Bytes != 2*held || s.Ranges != wantRanges || s.Files != 1 {
			t.Errorf("rank %d: %+v, want %d bytes in %d ranges", rank, s, 2*held, wantRanges)
		}
	}
}
