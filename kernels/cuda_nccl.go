package kernels

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
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
// own explanation to an error. ncclStandInSymbol is defined only by the
// tests' stand-in library (see NCCL.standIn); no NCCL release has it.
var ncclOptionalSymbols = []string{"ncclGetLastError", ncclStandInSymbol}

const ncclStandInSymbol = "purpcode_nccl_stand_in"

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
	// standIn is set for a library defining ncclStandInSymbol: the tests'
	// stand-in, whose collectives touch no memory (in place, one rank: the
	// result is the input), so it may run on the emulated device (a real
	// NCCL may not: it would dereference emulator addresses).
	standIn bool
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
	n := &NCCL{lib: lib, Path: path, standIn: ncclHasSym(lib, ncclStandInSymbol)}
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
// ctx should be the device's primary context (cuDevicePrimaryCtxRetain),
// not one from cuCtxCreate (Driver.NewContext today; not yet run on a
// GPU). NCCL works through the CUDA runtime: its initialisation
// (ncclCommInitRankFunc) and its proxy threads call cudaSetDevice, which
// binds the primary context, and NCCL allocates its buffers and loads its
// kernels there; its maintainers state that the context current at
// creation must be current for every operation (NVIDIA/nccl#565), and
// ncclCommInitRank is reported to switch the thread to the primary
// context (NVIDIA/nccl#1736). Buffers and streams of another context
// would then meet NCCL's kernels in a different address space
// (invalid-handle or illegal-address errors).
func (n *NCCL) InitRank(ctx *Context, id NCCLUniqueID, nranks, rank int) (*NCCLComm, error) {
	if ctx.Emulated() && !n.standIn {
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

// Size is the bytes of one element of dt.
func (dt NCCLDataType) Size() int {
	switch dt {
	case NCCLInt8, NCCLUint8:
		return 1
	case NCCLFloat16, NCCLBfloat16:
		return 2
	case NCCLInt32, NCCLUint32, NCCLFloat32:
		return 4
	case NCCLInt64, NCCLUint64, NCCLFloat64:
		return 8
	}
	return 0
}

// NCCLDevice is the device a rank's NCCL communicator runs on, as the
// packages above the backends hold it: only engine, engine/cuda and
// kernels may touch device memory (internal/archtest), so dist receives
// the backend's context wrapped, and only NCCLRank's methods, which stage
// through buffers they own, use it.
type NCCLDevice struct{ ctx *Context }

// NewNCCLDevice wraps the context the rank's backend computes on; NCCL's
// collectives must run in the context that owns the tensors.
func NewNCCLDevice(ctx *Context) NCCLDevice { return NCCLDevice{ctx: ctx} }

// String names the device.
func (d NCCLDevice) String() string {
	if d.ctx == nil {
		return "no device"
	}
	return d.ctx.Dev.Name
}

// NCCLRank is one rank of an NCCL communicator with what a blocking
// collective needs: its own stream, a device buffer and a pinned host
// buffer for staging host slices, both grown on demand and never shrunk.
// Every call queues copies and the collective on the stream and waits for
// them (see await), so when it returns the result is in place. After any
// failure the communicator has been aborted and every later call returns
// the first error. Not safe for concurrent use.
type NCCLRank struct {
	comm     *NCCLComm
	ctx      *Context
	stream   Stream
	dev      DevicePtr
	devBytes uint64
	host     *HostBuffer
	// Poll is how often a waiting call checks the communicator's
	// asynchronous error (a lost peer); 10 ms when zero.
	Poll time.Duration
	// Staging bounds the pinned and device staging buffers of the host
	// collectives (larger buffers go piece by piece); 64 MiB when zero.
	Staging int
	err     error
	// running is closed when the stream wait of the last call returned;
	// after an abort it may stay open (a hung device), and then the
	// staging buffers are not freed.
	running chan struct{}
	aborted bool
	closed  bool
}

// JoinRank joins communicator id as rank of nranks on dev (InitRank) and
// creates the rank's stream.
func (n *NCCL) JoinRank(dev NCCLDevice, id NCCLUniqueID, nranks, rank int) (*NCCLRank, error) {
	if dev.ctx == nil {
		return nil, fmt.Errorf("nccl: rank %d of %d: no device", rank, nranks)
	}
	c, err := n.InitRank(dev.ctx, id, nranks, rank)
	if err != nil {
		return nil, err
	}
	s, err := dev.ctx.NewStream()
	if err != nil {
		_ = c.Destroy()
		return nil, fmt.Errorf("nccl: rank %d of %d: stream: %w", rank, nranks, err)
	}
	done := make(chan struct{})
	close(done)
	return &NCCLRank{comm: c, ctx: dev.ctx, stream: s, running: done}, nil
}

// Rank is this rank's index; Size the number of ranks.
func (r *NCCLRank) Rank() int { return r.comm.Rank }

// Size is the number of ranks in the communicator.
func (r *NCCLRank) Size() int { return r.comm.Size }

// Err is the failure that broke the rank, nil while healthy.
func (r *NCCLRank) Err() error { return r.err }

// AllReduceHost sums buf (host bytes holding elements of dt) over every
// rank, in place.
func (r *NCCLRank) AllReduceHost(ctx context.Context, buf []byte, dt NCCLDataType) error {
	count, err := elems("ncclAllReduce", len(buf), dt)
	if err != nil || count == 0 {
		return err
	}
	return pieces(len(buf), max(dt.Size(), r.staging()/dt.Size()*dt.Size()), func(a, b int) error {
		piece := buf[a:b]
		return r.staged(ctx, "ncclAllReduce", len(piece), func(h []byte) { copy(h, piece) }, func(h []byte) { copy(piece, h) },
			func(p DevicePtr) int {
				return r.comm.n.allReduce(r.comm, p, p, len(piece)/dt.Size(), dt, NCCLSum, r.stream)
			})
	})
}

// defaultStaging bounds the pinned and device staging buffers: a
// collective on a larger host buffer runs piece by piece, so staging a 32B
// model's gradient costs this much memory, not the gradient's size again
// (which the memory plan does not count).
const defaultStaging = 64 << 20

// staging is the staging bound in bytes.
func (r *NCCLRank) staging() int {
	if r.Staging > 0 {
		return r.Staging
	}
	return defaultStaging
}

// pieces calls do on consecutive [a, b) ranges of n bytes, step bytes
// long but the last (step is a whole number of elements), stopping at the
// first error.
func pieces(n, step int, do func(a, b int) error) error {
	for a := 0; a < n; a += step {
		if err := do(a, min(n, a+step)); err != nil {
			return err
		}
	}
	return nil
}

// ReduceScatterHost sums in over every rank and leaves block Rank of the
// sum in out: in holds Size equal blocks, and out receives the first
// len(out) bytes of this rank's block (a caller whose chunks are shorter
// than the block, because it padded them, passes its chunk's length).
// The collective runs in place in the staging buffer.
func (r *NCCLRank) ReduceScatterHost(ctx context.Context, in, out []byte, dt NCCLDataType) error {
	const op = "ncclReduceScatter"
	block, err := r.blockBytes(op, len(in), dt)
	if err != nil {
		return err
	}
	if len(out) > block {
		return fmt.Errorf("%s: output of %d bytes, more than the %d-byte block of rank %d (input %d bytes over %d ranks)", op, len(out), block, r.Rank(), len(in), r.Size())
	}
	if block == 0 {
		return nil
	}
	// Piece [a, b) of every rank's block is staged side by side; this
	// rank's summed piece lands in its own slot.
	size, es := r.Size(), dt.Size()
	return pieces(block, max(es, r.staging()/size/es*es), func(a, b int) error {
		pl := b - a
		off := r.Rank() * pl
		return r.staged(ctx, op, size*pl, func(h []byte) {
			for q := range size {
				copy(h[q*pl:(q+1)*pl], in[q*block+a:q*block+b])
			}
		}, func(h []byte) {
			if a < len(out) {
				copy(out[a:min(b, len(out))], h[off:off+pl])
			}
		}, func(p DevicePtr) int {
			return r.comm.n.reduceScatter(r.comm, p, p+DevicePtr(off), pl/es, dt, NCCLSum, r.stream)
		})
	})
}

// AllGatherHost concatenates every rank's block into out, which holds Size
// equal blocks: this rank's in goes to block Rank, zero-padded when it is
// shorter than the block. The collective runs in place.
func (r *NCCLRank) AllGatherHost(ctx context.Context, in, out []byte, dt NCCLDataType) error {
	const op = "ncclAllGather"
	block, err := r.blockBytes(op, len(out), dt)
	if err != nil {
		return err
	}
	if len(in) > block {
		return fmt.Errorf("%s: input of %d bytes, more than the %d-byte block of rank %d (output %d bytes over %d ranks)", op, len(in), block, r.Rank(), len(out), r.Size())
	}
	if block == 0 {
		return nil
	}
	// Piece [a, b) of this rank's block (zero past the end of in) is
	// staged in its slot; every rank's piece comes back side by side.
	size, es := r.Size(), dt.Size()
	return pieces(block, max(es, r.staging()/size/es*es), func(a, b int) error {
		pl := b - a
		off := r.Rank() * pl
		return r.staged(ctx, op, size*pl, func(h []byte) {
			slot := h[off : off+pl]
			clear(slot)
			if a < len(in) {
				copy(slot, in[a:min(b, len(in))])
			}
		}, func(h []byte) {
			for q := range size {
				copy(out[q*block+a:q*block+b], h[q*pl:(q+1)*pl])
			}
		}, func(p DevicePtr) int {
			return r.comm.n.allGather(r.comm, p+DevicePtr(off), p, pl/es, dt, r.stream)
		})
	})
}

// BroadcastHost copies root's buf into every other rank's buf.
func (r *NCCLRank) BroadcastHost(ctx context.Context, buf []byte, root int) error {
	if root < 0 || root >= r.Size() {
		return fmt.Errorf("ncclBroadcast: root %d outside %d ranks", root, r.Size())
	}
	if len(buf) == 0 {
		return nil
	}
	return pieces(len(buf), r.staging(), func(a, b int) error {
		piece := buf[a:b]
		return r.staged(ctx, "ncclBroadcast", len(piece), func(h []byte) { copy(h, piece) }, func(h []byte) { copy(piece, h) },
			func(p DevicePtr) int { return r.comm.n.broadcast(r.comm, p, p, len(piece), NCCLUint8, root, r.stream) })
	})
}

// AllReduceDevice sums count elements at p over every rank, in place, for
// tensors that live on the device (no staging).
func (r *NCCLRank) AllReduceDevice(ctx context.Context, p DevicePtr, count int, dt NCCLDataType) error {
	return r.device(ctx, "ncclAllReduce", count, func() int { return r.comm.n.allReduce(r.comm, p, p, count, dt, NCCLSum, r.stream) })
}

// ReduceScatterDevice sums Size blocks of block elements at p over every
// rank and leaves block Rank's sum in place (at p + Rank*block elements).
func (r *NCCLRank) ReduceScatterDevice(ctx context.Context, p DevicePtr, block int, dt NCCLDataType) error {
	off := DevicePtr(r.Rank() * block * dt.Size())
	return r.device(ctx, "ncclReduceScatter", block, func() int {
		return r.comm.n.reduceScatter(r.comm, p, p+off, block, dt, NCCLSum, r.stream)
	})
}

// AllGatherDevice fills the Size blocks of block elements at p with every
// rank's block Rank, in place.
func (r *NCCLRank) AllGatherDevice(ctx context.Context, p DevicePtr, block int, dt NCCLDataType) error {
	off := DevicePtr(r.Rank() * block * dt.Size())
	return r.device(ctx, "ncclAllGather", block, func() int { return r.comm.n.allGather(r.comm, p+off, p, block, dt, r.stream) })
}

// BroadcastDevice copies root's count elements at p to every rank's p.
func (r *NCCLRank) BroadcastDevice(ctx context.Context, p DevicePtr, count int, dt NCCLDataType, root int) error {
	if root < 0 || root >= r.Size() {
		return fmt.Errorf("ncclBroadcast: root %d outside %d ranks", root, r.Size())
	}
	return r.device(ctx, "ncclBroadcast", count, func() int { return r.comm.n.broadcast(r.comm, p, p, count, dt, root, r.stream) })
}

// Close destroys the communicator (or nothing more, after an abort) and
// frees the stream and staging buffers once no wait is pending on them.
func (r *NCCLRank) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if !r.aborted {
		if err := r.comm.Destroy(); err != nil {
			errs = append(errs, err)
		}
		r.aborted = true // the handle is gone either way
	}
	select {
	case <-r.running:
	default:
		// A wait still blocks on the stream (a device that did not stop
		// after the abort): freeing what it uses could crash the device.
		return errors.Join(append(errs, errors.New("nccl: a collective was still running at Close; its buffers are left to the process's exit"))...)
	}
	if r.host != nil {
		errs = append(errs, r.host.Free())
		r.host = nil
	}
	if r.devBytes > 0 {
		errs = append(errs, r.ctx.MemFree(r.dev))
		r.dev, r.devBytes = 0, 0
	}
	errs = append(errs, r.ctx.DestroyStream(r.stream))
	if r.err == nil {
		r.err = errors.New("nccl: rank closed")
	}
	return errors.Join(errs...)
}

func elems(op string, nbytes int, dt NCCLDataType) (int, error) {
	es := dt.Size()
	if es == 0 {
		return 0, fmt.Errorf("%s: unknown data type %d", op, dt)
	}
	if nbytes%es != 0 {
		return 0, fmt.Errorf("%s: %d bytes is not a whole number of %d-byte elements", op, nbytes, es)
	}
	return nbytes / es, nil
}

// blockBytes is the byte length of one rank's block of a buffer of total
// bytes made of Size equal blocks of whole elements.
func (r *NCCLRank) blockBytes(op string, total int, dt NCCLDataType) (int, error) {
	count, err := elems(op, total, dt)
	if err != nil {
		return 0, err
	}
	if count%r.Size() != 0 {
		return 0, fmt.Errorf("%s: %d elements do not split into %d equal blocks (pad to a multiple of the rank count)", op, count, r.Size())
	}
	return total / r.Size(), nil
}

// grow makes the staging buffers hold at least n bytes.
func (r *NCCLRank) grow(n int) error {
	if r.host == nil || r.host.Len < n {
		h, err := r.ctx.AllocHost(n)
		if err != nil {
			return fmt.Errorf("pinned staging buffer of %d bytes: %w", n, err)
		}
		if r.host != nil {
			_ = r.host.Free()
		}
		r.host = h
	}
	if r.devBytes < uint64(n) {
		p, err := r.ctx.MemAlloc(uint64(n))
		if err != nil {
			return fmt.Errorf("device staging buffer of %d bytes: %w", n, err)
		}
		if r.devBytes > 0 {
			_ = r.ctx.MemFree(r.dev)
		}
		r.dev, r.devBytes = p, uint64(n)
	}
	return nil
}

// staged runs a collective on host memory: fill writes the n bytes to
// stage into the pinned buffer, they are copied to the device buffer,
// the collective runs there, the bytes come back and drain reads them.
// Copies and collective are queued on the rank's stream, so they run in
// order without a synchronisation between them.
func (r *NCCLRank) staged(ctx context.Context, op string, n int, fill, drain func([]byte), call func(DevicePtr) int) error {
	if r.err != nil {
		return r.err
	}
	if err := r.grow(n); err != nil {
		return r.fail(fmt.Errorf("%s: %w", op, err))
	}
	h := r.host.Bytes()[:n]
	fill(h)
	if err := r.ctx.CopyToDeviceAsync(r.dev, r.host, 0, n, r.stream); err != nil {
		return r.fail(fmt.Errorf("%s: staging copy to the device: %w", op, err))
	}
	if err := r.comm.call(op, call(r.dev)); err != nil {
		return r.fail(err)
	}
	if err := r.ctx.CopyFromDeviceAsync(r.host, 0, n, r.dev, r.stream); err != nil {
		return r.fail(fmt.Errorf("%s: staging copy from the device: %w", op, err))
	}
	if err := r.wait(ctx, op); err != nil {
		return err
	}
	drain(h)
	return nil
}

// device runs a collective on device memory and waits for it.
func (r *NCCLRank) device(ctx context.Context, op string, count int, call func() int) error {
	if r.err != nil {
		return r.err
	}
	if count < 0 {
		return fmt.Errorf("%s: negative count %d", op, count)
	}
	if count == 0 {
		return nil
	}
	// The rank's stream does not wait for the legacy default stream the
	// backend's kernels run on: without this, NCCL could read a gradient
	// before the backward kernels that write it have finished.
	if err := r.ctx.Synchronize(Stream{}); err != nil {
		return r.fail(fmt.Errorf("%s: wait for the device's pending work: %w", op, err))
	}
	if err := r.comm.call(op, call()); err != nil {
		return r.fail(err)
	}
	return r.wait(ctx, op)
}

// wait blocks until the stream has run everything queued, the context
// ends or the communicator reports an asynchronous error; in the last two
// cases it aborts the communicator (the only way to stop a collective that
// waits for a peer) and the rank is broken.
func (r *NCCLRank) wait(ctx context.Context, op string) error {
	done := make(chan error, 1)
	running := make(chan struct{})
	r.running = running
	go func() {
		defer close(running)
		done <- r.ctx.Synchronize(r.stream)
	}()
	poll := r.Poll
	if poll <= 0 {
		poll = 10 * time.Millisecond
	}
	err := awaitNCCL(ctx, op, done, poll, r.comm.AsyncError, func() {
		r.aborted = true
		_ = r.comm.Abort()
	})
	if err != nil {
		return r.fail(err)
	}
	return nil
}

func (r *NCCLRank) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	if !r.aborted {
		r.aborted = true
		_ = r.comm.Abort()
	}
	return err
}

// ncclAbortGrace bounds the wait for a stream after an abort: NCCL's
// kernels poll the abort flag and exit, and a device that does not is not
// waited for forever.
const ncclAbortGrace = 10 * time.Second

// awaitNCCL waits for done (the stream's completion), checking asyncErr
// every poll; when the context ends or asyncErr reports a failure it calls
// abort, waits up to ncclAbortGrace for done, and returns an error naming
// op. A failure of the stream itself (a CUDA error) is returned as is.
func awaitNCCL(ctx context.Context, op string, done <-chan error, poll time.Duration, asyncErr func() error, abort func()) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	var cause error
	for cause == nil {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			// A collective can complete on this rank while the
			// communicator broke (a peer lost after its last send).
			if err := asyncErr(); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			return nil
		case <-ctx.Done():
			cause = fmt.Errorf("%s: %w (communicator aborted)", op, context.Cause(ctx))
		case <-t.C:
			if err := asyncErr(); err != nil {
				cause = fmt.Errorf("%s: %w (communicator aborted)", op, err)
			}
		}
	}
	abort()
	grace := time.NewTimer(ncclAbortGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		cause = fmt.Errorf("%w; the stream did not stop within %s of the abort", cause, ncclAbortGrace)
	}
	return cause
}
