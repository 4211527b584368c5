package kernels

import (
	"bytes"
	"debug/elf"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// CUBINArchs are the real architectures the CI check assembles for: the
// SASS an A100 and an H100 would run, as ptxas (inside NVRTC) builds it.
var CUBINArchs = []string{"sm_80", "sm_90"}

// registerBudget is the most registers per thread each kernel may use.
// A kernel over budget fails the build: a register increase silently
// costs occupancy (or, at the hardware's 255, spills), and neither shows
// in a test on the emulator. Budgets are derived from occupancy, with
// 65536 registers per SM on sm_80/sm_90 and allocation in units of 8:
//
//   - 255 is the hardware maximum per thread; nothing may exceed it.
//   - Memory-bound elementwise and row kernels (grid-stride loops, one row
//     per block): 64 keeps at least 1024 threads = 50% occupancy per SM
//     (65536 / 64), enough to hide memory latency for streaming kernels.
//   - The SIMT attention and paged-attention kernels keep a D/32-float
//     slice of q, k, v and the accumulator per lane (D up to 256: 8 floats
//     each): 96 keeps five 128-thread blocks per SM (65536 / (96*128)).
//   - The tensor-core forward (attn_fwd_mma_d64/d128) holds a 16 x D fp32
//     output tile per warp in registers: D/8*4 = 64 floats at D=128 plus
//     the S tile (32 floats) and fragments. 168 keeps three 128-thread
//     blocks' registers resident (65536 / (3*128) = 170, rounded down to
//     the granularity), so shared memory (52 KiB per block at D=128),
//     not registers, limits it to its intended 2-3 blocks per SM.
//
// Measured with NVRTC 11.8 (the table in the test log) the kernels sit
// well inside these; a budget is a ceiling, not the measurement.
var registerBudget = map[string]int{
	"attn_fwd_mma_d64":  168,
	"attn_fwd_mma_d128": 168,
	"attn_fwd_simt":     96,
	"attn_bwd_dq_simt":  96,
	"attn_bwd_dkv_simt": 96,
	"attn_bwd_dsum":     64,
	"paged_attn":        96,
	"paged_kv_write":    64,
}

// defaultRegisterBudget is the budget of every kernel not in the table
// (the memory-bound ones).
const defaultRegisterBudget = 64

// kernelResources is what ptxas reports for one entry.
type kernelResources struct {
	Registers   int
	StackFrame  int
	SpillStores int
	SpillLoads  int
}

var (
	ptxasEntryRE = regexp.MustCompile(`Compiling entry function '([^']+)' for '(sm_\d+a?)'`)
	ptxasFrameRE = regexp.MustCompile(`(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads`)
	ptxasRegsRE  = regexp.MustCompile(`Used (\d+) registers`)
)

// parsePtxasLog reads the per-entry report of ptxas -v from NVRTC's log.
func parsePtxasLog(log string) (map[string]kernelResources, error) {
	out := map[string]kernelResources{}
	cur := ""
	for _, line := range strings.Split(log, "\n") {
		if m := ptxasEntryRE.FindStringSubmatch(line); m != nil {
			cur = m[1]
			out[cur] = kernelResources{Registers: -1}
			continue
		}
		if cur == "" {
			continue
		}
		r := out[cur]
		if m := ptxasFrameRE.FindStringSubmatch(line); m != nil {
			r.StackFrame, _ = strconv.Atoi(m[1])
			r.SpillStores, _ = strconv.Atoi(m[2])
			r.SpillLoads, _ = strconv.Atoi(m[3])
		}
		if m := ptxasRegsRE.FindStringSubmatch(line); m != nil {
			r.Registers, _ = strconv.Atoi(m[1])
		}
		out[cur] = r
	}
	for name, r := range out {
		if r.Registers < 0 {
			return nil, fmt.Errorf("ptxas log has no register count for %s", name)
		}
	}
	return out, nil
}

// cubinRegisters reads each kernel's register count from the CUBIN itself:
// the section .text.<kernel> carries it in bits 24..31 of sh_info (where
// cuobjdump reads it). It cross-checks the log parse.
func cubinRegisters(cubin []byte) (map[string]int, error) {
	if len(cubin) < 24 {
		return nil, fmt.Errorf("cubin of %d bytes", len(cubin))
	}
	// NVIDIA's ELF stores its own format version in e_version, which
	// debug/elf rejects; the layout is standard ELF, so read a copy with
	// the field set to EV_CURRENT.
	patched := append([]byte(nil), cubin...)
	patched[20], patched[21], patched[22], patched[23] = 1, 0, 0, 0
	f, err := elf.NewFile(bytes.NewReader(patched))
	if err != nil {
		return nil, fmt.Errorf("cubin: %w", err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("cubin symbols: %w", err)
	}
	out := map[string]int{}
	for _, s := range f.Sections {
		if name, ok := strings.CutPrefix(s.Name, ".text."); ok && s.Info>>24 != 0 {
			out[name] = int(s.Info >> 24)
		}
	}
	// The .nv.info sections are records of (format, attribute, value);
	// EIATTR_REGCOUNT (0x2f, format EIFMT_SVAL 0x04 with a 16-bit size)
	// holds (symbol index, registers). sm_90 CUBINs carry the count only
	// there.
	for _, s := range f.Sections {
		if !strings.HasPrefix(s.Name, ".nv.info") {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("cubin %s: %w", s.Name, err)
		}
		for i := 0; i+2 <= len(data); {
			format, attr := data[i], data[i+1]
			switch format {
			case 0x01, 0x02, 0x03: // EIFMT_NVAL, _BVAL, _HVAL: value in a 16-bit field
				i += 4
			case 0x04: // EIFMT_SVAL: 16-bit size, payload
				if i+4 > len(data) {
					return nil, fmt.Errorf("cubin %s: truncated record at %d", s.Name, i)
				}
				size := int(data[i+2]) | int(data[i+3])<<8
				payload := data[i+4 : min(i+4+size, len(data))]
				if attr == 0x2f && len(payload) == 8 {
					idx := int(uint32(payload[0]) | uint32(payload[1])<<8 | uint32(payload[2])<<16 | uint32(payload[3])<<24)
					regs := int(uint32(payload[4]) | uint32(payload[5])<<8 | uint32(payload[6])<<16 | uint32(payload[7])<<24)
					// debug/elf drops the null symbol 0.
					if idx >= 1 && idx <= len(syms) {
						out[syms[idx-1].Name] = regs
					}
				}
				i += 4 + size
			default:
				return nil, fmt.Errorf("cubin %s: unknown record format %#x at %d", s.Name, format, i)
			}
		}
	}
	return out, nil
}

// TestCUDAKernelsCompileCUBIN is the CI resource check: every source assembles to
// SASS for sm_80 and sm_90, no kernel spills or uses a stack frame, and
// each stays within its register budget, read both from ptxas's report and
// from the CUBIN.
func TestCUDAKernelsCompileCUBIN(t *testing.T) {
	n := loadNVRTCForTest(t)
	opts := append(append([]string{}, CUDACompileOptions...), "-Xptxas=-v")
	var table []string
	for _, src := range KernelSources() {
		for _, arch := range CUBINArchs {
			cubin, log, err := n.CompileCUBIN(src.Text, src.Name, arch, opts)
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", src.Name, arch, err, log)
			}
			res, err := parsePtxasLog(log)
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", src.Name, arch, err, log)
			}
			regs, err := cubinRegisters(cubin)
			if err != nil {
				t.Fatalf("%s %s: %v", src.Name, arch, err)
			}
			for _, e := range src.Entries {
				r, ok := res[e]
				if !ok {
					t.Errorf("%s %s: ptxas reported nothing for %s", src.Name, arch, e)
					continue
				}
				if regs[e] != r.Registers {
					t.Errorf("%s %s: %d registers in the log, %d in the CUBIN", e, arch, r.Registers, regs[e])
				}
				budget, ok := registerBudget[e]
				if !ok {
					budget = defaultRegisterBudget
				}
				if r.Registers > budget {
					t.Errorf("%s %s: %d registers, budget %d (see registerBudget)", e, arch, r.Registers, budget)
				}
				if r.SpillStores > 0 || r.SpillLoads > 0 || r.StackFrame > 0 {
					t.Errorf("%s %s: %d bytes stack frame, %d bytes spill stores, %d bytes spill loads; want none",
						e, arch, r.StackFrame, r.SpillStores, r.SpillLoads)
				}
				table = append(table, fmt.Sprintf("%-20s %s %3d registers (budget %d)", e, arch, r.Registers, budget))
			}
		}
	}
	sort.Strings(table)
	t.Logf("NVRTC %s:\n%s", n.Version(), strings.Join(table, "\n"))
}

func TestParsePtxasLog(t *testing.T) {
	log := `ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'a' for 'sm_80'
ptxas info    : Function properties for a
ptxas         .     8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 255 registers, 128 bytes smem, 452 bytes cmem[0]
ptxas info    : Compiling entry function 'b' for 'sm_80'
ptxas info    : Function properties for b
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 31 registers, 400 bytes cmem[0]
`
	got, err := parsePtxasLog(log)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]kernelResources{"a": {255, 8, 4, 12}, "b": {31, 0, 0, 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parsed %v, want %v", got, want)
	}
	if _, err := parsePtxasLog("ptxas info    : Compiling entry function 'c' for 'sm_90'\n"); err == nil {
		t.Error("an entry without a register count was accepted")
	}
}
