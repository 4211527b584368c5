package kernels

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unsafe"
)

// NCCL sonames, preferred first: NCCL 2 is the ABI every release since
// 2017 keeps (pip's nvidia-nccl-cu12/cu13 wheels, NGC containers and the
// system packages all ship libnccl.so.2); the bare name covers a tree with
// only the -dev link.
var ncclSonames = []string{"libnccl.so.2", "libnccl.so"}

// ncclSymbols are the entry points the collectives backend calls; a
// library lacking one is rejected (the next candidate is tried).
var ncclSymbols = []string{
	"ncclGetVersion", "ncclGetUniqueId", "ncclCommInitRank", "ncclAllReduce", "ncclReduceScatter",
	"ncclAllGather", "ncclBroadcast", "ncclCommDestroy", "ncclCommAbort", "ncclGetErrorString",
	"ncclCommGetAsyncError",
}

// ncclOptionalSymbols: ncclGetLastError (NCCL 2.13+) adds the library's
// own explanation to an error.
var ncclOptionalSymbols = []string{"ncclGetLastError"}

// ncclMinVersion is NCCL 2.10, the first with ncclBfloat16: the weights
// are all-gathered as bf16.
const ncclMinVersion = 21000

// NCCLUniqueIDBytes is NCCL_UNIQUE_ID_BYTES: rank 0 creates the id and
// every rank passes the same bytes to InitRank.
const NCCLUniqueIDBytes = 128

// NCCLUniqueID is an ncclUniqueId, opaque bytes to send to the other ranks.
type NCCLUniqueID [NCCLUniqueIDBytes]byte

// NCCLDataType is an ncclDataType_t.
type NCCLDataType int

// ncclDataType_t values (nccl.h).
const (
	NCCLInt8     NCCLDataType = 0
	NCCLUint8    NCCLDataType = 1
	NCCLInt32    NCCLDataType = 2
	NCCLUint32   NCCLDataType = 3
	NCCLInt64    NCCLDataType = 4
	NCCLUint64   NCCLDataType = 5
	NCCLFloat16  NCCLDataType = 6
	NCCLFloat32  NCCLDataType = 7
	NCCLFloat64  NCCLDataType = 8
	NCCLBfloat16 NCCLDataType = 9
)

// NCCLRedOp is an ncclRedOp_t.
type NCCLRedOp int

// ncclRedOp_t values (nccl.h).
const (
	NCCLSum  NCCLRedOp = 0
	NCCLProd NCCLRedOp = 1
	NCCLMax  NCCLRedOp = 2
	NCCLMin  NCCLRedOp = 3
	NCCLAvg  NCCLRedOp = 4
)

// ncclResultNames are the ncclResult_t values, for messages that stay
// readable when ncclGetErrorString is terse.
var ncclResultNames = []string{
	"ncclSuccess", "ncclUnhandledCudaError", "ncclSystemError", "ncclInternalError", "ncclInvalidArgument",
	"ncclInvalidUsage", "ncclRemoteError", "ncclInProgress", "ncclTimeout",
}

// ncclInProgress is returned by non-blocking communicators while an
// operation is still running; AsyncError treats it as no error yet.
const ncclInProgress = 7

// NCCLError is a non-zero ncclResult_t.
type NCCLError struct {
	Op   string
	Code int
	Msg  string // ncclGetErrorString, plus ncclGetLastError when present
}

func (e *NCCLError) Error() string {
	name := fmt.Sprintf("ncclResult %d", e.Code)
	if e.Code >= 0 && e.Code < len(ncclResultNames) {
		name = ncclResultNames[e.Code]
	}
	if e.Msg != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Op, e.Msg, name)
	}
	return fmt.Sprintf("%s: %s", e.Op, name)
}

// NCCL is the loaded NCCL library. It is immutable; communicators made
// from it are independent.
type NCCL struct {
	lib     *dlLib
	Path    string // what was dlopen'd
	Version int    // ncclGetVersion, e.g. 22105 for 2.21.5
}

