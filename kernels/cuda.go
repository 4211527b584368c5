package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"unsafe"
)

// CUDALibOptions says where to look for the CUDA driver, NVRTC and
// cuBLASLt. The package reads no environment variable itself: cmd/purpcode
// maps $PURPCODE_CUDA_LIBS to Dir, active Python environments to
// PythonPrefixes and the python3 on $PATH to Python3. dlopen's own search
// (LD_LIBRARY_PATH, the ld.so cache, the default directories) is always
// part of the search; libCandidates documents the order.
type CUDALibOptions struct {
	// Dir is searched before anything else; a library found there wins
	// over newer versions elsewhere, so a user can pin one installation.
	Dir string
	// PythonPrefixes are Python environment roots (a virtualenv, a conda
	// prefix, ~/.local) whose lib/python3*/site-packages/nvidia/*/lib
	// folders (pip's nvidia-* wheels) are searched, after the system-wide
	// site-packages folders this package knows.
	PythonPrefixes []string
	// Python3 is the python3 executable on PATH, if any: a plain
	// `pip install torch` into a virtualenv puts the CUDA wheels under
	// that environment even when it is not activated (no $VIRTUAL_ENV),
	// e.g. when the venv's bin/ is simply first on PATH.
	Python3 string
	// NVRTCMaxVersion, when positive, is the CUDA version the driver
	// supports (cuDriverGetVersion: 1000*major + 10*minor). NVRTC libraries
	// newer than it are skipped: the driver cannot JIT the PTX they emit.
	NVRTCMaxVersion int
}

// Sonames in preference order (newest first). Debian's libnvrtc11.2
// installs libnvrtc.so.11.2 (a link to libnvrtc.so.11.8.89); the unversioned
// names cover toolkits installed with their -dev links.
var (
	nvrtcSonames    = []string{"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"}
	driverSonames   = []string{"libcuda.so.1"}
	cublasLtSonames = []string{"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"}
)

// systemLibDirs are the usual install locations of CUDA libraries beyond
// what the dynamic loader already searches: toolkit trees, the container
// toolkit's mount point, WSL's driver folder and the multiarch folders.
func systemLibDirs() []string {
	triplet := "x86_64-linux-gnu"
	target := "x86_64-linux"
	if runtime.GOARCH == "arm64" {
		triplet, target = "aarch64-linux-gnu", "sbsa-linux"
	}
	return []string{
		"/usr/local/cuda/lib64",
		"/usr/local/cuda/targets/" + target + "/lib",
		"/usr/local/nvidia/lib64",
		"/usr/lib/" + triplet,
		"/usr/lib64",
		"/usr/lib/wsl/lib",
		"/opt/cuda/lib64",
	}
}

// pythonSiteGlobs are the site-packages folders of system-wide Python
// installations; prefixes add lib/python3*/site-packages under each.
func pythonSiteGlobs(prefixes []string) []string {
	g := []string{
		"/usr/lib/python3/dist-packages",
		"/usr/local/lib/python3*/dist-packages",
		"/usr/local/lib/python3*/site-packages",
		"/usr/lib/python3*/site-packages",
		"/opt/conda/lib/python3*/site-packages",
	}
	for _, p := range prefixes {
		if p != "" {
			g = append(g, filepath.Join(p, "lib", "python3*", "site-packages"))
		}
	}
	return g
}

// pythonPrefixesOf returns the environment prefixes of a python3
// executable without running it: the folder above its bin/ (a venv's root,
// whose bin/python3 is a symlink to the base interpreter), then, when the
// path is a symlink, the folder above the resolved interpreter's bin/ (the
// base installation's own site-packages). A pyenv shim is a script, not a
// link, and resolves to nothing useful: activate the environment or set
// $PURPCODE_CUDA_LIBS there.
func pythonPrefixesOf(python3 string) []string {
	if python3 == "" {
		return nil
	}
	out := []string{filepath.Dir(filepath.Dir(python3))}
	if real, err := filepath.EvalSymlinks(python3); err == nil {
		if p := filepath.Dir(filepath.Dir(real)); p != out[0] {
			out = append(out, p)
		}
	}
	return out
}

