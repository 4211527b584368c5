package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"purpcode/engine"
)

func TestRoundTripSingleFile(t *testing.T) {
	for _, d := range []engine.DType{engine.F32, engine.BF16, engine.F16} {
		t.Run(d.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(d)))
			in := []Named{
				{"w.weight", randTensor(rng, d, 7, 5)},
				{"b.bias", randTensor(rng, d, 5)},
				{"scalar", randTensor(rng, d)},
				{"empty", randTensor(rng, d, 0, 3)},
				{"cube", randTensor(rng, d, 2, 3, 4)},
			}
			path := filepath.Join(t.TempDir(), "x.safetensors")
			meta := map[string]string{"format": "pt", "step": "12"}
			if err := WriteFile(path, in, meta); err != nil {
				t.Fatal(err)
			}
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			want := []string{"b.bias", "cube", "empty", "scalar", "w.weight"}
			if got := r.Names(); !reflect.DeepEqual(got, want) {
				t.Fatalf("Names() = %v, want %v", got, want)
			}
			if got := r.Metadata(); !reflect.DeepEqual(got, meta) {
				t.Fatalf("Metadata() = %v, want %v", got, meta)
			}
			for _, nt := range in {
				info, ok := r.Info(nt.Name)
				if !ok || info.DType != d || info.RawDType != d.String() || !info.Supported ||
					!engine.SameShape(info.Shape, nt.T.Shape) || info.File != path ||
					info.Bytes != int64(nt.T.Numel()*d.Size()) {
					t.Fatalf("Info(%q) = %+v, %v", nt.Name, info, ok)
				}
				got, err := r.Tensor(nt.Name)
				if err != nil {
					t.Fatal(err)
				}
				sameTensor(t, nt.Name, got, nt.T)
			}
			if _, ok := r.Info("missing"); ok {
				t.Fatal("Info(missing) reported ok")
			}
			if _, err := r.Tensor("missing"); err == nil || !strings.Contains(err.Error(), `"missing"`) {
				t.Fatalf("Tensor(missing) error = %v", err)
			}
		})
	}
}

func TestCloseIsIdempotentAndTensorsSurvive(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	w := randTensor(rng, engine.F32, 4, 4)
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteFile(path, []Named{{"w", w}}, nil); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Tensor("w")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	sameTensor(t, "w after Close", got, w)
	if _, err := r.Tensor("w"); err == nil || !strings.Contains(err.Error(), "Close") {
		t.Fatalf("Tensor after Close: err = %v", err)
	}
	if r.Metadata() != nil {
		t.Fatalf("Metadata() of a file without __metadata__ = %v, want nil", r.Metadata())
	}
}

