package kernels

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestParsePTXParams(t *testing.T) {
	ptx := []byte(`.version 7.8
.target sm_80
.visible .entry k1(
	.param .u64 k1_param_0,
	.param .u32 k1_param_1,
	.param .f32 k1_param_2,
	.param .align 8 .b8 k1_param_3[24],
	.param .f64 k1_param_4
)
{ ret; }
.visible .entry k2()
{ ret; }
`)
	got, err := ParsePTXParams(ptx)
	if err != nil {
		t.Fatal(err)
	}
	want := []KernelParam{{PTXType: "u64", Size: 8, Align: 8}, {PTXType: "u32", Size: 4, Align: 4}, {PTXType: "f32", Size: 4, Align: 4},
		{PTXType: "b8", Size: 24, Align: 8}, {PTXType: "f64", Size: 8, Align: 8}}
	if len(got["k1"]) != len(want) {
		t.Fatalf("k1 params %v", got["k1"])
	}
	for i := range want {
		if got["k1"][i] != want[i] {
			t.Errorf("param %d = %+v, want %+v", i, got["k1"][i], want[i])
		}
	}
	if ps, ok := got["k2"]; !ok || len(ps) != 0 {
		t.Errorf("k2 = %v, %v", ps, ok)
	}
	if _, err := ParsePTXParams([]byte(".version 7.8\n")); err == nil {
		t.Error("PTX without entries accepted")
	}
}

// TestKernelParamsMatchSources: every kernel's PTX .param list, parsed as
// the launcher parses it, has one parameter per argument of the CUDA
// source, with the size the source's C type has: the contract that lets a
// launch with the source's argument list be checked against the PTX.
func TestKernelParamsMatchSources(t *testing.T) {
	n := loadNVRTCForTest(t)
	sizes := map[string]int{"int": 4, "float": 4, "long long": 8, "double": 8}
	for _, src := range KernelSources() {
		ptx, err := n.CompileCached(testPTXCache(), src.Text, src.Name, "compute_80", CUDACompileOptions)
		if err != nil {
			t.Fatal(err)
		}
		params, err := moduleParams(ptx[:len(ptx)-1])
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range src.Entries {
			ps := params[e]
			if len(ps) == 0 {
				t.Errorf("%s: no .params parsed", e)
			}
			for i, p := range ps {
				if p.Name == "" {
					t.Fatalf("%s: parameter %d not named from the source (count mismatch?)", e, i)
				}
				want, ok := sizes[strings.TrimPrefix(p.CType, "const ")]
				if strings.HasSuffix(p.CType, "*") {
					want, ok = 8, true
				}
				if !ok {
					t.Errorf("%s: parameter %s has C type %q the test does not know", e, p.Name, p.CType)
				} else if p.Size != want {
					t.Errorf("%s: parameter %s (%s) is %d bytes in the PTX, want %d", e, p.Name, p.CType, p.Size, want)
				}
			}
		}
	}
}

// TestLaunchArgumentChecks: a launch with the wrong argument count, or an
// argument of the wrong size or class, fails before reaching the device,
// naming the argument by its source name.
func TestLaunchArgumentChecks(t *testing.T) {
	k := newEmuKit(t)
	f := k.fn("add_bf16") // (bf16_t *out, const bf16_t *a, const bf16_t *b, long long n)
	p := k.alloc(64)
	one, b32 := Dim3{1, 1, 1}, Dim3{32, 1, 1}
	for _, c := range []struct {
		args []any
		want string
	}{
		{[]any{p, p, p}, "3 arguments, the kernel takes 4"},
		{[]any{p, p, p, int64(8), int32(1)}, "5 arguments, the kernel takes 4"},
		{[]any{p, p, p, int32(8)}, "argument 3 (long long n (.u64)) is a int32 of 4 bytes"},
		{[]any{p, float32(0), p, int64(8)}, "argument 1 (const bf16_t * a (.u64)) is a float32"},
		{[]any{p, p, p, 8.0}, "argument 3 (long long n (.u64)) is a float64"},
		{[]any{p, p, p, 8}, "unsupported Go type int"},
	} {
		err := f.Launch(one, b32, 0, Stream{}, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "add_bf16") {
			t.Errorf("args %v: %v; want an error containing %q", c.args, err, c.want)
		}
	}
	// A float parameter refuses an integer of the same size.
	if err := k.fn("f32_to_bf16").Launch(one, b32, 0, Stream{}, p, p, int32(1), int64(4)); err == nil || !strings.Contains(err.Error(), "float scale") {
		t.Errorf("int32 for a float: %v", err)
	}
	// The same arguments, correct, run.
	if err := f.Launch(one, b32, 0, Stream{}, p, p, p, int64(0)); err != nil {
		t.Errorf("valid launch: %v", err)
	}
}

