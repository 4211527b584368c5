package checkpoint

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/engine/enginetest"
)

// streamInput is a model of mixed dtypes and sizes that shards into several
// files under a 600-byte limit.
func streamInput() []Named {
	rng := rand.New(rand.NewPCG(3, 9))
	return []Named{
		{"model.embed_tokens.weight", randTensor(rng, engine.BF16, 10, 12)},
		{"model.layers.0.self_attn.q_proj.weight", randTensor(rng, engine.F32, 8, 9)},
		{"model.layers.0.self_attn.q_proj.bias", randTensor(rng, engine.F32, 8)},
		{"model.layers.0.mlp.up_proj.weight", randTensor(rng, engine.BF16, 16, 8)},
		{"model.layers.0.input_layernorm.weight", randTensor(rng, engine.F32, 9)},
		{"model.layers.1.mlp.down_proj.weight", randTensor(rng, engine.BF16, 8, 16)},
		{"model.layers.1.mlp.gate_proj.weight", randTensor(rng, engine.F16, 16, 8)},
		{"model.norm.weight", randTensor(rng, engine.F32, 9)},
		{"scalar", randTensor(rng, engine.F32)},
		{"empty", randTensor(rng, engine.BF16, 0, 4)},
		{"lm_head.weight", randTensor(rng, engine.BF16, 10, 12)},
	}
}

func specsOf(in []Named) []TensorSpec {
	out := make([]TensorSpec, len(in))
	for i, nt := range in {
		out[i] = TensorSpec{Name: nt.Name, DType: nt.T.DType, Shape: nt.T.Shape}
	}
	return out
}

// copyTensor returns a fresh copy, as a fill that reads from disk would.
func copyTensor(t *engine.Tensor) *engine.Tensor {
	return &engine.Tensor{DType: t.DType, Shape: append([]int(nil), t.Shape...),
		F32: append([]float32(nil), t.F32...), Half: append([]uint16(nil), t.Half...)}
}

// fileOrder lists dir's tensors in the order their bytes lie on disk: by
// file name, then by offset in the file.
func fileOrder(t *testing.T, dir string) []string {
	t.Helper()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	names := r.Names()
	sort.Slice(names, func(i, j int) bool {
		a, _ := r.Info(names[i])
		b, _ := r.Info(names[j])
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Offset < b.Offset
	})
	return names
}

// TestWriteDirStreamMatchesWriteDir: for the same tensors and options, the
// streaming writer produces the same files, byte for byte, as WriteDir —
// sharded (several files, an index) and single-file — and calls fill once
// per tensor in the order the tensors lie on disk.
func TestWriteDirStreamMatchesWriteDir(t *testing.T) {
	in := streamInput()
	byName := map[string]*engine.Tensor{}
	for _, nt := range in {
		byName[nt.Name] = nt.T
	}
	for _, max := range []int64{600, 0} {
		opts := WriteOptions{MaxShardBytes: max, Metadata: map[string]string{"step": "7"},
			Files: map[string][]byte{"config.json": []byte(`{"a":1}`), "tokenizer.json": []byte("{}")}}
		root := t.TempDir()
		want, got := filepath.Join(root, "want"), filepath.Join(root, "got")
		if err := WriteDir(want, in, opts); err != nil {
			t.Fatal(err)
		}
		var calls []string
		fill := func(name string) (*engine.Tensor, error) {
			calls = append(calls, name)
			return copyTensor(byName[name]), nil
		}
		if err := WriteDirStream(got, specsOf(in), fill, opts); err != nil {
			t.Fatal(err)
		}
		files := dirFiles(t, want)
		if shards, _ := filepath.Glob(filepath.Join(want, "model-*-of-*.safetensors")); max > 0 && len(shards) < 3 {
			t.Fatalf("limit %d: %d shards, want several", max, len(shards))
		}
		if g := dirFiles(t, got); !reflect.DeepEqual(g, files) {
			t.Fatalf("limit %d: streamed files %v, WriteDir's %v", max, g, files)
		}
		for _, f := range files {
			a, err := os.ReadFile(filepath.Join(want, f))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(got, f))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("limit %d: %s differs (%d bytes streamed, %d by WriteDir)", max, f, len(b), len(a))
			}
		}
		if order := fileOrder(t, want); !reflect.DeepEqual(calls, order) {
			t.Errorf("limit %d: fill calls %v,\nwant once each in file order %v", max, calls, order)
		}
	}
}

// TestWriteDirStreamHoldsOneTensor: the writer drops each tensor once it is
// written, so when fill makes them afresh, no earlier tensor is reachable
// when the next is requested.
func TestWriteDirStreamHoldsOneTensor(t *testing.T) {
	in := streamInput()
	byName := map[string]*engine.Tensor{}
	for _, nt := range in {
		byName[nt.Name] = nt.T
	}
	var live enginetest.Liveness
	most, calls := 0, 0
	fill := func(name string) (*engine.Tensor, error) {
		calls++
		fresh := copyTensor(byName[name])
		live.Track(fresh)
		most = max(most, live.Count())
		return fresh, nil
	}
	dir := filepath.Join(t.TempDir(), "m")
	if err := WriteDirStream(dir, specsOf(in), fill, WriteOptions{MaxShardBytes: 600}); err != nil {
		t.Fatal(err)
	}
	if calls != len(in) || most != 1 {
		t.Fatalf("%d fill calls for %d tensors; at most %d tensors alive at once, want 1", calls, len(in), most)
	}
	assertHolds(t, dir, sortedNamed(in))
}

