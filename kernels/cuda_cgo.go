//go:build cgo

package kernels

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

// The CUDA driver, NVRTC and cuBLASLt ABIs are declared here by hand (opaque
// handles are void*, enums are int, CUdeviceptr is unsigned long long) so
// that building needs no CUDA header. Driver entry points use the _v2 names
// that cuda.h maps the plain names to since CUDA 4/5; libcuda keeps
// exporting them in every later release.

typedef unsigned long long pc_devptr;

static void cu_copy_err(const char *msg, char *buf, int n) {
	int i = 0;
	if (msg == NULL) msg = "unknown dlerror";
	for (; i < n - 1 && msg[i] != 0; i++) buf[i] = msg[i];
	buf[i] = 0;
}

// As in blas_cgo.go: dlerror's state is per OS thread, so it is copied out
// inside the same C call.
static void *cu_dlopen(const char *name, char *errbuf, int n) {
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) cu_copy_err(dlerror(), errbuf, n);
	return h;
}

static void *cu_dlsym(void *h, const char *sym, char *errbuf, int n) {
	void *p;
	dlerror();
	p = dlsym(h, sym);
	if (p == NULL) cu_copy_err(dlerror(), errbuf, n);
	return p;
}

static void cu_dlclose(void *h) { dlclose(h); }

// ---- NVRTC ----
typedef int (*nvrtcVersion_fn)(int *, int *);
typedef int (*nvrtcCreateProgram_fn)(void **, const char *, const char *, int, const char *const *, const char *const *);
typedef int (*nvrtcCompileProgram_fn)(void *, int, const char *const *);
typedef int (*nvrtcGetSize_fn)(void *, size_t *);
typedef int (*nvrtcGetBuf_fn)(void *, char *);
typedef int (*nvrtcDestroyProgram_fn)(void **);
typedef const char *(*nvrtcGetErrorString_fn)(int);

static int pc_nvrtc_version(void *fn, int *maj, int *min) { return ((nvrtcVersion_fn)fn)(maj, min); }
static int pc_nvrtc_create(void *fn, void **prog, const char *src, const char *name) {
	return ((nvrtcCreateProgram_fn)fn)(prog, src, name, 0, NULL, NULL);
}
static int pc_nvrtc_compile(void *fn, void *prog, int n, const char *const *opts) {
	return ((nvrtcCompileProgram_fn)fn)(prog, n, opts);
}
static int pc_nvrtc_size(void *fn, void *prog, size_t *n) { return ((nvrtcGetSize_fn)fn)(prog, n); }
static int pc_nvrtc_buf(void *fn, void *prog, char *buf) { return ((nvrtcGetBuf_fn)fn)(prog, buf); }
static int pc_nvrtc_destroy(void *fn, void *prog) { void *p = prog; return ((nvrtcDestroyProgram_fn)fn)(&p); }
static const char *pc_nvrtc_errstr(void *fn, int code) { return ((nvrtcGetErrorString_fn)fn)(code); }

// ---- CUDA driver ----
typedef int (*cu_int_fn)(unsigned int);                    // cuInit
typedef int (*cu_pint_fn)(int *);                          // cuDriverGetVersion, cuDeviceGetCount
typedef int (*cuDeviceGet_fn)(int *, int);
typedef int (*cuDeviceGetName_fn)(char *, int, int);
typedef int (*cuDeviceGetAttribute_fn)(int *, int, int);
typedef int (*cuDeviceTotalMem_fn)(size_t *, int);
typedef int (*cuCtxCreate_fn)(void **, unsigned int, int);
typedef int (*cu_ptr_fn)(void *);                          // cuCtxDestroy, cuCtxSetCurrent, cuStreamSynchronize, cuMemFreeHost, cuStreamDestroy
typedef int (*cuModuleLoadData_fn)(void **, const void *);
typedef int (*cuModuleGetFunction_fn)(void **, void *, const char *);
typedef int (*cuFuncSetAttribute_fn)(void *, int, int);
typedef int (*cuMemAlloc_fn)(pc_devptr *, size_t);
typedef int (*cuMemFree_fn)(pc_devptr);
typedef int (*cuMemcpyHtoD_fn)(pc_devptr, const void *, size_t);
typedef int (*cuMemcpyDtoH_fn)(void *, pc_devptr, size_t);
typedef int (*cuMemcpyHtoDAsync_fn)(pc_devptr, const void *, size_t, void *);
typedef int (*cuMemcpyDtoHAsync_fn)(void *, pc_devptr, size_t, void *);
typedef int (*cuMemsetD8Async_fn)(pc_devptr, unsigned char, size_t, void *);
typedef int (*cuStreamCreate_fn)(void **, unsigned int);
typedef int (*cuLaunchKernel_fn)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *, void **, void **);
typedef int (*cuGetErrorString_fn)(int, const char **);
typedef int (*cuMemAllocHost_fn)(void **, size_t);