// pipLibDirs expands the nvidia/*/lib folders of pip's CUDA wheels
// (nvidia/cuda_nvrtc/lib, nvidia/cublas/lib, nvidia/cu13/lib, ...) that
// exist on this machine, in a stable order.
func pipLibDirs(prefixes []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, site := range pythonSiteGlobs(prefixes) {
		matches, _ := filepath.Glob(filepath.Join(site, "nvidia", "*", "lib"))
		sort.Strings(matches)
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// libCandidates lists what to dlopen, in this order:
//
//  1. every soname in opts.Dir ($PURPCODE_CUDA_LIBS or --cuda-libs), newest
//     first: a pinned installation wins over anything newer elsewhere;
//  2. then for each soname from newest to oldest:
//     a. the bare name: dlopen's own search (LD_LIBRARY_PATH, the ld.so
//     cache, /lib and /usr/lib);
//     b. the system folders of systemLibDirs (/usr/local/cuda/lib64, the
//     container toolkit's and WSL's folders, the multiarch folders);
//     c. the nvidia/*/lib folders of pip's CUDA wheels under the
//     site-packages of, in order: the system Pythons (pythonSiteGlobs),
//     opts.PythonPrefixes (cmd/purpcode: $VIRTUAL_ENV, $CONDA_PREFIX,
//     ~/.local), and the python3 on PATH (opts.Python3: its environment
//     prefix, then the prefix of the interpreter it links to).
//
// Folders in 2b and 2c are listed only where they hold the file.
func libCandidates(sonames []string, opts CUDALibOptions, exists func(string) bool) []string {
	var out []string
	if opts.Dir != "" {
		for _, so := range sonames {
			out = append(out, filepath.Join(opts.Dir, so))
		}
	}
	prefixes := append(append([]string(nil), opts.PythonPrefixes...), pythonPrefixesOf(opts.Python3)...)
	dirs := append(systemLibDirs(), pipLibDirs(prefixes)...)
	for _, so := range sonames {
		out = append(out, so)
		for _, d := range dirs {
			if p := filepath.Join(d, so); exists(p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// dlopenError is a library that could not be opened at all (as opposed to
// one that opened but was rejected: a missing symbol, a failed cuInit, a
// version the driver cannot use).
type dlopenError struct{ msg string }

func (e *dlopenError) Error() string { return e.msg }

// openFirst tries candidates in order and returns the first that open
// accepts. The error is the first rejection of a library that did open
// (the most specific news), else the first dlopen failure, which is what
// users need ("libcuda.so.1: cannot open shared object file ...").
func openFirst[T any](sonames, cands []string, open func(string) (T, error)) (T, string, error) {
	var zero T
	var first, rejected error
	for _, c := range cands {
		v, err := open(c)
		if err == nil {
			return v, c, nil
		}
		if first == nil {
			first = err
		}
		var de *dlopenError
		if rejected == nil && !errors.As(err, &de) {
			rejected = err
		}
	}
	if rejected != nil {
		return zero, "", rejected
	}
	if first == nil {
		first = fmt.Errorf("no candidate library")
	}
	if len(sonames) > 1 {
		return zero, "", fmt.Errorf("none of %s could be opened (first: %w)", strings.Join(sonames, ", "), first)
	}
	return zero, "", first
}

// CUDAError is a non-zero status of a CUDA driver or cuBLASLt call.
type CUDAError struct {
	Op   string
	Code int
	Msg  string
}

func (e *CUDAError) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("%s: %s (status %d)", e.Op, e.Msg, e.Code)
	}
	return fmt.Sprintf("%s: status %d", e.Op, e.Code)
}

// ---- NVRTC ----

// NVRTC is a loaded NVRTC library. It is immutable and safe for concurrent
// use (NVRTC programs are independent).
type NVRTC struct {
	lib          *dlLib
	Path         string // what was dlopen'd
	Major, Minor int    // nvrtcVersion
}

// LoadNVRTC opens the newest NVRTC it finds (see CUDALibOptions).
func LoadNVRTC(opts CUDALibOptions) (*NVRTC, error) {
	if !cgoAvailable {
		return nil, errNoCgo
	}
	n, _, err := openFirst(nvrtcSonames, libCandidates(nvrtcSonames, opts, fileExists), func(p string) (*NVRTC, error) {
		lib, maj, min, err := nvrtcOpen(p)
		if err != nil {
			return nil, err
		}
		if opts.NVRTCMaxVersion > 0 && maj*1000+min*10 > opts.NVRTCMaxVersion {
			lib.close()
			return nil, fmt.Errorf("%s: NVRTC %d.%d is newer than the driver's CUDA %s", p, maj, min, cudaVersionString(opts.NVRTCMaxVersion))
		}
		n := &NVRTC{lib: lib, Path: p, Major: maj, Minor: min}
		if err := n.selfTest(); err != nil {
			lib.close()
			return nil, err
		}
		return n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("nvrtc: %w", err)
	}
	return n, nil
}

// nvrtcProbeSource is the smallest kernel that exercises what compiling
// needs beyond libnvrtc itself: the builtins library (libnvrtc-builtins),
// which NVRTC opens only when it compiles. A pip CUDA 13 wheel found
// without LD_LIBRARY_PATH is known to load fine and then fail here, so
// LoadNVRTC tries the next candidate instead of failing every later
// compile.
const nvrtcProbeSource = `extern "C" __global__ void pc_probe(float *x) { x[threadIdx.x] = expf(x[threadIdx.x]); }`

// selfTest compiles nvrtcProbeSource for the oldest architecture the
// kernels target.
func (n *NVRTC) selfTest() error {
	if _, log, err := n.Compile(nvrtcProbeSource, "pc_probe.cu", CUDAArchs[0], nil); err != nil {
		return nvrtcProbeError(n, err, log)
	}
	return nil
}

func nvrtcProbeError(n *NVRTC, err error, log string) error {
	if log = strings.TrimSpace(log); log != "" {
		log = ": " + log
	}
	return fmt.Errorf("%s: NVRTC %s loads but cannot compile a trivial kernel (is libnvrtc-builtins.so.%d.%d next to it or on LD_LIBRARY_PATH?): %w%s",
		n.Path, n.Version(), n.Major, n.Minor, err, log)
}

// Version is "major.minor", part of every PTX cache key.
func (n *NVRTC) Version() string { return fmt.Sprintf("%d.%d", n.Major, n.Minor) }

// Compile compiles one CUDA C source to PTX for a virtual architecture such
// as "compute_80". opts are extra NVRTC options. The log is returned even on
// success (warnings). The PTX ends with its NUL terminator, as
// cuModuleLoadData expects.
func (n *NVRTC) Compile(src, name, arch string, opts []string) (ptx []byte, log string, err error) {
	if !strings.HasPrefix(arch, "compute_") {
		return nil, "", fmt.Errorf("nvrtc compile %s: architecture %q is not a virtual architecture (want compute_XY)", name, arch)
	}
	all := append([]string{"--gpu-architecture=" + arch}, opts...)
	return n.compile(src, name, all, false)
}

// CompileCUBIN compiles one source to a CUBIN (an ELF of SASS) for a real
// architecture such as "sm_80": what the driver would JIT from the PTX,
// with ptxas's resource report. The CI check (cuda_cubin_test.go) reads
// registers and spills from it; the engine itself loads PTX.
func (n *NVRTC) CompileCUBIN(src, name, arch string, opts []string) (cubin []byte, log string, err error) {
	if !strings.HasPrefix(arch, "sm_") {
		return nil, "", fmt.Errorf("nvrtc compile %s: architecture %q is not a real architecture (want sm_XY)", name, arch)
	}
	all := append([]string{"--gpu-architecture=" + arch}, opts...)
	return n.compile(src, name, all, true)
}

// CompileCached is Compile through a disk cache (nil cache: plain Compile).
// A cache read or write failure is not an error: the PTX is recompiled and
// the failure only costs time.
func (n *NVRTC) CompileCached(cache *PTXCache, src, name, arch string, opts []string) ([]byte, error) {
	key := PTXCacheKey(src, arch, n.Version(), opts)
	if ptx, ok := cache.Get(key); ok {
		return ptx, nil
	}
	ptx, log, err := n.Compile(src, name, arch, opts)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	_ = cache.Put(key, ptx)
	return ptx, nil
}

func cudaVersionString(v int) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }

// ---- CUDA driver ----

// Device attribute numbers of cuDeviceGetAttribute (CUdevice_attribute).
const (
	cuAttrSMCount        = 16
	cuAttrCCMajor        = 75
	cuAttrCCMinor        = 76
	cuAttrMaxSharedOptin = 97
	// cuFuncAttrMaxDynamicShared is CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
	cuFuncAttrMaxDynamicShared = 8
)

// Driver is the loaded and initialised CUDA driver library.
type Driver struct {
	lib     *dlLib
	Path    string
	Version int // cuDriverGetVersion, e.g. 12040 for CUDA 12.4
}

// DeviceInfo describes one GPU.
type DeviceInfo struct {
	Ordinal        int
	Name           string
	Major, Minor   int // compute capability
	SMs            int
	TotalMem       uint64
	MaxSharedOptin int // bytes of shared memory a block may opt in to
	handle         int // CUdevice
}

// Arch is the NVRTC virtual architecture for the device, e.g. "compute_90".
func (d DeviceInfo) Arch() string { return fmt.Sprintf("compute_%d%d", d.Major, d.Minor) }

// LoadDriver opens libcuda.so.1 and calls cuInit. On a machine without an
// NVIDIA driver it fails with the loader's message.
func LoadDriver(opts CUDALibOptions) (*Driver, error) {
	if !cgoAvailable {
		return nil, errNoCgo
	}
	d, _, err := openFirst(driverSonames, libCandidates(driverSonames, opts, fileExists), func(p string) (*Driver, error) {
		lib, err := driverOpen(p)
		if err != nil {
			return nil, err
		}
		d := &Driver{lib: lib, Path: p}
		v, err := d.init()
		if err != nil {
			lib.close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		d.Version = v
		return d, nil
	})
	if err != nil {
		return nil, fmt.Errorf("cuda driver: %w", err)
	}
	return d, nil
}

// VersionString is "major.minor" of the CUDA version the driver supports.
func (d *Driver) VersionString() string { return cudaVersionString(d.Version) }

// Devices lists the visible GPUs.
func (d *Driver) Devices() ([]DeviceInfo, error) {
	n, err := d.deviceCount()
	if err != nil {
		return nil, err
	}
	out := make([]DeviceInfo, 0, n)
	for i := 0; i < n; i++ {
		info, err := d.device(i)
		if err != nil {
			return nil, fmt.Errorf("device %d: %w", i, err)
		}
		out = append(out, info)
	}
	return out, nil
}

// DevicePtr is a device address (CUdeviceptr).
type DevicePtr uint64

// Stream is a CUDA stream; the zero Stream is the context's default stream.
// On an emulated context every operation completes before its call returns,
// so all streams trivially run in order.
type Stream struct {
	h  unsafe.Pointer
	es *emuStream
}

// Dim3 is a grid or block size.
type Dim3 struct{ X, Y, Z uint32 }

// Context is a CUDA context on one device: a real one (Driver.NewContext)
// or the PTX emulator (NewEmulatedContext), behind the same methods. Every
// call makes a real context current on the calling OS thread inside the
// same C call, so a Context may be used from any goroutine. Destroy frees
// it explicitly; nothing is freed by finalizers.
//
// The seam is one field: emu is nil for a real device, and each method
// below that touches the device starts with the emulated branch.
type Context struct {
	drv *Driver
	ctx unsafe.Pointer
	emu *emuDevice
	Dev DeviceInfo
	// primary: ctx is the device's primary context, retained (Destroy
	// releases it) rather than created.
	primary bool
}

// Emulated reports whether c runs on the PTX emulator.
func (c *Context) Emulated() bool { return c.emu != nil }

// NewContext creates a context on dev.
func (d *Driver) NewContext(dev DeviceInfo) (*Context, error) {
	ctx, err := d.ctxCreate(dev.handle)
	if err != nil {
		return nil, err
	}
	return &Context{drv: d, ctx: ctx, Dev: dev}, nil
}

// NewPrimaryContext retains dev's primary context, the one the CUDA
// runtime and therefore NCCL use (see NCCL.InitRank): a rank that runs
// NCCL collectives computes in it. Destroy releases it; its memory is
// freed once the last reference goes, which a library that retained it
// too (NCCL's runtime does, until the process exits) may hold, so owners
// free their buffers themselves.
func (d *Driver) NewPrimaryContext(dev DeviceInfo) (*Context, error) {
	ctx, err := d.primaryRetain(dev.handle)
	if err != nil {
		return nil, err
	}
	return &Context{drv: d, ctx: ctx, Dev: dev, primary: true}, nil
}

// Destroy releases the context and everything allocated in it.
func (c *Context) Destroy() error {
	if c.emu != nil {
		return c.emu.destroy()
	}
	return c.destroy()
}

// Module is a loaded PTX module.
type Module struct {
	c      *Context
	mod    unsafe.Pointer
	emu    *emuModule
	params map[string][]KernelParam // per entry, from the PTX text
}

// Function is a kernel entry point of a Module.
type Function struct {
	c    *Context
	f    unsafe.Pointer
	st   *funcState
	Name string
}

// funcState is what every copy of a Function shares.
type funcState struct {
	params []KernelParam
	maxDyn atomic.Uint32 // dynamic shared bytes a launch may use
	emu    *emuKernel
}

// LoadModule JIT-compiles PTX (NUL-terminated, as Compile returns it) for
// the context's device, and parses each entry's .param list so that every
// launch is checked against it.
func (c *Context) LoadModule(ptx []byte) (*Module, error) {
	if len(ptx) == 0 || ptx[len(ptx)-1] != 0 {
		return nil, fmt.Errorf("cuModuleLoadData: PTX of %d bytes is not NUL-terminated", len(ptx))
	}
	params, err := moduleParams(ptx[:len(ptx)-1])
	if err != nil {
		return nil, fmt.Errorf("load module: %w", err)
	}
	if c.emu != nil {
		m, err := c.emu.loadModule(ptx)
		if err != nil {
			return nil, err
		}
		return &Module{c: c, emu: m, params: params}, nil
	}
	m, err := c.moduleLoad(ptx)
	if err != nil {
		return nil, err
	}
	return &Module{c: c, mod: m, params: params}, nil
}

// LoadSource compiles one embedded kernel source for the context's
// architecture (through cache; nil caches nothing) with the engine's
// options and loads it: the same PTX on a real and an emulated device.
func (c *Context) LoadSource(n *NVRTC, cache *PTXCache, src KernelSource) (*Module, error) {
	ptx, err := n.CompileCached(cache, src.Text, src.Name, c.Dev.Arch(), CUDACompileOptions)
	if err != nil {
		return nil, err
	}
	m, err := c.LoadModule(ptx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Name, err)
	}
	return m, nil
}

// Function looks up an extern "C" kernel by name.
func (m *Module) Function(name string) (Function, error) {
	params, ok := m.params[name]
	if !ok {
		return Function{}, fmt.Errorf("module has no kernel %q", name)
	}
	st := &funcState{params: params}
	st.maxDyn.Store(defaultDynShared)
	if m.emu != nil {
		k, err := m.emu.kernel(name, params)
		if err != nil {
			return Function{}, err
		}
		st.emu = k
		return Function{c: m.c, st: st, Name: name}, nil
	}
	f, err := m.c.moduleFunction(m.mod, name)
	if err != nil {
		return Function{}, err
	}
	return Function{c: m.c, f: f, st: st, Name: name}, nil
}

// Params is the kernel's .param list (with source names for our kernels).
func (f Function) Params() []KernelParam { return f.st.params }

// SetMaxDynamicShared allows a launch of f with up to bytes of dynamic
// shared memory (needed above 48 KiB), at most the device's opt-in limit.
func (f Function) SetMaxDynamicShared(bytes int) error {
	if bytes < 0 || (f.c.Dev.MaxSharedOptin > 0 && bytes > f.c.Dev.MaxSharedOptin) {
		return fmt.Errorf("%s: %d bytes of dynamic shared memory, the device allows at most %d per block", f.Name, bytes, f.c.Dev.MaxSharedOptin)
	}
	if f.c.emu == nil {
		if err := f.c.funcSetAttr(f.f, cuFuncAttrMaxDynamicShared, bytes); err != nil {
			return err
		}
	}
	// 48 KiB stay allowed whatever is set: the driver never takes them away.
	f.st.maxDyn.Store(uint32(max(bytes, defaultDynShared)))
	return nil
}

// Launch runs f. Arguments are int32, uint32, float32, int64, uint64,
// float64, DevicePtr (or []byte for a struct parameter), one per .param of
// the kernel with the same size and class (integer, floating point): a
// wrong count, size or class is an error naming the argument, as is a
// grid, block or shared-memory size beyond the device's limits or the
// kernel's own preconditions (kernelRules). Both checks run the same way
// on a real and an emulated device.
func (f Function) Launch(grid, block Dim3, shmem uint32, s Stream, args ...any) error {
	enc, err := prepareLaunch(f.Name, f.st.params, grid, block, shmem, f.st.maxDyn.Load(), args)
	if err != nil {
		return err
	}
	if f.c.emu != nil {
		if err := f.c.emu.launch(f.st.emu, grid, block, shmem, s, enc); err != nil {
			return fmt.Errorf("launch %s: %w", f.Name, err)
		}
		return nil
	}
	if len(enc) > maxKernelArgs {
		return fmt.Errorf("launch %s: %d arguments, the launch wrapper takes at most %d", f.Name, len(enc), maxKernelArgs)
	}
	vals := make([]uint64, len(enc))
	for i, b := range enc {
		if len(b) > 8 {
			return fmt.Errorf("launch %s: argument %d is a %d-byte struct; the launch wrapper passes at most 8 bytes", f.Name, i, len(b))
		}
		var w [8]byte
		copy(w[:], b)
		vals[i] = binary.LittleEndian.Uint64(w[:])
	}
	if err := f.c.launch(f.f, grid, block, shmem, s, vals); err != nil {
		return fmt.Errorf("launch %s: %w", f.Name, err)
	}
	return nil
}

// maxKernelArgs matches PC_MAX_ARGS of the C launch wrapper.
const maxKernelArgs = 32

// MemAlloc allocates n bytes of device memory.
func (c *Context) MemAlloc(n uint64) (DevicePtr, error) {
	if c.emu != nil {
		return c.emu.memAlloc(n)
	}
	return c.memAlloc(n)
}

// MemFree frees memory from MemAlloc.
func (c *Context) MemFree(p DevicePtr) error {
	if c.emu != nil {
		return c.emu.memFree(p)
	}
	return c.memFree(p)
}

// CopyToDevice copies src (host bytes) to dst synchronously.
func (c *Context) CopyToDevice(dst DevicePtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	if c.emu != nil {
		return c.emu.write(dst, src)
	}
	return c.htod(dst, unsafe.Pointer(&src[0]), uint64(len(src)))
}

// CopyFromDevice copies len(dst) bytes from src synchronously.
func (c *Context) CopyFromDevice(dst []byte, src DevicePtr) error {
	if len(dst) == 0 {
		return nil
	}
	if c.emu != nil {
		return c.emu.read(dst, src)
	}
	return c.dtoh(unsafe.Pointer(&dst[0]), src, uint64(len(dst)))
}

// HostBuffer is pinned (page-locked) host memory from cuMemAllocHost, the
// only host memory the async copies accept: Go memory may not be used by C
// after a cgo call returns.
//
// On an emulated context it is ordinary Go memory.
type HostBuffer struct {
	c   *Context
	p   unsafe.Pointer
	buf []byte // emulated context only
	Len int
}

// AllocHost allocates n bytes of pinned host memory.
func (c *Context) AllocHost(n int) (*HostBuffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("AllocHost: negative size %d", n)
	}
	if c.emu != nil {
		return &HostBuffer{c: c, buf: make([]byte, n), Len: n}, nil
	}
	p, err := c.allocHost(uint64(n))
	if err != nil {
		return nil, err
	}
	return &HostBuffer{c: c, p: p, Len: n}, nil
}

// Bytes views the pinned memory; valid until Free.
func (h *HostBuffer) Bytes() []byte {
	if h.c.emu != nil {
		return h.buf
	}
	return unsafe.Slice((*byte)(h.p), h.Len)
}

// Free releases the pinned memory.
func (h *HostBuffer) Free() error {
	if h.c.emu != nil {
		h.buf, h.Len = nil, 0
		return nil
	}
	return h.c.ctxCall("cuMemFreeHost", "cuMemFreeHost", h.p)
}

// CopyToDeviceAsync copies n bytes from h at offset off to dst on stream s.
func (c *Context) CopyToDeviceAsync(dst DevicePtr, h *HostBuffer, off, n int, s Stream) error {
	if off < 0 || n < 0 || off+n > h.Len {
		return fmt.Errorf("CopyToDeviceAsync: bytes [%d, %d) outside pinned buffer of %d", off, off+n, h.Len)
	}
	if c.emu != nil {
		if err := c.emu.stream(s); err != nil {
			return err
		}
		return c.emu.write(dst, h.buf[off:off+n])
	}
	return c.htodAsync(dst, unsafe.Add(h.p, off), uint64(n), s)
}

// CopyFromDeviceAsync copies n bytes from src into h at offset off on s.
func (c *Context) CopyFromDeviceAsync(h *HostBuffer, off, n int, src DevicePtr, s Stream) error {
	if off < 0 || n < 0 || off+n > h.Len {
		return fmt.Errorf("CopyFromDeviceAsync: bytes [%d, %d) outside pinned buffer of %d", off, off+n, h.Len)
	}
	if c.emu != nil {
		if err := c.emu.stream(s); err != nil {
			return err
		}
		return c.emu.read(h.buf[off:off+n], src)
	}
	return c.dtohAsync(unsafe.Add(h.p, off), src, uint64(n), s)
}

// ZeroAsync sets n bytes at dst to zero on s.
func (c *Context) ZeroAsync(dst DevicePtr, n uint64, s Stream) error {
	if c.emu != nil {
		if err := c.emu.stream(s); err != nil {
			return err
		}
		return c.emu.memset(dst, n)
	}
	return c.memsetAsync(dst, n, s)
}

// NewStream creates a non-blocking stream.
func (c *Context) NewStream() (Stream, error) {
	if c.emu != nil {
		return c.emu.newStream(), nil
	}
	h, err := c.streamCreate()
	return Stream{h: h}, err
}

// Synchronize waits for all work queued on s.
func (c *Context) Synchronize(s Stream) error {
	if c.emu != nil {
		return c.emu.stream(s)
	}
	return c.ctxCall("cuStreamSynchronize", "cuStreamSynchronize", s.h)
}

// DestroyStream releases s (not the default stream).
func (c *Context) DestroyStream(s Stream) error {
	if c.emu != nil {
		return c.emu.destroyStream(s)
	}
	return c.ctxCall("cuStreamDestroy", "cuStreamDestroy_v2", s.h)
}
