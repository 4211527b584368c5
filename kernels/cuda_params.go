package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// KernelParam is one .param of a kernel entry as its PTX declares it, with
// the name and C type of the matching parameter of the embedded CUDA source
// when the kernel is one of ours (empty otherwise).
type KernelParam struct {
	PTXType string // "u32", "f32", "u64", "f64", "b8" (a byte array), ...
	Size    int    // bytes: what cuLaunchKernel copies and the kernel reads
	Align   int
	Name    string // source name, e.g. "logits"
	CType   string // source type, e.g. "float *"
}

func (p KernelParam) String() string {
	if p.Name != "" {
		return fmt.Sprintf("%s %s (.%s)", p.CType, p.Name, p.PTXType)
	}
	return fmt.Sprintf(".%s (%d bytes)", p.PTXType, p.Size)
}

var (
	ptxEntryRE = regexp.MustCompile(`\.entry\s+([A-Za-z_$][\w$]*)\s*\(([^)]*)\)`)
	ptxParamRE = regexp.MustCompile(`\.param\s+(?:\.align\s+(\d+)\s+)?\.([a-z]+)(\d+)\s+[\w$]+(?:\[(\d+)\])?`)
)

// ParsePTXParams returns the .param list of every .entry of a PTX module,
// in declaration order: the argument list cuLaunchKernel must be given.
// NVRTC declares int and unsigned as .u32, float as .f32, pointers and
// long long as .u64, double as .f64, and passes structs as .b8 arrays.
func ParsePTXParams(ptx []byte) (map[string][]KernelParam, error) {
	out := map[string][]KernelParam{}
	for _, m := range ptxEntryRE.FindAllSubmatch(ptx, -1) {
		name := string(m[1])
		var params []KernelParam
		for _, decl := range strings.Split(string(m[2]), ",") {
			decl = strings.TrimSpace(decl)
			if decl == "" {
				continue
			}
			pm := ptxParamRE.FindStringSubmatch(decl)
			if pm == nil {
				return nil, fmt.Errorf("ptx entry %s: cannot parse parameter %q", name, decl)
			}
			bits, _ := strconv.Atoi(pm[3])
			size := bits / 8
			if size == 0 {
				return nil, fmt.Errorf("ptx entry %s: parameter %q has no byte size", name, decl)
			}
			align := size
			if pm[1] != "" {
				align, _ = strconv.Atoi(pm[1])
			}
			if pm[4] != "" {
				n, _ := strconv.Atoi(pm[4])
				size *= n
			}
			params = append(params, KernelParam{PTXType: pm[2] + pm[3], Size: size, Align: align})
		}
		out[name] = params
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ptx declares no .entry")
	}
	return out, nil
}

var srcEntryRE = regexp.MustCompile(`extern\s+"C"\s+__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?void\s+(?:__launch_bounds__\([^)]*\)\s+)?([A-Za-z_]\w*)\s*\(([^)]*)\)`)

// sourceSignatures maps each extern "C" kernel of the embedded sources to
// its parameters' names and C types, in order.
func sourceSignatures() map[string][][2]string {
	out := map[string][][2]string{}
	for _, src := range KernelSources() {
		for _, m := range srcEntryRE.FindAllStringSubmatch(src.Text, -1) {
			var ps [][2]string
			for _, p := range strings.Split(m[2], ",") {
				p = strings.Join(strings.Fields(p), " ")
				if p == "" || p == "void" {
					continue
				}
				i := strings.LastIndexFunc(p, func(r rune) bool { return r == ' ' || r == '*' || r == '&' })
				ps = append(ps, [2]string{strings.TrimSpace(p[:i+1]), p[i+1:]})
			}
			out[m[1]] = ps
		}
	}
	return out
}

// moduleParams parses a module's PTX and names each entry's parameters
// from the embedded source that declares the entry, when there is one and
// its parameter count agrees.
func moduleParams(ptx []byte) (map[string][]KernelParam, error) {
	entries, err := ParsePTXParams(ptx)
	if err != nil {
		return nil, err
	}
	sigs := sourceSignatures()
	for name, ps := range entries {
		sig, ok := sigs[name]
		if !ok || len(sig) != len(ps) {
			continue
		}
		for i := range ps {
			ps[i].CType, ps[i].Name = sig[i][0], sig[i][1]
		}
	}
	return entries, nil
}