static int pc_cu_init(void *fn) { return ((cu_int_fn)fn)(0); }
static int pc_cu_pint(void *fn, int *v) { return ((cu_pint_fn)fn)(v); }
static int pc_cu_device_get(void *fn, int *dev, int ord) { return ((cuDeviceGet_fn)fn)(dev, ord); }
static int pc_cu_device_name(void *fn, char *buf, int n, int dev) { return ((cuDeviceGetName_fn)fn)(buf, n, dev); }
static int pc_cu_device_attr(void *fn, int *v, int attr, int dev) { return ((cuDeviceGetAttribute_fn)fn)(v, attr, dev); }
static int pc_cu_device_mem(void *fn, size_t *v, int dev) { return ((cuDeviceTotalMem_fn)fn)(v, dev); }
static int pc_cu_ctx_create(void *fn, void **ctx, int dev) { return ((cuCtxCreate_fn)fn)(ctx, 0, dev); }
static int pc_cu_ptr(void *fn, void *p) { return ((cu_ptr_fn)fn)(p); }
typedef int (*cuDevicePrimaryCtxRetain_fn)(void **, int);
typedef int (*cuDevicePrimaryCtxRelease_fn)(int);
static int pc_cu_primary_retain(void *fn, void **ctx, int dev) { return ((cuDevicePrimaryCtxRetain_fn)fn)(ctx, dev); }
static int pc_cu_primary_release(void *fn, int dev) { return ((cuDevicePrimaryCtxRelease_fn)fn)(dev); }
static const char *pc_cu_errstr(void *fn, int code) {
	const char *s = NULL;
	if (fn == NULL || ((cuGetErrorString_fn)fn)(code, &s) != 0) return NULL;
	return s;
}

// Every call below that needs a context takes it and makes it current in
// the same C call: a context is current per OS thread, and a goroutine may
// move to another thread between two cgo calls.
#define PC_CTX(setcur, ctx) do { int r_ = ((cu_ptr_fn)(setcur))(ctx); if (r_ != 0) return r_; } while (0)