// TestLaunchLimits: device limits and the kernels' own preconditions fail
// at launch with the limit named: D > 256 in the SIMT and paged attention,
// paged_attn with other than exactly 128 threads, the tensor-core kernel
// without its dynamic shared memory, dynamic shared memory not allowed by
// SetMaxDynamicShared.
func TestLaunchLimits(t *testing.T) {
	k := newEmuKit(t)
	p := k.alloc(1 << 12)
	b128 := Dim3{128, 1, 1}
	simt := func(D, hq, hk, ntok, T int32) error {
		return k.fn("attn_fwd_simt").Launch(Dim3{1, 1, 1}, b128, 0, Stream{}, p, int64(D), p, p, int64(D), p, p, int64(D),
			p, int32(1), ntok, T, hq, hk, D, float32(1))
	}
	paged := func(block Dim3, D int32) error {
		return k.fn("paged_attn").Launch(Dim3{1, 1, 1}, block, 0, Stream{}, p, int64(D), p, int64(D), p, p, p, int32(1), p, p,
			int32(1), int32(1), int32(1), D, int32(16), float32(1))
	}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"simt D=288", simt(288, 1, 1, 4, 4), "D=288 outside [1, 256]"},
		{"simt Hq=3 Hk=2", simt(64, 3, 2, 4, 4), "Hq=3 query heads do not split evenly over Hk=2"},
		{"simt Ntok=6 T=4", simt(64, 1, 1, 6, 4), "Ntok=6 tokens are not whole rows of T=4"},
		{"paged block 256", paged(Dim3{256, 1, 1}, 64), "exactly {128 1 1}"},
		{"paged D=300", paged(b128, 300), "D=300 outside [1, 256]"},
		{"mma without shared", k.fn("attn_fwd_mma_d64").Launch(Dim3{1, 1, 1}, b128, 1024, Stream{}, p, int64(64), p, p, int64(64), p, p, int64(64),
			p, p, int32(1), int32(1), int32(1), int32(1), float32(1)), "needs 27648 bytes of dynamic shared memory"},
		{"block of 2048 threads", k.fn("add_bf16").Launch(Dim3{1, 1, 1}, Dim3{1024, 2, 1}, 0, Stream{}, p, p, p, int64(0)), "2048 threads, at most 1024"},
		{"empty grid", k.fn("add_bf16").Launch(Dim3{0, 1, 1}, b128, 0, Stream{}, p, p, p, int64(0)), "empty grid"},
		{"grid.y 65536", k.fn("add_bf16").Launch(Dim3{1, 65536, 1}, b128, 0, Stream{}, p, p, p, int64(0)), "exceeds"},
		{"block of 100 for a warp reduction", k.fn("rmsnorm_fwd").Launch(Dim3{1, 1, 1}, Dim3{100, 1, 1}, 0, Stream{}, p, p, p, p, int32(0), int32(8), float32(1e-6)), "whole warps"},
		{"64 KiB dynamic shared unallowed", k.fn("add_bf16").Launch(Dim3{1, 1, 1}, b128, 64<<10, Stream{}, p, p, p, int64(0)), "SetMaxDynamicShared"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v; want an error containing %q", c.name, c.err, c.want)
		}
	}
	f := k.fn("add_bf16")
	if err := f.SetMaxDynamicShared(200 << 10); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("200 KiB opt-in: %v", err)
	}
	if err := f.SetMaxDynamicShared(64 << 10); err != nil {
		t.Fatal(err)
	}
	if err := f.Launch(Dim3{1, 1, 1}, b128, 64<<10, Stream{}, p, p, p, int64(0)); err != nil {
		t.Errorf("64 KiB after opting in: %v", err)
	}
}

