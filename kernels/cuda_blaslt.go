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
	ltPrefMinAlignA    = 5  // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES (B, C, D follow)
	ltOpN, ltOpT       = 0, 1

	// cublasStatus_t values the emulated cuBLASLt returns.
	ltStatusInvalidValue = 7  // CUBLAS_STATUS_INVALID_VALUE
	ltStatusNotSupported = 15 // CUBLAS_STATUS_NOT_SUPPORTED

	// ltDefaultAlign is the pointer alignment the heuristic assumes unless
	// told otherwise (the MIN_ALIGNMENT preferences default to 256 bytes).
	ltDefaultAlign = 256
)

// CublasLt is the loaded cuBLASLt library.
//
// EmulatedCublasLt returns one without a library, for emulated contexts.
type CublasLt struct {
	lib      *dlLib
	emulated bool
	Path     string
	Version  uint64 // cublasLtGetVersion, e.g. 120402
}

// EmulatedCublasLt serves cuBLASLt's GEMM on emulated contexts with a
// reference GEMM (cuda_blaslt_emu.go); it needs no library.
func EmulatedCublasLt() *CublasLt {
	return &CublasLt{emulated: true, Path: "(emulated: reference GEMM)"}
}

// CublasLtFor returns the cuBLASLt for ctx: the emulated one on an
// emulated context, else the library LoadCublasLt finds.
func CublasLtFor(ctx *Context, opts CUDALibOptions) (*CublasLt, error) {
	if ctx.Emulated() {
		return EmulatedCublasLt(), nil
	}
	return LoadCublasLt(opts)
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
// The emulated cuBLASLt takes only emulated contexts and the library only
// real ones.
func (l *CublasLt) NewHandle(ctx *Context) (*LtHandle, error) {
	if l.emulated != ctx.Emulated() {
		return nil, fmt.Errorf("cublasLtCreate: %s used with a context on %s (use CublasLtFor)", l.Path, ctx.Dev.Name)
	}
	if l.emulated {
		return &LtHandle{lt: l}, nil
	}
	h, err := l.create(ctx)
	if err != nil {
		return nil, err
	}
	return &LtHandle{lt: l, h: h}, nil
}

// Destroy releases the handle.
func (h *LtHandle) Destroy() error {
	if h.lt.emulated {
		return nil
	}
	return h.lt.destroyObj("cublasLtDestroy", h.h)
}

// LtHeuristic mirrors cublasLtMatmulHeuristicResult_t (96 bytes): the
// opaque algorithm, its workspace need, status and waves count.
type LtHeuristic struct {
	Algo          [8]uint64
	WorkspaceSize uint64
	State         int32
	WavesCount    float32
	reserved      [4]int32
}

// GemmSpec describes a row-major GEMM D = alpha*op(A)*op(B) + beta*C with
// bf16 A and B, fp32 accumulation and scale, and bf16 or fp32 C/D (C and D
// share one layout): op(A) is M x K, op(B) is K x N, C/D is M x N.
type GemmSpec struct {
	M, N, K        int
	TransA, TransB bool
	OutF32         bool
	// LdA, LdB, LdC are the row strides, in elements, of A, B and C/D as
	// stored (before op()); 0 means densely packed. cuBLASLt rejects a
	// stride below the stored row length.
	LdA, LdB, LdC int
	// Workspace is the most workspace bytes the algorithm may use.
	Workspace uint64
	// MinAlign is the byte alignment every pointer passed to Run is
	// promised to have (0: cuBLASLt's default, 256). A smaller promise
	// lets views into a buffer be operands, at the cost of algorithms.
	MinAlign uint32
}

// LtGemm is a planned GEMM (see GemmSpec). Build it once per shape with
// Plan or PlanGemm and reuse it.
type LtGemm struct {
	lt                *CublasLt
	desc, a, b, c     unsafe.Pointer
	pref              unsafe.Pointer
	algo              LtHeuristic
	M, N, K           int
	TransA, TransB    bool
	OutF32            bool
	LdA, LdB, LdC     int
	MinAlign          uint32
	WorkspaceMaxBytes uint64
}

// PlanGemm is Plan for densely packed operands with the default alignment.
func (h *LtHandle) PlanGemm(m, n, k int, transA, transB, outF32 bool, workspace uint64) (*LtGemm, error) {
	return h.Plan(GemmSpec{M: m, N: n, K: k, TransA: transA, TransB: transB, OutF32: outF32, Workspace: workspace})
}

// storedA is A's row-major shape as stored (before op()); storedB is B's.
func (s GemmSpec) storedA() (rows, cols int) {
	if s.TransA {
		return s.K, s.M
	}
	return s.M, s.K
}

func (s GemmSpec) storedB() (rows, cols int) {
	if s.TransB {
		return s.N, s.K
	}
	return s.K, s.N
}

// resolve fills the default strides and alignment and rejects what
// cuBLASLt rejects with CUBLAS_STATUS_INVALID_VALUE when the descriptors
// meet the heuristic: a non-positive dimension or a row stride shorter
// than its row.
func (s GemmSpec) resolve() (GemmSpec, error) {
	_, ac := s.storedA()
	_, bc := s.storedB()
	if s.LdA == 0 {
		s.LdA = ac
	}
	if s.LdB == 0 {
		s.LdB = bc
	}
	if s.LdC == 0 {
		s.LdC = s.N
	}
	if s.MinAlign == 0 {
		s.MinAlign = ltDefaultAlign
	}
	bad := func(msg string, args ...any) (GemmSpec, error) {
		return s, &CUDAError{Op: "cublasLtMatmulAlgoGetHeuristic", Code: ltStatusInvalidValue, Msg: "CUBLAS_STATUS_INVALID_VALUE: " + fmt.Sprintf(msg, args...)}
	}
	switch {
	case s.M <= 0 || s.N <= 0 || s.K <= 0:
		return bad("non-positive shape m=%d n=%d k=%d", s.M, s.N, s.K)
	case s.LdA < ac:
		return bad("lda %d < %d, the length of a stored row of A", s.LdA, ac)
	case s.LdB < bc:
		return bad("ldb %d < %d, the length of a stored row of B", s.LdB, bc)
	case s.LdC < s.N:
		return bad("ldc %d < n=%d", s.LdC, s.N)
	case s.MinAlign&(s.MinAlign-1) != 0:
		return bad("alignment %d is not a power of two", s.MinAlign)
	}
	return s, nil
}

// Plan describes the GEMM and asks cuBLASLt's heuristic for an algorithm
// whose workspace fits in s.Workspace bytes.
func (h *LtHandle) Plan(s GemmSpec) (*LtGemm, error) {
	s, err := s.resolve()
	if err != nil {
		return nil, err
	}
	m, n, k, transA, transB, outF32, workspace := s.M, s.N, s.K, s.TransA, s.TransB, s.OutF32, s.Workspace
	l := h.lt
	g := &LtGemm{lt: l, M: m, N: n, K: k, TransA: transA, TransB: transB, OutF32: outF32,
		LdA: s.LdA, LdB: s.LdB, LdC: s.LdC, MinAlign: s.MinAlign, WorkspaceMaxBytes: workspace}
	if l.emulated {
		// The emulated heuristic picks the hungriest algorithm allowed,
		// so a caller that plans a workspace but passes a smaller one
		// fails in Run here rather than on a GPU whose heuristic happened
		// to pick more.
		g.algo.WorkspaceSize = workspace
		return g, nil
	}
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
	layout := func(dtype int, rows, cols, ld int) (unsafe.Pointer, error) {
		p, err := l.layoutCreate(dtype, uint64(rows), uint64(cols), int64(ld))
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
	ar, ac := s.storedA()
	br, bc := s.storedB()
	if g.a, err = layout(ltDataBF16, ar, ac, s.LdA); err != nil {
		return nil, err
	}
	if g.b, err = layout(ltDataBF16, br, bc, s.LdB); err != nil {
		return nil, err
	}
	cType := ltDataBF16
	if outF32 {
		cType = ltDataF32
	}
	if g.c, err = layout(cType, m, n, s.LdC); err != nil {
		return nil, err
	}
	if g.pref, err = l.prefCreate(); err != nil {
		return nil, err
	}
	ws := workspace
	if err := l.setAttr("cublasLtMatmulPreferenceSetAttribute", g.pref, ltPrefMaxWorkspace, unsafe.Pointer(&ws), unsafe.Sizeof(ws)); err != nil {
		return nil, err
	}
	if s.MinAlign != ltDefaultAlign {
		align := s.MinAlign
		for attr := ltPrefMinAlignA; attr < ltPrefMinAlignA+4; attr++ {
			if err := l.setAttr("cublasLtMatmulPreferenceSetAttribute", g.pref, attr, unsafe.Pointer(&align), unsafe.Sizeof(align)); err != nil {
				return nil, err
			}
		}
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

// Run computes D = alpha*op(A)*op(B) + beta*C on stream s; c may equal d,
// and C is not read when beta is 0. workspace must hold the planned
// algorithm's workspace.
func (g *LtGemm) Run(ctx *Context, h *LtHandle, alpha, beta float32, a, b, c, d, workspace DevicePtr, s Stream) error {
	if g.lt != h.lt || g.lt.emulated != ctx.Emulated() {
		return fmt.Errorf("cublasLtMatmul: plan, handle and context of different cuBLASLt instances or devices")
	}
	if g.lt.emulated {
		return g.runEmulated(ctx, alpha, beta, a, b, c, d, workspace, s)
	}
	return g.lt.matmul(ctx, h.h, g, &alpha, &beta, a, b, c, d, workspace, s)
}

// Destroy releases the descriptors.
func (g *LtGemm) Destroy() {
	l := g.lt
	if l.emulated {
		return
	}
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
