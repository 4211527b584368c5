//go:build cgo

package kernels

/*
#include <stddef.h>
#include <string.h>

// NCCL's ABI declared by hand, as cuda_cgo.go does for the driver: the
// communicator and the stream are opaque pointers, enums are int, and
// ncclUniqueId is a 128-byte struct passed by value to ncclCommInitRank.
typedef struct { char internal[128]; } pc_nccl_id;

typedef int (*ncclGetVersion_fn)(int *);
typedef int (*ncclGetUniqueId_fn)(pc_nccl_id *);
typedef int (*ncclCommInitRank_fn)(void **, int, pc_nccl_id, int);
typedef int (*ncclAllReduce_fn)(const void *, void *, size_t, int, int, void *, void *);
typedef int (*ncclReduceScatter_fn)(const void *, void *, size_t, int, int, void *, void *);
typedef int (*ncclAllGather_fn)(const void *, void *, size_t, int, void *, void *);
typedef int (*ncclBroadcast_fn)(const void *, void *, size_t, int, int, void *, void *);
typedef int (*ncclComm_fn)(void *);                       // ncclCommDestroy, ncclCommAbort
typedef const char *(*ncclGetErrorString_fn)(int);
typedef const char *(*ncclGetLastError_fn)(void *);
typedef int (*ncclCommGetAsyncError_fn)(void *, int *);
typedef int (*pc_nccl_setcur_fn)(void *);                 // cuCtxSetCurrent

// Calls that touch the device make the caller's context current in the
// same C call, as cuda_cgo.go's PC_CTX does: a goroutine may change OS
// threads between two cgo calls, and NCCL uses whatever is current. A
// context that cannot be made current reads as ncclUnhandledCudaError (1).
// setcur is NULL for an emulated context (the tests' stand-in library).
#define PC_NCCL_CTX(setcur, ctx) do { if ((setcur) != NULL) { int r_ = ((pc_nccl_setcur_fn)(setcur))(ctx); if (r_ != 0) return 1; } } while (0)

static int pc_nccl_version(void *fn, int *v) { return ((ncclGetVersion_fn)fn)(v); }
static int pc_nccl_unique_id(void *fn, void *out) {
	pc_nccl_id id;
	int r = ((ncclGetUniqueId_fn)fn)(&id);
	if (r == 0) memcpy(out, id.internal, sizeof id.internal);
	return r;
}
static int pc_nccl_init_rank(void *setcur, void *ctx, void *fn, void **comm, int nranks, const void *idBytes, int rank) {
	pc_nccl_id id;
	memcpy(id.internal, idBytes, sizeof id.internal);
	PC_NCCL_CTX(setcur, ctx);
	return ((ncclCommInitRank_fn)fn)(comm, nranks, id, rank);
}
static int pc_nccl_all_reduce(void *setcur, void *ctx, void *fn, unsigned long long send, unsigned long long recv,
	size_t count, int dt, int op, void *comm, void *stream) {
	PC_NCCL_CTX(setcur, ctx);
	return ((ncclAllReduce_fn)fn)((const void *)send, (void *)recv, count, dt, op, comm, stream);
}
static int pc_nccl_reduce_scatter(void *setcur, void *ctx, void *fn, unsigned long long send, unsigned long long recv,
	size_t count, int dt, int op, void *comm, void *stream) {
	PC_NCCL_CTX(setcur, ctx);
	return ((ncclReduceScatter_fn)fn)((const void *)send, (void *)recv, count, dt, op, comm, stream);
}
static int pc_nccl_all_gather(void *setcur, void *ctx, void *fn, unsigned long long send, unsigned long long recv,
	size_t count, int dt, void *comm, void *stream) {
	PC_NCCL_CTX(setcur, ctx);
	return ((ncclAllGather_fn)fn)((const void *)send, (void *)recv, count, dt, comm, stream);
}
static int pc_nccl_broadcast(void *setcur, void *ctx, void *fn, unsigned long long send, unsigned long long recv,
	size_t count, int dt, int root, void *comm, void *stream) {
	PC_NCCL_CTX(setcur, ctx);
	return ((ncclBroadcast_fn)fn)((const void *)send, (void *)recv, count, dt, root, comm, stream);
}
static int pc_nccl_comm(void *setcur, void *ctx, void *fn, void *comm) {
	PC_NCCL_CTX(setcur, ctx);
	return ((ncclComm_fn)fn)(comm);
}
static const char *pc_nccl_errstr(void *fn, int code) { return ((ncclGetErrorString_fn)fn)(code); }
static const char *pc_nccl_last_error(void *fn, void *comm) { return fn == NULL ? NULL : ((ncclGetLastError_fn)fn)(comm); }
static int pc_nccl_async_error(void *fn, void *comm, int *res) { return ((ncclCommGetAsyncError_fn)fn)(comm, res); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

func ncclOpen(path string) (*dlLib, error) { return dlopenSyms(path, ncclSymbols, ncclOptionalSymbols) }

func (n *NCCL) sym(name string) unsafe.Pointer { return n.lib.syms[name] }

// ncclHasSym reports whether l resolved the optional symbol s.
func ncclHasSym(l *dlLib, s string) bool { return l.syms[s] != nil }

// ncclCur is the cuCtxSetCurrent entry and the context handle the shims
// make current; both nil on an emulated context, which has no driver.
func ncclCur(ctx *Context) (setcur, h unsafe.Pointer) {
	if ctx.Emulated() {
		return nil, nil
	}
	return ctx.setcur(), ctx.ctx
}

func (n *NCCL) getVersion() (int, error) {
	var v C.int
	if r := C.pc_nccl_version(n.sym("ncclGetVersion"), &v); r != 0 {
		return 0, fmt.Errorf("ncclGetVersion failed with status %d", int(r))
	}
	return int(v), nil
}

func (n *NCCL) getUniqueID(id *NCCLUniqueID) int {
	// id is Go memory without Go pointers, written during the call only.
	return int(C.pc_nccl_unique_id(n.sym("ncclGetUniqueId"), unsafe.Pointer(&id[0])))
}

func (n *NCCL) commInitRank(ctx *Context, id *NCCLUniqueID, nranks, rank int) (unsafe.Pointer, int) {
	var comm unsafe.Pointer
	setcur, h := ncclCur(ctx)
	r := C.pc_nccl_init_rank(setcur, h, n.sym("ncclCommInitRank"), &comm, C.int(nranks), unsafe.Pointer(&id[0]), C.int(rank))
	return comm, int(r)
}

func (n *NCCL) allReduce(c *NCCLComm, send, recv DevicePtr, count int, dt NCCLDataType, op NCCLRedOp, s Stream) int {
	setcur, h := ncclCur(c.ctx)
	return int(C.pc_nccl_all_reduce(setcur, h, n.sym("ncclAllReduce"), C.ulonglong(send), C.ulonglong(recv),
		C.size_t(count), C.int(dt), C.int(op), c.h, s.h))
}

func (n *NCCL) reduceScatter(c *NCCLComm, send, recv DevicePtr, count int, dt NCCLDataType, op NCCLRedOp, s Stream) int {
	setcur, h := ncclCur(c.ctx)
	return int(C.pc_nccl_reduce_scatter(setcur, h, n.sym("ncclReduceScatter"), C.ulonglong(send), C.ulonglong(recv),
		C.size_t(count), C.int(dt), C.int(op), c.h, s.h))
}

func (n *NCCL) allGather(c *NCCLComm, send, recv DevicePtr, count int, dt NCCLDataType, s Stream) int {
	setcur, h := ncclCur(c.ctx)
	return int(C.pc_nccl_all_gather(setcur, h, n.sym("ncclAllGather"), C.ulonglong(send), C.ulonglong(recv),
		C.size_t(count), C.int(dt), c.h, s.h))
}

func (n *NCCL) broadcast(c *NCCLComm, send, recv DevicePtr, count int, dt NCCLDataType, root int, s Stream) int {
	setcur, h := ncclCur(c.ctx)
	return int(C.pc_nccl_broadcast(setcur, h, n.sym("ncclBroadcast"), C.ulonglong(send), C.ulonglong(recv),
		C.size_t(count), C.int(dt), C.int(root), c.h, s.h))
}

func (n *NCCL) commFree(c *NCCLComm, sym string) int {
	setcur, h := ncclCur(c.ctx)
	return int(C.pc_nccl_comm(setcur, h, n.sym(sym), c.h))
}

func (n *NCCL) asyncError(comm unsafe.Pointer) (res, code int) {
	var r C.int
	code = int(C.pc_nccl_async_error(n.sym("ncclCommGetAsyncError"), comm, &r))
	return int(r), code
}

func (n *NCCL) errorString(code int) string {
	if s := C.pc_nccl_errstr(n.sym("ncclGetErrorString"), C.int(code)); s != nil {
		return C.GoString(s)
	}
	return ""
}

func (n *NCCL) lastError(comm unsafe.Pointer) string {
	if s := C.pc_nccl_last_error(n.sym("ncclGetLastError"), comm); s != nil {
		return C.GoString(s)
	}
	return ""
}