// TestCUDAInlineAsmClobbers: inline asm that writes memory the compiler
// cannot see (cp.async into shared memory, and its waits) must declare the
// "memory" clobber, or the compiler may cache or reorder shared accesses
// across it.
func TestCUDAInlineAsmClobbers(t *testing.T) {
	asmRE := regexp.MustCompile(`(?s)asm\s+volatile\s*\((.*?)\);`)
	for _, src := range KernelSources() {
		for _, m := range asmRE.FindAllStringSubmatch(src.Text, -1) {
			if strings.Contains(m[1], "cp.async") && !strings.Contains(m[1], `"memory"`) {
				t.Errorf("%s: asm without a \"memory\" clobber: %s", src.Name, strings.Join(strings.Fields(m[0]), " "))
			}
		}
	}
}

// TestDocNamesOnlyExistingLoaders: doc.go may only claim loaders the
// package has (it once named an NCCL loader that did not exist).
func TestDocNamesOnlyExistingLoaders(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				funcs[fd.Name.Name] = true
			}
		}
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)The loaders for (.*?) live\b`).FindSubmatch(doc)
	if m == nil {
		t.Fatal("doc.go no longer lists its loaders in the expected sentence")
	}
	for name, loader := range map[string]string{"NCCL": "LoadNCCL", "NVRTC": "LoadNVRTC", "cuBLASLt": "LoadCublasLt", "libcuda": "LoadDriver"} {
		if strings.Contains(strings.Join(strings.Fields(string(m[1])), " "), name) && !funcs[loader] {
			t.Errorf("doc.go names a %s loader but the package has no %s", name, loader)
		}
	}
}

// TestPythonOnPathSearch: the pip wheels of the python3 on PATH are
// searched without $VIRTUAL_ENV: its venv's site-packages and, through the
// venv's symlink, the base interpreter's.
func TestPythonOnPathSearch(t *testing.T) {
	root := t.TempDir()
	base, venv := filepath.Join(root, "base"), filepath.Join(root, "venv")
	for _, d := range []string{filepath.Join(base, "bin"), filepath.Join(venv, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	interp := filepath.Join(base, "bin", "python3.11")
	if err := os.WriteFile(interp, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	py := filepath.Join(venv, "bin", "python3")
	if err := os.Symlink(interp, py); err != nil {
		t.Fatal(err)
	}
	var libs []string
	for _, pre := range []string{venv, base} {
		lib := filepath.Join(pre, "lib", "python3.11", "site-packages", "nvidia", "cuda_nvrtc", "lib")
		if err := os.MkdirAll(lib, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lib, "libnvrtc.so.12"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		libs = append(libs, filepath.Join(lib, "libnvrtc.so.12"))
	}
	got := libCandidates(nvrtcSonames, CUDALibOptions{Python3: py}, fileExists)
	iv, ib := indexOf(got, libs[0]), indexOf(got, libs[1])
	if iv < 0 || ib < 0 || iv > ib {
		t.Errorf("venv %d and base %d wheels not both found, venv first: %v", iv, ib, got)
	}
	if none := libCandidates(nvrtcSonames, CUDALibOptions{}, fileExists); indexOf(none, libs[0]) >= 0 {
		t.Error("venv wheel found without being told about python3")
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestNVRTCProbeCompiles: LoadNVRTC only accepts a library that compiles
// (the builtins library loads at compile time), and says so otherwise.
func TestNVRTCProbeCompiles(t *testing.T) {
	n := loadNVRTCForTest(t)
	if err := n.selfTest(); err != nil {
		t.Fatal(err)
	}
	msg := nvrtcProbeError(n, os.ErrNotExist, "cannot open libnvrtc-builtins").Error()
	for _, want := range []string{n.Path, "libnvrtc-builtins.so." + n.Version(), "cannot compile a trivial kernel", "cannot open"} {
		if !strings.Contains(msg, want) {
			t.Errorf("probe error %q lacks %q", msg, want)
		}
	}
}