// The layout rules (dtype-major order, offsets, padding) written out by hand
// for three tiny tensors whose name order differs from their dtype order.
func TestWriteFileLayoutMatchesReferenceRules(t *testing.T) {
	in := []Named{
		{"b", &engine.Tensor{DType: engine.F16, Shape: []int{2}, Half: []uint16{0x3c00, 0x4000}}},
		{"a", &engine.Tensor{DType: engine.BF16, Shape: []int{1}, Half: []uint16{0x3f80}}},
		{"c", engine.FromF32([]float32{1}, 1)},
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteFile(path, in, nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header := `{"c":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},` +
		`"a":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},` +
		`"b":{"dtype":"F16","shape":[2],"data_offsets":[6,10]}}`
	for len(header)%8 != 0 {
		header += " "
	}
	want := rawFile(header, []byte{0, 0, 0x80, 0x3f, 0x80, 0x3f, 0, 0x3c, 0, 0x40})
	if string(got) != string(want) {
		t.Fatalf("file bytes\n got %q\nwant %q", got, want)
	}
	if (8+len(header))%8 != 0 {
		t.Fatalf("data section starts at %d, not 8-byte aligned", 8+len(header))
	}
}

func TestWriteFileMetadataAndEscaping(t *testing.T) {
	name := "odd \"name\"\n<&>\tü\x01"
	path := filepath.Join(t.TempDir(), "x.safetensors")
	meta := map[string]string{"z": "last", "a": "fi\"rst"}
	if err := WriteFile(path, []Named{{name, engine.FromF32([]float32{3}, 1)}}, meta); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	header := string(raw[8 : 8+n])
	wantPrefix := `{"__metadata__":{"a":"fi\"rst","z":"last"},"odd \"name\"\n<&>\tü\u0001":{`
	if !strings.HasPrefix(header, wantPrefix) {
		t.Fatalf("header %q does not start with %q", header, wantPrefix)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := r.Names(); len(got) != 1 || got[0] != name {
		t.Fatalf("Names() = %q, want [%q]", got, name)
	}
	if !reflect.DeepEqual(r.Metadata(), meta) {
		t.Fatalf("Metadata() = %v, want %v", r.Metadata(), meta)
	}
}

func TestWriteFileRejectsBadInput(t *testing.T) {
	ok := engine.FromF32([]float32{1, 2}, 2)
	cases := []struct {
		name    string
		tensors []Named
		want    string
	}{
		{"duplicate", []Named{{"w", ok}, {"w", ok}}, `"w" given twice`},
		{"nil tensor", []Named{{"w", nil}}, `"w" is nil`},
		{"short data", []Named{{"w", &engine.Tensor{DType: engine.F32, Shape: []int{3}, F32: []float32{1, 2}}}}, "2 F32 values for shape (3)"},
		{"half data missing", []Named{{"w", &engine.Tensor{DType: engine.BF16, Shape: []int{2}, F32: []float32{1, 2}}}}, "0 BF16 values for shape (2)"},
		{"negative dim", []Named{{"w", &engine.Tensor{DType: engine.F32, Shape: []int{-1}}}}, "negative dimension"},
		{"reserved name", []Named{{"__metadata__", ok}}, "invalid name"},
		{"empty name", []Named{{"", ok}}, "invalid name"},
		{"bad dtype", []Named{{"w", &engine.Tensor{DType: 9, Shape: []int{1}}}}, "unsupported dtype"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.safetensors")
			err := WriteFile(path, c.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error = %v, want one naming %s and containing %q", err, path, c.want)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("file written despite the error (stat: %v)", err)
			}
			if left := siblings(t, path); len(left) != 0 {
				t.Fatalf("temp files left behind: %v", left)
			}
		})
	}
}

// sizedF32 returns a zero-valued-but-distinct F32 tensor of n bytes.
func sizedF32(rng *rand.Rand, nbytes int) *engine.Tensor {
	return randTensor(rng, engine.F32, nbytes/4)
}

func readIndex(t *testing.T, dir string) indexJSON {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	var idx indexJSON
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatalf("index: %v\n%s", err, raw)
	}
	return idx
}

func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestWriteDirShardedRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	// Sizes 100,100,100,100,100 bytes with a 250-byte limit: greedy in the
	// given order gives shards {t0,t1} {t2,t3} {t4}. Mixed dtypes check that
	// the per-shard layout still sorts F32 before the 16-bit types.
	in := []Named{
		{"t0", sizedF32(rng, 100)},
		{"t1", randTensor(rng, engine.BF16, 50)},
		{"t2", randTensor(rng, engine.F16, 5, 10)},
		{"t3", sizedF32(rng, 100)},
		{"t4", randTensor(rng, engine.BF16, 10, 5)},
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	config := []byte(`{"model_type":"qwen2"}`)
	opts := WriteOptions{MaxShardBytes: 250, Metadata: map[string]string{"step": "7"},
		Files: map[string][]byte{"config.json": config}}
	if err := WriteDir(dir, in, opts); err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{"config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
		"model-00003-of-00003.safetensors", IndexFileName}
	if got := dirFiles(t, dir); !reflect.DeepEqual(got, wantFiles) {
		t.Fatalf("dir holds %v, want %v", got, wantFiles)
	}
	idx := readIndex(t, dir)
	wantMap := map[string]string{
		"t0": "model-00001-of-00003.safetensors", "t1": "model-00001-of-00003.safetensors",
		"t2": "model-00002-of-00003.safetensors", "t3": "model-00002-of-00003.safetensors",
		"t4": "model-00003-of-00003.safetensors",
	}
	if idx.Metadata.TotalSize != 500 || !reflect.DeepEqual(idx.WeightMap, wantMap) {
		t.Fatalf("index = %+v, want total_size 500 and weight_map %v", idx, wantMap)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "config.json")); string(got) != string(config) {
		t.Fatalf("config.json = %q", got)
	}
	if left := siblings(t, dir); len(left) != 0 {
		t.Fatalf("leftovers next to the dir: %v", left)
	}

	for _, open := range []string{dir, filepath.Join(dir, IndexFileName)} {
		r, err := Open(open)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Names(); !reflect.DeepEqual(got, []string{"t0", "t1", "t2", "t3", "t4"}) {
			t.Fatalf("Names() = %v", got)
		}
		wantMeta := map[string]string{"format": "pt", "step": "7"}
		if got := r.Metadata(); !reflect.DeepEqual(got, wantMeta) {
			t.Fatalf("Metadata() = %v, want %v", got, wantMeta)
		}
		for _, nt := range in {
			info, _ := r.Info(nt.Name)
			if want := filepath.Join(dir, wantMap[nt.Name]); info.File != want {
				t.Fatalf("Info(%s).File = %s, want %s", nt.Name, info.File, want)
			}
			got, err := r.Tensor(nt.Name)
			if err != nil {
				t.Fatal(err)
			}
			sameTensor(t, nt.Name, got, nt.T)
		}
		r.Close()
	}

	// Each shard is itself a standalone safetensors file in reference layout.
	first, err := Open(filepath.Join(dir, "model-00001-of-00003.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	i0, _ := first.Info("t0")
	i1, _ := first.Info("t1")
	if !reflect.DeepEqual(first.Names(), []string{"t0", "t1"}) || i0.Bytes != 100 || i1.RawDType != "BF16" {
		t.Fatalf("shard 1: names %v, t0 %+v, t1 %+v", first.Names(), i0, i1)
	}
}

func TestWriteDirOversizedTensorGetsOwnShard(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	in := []Named{{"a", sizedF32(rng, 100)}, {"big", sizedF32(rng, 400)}, {"c", sizedF32(rng, 100)}}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := WriteDir(dir, in, WriteOptions{MaxShardBytes: 250}); err != nil {
		t.Fatal(err)
	}
	idx := readIndex(t, dir)
	want := map[string]string{"a": "model-00001-of-00003.safetensors", "big": "model-00002-of-00003.safetensors",
		"c": "model-00003-of-00003.safetensors"}
	if !reflect.DeepEqual(idx.WeightMap, want) || idx.Metadata.TotalSize != 600 {
		t.Fatalf("index = %+v, want %v", idx, want)
	}
}

func TestWriteDirSingleFileWhenItFits(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	in := []Named{{"a", sizedF32(rng, 100)}, {"b", sizedF32(rng, 100)}}
	for _, max := range []int64{0, 200, 1 << 30} {
		dir := filepath.Join(t.TempDir(), "ckpt")
		if err := WriteDir(dir, in, WriteOptions{MaxShardBytes: max}); err != nil {
			t.Fatal(err)
		}
		if got := dirFiles(t, dir); !reflect.DeepEqual(got, []string{SingleFileName}) {
			t.Fatalf("MaxShardBytes %d: dir holds %v, want only %s", max, got, SingleFileName)
		}
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Metadata(); got["format"] != "pt" {
			t.Fatalf("Metadata() = %v, want format pt", got)
		}
		r.Close()
	}
}

func TestWriteDirReplacesExistingDir(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	dir := filepath.Join(t.TempDir(), "ckpt")
	v1 := []Named{{"a", sizedF32(rng, 100)}, {"b", sizedF32(rng, 100)}, {"c", sizedF32(rng, 100)}}
	if err := WriteDir(dir, v1, WriteOptions{MaxShardBytes: 150, Files: map[string][]byte{"old.json": []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	v2 := []Named{{"x", sizedF32(rng, 40)}}
	if err := WriteDir(dir, v2, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := dirFiles(t, dir); !reflect.DeepEqual(got, []string{SingleFileName}) {
		t.Fatalf("after replacing, dir holds %v (stale files from v1?)", got)
	}
	if left := siblings(t, dir); len(left) != 0 {
		t.Fatalf("leftovers next to the dir: %v", left)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Tensor("x")
	if err != nil {
		t.Fatal(err)
	}
	sameTensor(t, "x", got, v2[0].T)
}

func TestWriteDirRejectsBadOptions(t *testing.T) {
	ok := []Named{{"a", engine.FromF32([]float32{1}, 1)}}
	cases := []struct {
		name string
		opts WriteOptions
		want string
	}{
		{"negative max", WriteOptions{MaxShardBytes: -1}, "negative"},
		{"path in file name", WriteOptions{Files: map[string][]byte{"../x.json": nil}}, `"../x.json"`},
		{"shadowing safetensors", WriteOptions{Files: map[string][]byte{"model.safetensors": nil}}, `"model.safetensors"`},
		{"shadowing index", WriteOptions{Files: map[string][]byte{IndexFileName: nil}}, IndexFileName},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			err := WriteDir(dir, ok, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("error = %v, want one naming %s and containing %q", err, dir, c.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("dir created despite the error (stat: %v)", err)
			}
		})
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := WriteDir(dir, []Named{{"a", ok[0].T}, {"a", ok[0].T}}, WriteOptions{}); err == nil ||
		!strings.Contains(err.Error(), "given twice") {
		t.Fatalf("duplicate names: error = %v", err)
	}
}

func TestAtomicWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for i, content := range []string{`{"step":1}`, `{"step":2,"longer":true}`} {
		if err := AtomicWriteFile(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("write %d: read %q, %v; want %q", i, got, err, content)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != 0o640 {
			t.Fatalf("mode %v, want 0640", st.Mode().Perm())
		}
	}
	if got := dirFiles(t, dir); !reflect.DeepEqual(got, []string{"state.json"}) {
		t.Fatalf("dir holds %v, want only state.json", got)
	}
	bad := filepath.Join(dir, "missing", "state.json")
	if err := AtomicWriteFile(bad, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("write into a missing dir: error = %v, want one naming %s", err, bad)
	}
}

// The byte-copy fast paths and the portable element-by-element paths must
// agree, so big-endian hosts read and write the same files.
func TestNativeAndPortableCodecsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	var ts []planned
	for _, d := range []engine.DType{engine.F32, engine.BF16, engine.F16} {
		// More than the 1 MiB encode chunk, to cross chunk boundaries.
		tt := randTensor(rng, d, 300_001)
		ts = append(ts, planned{name: d.String(), t: tt, nbytes: int64(tt.Numel() * d.Size())})
	}
	var fast, slow bytes.Buffer
	if err := writeData(&fast, ts, true); err != nil {
		t.Fatal(err)
	}
	if err := writeData(&slow, ts, false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fast.Bytes(), slow.Bytes()) {
		t.Fatal("native and portable encoders disagree")
	}
	if !littleEndian {
		t.Skip("host is big-endian; the remaining check assumes native = little-endian")
	}
	off := 0
	for _, p := range ts {
		b := slow.Bytes()[off : off+int(p.nbytes)]
		off += int(p.nbytes)
		for _, native := range []bool{true, false} {
			got := &engine.Tensor{DType: p.t.DType, Shape: p.t.Shape}
			decodeInto(got, b, native)
			sameTensor(t, p.name, got, p.t)
		}
	}
	if binary.LittleEndian.Uint32(slow.Bytes()) != math.Float32bits(ts[0].t.F32[0]) {
		t.Fatal("first F32 element is not stored little-endian")
	}
}