// LoadNCCL opens libnccl.so.2 with the search rules of the other CUDA
// libraries (see CUDALibOptions and libCandidates; pip's nvidia-nccl-cu12
// wheel puts it in site-packages/nvidia/nccl/lib). When no candidate opens
// at all, the error names the sonames and every folder searched.
func LoadNCCL(opts CUDALibOptions) (*NCCL, error) {
	if !cgoAvailable {
		return nil, errNoCgo
	}
	n, _, err := openFirst(ncclSonames, libCandidates(ncclSonames, opts, fileExists), openNCCL)
	if err != nil {
		var de *dlopenError
		if errors.As(err, &de) {
			return nil, fmt.Errorf("nccl: %s", ncclNotFound(opts, de))
		}
		return nil, fmt.Errorf("nccl: %w", err)
	}
	return n, nil
}

func openNCCL(path string) (*NCCL, error) {
	lib, err := ncclOpen(path)
	if err != nil {
		return nil, err
	}
	n := &NCCL{lib: lib, Path: path}
	v, err := n.getVersion()
	if err != nil {
		lib.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n.Version = v
	if v < ncclMinVersion {
		lib.close()
		return nil, fmt.Errorf("%s: NCCL %s is older than 2.10, the first with bf16 collectives", path, n.VersionString())
	}
	return n, nil
}

// ncclNotFound is the message for a machine without NCCL: the sonames,
// where the loader looked, the first dlopen error, and how to install it.
func ncclNotFound(opts CUDALibOptions, first *dlopenError) string {
	var where []string
	if opts.Dir != "" {
		where = append(where, opts.Dir+" (--cuda-libs / $PURPCODE_CUDA_LIBS)")
	}
	where = append(where, "the dynamic loader's path (LD_LIBRARY_PATH, the ld.so cache, /lib, /usr/lib)")
	where = append(where, systemLibDirs()...)
	prefixes := append(append([]string(nil), opts.PythonPrefixes...), pythonPrefixesOf(opts.Python3)...)
	for _, site := range pythonSiteGlobs(prefixes) {
		where = append(where, filepath.Join(site, "nvidia", "*", "lib"))
	}
	return fmt.Sprintf("%s not found; searched %s (first error: %v); install NCCL 2.10 or newer "+
		"(pip install nvidia-nccl-cu12, an NGC container, or the system's libnccl2) or pass its folder with --cuda-libs",
		strings.Join(ncclSonames, " and "), strings.Join(where, ", "), first)
}

// VersionString is "major.minor.patch". Codes below 2.9 used
// major*1000 + minor*100 + patch, later ones major*10000 + minor*100 + patch.
func (n *NCCL) VersionString() string { return ncclVersionString(n.Version) }

func ncclVersionString(v int) string {
	if v < 20900 {
		return fmt.Sprintf("%d.%d.%d", v/1000, v%1000/100, v%100)
	}
	return fmt.Sprintf("%d.%d.%d", v/10000, v%10000/100, v%100)
}

// UniqueID creates the id rank 0 sends to every other rank.
func (n *NCCL) UniqueID() (NCCLUniqueID, error) {
	var id NCCLUniqueID
	err := n.check("ncclGetUniqueId", nil, n.getUniqueID(&id))
	return id, err
}

// NCCLComm is one rank's communicator. Collectives are queued on a stream
// of the communicator's context and complete asynchronously: failures of
// a running collective surface through AsyncError, and a rank that must
// give up (a peer died, a timeout) calls Abort, never Destroy.
type NCCLComm struct {
	n          *NCCL
	ctx        *Context
	h          unsafe.Pointer
	Rank, Size int
}

// InitRank joins communicator id as rank of nranks, on ctx's device. It
// blocks until every rank has joined. NCCL runs on real devices only.
//
// Not yet run on a GPU: NCCL works through the CUDA runtime, whose
// cudaSetDevice binds the device's primary context, so ctx, its buffers
// and its streams should belong to the primary context
// (cuDevicePrimaryCtxRetain); a context from cuCtxCreate may see NCCL
// fail with invalid-handle or illegal-address errors.
func (n *NCCL) InitRank(ctx *Context, id NCCLUniqueID, nranks, rank int) (*NCCLComm, error) {
	if ctx.Emulated() {
		return nil, fmt.Errorf("ncclCommInitRank: %s is an emulated device; NCCL needs a real GPU", ctx.Dev.Name)
	}
	if nranks < 1 || rank < 0 || rank >= nranks {
		return nil, fmt.Errorf("ncclCommInitRank: rank %d of %d", rank, nranks)
	}
	h, code := n.commInitRank(ctx, &id, nranks, rank)
	if err := n.check(fmt.Sprintf("ncclCommInitRank(rank %d of %d)", rank, nranks), nil, code); err != nil {
		return nil, err
	}
	return &NCCLComm{n: n, ctx: ctx, h: h, Rank: rank, Size: nranks}, nil
}

// AllReduce reduces count elements of send over all ranks into recv of
// every rank (in place when send == recv).
func (c *NCCLComm) AllReduce(send, recv DevicePtr, count int, dt NCCLDataType, op NCCLRedOp, s Stream) error {
	return c.call("ncclAllReduce", c.n.allReduce(c, send, recv, count, dt, op, s))
}

// ReduceScatter reduces Size*recvCount elements of send over all ranks
// and leaves block Rank of the result, recvCount elements, in recv.
func (c *NCCLComm) ReduceScatter(send, recv DevicePtr, recvCount int, dt NCCLDataType, op NCCLRedOp, s Stream) error {
	return c.call("ncclReduceScatter", c.n.reduceScatter(c, send, recv, recvCount, dt, op, s))
}

// AllGather concatenates sendCount elements of every rank's send, in rank
// order, into recv (Size*sendCount elements) on every rank.
func (c *NCCLComm) AllGather(send, recv DevicePtr, sendCount int, dt NCCLDataType, s Stream) error {
	return c.call("ncclAllGather", c.n.allGather(c, send, recv, sendCount, dt, s))
}

// Broadcast copies count elements of root's send into recv of every rank.
func (c *NCCLComm) Broadcast(send, recv DevicePtr, count int, dt NCCLDataType, root int, s Stream) error {
	if root < 0 || root >= c.Size {
		return fmt.Errorf("ncclBroadcast: root %d outside %d ranks", root, c.Size)
	}
	return c.call("ncclBroadcast", c.n.broadcast(c, send, recv, count, dt, root, s))
}

// AsyncError is the communicator's asynchronous state: nil while healthy
// (or while a non-blocking operation is still in progress), else the
// error that broke it (a lost peer, a failed kernel).
func (c *NCCLComm) AsyncError() error {
	res, code := c.n.asyncError(c.h)
	if err := c.call("ncclCommGetAsyncError", code); err != nil {
		return err
	}
	if res == 0 || res == ncclInProgress {
		return nil
	}
	return c.n.check("NCCL communicator", c.h, res)
}

// Destroy frees the communicator after its work has completed.
func (c *NCCLComm) Destroy() error {
	return c.n.check("ncclCommDestroy", nil, c.n.commFree(c, "ncclCommDestroy"))
}

// Abort frees the communicator without waiting, stopping collectives in
// flight: what a rank does when a peer is gone.
func (c *NCCLComm) Abort() error {
	return c.n.check("ncclCommAbort", nil, c.n.commFree(c, "ncclCommAbort"))
}

func (c *NCCLComm) call(op string, code int) error { return c.n.check(op, c.h, code) }

// check turns a status into an error with NCCL's own text; comm, when
// non-nil, adds the communicator's last error (NCCL 2.13+).
func (n *NCCL) check(op string, comm unsafe.Pointer, code int) error {
	if code == 0 {
		return nil
	}
	msg := n.errorString(code)
	if last := n.lastError(comm); last != "" && last != msg {
		msg = strings.TrimSpace(msg + ": " + last)
	}
	return &NCCLError{Op: op, Code: code, Msg: msg}
}