// encodeArgs checks args against the kernel's .param list and encodes each
// into exactly its parameter's bytes (little endian, as the device reads
// them). A count or type mismatch is an error naming the argument: a
// wrong-sized value would make the kernel read garbage for this and every
// later parameter. Go types map to PTX types as int32/uint32 -> .u32/.s32/
// .b32, float32 -> .f32, int64/uint64/DevicePtr -> .u64/.s64/.b64, float64
// -> .f64; a []byte fills a .b8 array (a struct) of the same length.
func encodeArgs(name string, params []KernelParam, args []any) ([][]byte, error) {
	if len(args) != len(params) {
		return nil, fmt.Errorf("launch %s: %d arguments, the kernel takes %d: %s", name, len(args), len(params), paramList(params))
	}
	out := make([][]byte, len(args))
	for i, a := range args {
		p := params[i]
		b, class := argBytes(a)
		if class == "" {
			return nil, fmt.Errorf("launch %s: argument %d (%s) has unsupported Go type %T", name, i, p, a)
		}
		if class != ptxClass(p) || len(b) != p.Size {
			return nil, fmt.Errorf("launch %s: argument %d (%s) is a %T of %d bytes; the kernel's .param is .%s of %d bytes",
				name, i, p, a, len(b), p.PTXType, p.Size)
		}
		out[i] = b
	}
	return out, nil
}

// argBytes encodes one Go argument and names its class: "int", "float",
// "bytes", or "" for an unsupported type.
func argBytes(a any) ([]byte, string) {
	le := binary.LittleEndian
	switch v := a.(type) {
	case int32:
		return le.AppendUint32(nil, uint32(v)), "int"
	case uint32:
		return le.AppendUint32(nil, v), "int"
	case int64:
		return le.AppendUint64(nil, uint64(v)), "int"
	case uint64:
		return le.AppendUint64(nil, v), "int"
	case DevicePtr:
		return le.AppendUint64(nil, uint64(v)), "int"
	case float32:
		return le.AppendUint32(nil, math.Float32bits(v)), "float"
	case float64:
		return le.AppendUint64(nil, math.Float64bits(v)), "float"
	case []byte:
		return append([]byte(nil), v...), "bytes"
	}
	return nil, ""
}

// ptxClass is the argument class a .param accepts.
func ptxClass(p KernelParam) string {
	switch {
	case p.PTXType == "b8" && p.Size > 1:
		return "bytes"
	case strings.HasPrefix(p.PTXType, "f"):
		return "float"
	}
	return "int"
}

func paramList(params []KernelParam) string {
	s := make([]string, len(params))
	for i, p := range params {
		s[i] = p.String()
	}
	return "(" + strings.Join(s, ", ") + ")"
}

// Hardware launch limits of every sm_80/sm_90 device.
const (
	maxThreadsPerBlock = 1024
	maxBlockZ          = 64
	maxGridX           = 1<<31 - 1
	maxGridYZ          = 65535
	// defaultDynShared is what a launch may use without
	// SetMaxDynamicShared (cudaFuncAttributeMaxDynamicSharedMemorySize).
	defaultDynShared = 48 << 10
)

// checkLaunchDims rejects what cuLaunchKernel would reject
// (CUDA_ERROR_INVALID_VALUE), with the limit that was exceeded.
func checkLaunchDims(name string, grid, block Dim3, dynShared, maxDyn uint32) error {
	switch {
	case grid.X == 0 || grid.Y == 0 || grid.Z == 0 || block.X == 0 || block.Y == 0 || block.Z == 0:
		return fmt.Errorf("launch %s: empty grid %v or block %v", name, grid, block)
	case uint64(block.X)*uint64(block.Y)*uint64(block.Z) > maxThreadsPerBlock:
		return fmt.Errorf("launch %s: block %v has %d threads, at most %d", name, block, uint64(block.X)*uint64(block.Y)*uint64(block.Z), maxThreadsPerBlock)
	case block.Z > maxBlockZ:
		return fmt.Errorf("launch %s: block.z %d > %d", name, block.Z, maxBlockZ)
	case grid.X > maxGridX || grid.Y > maxGridYZ || grid.Z > maxGridYZ:
		return fmt.Errorf("launch %s: grid %v exceeds (%d, %d, %d)", name, grid, maxGridX, maxGridYZ, maxGridYZ)
	case dynShared > maxDyn:
		return fmt.Errorf("launch %s: %d bytes of dynamic shared memory, the function allows %d (raise it with SetMaxDynamicShared)", name, dynShared, maxDyn)
	}
	return nil
}

// launchArgs reads a launch's integer arguments by source parameter name,
// for the per-kernel rules.
type launchArgs struct {
	params []KernelParam
	args   []any
}

func (a launchArgs) int(name string) (int64, bool) {
	for i, p := range a.params {
		if p.Name != name {
			continue
		}
		switch v := a.args[i].(type) {
		case int32:
			return int64(v), true
		case uint32:
			return int64(v), true
		case int64:
			return v, true
		}
	}
	return 0, false
}

// kernelRule is a launch precondition a kernel relies on but cannot check
// itself: violating it gives wrong results or out-of-bounds accesses, not
// an error.
type kernelRule struct {
	// block, when not zero, is the only block shape the kernel's indexing
	// supports (e.g. 4 warps = 4 rows per block).
	block Dim3
	// warps: a 1-D block of whole warps (block_sum and warp shuffles with
	// a full mask).
	warps bool
	// args checks argument values; nil when none.
	args func(a launchArgs, dynShared uint32) error
}