static int pc_cu_module_load(void *setcur, void *ctx, void *fn, void **mod, const void *image) {
	PC_CTX(setcur, ctx); return ((cuModuleLoadData_fn)fn)(mod, image);
}
static int pc_cu_module_fn(void *setcur, void *ctx, void *fn, void **f, void *mod, const char *name) {
	PC_CTX(setcur, ctx); return ((cuModuleGetFunction_fn)fn)(f, mod, name);
}
static int pc_cu_func_attr(void *setcur, void *ctx, void *fn, void *f, int attr, int v) {
	PC_CTX(setcur, ctx); return ((cuFuncSetAttribute_fn)fn)(f, attr, v);
}
static int pc_cu_malloc(void *setcur, void *ctx, void *fn, pc_devptr *p, size_t n) {
	PC_CTX(setcur, ctx); return ((cuMemAlloc_fn)fn)(p, n);
}
static int pc_cu_free(void *setcur, void *ctx, void *fn, pc_devptr p) {
	PC_CTX(setcur, ctx); return ((cuMemFree_fn)fn)(p);
}
static int pc_cu_htod(void *setcur, void *ctx, void *fn, pc_devptr dst, const void *src, size_t n) {
	PC_CTX(setcur, ctx); return ((cuMemcpyHtoD_fn)fn)(dst, src, n);
}
static int pc_cu_dtoh(void *setcur, void *ctx, void *fn, void *dst, pc_devptr src, size_t n) {
	PC_CTX(setcur, ctx); return ((cuMemcpyDtoH_fn)fn)(dst, src, n);
}
static int pc_cu_htod_async(void *setcur, void *ctx, void *fn, pc_devptr dst, const void *src, size_t n, void *stream) {
	PC_CTX(setcur, ctx); return ((cuMemcpyHtoDAsync_fn)fn)(dst, src, n, stream);
}
static int pc_cu_dtoh_async(void *setcur, void *ctx, void *fn, void *dst, pc_devptr src, size_t n, void *stream) {
	PC_CTX(setcur, ctx); return ((cuMemcpyDtoHAsync_fn)fn)(dst, src, n, stream);
}
static int pc_cu_memset_async(void *setcur, void *ctx, void *fn, pc_devptr dst, size_t n, void *stream) {
	PC_CTX(setcur, ctx); return ((cuMemsetD8Async_fn)fn)(dst, 0, n, stream);
}
static int pc_cu_stream_create(void *setcur, void *ctx, void *fn, void **s) {
	PC_CTX(setcur, ctx); return ((cuStreamCreate_fn)fn)(s, 1); // CU_STREAM_NON_BLOCKING
}
static int pc_cu_ctx_call(void *setcur, void *ctx, void *fn, void *arg) {
	PC_CTX(setcur, ctx); return ((cu_ptr_fn)fn)(arg);
}
static int pc_cu_alloc_host(void *setcur, void *ctx, void *fn, void **p, size_t n) {
	PC_CTX(setcur, ctx); return ((cuMemAllocHost_fn)fn)(p, n);
}

// pc_cu_launch builds the kernelParams array on the C stack: slot i of vals
// holds argument i in its low bytes (little endian), so a 4-byte int or
// float and an 8-byte pointer both read correctly through &vals[i]. The
// driver copies the values during the call; nothing is retained.
#define PC_MAX_ARGS 32
static int pc_cu_launch(void *setcur, void *ctx, void *fn, void *f,
	unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
	unsigned shmem, void *stream, uint64_t *vals, int n) {
	void *params[PC_MAX_ARGS];
	int i;
	if (n > PC_MAX_ARGS) return 1; // CUDA_ERROR_INVALID_VALUE
	for (i = 0; i < n; i++) params[i] = &vals[i];
	PC_CTX(setcur, ctx);
	return ((cuLaunchKernel_fn)fn)(f, gx, gy, gz, bx, by, bz, shmem, stream, params, NULL);
}

// ---- cuBLASLt ----
typedef size_t (*cublasLtGetVersion_fn)(void);
typedef int (*cublasLt_pp_fn)(void **);           // Create, PreferenceCreate
typedef int (*cublasLt_p_fn)(void *);             // Destroy, *Destroy
typedef int (*cublasLtMatmulDescCreate_fn)(void **, int, int);
typedef int (*cublasLtSetAttr_fn)(void *, int, const void *, size_t);
typedef int (*cublasLtMatrixLayoutCreate_fn)(void **, int, uint64_t, uint64_t, int64_t);
typedef int (*cublasLtHeuristic_fn)(void *, void *, void *, void *, void *, void *, void *, int, void *, int *);
typedef int (*cublasLtMatmul_fn)(void *, void *, const void *, pc_devptr, void *, pc_devptr, void *,
	const void *, pc_devptr, void *, pc_devptr, void *, const void *, pc_devptr, size_t, void *);