// sortedNamed is in sorted by name, the order Reader.Names lists.
func sortedNamed(in []Named) []Named {
	out := append([]Named(nil), in...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TestWriteDirStreamFillErrorKeepsOldDir: an error from fill — at the first
// tensor, in a later shard, at the last tensor — or a tensor that does not
// match its declaration abandons the write: the old directory is intact,
// nothing is left beside it, and the error names dir and the tensor.
func TestWriteDirStreamFillErrorKeepsOldDir(t *testing.T) {
	v1, _ := versions()
	in := streamInput()
	byName := map[string]*engine.Tensor{}
	for _, nt := range in {
		byName[nt.Name] = nt.T
	}
	boom := errors.New("read failed")
	cases := []struct {
		name string
		at   int // fill call that fails, from 1
		bad  func(*engine.Tensor) *engine.Tensor
		want string
	}{
		{"first", 1, nil, "read failed"},
		{"later shard", 6, nil, "read failed"},
		{"last", len(in), nil, "read failed"},
		{"wrong dtype", 2, func(x *engine.Tensor) *engine.Tensor { return x.Convert(engine.F16) }, "declared"},
		{"wrong shape", 3, func(x *engine.Tensor) *engine.Tensor {
			y := copyTensor(x)
			y.Shape = []int{x.Numel()}
			return y
		}, "declared"},
		{"short data", 4, func(x *engine.Tensor) *engine.Tensor {
			y := copyTensor(x)
			y.F32, y.Half = y.F32[:0], y.Half[:0]
			return y
		}, "values for shape"},
		{"nil", 5, func(*engine.Tensor) *engine.Tensor { return nil }, "is nil"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			if err := WriteDir(dir, v1, WriteOptions{MaxShardBytes: 150}); err != nil {
				t.Fatal(err)
			}
			calls, failed := 0, ""
			fill := func(name string) (*engine.Tensor, error) {
				calls++
				if calls > c.at {
					t.Fatalf("fill called again (%s) after call %d failed", name, c.at)
				}
				if calls == c.at {
					failed = name
					if c.bad == nil {
						return nil, boom
					}
					return c.bad(byName[name]), nil
				}
				return copyTensor(byName[name]), nil
			}
			err := WriteDirStream(dir, specsOf(in), fill, WriteOptions{MaxShardBytes: 600})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) ||
				!strings.Contains(err.Error(), `"`+failed+`"`) || (c.bad == nil && !errors.Is(err, boom)) {
				t.Fatalf("error = %v; want one wrapping %q, naming %s and %q", err, c.want, dir, failed)
			}
			assertHolds(t, dir, v1)
			if left := siblings(t, dir); len(left) != 0 {
				t.Fatalf("failure left %v", left)
			}
		})
	}
}

// A process dying inside fill (simulated by a panic that skips all cleanup)
// leaves the old directory readable and a temp dir that RecoverDir, or the
// next write, removes.
func TestWriteDirStreamCrashInFillKeepsOldDir(t *testing.T) {
	v1, v2 := versions()
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := WriteDir(dir, v1, WriteOptions{MaxShardBytes: 150}); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*engine.Tensor{}
	for _, nt := range v2 {
		byName[nt.Name] = nt.T
	}
	calls := 0
	func() {
		defer func() {
			if r := recover(); r != "crash" {
				panic(r)
			}
		}()
		_ = WriteDirStream(dir, specsOf(v2), func(name string) (*engine.Tensor, error) {
			if calls++; calls == 2 {
				panic("crash")
			}
			return copyTensor(byName[name]), nil
		}, WriteOptions{MaxShardBytes: 100})
	}()
	left := siblings(t, dir)
	if len(left) != 1 || !strings.HasPrefix(left[0], ".ckpt.tmp-") {
		t.Fatalf("after the crash, siblings %v; want one .ckpt.tmp-* dir", left)
	}
	assertHolds(t, dir, v1)
	if err := WriteDirStream(dir, specsOf(v2), func(name string) (*engine.Tensor, error) {
		return copyTensor(byName[name]), nil
	}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	assertHolds(t, dir, v2)
	if left := siblings(t, dir); len(left) != 0 {
		t.Fatalf("leftovers %v", left)
	}
}

// Bad declarations and options are refused before anything is written or
// fill is called.
func TestWriteDirStreamRejectsBadSpecs(t *testing.T) {
	ok := TensorSpec{Name: "w", DType: engine.F32, Shape: []int{2}}
	cases := []struct {
		name  string
		specs []TensorSpec
		opts  WriteOptions
		want  string
	}{
		{"duplicate", []TensorSpec{ok, ok}, WriteOptions{}, `"w" given twice`},
		{"reserved name", []TensorSpec{{Name: "__metadata__", DType: engine.F32}}, WriteOptions{}, "invalid name"},
		{"negative dim", []TensorSpec{{Name: "w", DType: engine.BF16, Shape: []int{2, -1}}}, WriteOptions{}, "negative dimension"},
		{"bad dtype", []TensorSpec{{Name: "w", DType: 9, Shape: []int{1}}}, WriteOptions{}, "unsupported dtype"},
		{"negative max", []TensorSpec{ok}, WriteOptions{MaxShardBytes: -1}, "negative"},
		{"shadowing index", []TensorSpec{ok}, WriteOptions{Files: map[string][]byte{IndexFileName: nil}}, IndexFileName},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			err := WriteDirStream(dir, c.specs, func(name string) (*engine.Tensor, error) {
				t.Fatalf("fill(%q) called for a refused write", name)
				return nil, nil
			}, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("error = %v, want one naming %s and containing %q", err, dir, c.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("dir created despite the error (stat: %v)", err)
			}
			if left := siblings(t, dir); len(left) != 0 {
				t.Fatalf("refusal left %v", left)
			}
		})
	}
}
