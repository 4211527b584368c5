package checkpoint

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"purpcode/internal/testref"
	"testing"

	"purpcode/engine"
	"purpcode/internal/half"
)

// refsDir returns ../shared/refs beside the module root, or skips.
func refsDir(t testing.TB) string { return testref.Dir(t, "") }

// randTensor makes a tensor of the given dtype with random finite values,
// rounded the way a real checkpoint would hold them.
func randTensor(rng *rand.Rand, d engine.DType, shape ...int) *engine.Tensor {
	n := engine.Numel(shape)
	t := &engine.Tensor{DType: d, Shape: append([]int(nil), shape...)}
	switch d {
	case engine.F32:
		t.F32 = make([]float32, n)
		for i := range t.F32 {
			t.F32[i] = float32(rng.NormFloat64())
		}
	case engine.BF16:
		t.Half = make([]uint16, n)
		for i := range t.Half {
			t.Half[i] = half.F32ToBF16(float32(rng.NormFloat64()))
		}
	case engine.F16:
		t.Half = make([]uint16, n)
		for i := range t.Half {
			t.Half[i] = half.F32ToF16(float32(rng.NormFloat64()))
		}
	}
	return t
}

// sameTensor compares dtype, shape and bit patterns.
func sameTensor(t *testing.T, name string, got, want *engine.Tensor) {
	t.Helper()
	if got.DType != want.DType || !engine.SameShape(got.Shape, want.Shape) {
		t.Fatalf("%s: got %s %v, want %s %v", name, got.DType, got.Shape, want.DType, want.Shape)
	}
	if want.DType == engine.F32 {
		if len(got.F32) != len(want.F32) || got.Half != nil {
			t.Fatalf("%s: got %d F32 values (Half %d), want %d", name, len(got.F32), len(got.Half), len(want.F32))
		}
		for i := range want.F32 {
			if math.Float32bits(got.F32[i]) != math.Float32bits(want.F32[i]) {
				t.Fatalf("%s[%d] = %v, want %v", name, i, got.F32[i], want.F32[i])
			}
		}
		return
	}
	if len(got.Half) != len(want.Half) || got.F32 != nil {
		t.Fatalf("%s: got %d Half values (F32 %d), want %d", name, len(got.Half), len(got.F32), len(want.Half))
	}
	for i := range want.Half {
		if got.Half[i] != want.Half[i] {
			t.Fatalf("%s[%d] = %#04x, want %#04x", name, i, got.Half[i], want.Half[i])
		}
	}
}

// rawFile assembles a safetensors image from a literal header and data.
func rawFile(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func writeTemp(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// siblings lists the names in dir's parent other than dir itself.
func siblings(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != filepath.Base(dir) {
			out = append(out, e.Name())
		}
	}
	return out
}
