package kernels

import (
	"fmt"
	"unsafe"
)

// cuBLASLt enum values (cublasLt.h / library_types.h), declared here so
// that building needs no CUDA header.
const (
	ltComputeF32       = 68 // CUBLAS_COMPUTE_32F
	ltDataF32          = 0  // CUDA_R_32F
	ltDataBF16         = 14 // CUDA_R_16BF
	ltDescTransA       = 3  // CUBLASLT_MATMUL_DESC_TRANSA
	ltDescTransB       = 4  // CUBLASLT_MATMUL_DESC_TRANSB
	ltLayoutOrder      = 1  // CUBLASLT_MATRIX_LAYOUT_ORDER
	ltOrderRow         = 1  // CUBLASLT_ORDER_ROW
	ltPrefMaxWorkspace = 1  // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
	ltOpN, ltOpT       = 0, 1
)

// CublasLt is the loaded cuBLASLt library.
type CublasLt struct {
	lib     *dlLib
	Path    string
	Version uint64 // cublasLtGetVersion, e.g. 120402
}

// LoadCublasLt opens the newest cuBLASLt it finds (see CUDALibOptions).
func LoadCublasLt(opts CUDALibOptions) (*CublasLt, error) {
	if !cgoAvailable {
		return nil, errNoCgo
	}
	l, _, err := openFirst(cublasLtSonames, libCandidates(cublasLtSonames, opts, fileExists), func(p string) (*CublasLt, error) {
		lib, v, err := cublasLtOpen(p)
		if err != nil {
			return nil, err
		}
		return &CublasLt{lib: lib, Path: p, Version: v}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("cublaslt: %w", err)
	}
	return l, nil
}

// VersionString formats Version (major*10000 + minor*100 + patch).
func (l *CublasLt) VersionString() string {
	return fmt.Sprintf("%d.%d.%d", l.Version/10000, l.Version/100%100, l.Version%100)
}

// LtHandle is a cublasLtHandle_t; Destroy releases it.
type LtHandle struct {
	lt *CublasLt
	h  unsafe.Pointer
}

// NewHandle creates a cuBLASLt handle with ctx current during the call.
func (l *CublasLt) NewHandle(ctx *Context) (*LtHandle, error) {
	h, err := l.create(ctx)
	if err != nil {
		return nil, err
	}
	return &LtHandle{lt: l, h: h}, nil
}

// Destroy releases the handle.
func (h *LtHandle) Destroy() error { return h.lt.destroyObj("cublasLtDestroy", h.h) }

// LtHeuristic mirrors cublasLtMatmulHeuristicResult_t (96 bytes): the
// opaque algorithm, its workspace need, status and waves count.
type LtHeuristic struct {
	Algo          [8]uint64
	WorkspaceSize uint64
	State         int32
	WavesCount    float32
	reserved      [4]int32
}

// LtGemm is a planned row-major GEMM D = alpha*op(A)*op(B) + beta*C with bf16
// A and B, fp32 accumulation and scale, and bf16 or fp32 C/D (C and D share
// one layout). Build it once per shape with PlanGemm and reuse it.
type LtGemm struct {
	lt                *CublasLt
	desc, a, b, c     unsafe.Pointer
	pref              unsafe.Pointer
	algo              LtHeuristic
	M, N, K           int
	TransA, TransB    bool
	OutF32            bool
	WorkspaceMaxBytes uint64
}

// PlanGemm describes the GEMM and asks cuBLASLt's heuristic for an
// algorithm whose workspace fits in workspace bytes. Row-major shapes:
// op(A) is M x K, op(B) is K x N, C/D is M x N, all densely packed.
func (h *LtHandle) PlanGemm(m, n, k int, transA, transB, outF32 bool, workspace uint64) (*LtGemm, error) {
	if m <= 0 || n <= 0 || k <= 0 {
		panic(fmt.Sprintf("kernels.PlanGemm: non-positive shape m=%d n=%d k=%d", m, n, k))
	}
	l := h.lt
	g := &LtGemm{lt: l, M: m, N: n, K: k, TransA: transA, TransB: transB, OutF32: outF32, WorkspaceMaxBytes: workspace}
	var err error
	if g.desc, err = l.descCreate(ltComputeF32, ltDataF32); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			g.Destroy()
		}
	}()
	for _, tr := range []struct {
		attr int
		t    bool
	}{{ltDescTransA, transA}, {ltDescTransB, transB}} {
		op := int32(ltOpN)
		if tr.t {
			op = ltOpT
		}
		if err := l.setAttr("cublasLtMatmulDescSetAttribute", g.desc, tr.attr, unsafe.Pointer(&op), unsafe.Sizeof(op)); err != nil {
			return nil, err
		}
	}
	// Row-major storage dims of each operand as stored (before op()).
	layout := func(dtype int, rows, cols int) (unsafe.Pointer, error) {
		p, err := l.layoutCreate(dtype, uint64(rows), uint64(cols), int64(cols))
		if err != nil {
			return nil, err
		}
		order := int32(ltOrderRow)
		if err := l.setAttr("cublasLtMatrixLayoutSetAttribute", p, ltLayoutOrder, unsafe.Pointer(&order), unsafe.Sizeof(order)); err != nil {
			_ = l.destroyObj("cublasLtMatrixLayoutDestroy", p)
			return nil, err
		}
		return p, nil
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	if g.a, err = layout(ltDataBF16, ar, ac); err != nil {
		return nil, err
	}
	if g.b, err = layout(ltDataBF16, br, bc); err != nil {
		return nil, err
	}
	cType := ltDataBF16
	if outF32 {
		cType = ltDataF32
	}
	if g.c, err = layout(cType, m, n); err != nil {
		return nil, err
	}
	if g.pref, err = l.prefCreate(); err != nil {
		return nil, err
	}
	ws := workspace
	if err := l.setAttr("cublasLtMatmulPreferenceSetAttribute", g.pref, ltPrefMaxWorkspace, unsafe.Pointer(&ws), unsafe.Sizeof(ws)); err != nil {
		return nil, err
	}
	got, err := l.heuristic(h.h, g, &g.algo)
	if err != nil {
		return nil, err
	}
	if got == 0 {
		return nil, fmt.Errorf("cublasLtMatmulAlgoGetHeuristic: no algorithm for %dx%dx%d (transA=%v transB=%v) within %d workspace bytes", m, n, k, transA, transB, workspace)
	}
	ok = true
	return g, nil
}

// Run computes D = alpha*op(A)*op(B) + beta*C on stream s; c may equal d.
func (g *LtGemm) Run(ctx *Context, h *LtHandle, alpha, beta float32, a, b, c, d, workspace DevicePtr, s Stream) error {
	return g.lt.matmul(ctx, h.h, g, &alpha, &beta, a, b, c, d, workspace, s)
}

// Destroy releases the descriptors.
func (g *LtGemm) Destroy() {
	l := g.lt
	for _, o := range []struct {
		sym string
		p   unsafe.Pointer
	}{
		{"cublasLtMatmulPreferenceDestroy", g.pref},
		{"cublasLtMatrixLayoutDestroy", g.c},
		{"cublasLtMatrixLayoutDestroy", g.b},
		{"cublasLtMatrixLayoutDestroy", g.a},
		{"cublasLtMatmulDescDestroy", g.desc},
	} {
		if o.p != nil {
			_ = l.destroyObj(o.sym, o.p)
		}
	}
	g.pref, g.a, g.b, g.c, g.desc = nil, nil, nil, nil, nil
}
