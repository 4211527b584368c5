//go:build !cgo

package kernels

import "errors"

// Without cgo (CGO_ENABLED=0, cross builds) nothing can be dlopen'd; the
// package still builds and every BLAS value uses the gonum path.
type openblasLib struct {
	config  string
	threads int
}

func dlopenBLAS(name string) (*openblasLib, error) {
	return nil, errors.New("dlopen " + name + ": binary built without cgo (CGO_ENABLED=0)")
}

func (l *openblasLib) sgemmC(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	panic("kernels: sgemmC called in a build without cgo")
}
