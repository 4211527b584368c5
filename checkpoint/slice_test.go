package checkpoint

import (
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"purpcode/engine"
)

// sliceRef cuts [lo, hi) of dimension dim out of a host tensor by walking
// every element's index: the reference ReadSlice must equal.
func sliceRef(t *engine.Tensor, dim, lo, hi int) *engine.Tensor {
	out := &engine.Tensor{DType: t.DType, Shape: SliceShape(t.Shape, dim, lo, hi)}
	idx := make([]int, len(t.Shape))
	for flat := range t.Numel() {
		rem := flat
		for d := len(t.Shape) - 1; d >= 0; d-- {
			idx[d] = rem % t.Shape[d]
			rem /= t.Shape[d]
		}
		if dim >= 0 && (idx[dim] < lo || idx[dim] >= hi) {
			continue
		}
		if t.DType == engine.F32 {
			out.F32 = append(out.F32, t.F32[flat])
		} else {
			out.Half = append(out.Half, t.Half[flat])
		}
	}
	if out.DType == engine.F32 && out.F32 == nil {
		out.F32 = []float32{}
	}
	if out.DType != engine.F32 && out.Half == nil {
		out.Half = []uint16{}
	}
	return out
}

func TestReadSliceMatchesReferenceAndReadsOnlyItsBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tensors := []Named{
		{"a", randTensor(rng, engine.F32, 6, 5)},
		{"b", randTensor(rng, engine.BF16, 4, 3, 5)},
		{"c", randTensor(rng, engine.F16, 7)},
		{"pad", randTensor(rng, engine.F32, 3)},
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteFile(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var reads [][2]int64
	tr := Traced{Reader: r, OnRead: func(file string, off, n int64) {
		if file != path {
			t.Fatalf("read of %s", file)
		}
		reads = append(reads, [2]int64{off, n})
	}}
	for _, nt := range tensors {
		info, _ := r.Info(nt.Name)
		for dim := -1; dim < len(nt.T.Shape); dim++ {
			n := 1
			if dim >= 0 {
				n = nt.T.Shape[dim]
			}
			for lo := 0; lo <= n; lo++ {
				for hi := lo; hi <= n; hi++ {
					if dim < 0 && (lo != 0 || hi != 0) {
						continue
					}
					reads = reads[:0]
					got, err := tr.ReadSlice(nt.Name, dim, lo, hi)
					if err != nil {
						t.Fatal(err)
					}
					want := sliceRef(nt.T, dim, lo, hi)
					sameTensor(t, nt.Name, got, want)
					// Exactly the slice's bytes, inside the tensor's data,
					// none twice.
					sort.Slice(reads, func(i, j int) bool { return reads[i][0] < reads[j][0] })
					var total int64
					for i, rd := range reads {
						if rd[0] < info.Offset || rd[0]+rd[1] > info.Offset+info.Bytes || i > 0 && reads[i-1][0]+reads[i-1][1] > rd[0] {
							t.Fatalf("%s dim %d [%d,%d): read [%d,+%d) outside its data or overlapping", nt.Name, dim, lo, hi, rd[0], rd[1])
						}
						total += rd[1]
					}
					if wantBytes := int64(want.Numel() * want.DType.Size()); total != wantBytes {
						t.Fatalf("%s dim %d [%d,%d): read %d bytes, the slice has %d", nt.Name, dim, lo, hi, total, wantBytes)
					}
					// A slice of dimension 0 (or of whole rows) is one run.
					if dim == 0 && hi > lo && len(reads) != 1 {
						t.Fatalf("%s [%d,%d) of dim 0: %d runs", nt.Name, lo, hi, len(reads))
					}
				}
			}
		}
	}
	for _, bad := range []struct {
		dim, lo, hi int
	}{{2, 0, 1}, {0, -1, 2}, {0, 3, 2}, {1, 0, 6}, {-2, 0, 0}} {
		if _, err := r.ReadSlice("a", bad.dim, bad.lo, bad.hi); err == nil || !strings.Contains(err.Error(), `"a"`) {
			t.Errorf("slice %+v of a (6, 5): %v", bad, err)
		}
	}
	if _, err := r.ReadSlice("nope", 0, 0, 1); err == nil {
		t.Error("slice of a missing tensor")
	}
}
