package checkpoint

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"purpcode/engine"
)

// FuzzHeader feeds arbitrary bytes as a safetensors file. Parsing must never
// panic, and whatever parses must be fully readable: every supported tensor
// decodes to its declared shape, and every other one fails cleanly.
func FuzzHeader(f *testing.F) {
	rng := rand.New(rand.NewPCG(8, 8))
	dir := f.TempDir()
	seeds := [][]Named{
		nil,
		{{"w", randTensor(rng, engine.F32, 2, 3)}},
		{{"a", randTensor(rng, engine.BF16, 4)}, {"b", randTensor(rng, engine.F16, 1, 2)}, {"c", randTensor(rng, engine.F32)}},
		{{"empty", randTensor(rng, engine.F32, 0)}, {"x", randTensor(rng, engine.F16, 3)}},
	}
	for i, s := range seeds {
		path := filepath.Join(dir, "seed.safetensors")
		meta := map[string]string(nil)
		if i%2 == 1 {
			meta = map[string]string{"format": "pt"}
		}
		if err := WriteFile(path, s, meta); err != nil {
			f.Fatal(err)
		}
		r, err := Open(path)
		if err != nil {
			f.Fatal(err)
		}
		r.Close()
		f.Add(mustRead(f, path))
	}
	f.Add(rawFile(`{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := readerFromBytes("fuzz.safetensors", bytes.Clone(data))
		if err != nil {
			return
		}
		defer r.Close()
		for _, name := range r.Names() {
			info, ok := r.Info(name)
			if !ok {
				t.Fatalf("Names lists %q but Info does not know it", name)
			}
			tt, err := r.Tensor(name)
			if !info.Supported {
				if err == nil {
					t.Fatalf("%q of dtype %s read without error", name, info.RawDType)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%q parsed but is unreadable: %v", name, err)
			}
			n := len(tt.F32) + len(tt.Half)
			if !engine.SameShape(tt.Shape, info.Shape) || n != engine.Numel(info.Shape) ||
				int64(n*info.DType.Size()) != info.Bytes {
				t.Fatalf("%q: %d values, shape %v, %d bytes", name, n, tt.Shape, info.Bytes)
			}
		}
	})
}

// FuzzManifest feeds arbitrary bytes as the manifest of a sharded
// checkpoint whose shard files are real. Reading must never panic: a
// manifest that parses and validates must give every tensor whole or a
// clean error, never an index out of range.
func FuzzManifest(f *testing.F) {
	dir, _ := writeShardedFixture(f)
	path := filepath.Join(dir, ManifestFileName)
	good := mustRead(f, path)
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"hi":2`), []byte(`"hi":9`), 1))
	f.Add(bytes.Replace(good, []byte(`"dim":0`), []byte(`"dim":7`), 1))
	f.Add([]byte(`{"format":"x"}`))
	f.Add(append(bytes.Clone(good), " {}"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sr, err := OpenSharded(dir)
		if err != nil {
			return
		}
		defer sr.Close()
		for _, name := range sr.Names() {
			sr.ReadSlice(name, -1, 0, 0)
		}
	})
}
