package checkpoint

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/engine"
)

// writeShardedFixture saves three tensors split over three "ranks": w
// (5, 4) by rows [0,2) [2,4) [3,5) (ranks 1 and 2 overlap on row 3), u
// (3, 6) by columns [0,2) [2,4) [4,6), and n (4) replicated. It returns the
// dir and the whole tensors.
func writeShardedFixture(t testing.TB) (string, map[string]*engine.Tensor) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	whole := map[string]*engine.Tensor{
		"w": randTensor(rng, engine.F32, 5, 4),
		"u": randTensor(rng, engine.BF16, 3, 6),
		"n": randTensor(rng, engine.F32, 4),
	}
	dir := filepath.Join(t.TempDir(), "ck")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rows := [][2]int{{0, 2}, {2, 4}, {3, 5}}
	cols := [][2]int{{0, 2}, {2, 4}, {4, 6}}
	m := &Manifest{Format: ManifestFormat, Version: ManifestVersion, Layout: map[string]int{"tp": 3}}
	tw := ShardedTensor{Name: "w", DType: "F32", Shape: []int{5, 4}, Dim: 0}
	tu := ShardedTensor{Name: "u", DType: "BF16", Shape: []int{3, 6}, Dim: 1}
	tn := ShardedTensor{Name: "n", DType: "F32", Shape: []int{4}, Dim: -1}
	for r := range 3 {
		file := "rank-" + string(rune('0'+r)) + ".safetensors"
		d, err := WriteFileDigest(filepath.Join(dir, file), []Named{
			{"w", sliceRef(whole["w"], 0, rows[r][0], rows[r][1])},
			{"u", sliceRef(whole["u"], 1, cols[r][0], cols[r][1])},
			{"n", whole["n"]},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, d)
		tw.Slices = append(tw.Slices, SliceRef{Rank: r, Lo: rows[r][0], Hi: rows[r][1], File: file})
		tu.Slices = append(tu.Slices, SliceRef{Rank: r, Lo: cols[r][0], Hi: cols[r][1], File: file})
		tn.Slices = append(tn.Slices, SliceRef{Rank: r, File: file})
	}
	cfg, err := WriteFileDigestBytes(filepath.Join(dir, "config.json"), []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	m.Files = append(m.Files, cfg)
	m.Tensors = []ShardedTensor{tw, tu, tn}
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir, whole
}

func TestShardedReaderAssemblesAnySlice(t *testing.T) {
	dir, whole := writeShardedFixture(t)
	if err := mustManifest(t, dir).CheckFiles(dir, true); err != nil {
		t.Fatal(err)
	}
	sr, err := OpenSharded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	if got := strings.Join(sr.Names(), ","); got != "n,u,w" {
		t.Errorf("names %s", got)
	}
	for name, w := range whole {
		info, ok := sr.Info(name)
		if !ok || !engine.SameShape(info.Shape, w.Shape) || info.DType != w.DType {
			t.Fatalf("Info(%s) = %+v", name, info)
		}
		for dim := -1; dim < len(w.Shape); dim++ {
			n := 1
			if dim >= 0 {
				n = w.Shape[dim]
			}
			for lo := 0; lo < n; lo++ {
				for hi := lo + 1; hi <= n; hi++ {
					if dim < 0 && lo > 0 {
						continue
					}
					got, err := sr.ReadSlice(name, dim, lo, hi)
					if err != nil {
						t.Fatal(err)
					}
					sameTensor(t, name, got, sliceRef(w, dim, lo, hi))
				}
			}
		}
	}
}

func mustManifest(t *testing.T, dir string) *Manifest {
	t.Helper()
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestShardedCheckpointDamageIsNamed(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		dir, _ := writeShardedFixture(t)
		os.Remove(filepath.Join(dir, "rank-1.safetensors"))
		if _, err := OpenSharded(dir); err == nil || !strings.Contains(err.Error(), "rank-1.safetensors listed in the manifest is missing") {
			t.Errorf("OpenSharded: %v", err)
		}
	})
	t.Run("bad hash", func(t *testing.T) {
		dir, _ := writeShardedFixture(t)
		p := filepath.Join(dir, "rank-2.safetensors")
		b, _ := os.ReadFile(p)
		b[len(b)-1] ^= 1
		os.WriteFile(p, b, 0o644)
		m := mustManifest(t, dir)
		if err := m.CheckFiles(dir, false); err != nil {
			t.Errorf("size check: %v", err)
		}
		if err := m.CheckFiles(dir, true); err == nil || !strings.Contains(err.Error(), "file rank-2.safetensors has SHA-256") {
			t.Errorf("hash check: %v", err)
		}
	})
	t.Run("uncovered rows", func(t *testing.T) {
		dir, _ := writeShardedFixture(t)
		m := mustManifest(t, dir)
		m.Tensors[0].Slices = m.Tensors[0].Slices[:2] // rows [0,4) of 5
		if err := WriteManifest(dir, m); err == nil || !strings.Contains(err.Error(), `tensor "w": index 4 of dimension 0 is held by no rank`) {
			t.Errorf("WriteManifest: %v", err)
		}
	})
	t.Run("slice not in its file", func(t *testing.T) {
		dir, _ := writeShardedFixture(t)
		m := mustManifest(t, dir)
		m.Tensors[0].Slices[1].Hi = 3
		m.Tensors[0].Slices[2].Lo = 3
		m.Tensors[0].Slices[2].Hi = 5
		if err := WriteManifest(dir, m); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenSharded(dir); err == nil || !strings.Contains(err.Error(), `rank-1.safetensors holds "w" as F32 [2 4], the manifest wants F32 [1 4]`) {
			t.Errorf("OpenSharded: %v", err)
		}
	})
	t.Run("future version", func(t *testing.T) {
		dir, _ := writeShardedFixture(t)
		p := filepath.Join(dir, ManifestFileName)
		b, _ := os.ReadFile(p)
		os.WriteFile(p, []byte(strings.Replace(string(b), `"version": 1`, `"version": 7`, 1)), 0o644)
		if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), "version 7") {
			t.Errorf("ReadManifest: %v", err)
		}
	})
}
