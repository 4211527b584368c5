package kernels

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestLibCandidatesOrder(t *testing.T) {
	prefix := t.TempDir()
	pip := filepath.Join(prefix, "lib", "python3.11", "site-packages", "nvidia", "cuda_nvrtc", "lib")
	if err := os.MkdirAll(pip, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pip, "libnvrtc.so.12"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := CUDALibOptions{Dir: "/opt/pinned", PythonPrefixes: []string{prefix}}
	got := libCandidates(nvrtcSonames, opts, fileExists)
	idx := func(s string) int {
		i := slices.Index(got, s)
		if i < 0 {
			t.Fatalf("candidate %s missing from %v", s, got)
		}
		return i
	}
	// The override directory comes first, for every version.
	for i, so := range nvrtcSonames {
		if got[i] != filepath.Join("/opt/pinned", so) {
			t.Fatalf("candidate %d = %s, want the override dir's %s first: %v", i, got[i], so, got)
		}
	}
	// Newer versions anywhere beat older ones; within a version the
	// loader's own search (bare name) comes before explicit folders.
	pipPath := filepath.Join(pip, "libnvrtc.so.12")
	if !(idx("libnvrtc.so.13") < idx("libnvrtc.so.12") && idx("libnvrtc.so.12") < idx(pipPath) &&
		idx(pipPath) < idx("libnvrtc.so.11.2") && idx("libnvrtc.so.11.2") < idx("libnvrtc.so")) {
		t.Errorf("wrong order: %v", got)
	}
	// Folders that lack the file are not listed.
	for _, c := range got[len(nvrtcSonames):] {
		if strings.Contains(c, "/") && !fileExists(c) {
			t.Errorf("non-existent path %s listed", c)
		}
	}
	// Without options nothing from the override dir appears.
	for _, c := range libCandidates(driverSonames, CUDALibOptions{}, fileExists) {
		if strings.HasPrefix(c, "/opt/pinned") {
			t.Errorf("override dir leaked into default search: %s", c)
		}
	}
}

func TestLoadNVRTCOptions(t *testing.T) {
	n := loadNVRTCForTest(t)
	dir := filepath.Dir(n.Path)
	if !strings.Contains(n.Path, "/") {
		// Found through the loader's search; locate the file for the Dir test.
		for _, d := range systemLibDirs() {
			if fileExists(filepath.Join(d, filepath.Base(n.Path))) {
				dir = d
				break
			}
		}
	}
	if fileExists(filepath.Join(dir, filepath.Base(n.Path))) {
		pinned, err := LoadNVRTC(CUDALibOptions{Dir: dir})
		if err != nil {
			t.Fatalf("LoadNVRTC with Dir=%s: %v", dir, err)
		}
		if !strings.HasPrefix(pinned.Path, dir+"/") {
			t.Errorf("Dir=%s loaded %s", dir, pinned.Path)
		}
	}
	// A driver older than every NVRTC found rules them all out, with a
	// message saying why.
	old := n.Major*1000 + n.Minor*10 - 10
	if _, err := LoadNVRTC(CUDALibOptions{NVRTCMaxVersion: old}); err == nil {
		t.Errorf("NVRTC %s accepted for a CUDA %s driver", n.Version(), cudaVersionString(old))
	} else if !strings.Contains(err.Error(), "newer than the driver") {
		t.Errorf("unclear error: %v", err)
	}
	// A broken library in the override dir is skipped, not fatal.
	bogus := t.TempDir()
	if err := os.WriteFile(filepath.Join(bogus, "libnvrtc.so.13"), []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadNVRTC(CUDALibOptions{Dir: bogus}); err != nil || strings.HasPrefix(got.Path, bogus) {
		t.Errorf("bogus override: got %v, %v; want the real NVRTC", got, err)
	}
}

func TestProbeReport(t *testing.T) {
	r := Probe(CUDALibOptions{})
	s := r.String()
	t.Logf("probe: %s", s)
	if r.DriverErr != nil {
		why := "libcuda.so.1"
		if !cgoAvailable {
			why = "without cgo"
		}
		if !strings.HasPrefix(s, "cuda: unavailable (") || !strings.Contains(s, why) {
			t.Errorf("report does not say the driver is unavailable and why: %s", s)
		}
		if r.Available() || r.Reason() == "" {
			t.Errorf("Available() with no driver; reason %q", r.Reason())
		}
		if !strings.Contains(r.Detail(), "status:   unavailable: ") {
			t.Errorf("detail lacks the status line:\n%s", r.Detail())
		}
	}
	if r.NVRTCErr == nil {
		want := "nvrtc " + r.NVRTCVersion + " found (" + r.NVRTCPath + ")"
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q: %s", want, s)
		}
	} else if !strings.Contains(s, "nvrtc: not found (") {
		t.Errorf("report lacks the NVRTC failure: %s", s)
	}
	if r.CublasLtErr != nil && !strings.Contains(s, "cublaslt: not found (") {
		t.Errorf("report lacks the cuBLASLt failure: %s", s)
	}
}

func TestPTXCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ptx")
	c := &PTXCache{Dir: dir}
	key := PTXCacheKey("src", "compute_80", "11.8", []string{"-a"})
	for name, other := range map[string]string{
		"source":  PTXCacheKey("src2", "compute_80", "11.8", []string{"-a"}),
		"arch":    PTXCacheKey("src", "compute_90", "11.8", []string{"-a"}),
		"version": PTXCacheKey("src", "compute_80", "12.4", []string{"-a"}),
		"options": PTXCacheKey("src", "compute_80", "11.8", []string{"-b"}),
		"split":   PTXCacheKey("src", "compute_80", "11.8", []string{"-", "a"}),
	} {
		if other == key {
			t.Errorf("changing the %s keeps the key %s", name, key)
		}
	}
	if _, ok := c.Get(key); ok {
		t.Fatal("hit in an empty cache")
	}
	ptx := []byte(".version 7.8\n\x00")
	if err := c.Put(key, ptx); err != nil {
		t.Fatal(err)
	}
	got, ok := c.Get(key)
	if !ok || !bytes.Equal(got, ptx) {
		t.Fatalf("Get after Put = %q, %v", got, ok)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("cache dir holds %d files, want 1 (temporary files left?)", len(entries))
	}
	// A truncated file (no NUL terminator) is a miss, not bad PTX.
	if err := os.WriteFile(c.path(key), []byte(".version 7.8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(key); ok {
		t.Error("truncated entry returned")
	}
	var nilCache *PTXCache
	if err := nilCache.Put(key, ptx); err != nil {
		t.Errorf("nil cache Put: %v", err)
	}
	if _, ok := nilCache.Get(key); ok {
		t.Error("nil cache hit")
	}
	// An unwritable location fails Put with the path in the message.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (&PTXCache{Dir: filepath.Join(blocker, "sub")}).Put(key, ptx); err == nil || !strings.Contains(err.Error(), blocker) {
		t.Errorf("Put under a file: %v", err)
	}
}