static size_t pc_lt_version(void *fn) { return ((cublasLtGetVersion_fn)fn)(); }
static int pc_lt_pp(void *fn, void **p) { return ((cublasLt_pp_fn)fn)(p); }
static int pc_lt_create(void *setcur, void *ctx, void *fn, void **p) { PC_CTX(setcur, ctx); return ((cublasLt_pp_fn)fn)(p); }
static int pc_lt_p(void *fn, void *p) { return ((cublasLt_p_fn)fn)(p); }
static int pc_lt_desc_create(void *fn, void **d, int compute, int scale) { return ((cublasLtMatmulDescCreate_fn)fn)(d, compute, scale); }
static int pc_lt_set_attr(void *fn, void *obj, int attr, const void *buf, size_t n) { return ((cublasLtSetAttr_fn)fn)(obj, attr, buf, n); }
static int pc_lt_layout_create(void *fn, void **l, int dtype, uint64_t rows, uint64_t cols, int64_t ld) {
	return ((cublasLtMatrixLayoutCreate_fn)fn)(l, dtype, rows, cols, ld);
}
static int pc_lt_heuristic(void *fn, void *h, void *op, void *a, void *b, void *c, void *d, void *pref, int req, void *res, int *got) {
	return ((cublasLtHeuristic_fn)fn)(h, op, a, b, c, d, pref, req, res, got);
}
static int pc_lt_matmul(void *setcur, void *ctx, void *fn, void *h, void *op, const void *alpha,
	pc_devptr a, void *adesc, pc_devptr b, void *bdesc, const void *beta, pc_devptr c, void *cdesc,
	pc_devptr d, void *ddesc, const void *algo, pc_devptr ws, size_t wsSize, void *stream) {
	PC_CTX(setcur, ctx);
	return ((cublasLtMatmul_fn)fn)(h, op, alpha, a, adesc, b, bdesc, beta, c, cdesc, d, ddesc, algo, ws, wsSize, stream);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

const cgoAvailable = true

// dlLib is one dlopen'd library with its resolved symbols by name. The
// handle is never closed for libraries in use: function pointers handed out
// must stay valid for the life of the process.
type dlLib struct {
	handle unsafe.Pointer
	name   string
	syms   map[string]unsafe.Pointer
}

// dlopenSyms opens name and resolves every symbol of required (failing, and
// closing the handle, when one is missing) and of optional (absent ones are
// simply left out of syms).
func dlopenSyms(name string, required, optional []string) (*dlLib, error) {
	buf := make([]byte, 1024)
	ebuf := (*C.char)(unsafe.Pointer(&buf[0]))
	h := C.cu_dlopen(cstr(name), ebuf, C.int(len(buf)))
	if h == nil {
		return nil, &dlopenError{errText(buf)}
	}
	lib := &dlLib{handle: h, name: name, syms: map[string]unsafe.Pointer{}}
	for _, s := range required {
		p := C.cu_dlsym(h, cstr(s), ebuf, C.int(len(buf)))
		if p == nil {
			msg := errText(buf)
			C.cu_dlclose(h)
			return nil, fmt.Errorf("%s: missing symbol %s: %s", name, s, msg)
		}
		lib.syms[s] = p
	}
	for _, s := range optional {
		if p := C.cu_dlsym(h, cstr(s), ebuf, C.int(len(buf))); p != nil {
			lib.syms[s] = p
		}
	}
	return lib, nil
}

func (l *dlLib) close() { C.cu_dlclose(l.handle) }

// ---- NVRTC ----

var nvrtcSymbols = []string{
	"nvrtcVersion", "nvrtcCreateProgram", "nvrtcCompileProgram", "nvrtcGetProgramLogSize",
	"nvrtcGetProgramLog", "nvrtcGetPTXSize", "nvrtcGetPTX", "nvrtcDestroyProgram", "nvrtcGetErrorString",
}

// nvrtcOptionalSymbols exist since NVRTC 11.1 (CUBIN output); without them
// only PTX can be produced.
var nvrtcOptionalSymbols = []string{"nvrtcGetCUBINSize", "nvrtcGetCUBIN"}

func nvrtcOpen(path string) (*dlLib, int, int, error) {
	lib, err := dlopenSyms(path, nvrtcSymbols, nvrtcOptionalSymbols)
	if err != nil {
		return nil, 0, 0, err
	}
	var maj, min C.int
	if r := C.pc_nvrtc_version(lib.syms["nvrtcVersion"], &maj, &min); r != 0 {
		lib.close()
		return nil, 0, 0, fmt.Errorf("%s: nvrtcVersion failed with status %d", path, int(r))
	}
	return lib, int(maj), int(min), nil
}

func (n *NVRTC) errString(code C.int) string {
	if s := C.pc_nvrtc_errstr(n.lib.syms["nvrtcGetErrorString"], code); s != nil {
		return C.GoString(s)
	}
	return fmt.Sprintf("NVRTC status %d", int(code))
}

// compile runs one NVRTC program and returns its PTX, or its CUBIN when
// cubin is set (opts must then name a real sm_XY architecture). C strings
// are malloc'd because the option array is a C array of pointers (Go
// memory holding Go pointers may not be passed to C).
func (n *NVRTC) compile(src, name string, opts []string, cubin bool) (out []byte, log string, err error) {
	s := n.lib.syms
	sizeSym, bufSym := "nvrtcGetPTXSize", "nvrtcGetPTX"
	if cubin {
		sizeSym, bufSym = "nvrtcGetCUBINSize", "nvrtcGetCUBIN"
		if s[sizeSym] == nil || s[bufSym] == nil {
			return nil, "", fmt.Errorf("nvrtc %s (%s) cannot produce CUBIN (nvrtcGetCUBIN needs NVRTC 11.1+)", n.Version(), n.Path)
		}
	}
	csrc, cname := C.CString(src), C.CString(name)
	defer C.free(unsafe.Pointer(csrc))
	defer C.free(unsafe.Pointer(cname))
	var prog unsafe.Pointer
	if r := C.pc_nvrtc_create(s["nvrtcCreateProgram"], &prog, csrc, cname); r != 0 {
		return nil, "", fmt.Errorf("nvrtcCreateProgram %s: %s", name, n.errString(r))
	}
	defer C.pc_nvrtc_destroy(s["nvrtcDestroyProgram"], prog)
	copts := (**C.char)(C.malloc(C.size_t(max(len(opts), 1)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(copts))
	arr := unsafe.Slice(copts, max(len(opts), 1))
	for i, o := range opts {
		arr[i] = C.CString(o)
		defer C.free(unsafe.Pointer(arr[i]))
	}
	rc := C.pc_nvrtc_compile(s["nvrtcCompileProgram"], prog, C.int(len(opts)), copts)
	var logSize C.size_t
	if r := C.pc_nvrtc_size(s["nvrtcGetProgramLogSize"], prog, &logSize); r == 0 && logSize > 1 {
		buf := make([]byte, int(logSize))
		if C.pc_nvrtc_buf(s["nvrtcGetProgramLog"], prog, (*C.char)(unsafe.Pointer(&buf[0]))) == 0 {
			log = errText(buf)
		}
	}
	if rc != 0 {
		return nil, log, fmt.Errorf("nvrtc compile %s: %s", name, n.errString(rc))
	}
	var size C.size_t
	if r := C.pc_nvrtc_size(s[sizeSym], prog, &size); r != 0 {
		return nil, log, fmt.Errorf("%s %s: %s", sizeSym, name, n.errString(r))
	}
	out = make([]byte, int(size))
	if len(out) > 0 {
		if r := C.pc_nvrtc_buf(s[bufSym], prog, (*C.char)(unsafe.Pointer(&out[0]))); r != 0 {
			return nil, log, fmt.Errorf("%s %s: %s", bufSym, name, n.errString(r))
		}
	}
	// The PTX size includes the terminating NUL; cuModuleLoadData wants it,
	// the cache and callers keep it.
	return out, log, nil
}

// ---- CUDA driver ----

var driverSymbols = []string{
	"cuInit", "cuDriverGetVersion", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName",
	"cuDeviceGetAttribute", "cuDeviceTotalMem_v2", "cuCtxCreate_v2", "cuCtxDestroy_v2", "cuCtxSetCurrent",
	"cuModuleLoadData", "cuModuleGetFunction", "cuFuncSetAttribute", "cuMemAlloc_v2", "cuMemFree_v2",
	"cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2", "cuMemsetD8Async",
	"cuStreamCreate", "cuStreamDestroy_v2", "cuStreamSynchronize", "cuLaunchKernel", "cuGetErrorString",
	"cuMemAllocHost_v2", "cuMemFreeHost", "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2",
}

func driverOpen(path string) (*dlLib, error) { return dlopenSyms(path, driverSymbols, nil) }

func (d *Driver) check(what string, r C.int) error {
	if r == 0 {
		return nil
	}
	msg := ""
	if s := C.pc_cu_errstr(d.lib.syms["cuGetErrorString"], r); s != nil {
		msg = C.GoString(s)
	}
	return &CUDAError{Op: what, Code: int(r), Msg: msg}
}

func (d *Driver) init() (int, error) {
	s := d.lib.syms
	if err := d.check("cuInit", C.pc_cu_init(s["cuInit"])); err != nil {
		return 0, err
	}
	var v C.int
	if err := d.check("cuDriverGetVersion", C.pc_cu_pint(s["cuDriverGetVersion"], &v)); err != nil {
		return 0, err
	}
	return int(v), nil
}

func (d *Driver) deviceCount() (int, error) {
	var n C.int
	err := d.check("cuDeviceGetCount", C.pc_cu_pint(d.lib.syms["cuDeviceGetCount"], &n))
	return int(n), err
}

func (d *Driver) device(ord int) (DeviceInfo, error) {
	s := d.lib.syms
	info := DeviceInfo{Ordinal: ord}
	var dev C.int
	if err := d.check("cuDeviceGet", C.pc_cu_device_get(s["cuDeviceGet"], &dev, C.int(ord))); err != nil {
		return info, err
	}
	name := make([]byte, 256)
	if err := d.check("cuDeviceGetName", C.pc_cu_device_name(s["cuDeviceGetName"], (*C.char)(unsafe.Pointer(&name[0])), C.int(len(name)), dev)); err != nil {
		return info, err
	}
	info.Name = errText(name)
	attr := func(a int) (int, error) {
		var v C.int
		err := d.check("cuDeviceGetAttribute", C.pc_cu_device_attr(s["cuDeviceGetAttribute"], &v, C.int(a), dev))
		return int(v), err
	}
	var err error
	if info.Major, err = attr(cuAttrCCMajor); err != nil {
		return info, err
	}
	if info.Minor, err = attr(cuAttrCCMinor); err != nil {
		return info, err
	}
	if info.SMs, err = attr(cuAttrSMCount); err != nil {
		return info, err
	}
	if info.MaxSharedOptin, err = attr(cuAttrMaxSharedOptin); err != nil {
		return info, err
	}
	var mem C.size_t
	if err := d.check("cuDeviceTotalMem", C.pc_cu_device_mem(s["cuDeviceTotalMem_v2"], &mem, dev)); err != nil {
		return info, err
	}
	info.TotalMem = uint64(mem)
	info.handle = int(dev)
	return info, nil
}

func (d *Driver) ctxCreate(dev int) (unsafe.Pointer, error) {
	var ctx unsafe.Pointer
	err := d.check("cuCtxCreate", C.pc_cu_ctx_create(d.lib.syms["cuCtxCreate_v2"], &ctx, C.int(dev)))
	return ctx, err
}

func (d *Driver) primaryRetain(dev int) (unsafe.Pointer, error) {
	var ctx unsafe.Pointer
	err := d.check("cuDevicePrimaryCtxRetain", C.pc_cu_primary_retain(d.lib.syms["cuDevicePrimaryCtxRetain"], &ctx, C.int(dev)))
	return ctx, err
}

func (c *Context) sym(n string) unsafe.Pointer { return c.drv.lib.syms[n] }
func (c *Context) setcur() unsafe.Pointer      { return c.drv.lib.syms["cuCtxSetCurrent"] }

func (c *Context) destroy() error {
	if c.primary {
		return c.drv.check("cuDevicePrimaryCtxRelease", C.pc_cu_primary_release(c.sym("cuDevicePrimaryCtxRelease_v2"), C.int(c.Dev.handle)))
	}
	return c.drv.check("cuCtxDestroy", C.pc_cu_ptr(c.sym("cuCtxDestroy_v2"), c.ctx))
}

func (c *Context) moduleLoad(image []byte) (unsafe.Pointer, error) {
	// cuModuleLoadData reads the image during the call only.
	var mod unsafe.Pointer
	err := c.drv.check("cuModuleLoadData", C.pc_cu_module_load(c.setcur(), c.ctx, c.sym("cuModuleLoadData"), &mod, unsafe.Pointer(&image[0])))
	return mod, err
}

func (c *Context) moduleFunction(mod unsafe.Pointer, name string) (unsafe.Pointer, error) {
	var f unsafe.Pointer
	err := c.drv.check("cuModuleGetFunction "+name, C.pc_cu_module_fn(c.setcur(), c.ctx, c.sym("cuModuleGetFunction"), &f, mod, cstr(name)))
	return f, err
}

func (c *Context) funcSetAttr(f unsafe.Pointer, attr, v int) error {
	return c.drv.check("cuFuncSetAttribute", C.pc_cu_func_attr(c.setcur(), c.ctx, c.sym("cuFuncSetAttribute"), f, C.int(attr), C.int(v)))
}

func (c *Context) memAlloc(n uint64) (DevicePtr, error) {
	var p C.pc_devptr
	err := c.drv.check(fmt.Sprintf("cuMemAlloc(%d bytes)", n), C.pc_cu_malloc(c.setcur(), c.ctx, c.sym("cuMemAlloc_v2"), &p, C.size_t(n)))
	return DevicePtr(p), err
}

func (c *Context) memFree(p DevicePtr) error {
	return c.drv.check("cuMemFree", C.pc_cu_free(c.setcur(), c.ctx, c.sym("cuMemFree_v2"), C.pc_devptr(p)))
}

func (c *Context) htod(dst DevicePtr, src unsafe.Pointer, n uint64) error {
	return c.drv.check("cuMemcpyHtoD", C.pc_cu_htod(c.setcur(), c.ctx, c.sym("cuMemcpyHtoD_v2"), C.pc_devptr(dst), src, C.size_t(n)))
}

func (c *Context) dtoh(dst unsafe.Pointer, src DevicePtr, n uint64) error {
	return c.drv.check("cuMemcpyDtoH", C.pc_cu_dtoh(c.setcur(), c.ctx, c.sym("cuMemcpyDtoH_v2"), dst, C.pc_devptr(src), C.size_t(n)))
}

func (c *Context) htodAsync(dst DevicePtr, src unsafe.Pointer, n uint64, s Stream) error {
	return c.drv.check("cuMemcpyHtoDAsync", C.pc_cu_htod_async(c.setcur(), c.ctx, c.sym("cuMemcpyHtoDAsync_v2"), C.pc_devptr(dst), src, C.size_t(n), s.h))
}

func (c *Context) dtohAsync(dst unsafe.Pointer, src DevicePtr, n uint64, s Stream) error {
	return c.drv.check("cuMemcpyDtoHAsync", C.pc_cu_dtoh_async(c.setcur(), c.ctx, c.sym("cuMemcpyDtoHAsync_v2"), dst, C.pc_devptr(src), C.size_t(n), s.h))
}

func (c *Context) memsetAsync(dst DevicePtr, n uint64, s Stream) error {
	return c.drv.check("cuMemsetD8Async", C.pc_cu_memset_async(c.setcur(), c.ctx, c.sym("cuMemsetD8Async"), C.pc_devptr(dst), C.size_t(n), s.h))
}

func (c *Context) streamCreate() (unsafe.Pointer, error) {
	var s unsafe.Pointer
	err := c.drv.check("cuStreamCreate", C.pc_cu_stream_create(c.setcur(), c.ctx, c.sym("cuStreamCreate"), &s))
	return s, err
}

func (c *Context) ctxCall(op, sym string, arg unsafe.Pointer) error {
	return c.drv.check(op, C.pc_cu_ctx_call(c.setcur(), c.ctx, c.sym(sym), arg))
}

func (c *Context) allocHost(n uint64) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	err := c.drv.check(fmt.Sprintf("cuMemAllocHost(%d bytes)", n), C.pc_cu_alloc_host(c.setcur(), c.ctx, c.sym("cuMemAllocHost_v2"), &p, C.size_t(n)))
	return p, err
}

func (c *Context) launch(f unsafe.Pointer, grid, block Dim3, shmem uint32, s Stream, vals []uint64) error {
	var vp *C.uint64_t
	if len(vals) > 0 {
		// vals is Go memory without Go pointers, read during the call only.
		vp = (*C.uint64_t)(unsafe.Pointer(&vals[0]))
	}
	return c.drv.check("cuLaunchKernel", C.pc_cu_launch(c.setcur(), c.ctx, c.sym("cuLaunchKernel"), f,
		C.uint(grid.X), C.uint(grid.Y), C.uint(grid.Z), C.uint(block.X), C.uint(block.Y), C.uint(block.Z),
		C.uint(shmem), s.h, vp, C.int(len(vals))))
}

// ---- cuBLASLt ----

var cublasLtSymbols = []string{
	"cublasLtGetVersion", "cublasLtCreate", "cublasLtDestroy", "cublasLtMatmul",
	"cublasLtMatmulDescCreate", "cublasLtMatmulDescSetAttribute", "cublasLtMatmulDescDestroy",
	"cublasLtMatrixLayoutCreate", "cublasLtMatrixLayoutSetAttribute", "cublasLtMatrixLayoutDestroy",
	"cublasLtMatmulPreferenceCreate", "cublasLtMatmulPreferenceSetAttribute", "cublasLtMatmulPreferenceDestroy",
	"cublasLtMatmulAlgoGetHeuristic",
}

func cublasLtOpen(path string) (*dlLib, uint64, error) {
	lib, err := dlopenSyms(path, cublasLtSymbols, nil)
	if err != nil {
		return nil, 0, err
	}
	return lib, uint64(C.pc_lt_version(lib.syms["cublasLtGetVersion"])), nil
}

func ltCheck(op string, r C.int) error {
	if r == 0 {
		return nil
	}
	return &CUDAError{Op: op, Code: int(r), Msg: "cublasStatus_t"}
}

func (l *CublasLt) create(c *Context) (unsafe.Pointer, error) {
	var h unsafe.Pointer
	return h, ltCheck("cublasLtCreate", C.pc_lt_create(c.setcur(), c.ctx, l.lib.syms["cublasLtCreate"], &h))
}

func (l *CublasLt) destroyObj(sym string, p unsafe.Pointer) error {
	return ltCheck(sym, C.pc_lt_p(l.lib.syms[sym], p))
}

func (l *CublasLt) descCreate(compute, scale int) (unsafe.Pointer, error) {
	var d unsafe.Pointer
	return d, ltCheck("cublasLtMatmulDescCreate", C.pc_lt_desc_create(l.lib.syms["cublasLtMatmulDescCreate"], &d, C.int(compute), C.int(scale)))
}

// setAttr passes a small Go value (no Go pointers) that the library copies.
func (l *CublasLt) setAttr(sym string, obj unsafe.Pointer, attr int, buf unsafe.Pointer, n uintptr) error {
	return ltCheck(sym, C.pc_lt_set_attr(l.lib.syms[sym], obj, C.int(attr), buf, C.size_t(n)))
}

func (l *CublasLt) layoutCreate(dtype int, rows, cols uint64, ld int64) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	return p, ltCheck("cublasLtMatrixLayoutCreate", C.pc_lt_layout_create(l.lib.syms["cublasLtMatrixLayoutCreate"], &p, C.int(dtype), C.uint64_t(rows), C.uint64_t(cols), C.int64_t(ld)))
}

func (l *CublasLt) prefCreate() (unsafe.Pointer, error) {
	var p unsafe.Pointer
	return p, ltCheck("cublasLtMatmulPreferenceCreate", C.pc_lt_pp(l.lib.syms["cublasLtMatmulPreferenceCreate"], &p))
}

func (l *CublasLt) heuristic(h unsafe.Pointer, g *LtGemm, res *LtHeuristic) (int, error) {
	var got C.int
	err := ltCheck("cublasLtMatmulAlgoGetHeuristic", C.pc_lt_heuristic(l.lib.syms["cublasLtMatmulAlgoGetHeuristic"],
		h, g.desc, g.a, g.b, g.c, g.c, g.pref, 1, unsafe.Pointer(res), &got))
	return int(got), err
}

func (l *CublasLt) matmul(c *Context, h unsafe.Pointer, g *LtGemm, alpha, beta *float32, a, b, cIn, d DevicePtr, ws DevicePtr, s Stream) error {
	return ltCheck("cublasLtMatmul", C.pc_lt_matmul(c.setcur(), c.ctx, l.lib.syms["cublasLtMatmul"], h, g.desc,
		unsafe.Pointer(alpha), C.pc_devptr(a), g.a, C.pc_devptr(b), g.b, unsafe.Pointer(beta), C.pc_devptr(cIn), g.c,
		C.pc_devptr(d), g.c, unsafe.Pointer(&g.algo.Algo[0]), C.pc_devptr(ws), C.size_t(g.algo.WorkspaceSize), s.h))
}
