package kernels

import (
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLASOptions selects the GEMM implementation LoadBLAS returns.
type BLASOptions struct {
	// Library is an explicit path or soname of a CBLAS library. When set, it
	// is the only library tried: silently using a different one than the
	// user named would make benchmarks and bug reports misleading.
	// "" searches libopenblas.so.0, then libopenblas.so.
	Library string
	// ForceGo skips OpenBLAS and uses gonum's pure-Go sgemm.
	ForceGo bool
}

// defaultBLASLibraries are tried in order when BLASOptions.Library is empty.
// libopenblas.so.0 is what Debian's libopenblas0 installs; the unversioned
// name covers source builds and -dev packages.
var defaultBLASLibraries = [...]string{"libopenblas.so.0", "libopenblas.so"}

// BLAS is a row-major single-precision GEMM backed by OpenBLAS when it could
// be loaded and by gonum otherwise. A *BLAS is immutable after LoadBLAS and
// safe for concurrent use (OpenBLAS 0.3.21 serialises concurrent callers of
// its thread pool internally; gonum is reentrant).
type BLAS struct {
	lib     *openblasLib // nil on the gonum path
	libName string       // name LoadBLAS opened lib with
	reason  string       // why lib is nil
	name    string
}

// LoadBLAS never fails: when OpenBLAS cannot be loaded (or ForceGo is set)
// the result uses gonum and Name reports why. Calling it more than once is
// safe; each call dlopens again, which only increments the loader's refcount
// and returns the same mapping.
func LoadBLAS(opts BLASOptions) *BLAS {
	b := &BLAS{}
	switch {
	case opts.ForceGo:
		b.reason = "ForceGo set"
	case opts.Library != "":
		lib, err := dlopenBLAS(opts.Library)
		if err != nil {
			b.reason = err.Error()
		} else {
			b.lib, b.libName = lib, opts.Library
		}
	default:
		var errs []string
		for _, name := range defaultBLASLibraries {
			lib, err := dlopenBLAS(name)
			if err == nil {
				b.lib, b.libName = lib, name
				break
			}
			errs = append(errs, err.Error())
		}
		if b.lib == nil {
			b.reason = strings.Join(errs, "; ")
		}
	}
	b.name = b.describe()
	return b
}

func (b *BLAS) describe() string {
	if b.lib == nil {
		return fmt.Sprintf("gonum pure-Go sgemm (openblas not loaded: %s)", b.reason)
	}
	parts := []string{b.libName}
	if b.lib.config != "" {
		parts = append(parts, strings.TrimSpace(b.lib.config))
	}
	if b.lib.threads > 0 {
		unit := "threads"
		if b.lib.threads == 1 {
			unit = "thread"
		}
		parts = append(parts, fmt.Sprintf("%d %s", b.lib.threads, unit))
	}
	return "openblas (" + strings.Join(parts, ", ") + ")"
}

// Name describes the active implementation for logs and benchmark reports,
// including the OpenBLAS build and thread count, or the reason for the
// fallback.
func (b *BLAS) Name() string { return b.name }

// IsOpenBLAS reports whether GEMMs go through the dlopen'd library.
func (b *BLAS) IsOpenBLAS() bool { return b.lib != nil }

// FallbackReason is why OpenBLAS is not in use, "" when it is.
func (b *BLAS) FallbackReason() string { return b.reason }

// Sgemm computes, in row-major storage, C = alpha*op(A)*op(B) + beta*C where
// op(A) is m x k and op(B) is k x n; op(X) is X^T when the matching trans
// flag is set, so A is stored k x m (with lda >= max(1, m)) when transA and
// m x k (lda >= max(1, k)) otherwise, and likewise for B. C is m x n with
// ldc >= max(1, n). As in BLAS, C is not read when beta == 0 (NaNs in it are
// overwritten), m == 0 or n == 0 leaves C untouched, and k == 0 scales C by
// beta. Bad dimensions or short slices are programmer errors and panic
// before any pointer reaches C.
func (b *BLAS) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	checkSgemm(transA, transB, m, n, k, a, lda, bm, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	if b.lib != nil && fitsCInt(m, n, k, lda, ldb, ldc) {
		b.lib.sgemmC(transA, transB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
		return
	}
	gonum.Implementation{}.Sgemm(blasTrans(transA), blasTrans(transB), m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
}

func blasTrans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// fitsCInt guards the 32-bit blasint of Debian's OpenBLAS; larger problems
// take the gonum path rather than being truncated.
func fitsCInt(vs ...int) bool {
	for _, v := range vs {
		if v > math.MaxInt32 {
			return false
		}
	}
	return true
}

// scaleRows sets C = beta*C over the m x n block, writing exact zeros when
// beta == 0 so stale NaN/Inf values do not survive (BLAS semantics).
func scaleRows(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// checkSgemm panics with a descriptive message on any argument that would
// make the native call read or write out of bounds.
func checkSgemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels.Sgemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	checkMatrix("A", transA, m, k, a, lda)
	checkMatrix("B", transB, k, n, b, ldb)
	checkMatrix("C", false, m, n, c, ldc)
}

// checkMatrix validates a row-major matrix whose op() is rows x cols.
func checkMatrix(which string, trans bool, rows, cols int, s []float32, ld int) {
	r, cl := rows, cols
	if trans {
		r, cl = cols, rows
	}
	if ld < max(1, cl) {
		panic(fmt.Sprintf("kernels.Sgemm: ld%s=%d < max(1, %d): %s is stored %dx%d (trans=%v)",
			strings.ToLower(which), ld, cl, which, r, cl, trans))
	}
	need := 0
	if r > 0 && cl > 0 {
		need = (r-1)*ld + cl
	}
	if len(s) < need {
		panic(fmt.Sprintf("kernels.Sgemm: len(%s)=%d < %d needed for %dx%d storage with ld=%d (trans=%v)",
			strings.ToLower(which), len(s), need, r, cl, ld, trans))
	}
}