// AttnMaxHeadDim is the largest head dimension of the SIMT attention and
// paged-attention kernels (ATT_MAXD and PG_MAXD: per-lane register arrays
// and the shared merge buffer are sized for it).
const AttnMaxHeadDim = 256

// headArgs checks 1 <= D <= AttnMaxHeadDim (when the kernel takes D), that
// Ntok is whole rows of T, and that the query heads split evenly over the
// kv heads.
func headArgs(a launchArgs, _ uint32) error {
	if d, ok := a.int("D"); ok && (d < 1 || d > AttnMaxHeadDim) {
		return fmt.Errorf("head dimension D=%d outside [1, %d] (the kernel's per-lane arrays hold %d)", d, AttnMaxHeadDim, AttnMaxHeadDim)
	}
	ntok, ok1 := a.int("Ntok")
	t, ok2 := a.int("T")
	if ok1 && ok2 && (t < 1 || ntok%t != 0) {
		return fmt.Errorf("Ntok=%d tokens are not whole rows of T=%d (the lse layout is (B, Hq, T))", ntok, t)
	}
	hq, ok1 := a.int("Hq")
	hk, ok2 := a.int("Hk")
	if ok1 && ok2 && (hk < 1 || hq < hk || hq%hk != 0) {
		return fmt.Errorf("Hq=%d query heads do not split evenly over Hk=%d kv heads", hq, hk)
	}
	return nil
}

// mmaArgs adds the tensor-core kernel's dynamic shared memory need.
func mmaArgs(d int) func(launchArgs, uint32) error {
	return func(a launchArgs, dyn uint32) error {
		if need := AttnMMASharedBytes(d); int(dyn) < need {
			return fmt.Errorf("attn_fwd_mma_d%d needs %d bytes of dynamic shared memory, launched with %d", d, need, dyn)
		}
		return headArgs(a, dyn)
	}
}

// kernelRules holds the rules of the embedded kernels, by entry name.
var kernelRules = map[string]kernelRule{
	"attn_fwd_simt":     {block: Dim3{128, 1, 1}, args: headArgs},
	"attn_bwd_dsum":     {block: Dim3{128, 1, 1}, args: headArgs},
	"attn_bwd_dq_simt":  {block: Dim3{128, 1, 1}, args: headArgs},
	"attn_bwd_dkv_simt": {block: Dim3{128, 1, 1}, args: headArgs},
	"attn_fwd_mma_d64":  {block: Dim3{128, 1, 1}, args: mmaArgs(64)},
	"attn_fwd_mma_d128": {block: Dim3{128, 1, 1}, args: mmaArgs(128)},
	"paged_attn":        {block: Dim3{128, 1, 1}, args: headArgs},
	"xent_fwd_bwd":      {warps: true},
	"policy_rows":       {warps: true},
	"logsumexp_rows":    {warps: true},
	"softmax_temp_rows": {warps: true},
	"argmax_rows":       {warps: true},
	"sample_rows":       {warps: true},
	"rmsnorm_fwd":       {warps: true},
	"rmsnorm_bwd":       {warps: true},
	"sumsq_partial":     {warps: true},
	"sumsq_final":       {warps: true},
}

// checkKernelRule applies name's rule, if it has one.
func checkKernelRule(name string, block Dim3, dynShared uint32, params []KernelParam, args []any) error {
	r, ok := kernelRules[name]
	if !ok {
		return nil
	}
	if r.block != (Dim3{}) && block != r.block {
		return fmt.Errorf("launch %s: block %v, the kernel is written for exactly %v", name, block, r.block)
	}
	if r.warps && (block.X%32 != 0 || block.Y != 1 || block.Z != 1) {
		return fmt.Errorf("launch %s: block %v, the kernel needs a 1-D block of whole warps (x a multiple of 32)", name, block)
	}
	if r.args != nil {
		if err := r.args(launchArgs{params, args}, dynShared); err != nil {
			return fmt.Errorf("launch %s: %w", name, err)
		}
	}
	return nil
}

// prepareLaunch is every check a launch gets before it reaches the real or
// the emulated device, and the encoded arguments.
func prepareLaunch(name string, params []KernelParam, grid, block Dim3, dynShared, maxDyn uint32, args []any) ([][]byte, error) {
	if err := checkLaunchDims(name, grid, block, dynShared, maxDyn); err != nil {
		return nil, err
	}
	enc, err := encodeArgs(name, params, args)
	if err != nil {
		return nil, err
	}
	if err := checkKernelRule(name, block, dynShared, params, args); err != nil {
		return nil, err
	}
	return enc, nil
}