func TestCompileCached(t *testing.T) {
	n := loadNVRTCForTest(t)
	src, err := KernelSourceByName("elementwise.cu")
	if err != nil {
		t.Fatal(err)
	}
	c := &PTXCache{Dir: t.TempDir()}
	ptx, err := n.CompileCached(c, src.Text, src.Name, "compute_80", CUDACompileOptions)
	if err != nil {
		t.Fatal(err)
	}
	key := PTXCacheKey(src.Text, "compute_80", n.Version(), CUDACompileOptions)
	stored, ok := c.Get(key)
	if !ok || !bytes.Equal(stored, ptx) {
		t.Fatal("compiled PTX not stored under its key")
	}
	// Replace the entry: a second call must return it, proving a hit.
	marker := []byte("// cached\n\x00")
	if err := c.Put(key, marker); err != nil {
		t.Fatal(err)
	}
	again, err := n.CompileCached(c, src.Text, src.Name, "compute_80", CUDACompileOptions)
	if err != nil || !bytes.Equal(again, marker) {
		t.Errorf("second CompileCached = %q, %v; want the cached entry", again, err)
	}
	if _, err := n.CompileCached(c, "this is not C", "bad.cu", "compute_80", nil); err == nil || !strings.Contains(err.Error(), "bad.cu") {
		t.Errorf("bad source: %v", err)
	}
}

