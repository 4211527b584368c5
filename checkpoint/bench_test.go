package checkpoint

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"purpcode/engine"
)

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkOpenTensor measures Open plus reading every tensor of a 64 MiB
// file (half F32, half BF16) from the page cache; MB/s counts tensor bytes.
func BenchmarkOpenTensor(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 9))
	var ts []Named
	var total int64
	for i := 0; i < 8; i++ {
		d := engine.F32
		if i%2 == 1 {
			d = engine.BF16
		}
		t := randTensor(rng, d, 1024, 2048)
		ts = append(ts, Named{Name: "layer." + string(rune('a'+i)), T: t})
		total += int64(t.Numel() * d.Size())
	}
	path := filepath.Join(b.TempDir(), "bench.safetensors")
	if err := WriteFile(path, ts, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		r, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		for _, name := range r.Names() {
			if _, err := r.Tensor(name); err != nil {
				b.Fatal(err)
			}
		}
		r.Close()
	}
}

// BenchmarkWriteFile measures WriteFile of the same 64 MiB, fsync included.
func BenchmarkWriteFile(b *testing.B) {
	rng := rand.New(rand.NewPCG(10, 10))
	var ts []Named
	var total int64
	for i := 0; i < 8; i++ {
		t := randTensor(rng, engine.F32, 512, 4096)
		ts = append(ts, Named{Name: "w" + string(rune('a'+i)), T: t})
		total += int64(t.Numel() * 4)
	}
	path := filepath.Join(b.TempDir(), "bench.safetensors")
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		if err := WriteFile(path, ts, nil); err != nil {
			b.Fatal(err)
		}
	}
}
