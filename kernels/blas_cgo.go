//go:build cgo

package kernels

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>

// The CBLAS ABI is fixed by the C interface standard; declaring the function
// type here avoids needing cblas.h at build time. Debian's OpenBLAS uses
// 32-bit blasint, hence int.
typedef void (*pc_sgemm_fn)(int order, int transA, int transB, int m, int n, int k,
	float alpha, const float *a, int lda, const float *b, int ldb,
	float beta, float *c, int ldc);
typedef char *(*pc_config_fn)(void);
typedef int (*pc_threads_fn)(void);

enum { pc_row_major = 101, pc_no_trans = 111, pc_trans = 112 };

static void pc_copy_err(const char *msg, char *buf, int n) {
	int i = 0;
	if (msg == NULL) msg = "unknown dlerror";
	for (; i < n - 1 && msg[i] != 0; i++) buf[i] = msg[i];
	buf[i] = 0;
}

// dlerror's state is per OS thread and a goroutine may change threads between
// two cgo calls, so the message is copied out inside the same C call.
static void *pc_dlopen(const char *name, char *errbuf, int n) {
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) pc_copy_err(dlerror(), errbuf, n);
	return h;
}

static void *pc_dlsym(void *h, const char *sym, char *errbuf, int n) {
	void *p;
	dlerror();
	p = dlsym(h, sym);
	if (p == NULL) pc_copy_err(dlerror(), errbuf, n);
	return p;
}

static void pc_dlclose(void *h) { dlclose(h); }

static void pc_sgemm(void *fn, int transA, int transB, int m, int n, int k,
	float alpha, const float *a, int lda, const float *b, int ldb,
	float beta, float *c, int ldc) {
	((pc_sgemm_fn)fn)(pc_row_major, transA ? pc_trans : pc_no_trans, transB ? pc_trans : pc_no_trans,
		m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static const char *pc_config(void *fn) { return ((pc_config_fn)fn)(); }
static int pc_threads(void *fn) { return ((pc_threads_fn)fn)(); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// openblasLib holds the resolved entry points of one dlopen'd library. The
// handle is never closed: the function pointers must stay valid for as long
// as any BLAS value may be used, and OpenBLAS's worker-thread pool does not
// support being unloaded. Loading again only bumps dlopen's refcount.
type openblasLib struct {
	handle unsafe.Pointer
	sgemm  unsafe.Pointer
	config string // openblas_get_config(), "" when the symbol is absent
	// threads is openblas_get_num_threads() at load time, 0 when absent.
	threads int
}

// cstr returns a NUL-terminated copy of s in Go memory; passing it to C is
// allowed because it contains no Go pointers, and it avoids malloc/free.
func cstr(s string) *C.char {
	b := append([]byte(s), 0)
	return (*C.char)(unsafe.Pointer(&b[0]))
}

func errText(buf []byte) string {
	for i, c := range buf {
		if c == 0 {
			return string(buf[:i])
		}
	}
	return string(buf)
}

// dlopenBLAS opens name (a path or a soname searched by the dynamic loader)
// and resolves cblas_sgemm plus the optional OpenBLAS report functions.
func dlopenBLAS(name string) (*openblasLib, error) {
	buf := make([]byte, 1024)
	ebuf := (*C.char)(unsafe.Pointer(&buf[0]))
	h := C.pc_dlopen(cstr(name), ebuf, C.int(len(buf)))
	if h == nil {
		return nil, fmt.Errorf("dlopen %s: %s", name, errText(buf))
	}
	fn := C.pc_dlsym(h, cstr("cblas_sgemm"), ebuf, C.int(len(buf)))
	if fn == nil {
		msg := errText(buf)
		C.pc_dlclose(h)
		return nil, fmt.Errorf("dlsym cblas_sgemm in %s: %s", name, msg)
	}
	lib := &openblasLib{handle: h, sgemm: fn}
	if cfg := C.pc_dlsym(h, cstr("openblas_get_config"), ebuf, C.int(len(buf))); cfg != nil {
		if s := C.pc_config(cfg); s != nil {
			lib.config = C.GoString(s)
		}
	}
	if th := C.pc_dlsym(h, cstr("openblas_get_num_threads"), ebuf, C.int(len(buf))); th != nil {
		lib.threads = int(C.pc_threads(th))
	}
	return lib, nil
}

// sgemmC calls cblas_sgemm in row-major order. The caller has validated all
// dimensions, leading dimensions and slice lengths, and guarantees m, n, k > 0
// and that every value fits in a C int.
func (l *openblasLib) sgemmC(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	C.pc_sgemm(l.sgemm, cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.int(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.int(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.int(ldc))
}

func cbool(v bool) C.int {
	if v {
		return 1
	}
	return 0
}