func TestEncodeArgs(t *testing.T) {
	params := []KernelParam{
		{PTXType: "u32", Size: 4}, {PTXType: "u32", Size: 4}, {PTXType: "f32", Size: 4},
		{PTXType: "u64", Size: 8}, {PTXType: "u64", Size: 8}, {PTXType: "u64", Size: 8}, {PTXType: "f64", Size: 8},
	}
	got, err := encodeArgs("k", params, []any{int32(-1), uint32(7), float32(1.5), int64(-2), uint64(1 << 40), DevicePtr(0xdead0000), 0.25})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{{0xff, 0xff, 0xff, 0xff}, {7, 0, 0, 0}, {0, 0, 0xc0, 0x3f},
		{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0, 0, 0, 0, 0, 1, 0, 0}, {0, 0, 0xad, 0xde, 0, 0, 0, 0},
		{0, 0, 0, 0, 0, 0, 0xd0, 0x3f}}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("argument %d encoded %x, want %x", i, got[i], want[i])
		}
	}
	for _, bad := range []any{1, 1.0, []byte{1}, float32(1)} {
		if _, err := encodeArgs("k", params[:1], []any{bad}); err == nil || !strings.Contains(err.Error(), "argument 0") {
			t.Errorf("argument of type %T for a .u32: %v", bad, err)
		}
	}
}

// TestAttnVarlen checks the varlen plan against the engine's masking rule
// (engine/attention.go segStarts): within a row, token i's segment starts at
// the last position where the segment id changed.
func TestAttnVarlen(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 50; trial++ {
		b, tt := 1+r.IntN(3), 1+r.IntN(40)
		var seg []int32
		if trial%5 != 0 {
			seg = make([]int32, b*tt)
			id := int32(0)
			for i := range seg {
				if r.IntN(6) == 0 {
					id++
				}
				seg[i] = id % 3 // ids may repeat across boundaries: only changes count
			}
		}
		tile := 1 + r.IntN(16)
		cu, tiles := AttnVarlen(seg, b, tt, tile)
		if cu[0] != 0 || int(cu[len(cu)-1]) != b*tt {
			t.Fatalf("cu_seqlens %v does not span %d tokens", cu, b*tt)
		}
		for row := 0; row < b; row++ {
			start := 0
			for i := 0; i < tt; i++ {
				tok := row*tt + i
				if i > 0 && seg != nil && seg[tok] != seg[tok-1] {
					start = i
				}
				s := sort32(cu, int32(tok))
				if int(cu[s]) != row*tt+start {
					t.Fatalf("trial %d: token %d in sequence starting at %d, want %d (cu %v seg %v)", trial, tok, cu[s], row*tt+start, cu, seg)
				}
			}
		}
		// Tiles cover every query of every sequence exactly once.
		covered := make([]int, b*tt)
		for k := 0; k < len(tiles); k += 2 {
			s, q0 := tiles[k], tiles[k+1]
			if q0%int32(tile) != 0 {
				t.Fatalf("tile start %d not a multiple of %d", q0, tile)
			}
			for q := q0; q < q0+int32(tile) && cu[s]+q < cu[s+1]; q++ {
				covered[cu[s]+q]++
			}
		}
		for i, c := range covered {
			if c != 1 {
				t.Fatalf("trial %d: token %d covered by %d tiles", trial, i, c)
			}
		}
	}
}

// sort32 is the largest s with cu[s] <= r (attention.cu's seq_of).
func sort32(cu []int32, r int32) int {
	s := 0
	for i := range cu[:len(cu)-1] {
		if cu[i] <= r {
			s = i
		}
	}
	return s
}

// TestAttnConstantsMatchSource keeps the Go launch constants in step with
// the #defines of attention.cu, and checks that only D=128 needs the
// shared-memory opt-in.
func TestAttnConstantsMatchSource(t *testing.T) {
	src, err := KernelSourceByName("attention.cu")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"ATT_BR": AttnTileRows, "ATT_BC": attnTileCols, "ATT_PAD": attnPad} {
		m := regexp.MustCompile(`#define ` + name + ` (\d+)`).FindStringSubmatch(src.Text)
		if m == nil {
			t.Fatalf("attention.cu has no #define %s", name)
		}
		if v, _ := strconv.Atoi(m[1]); v != want {
			t.Errorf("%s = %d in attention.cu, %d in Go", name, v, want)
		}
	}
	for _, d := range AttnMMAHeadDims {
		if !slices.Contains(src.Entries, "attn_fwd_mma_d"+strconv.Itoa(d)) {
			t.Errorf("no attn_fwd_mma_d%d entry", d)
		}
	}
	if AttnMMASharedBytes(64) > 48<<10 || AttnMMASharedBytes(128) <= 48<<10 {
		t.Errorf("shared bytes d64=%d d128=%d: the opt-in note in attention.cu is wrong", AttnMMASharedBytes(64), AttnMMASharedBytes(128))
	}
}
