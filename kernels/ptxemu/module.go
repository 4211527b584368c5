package ptxemu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Param is one .param of an entry, in declaration order.
type Param struct {
	Name  string
	Size  int
	Align int
}

// Module is a loaded PTX module: its decoded entries and the device
// memory of its .global/.const variables.
type Module struct {
	d       *Device
	kernels map[string]*Kernel
	names   []string
}

// Kernel is one decoded .entry.
type Kernel struct {
	name      string
	params    []Param
	paramOff  []int
	paramSize int
	code      []inst
	regInit   []uint64 // register-file template: constants pre-loaded
	special   []specialReg
	shStatic  uint32 // bytes of static shared memory
	shDynOff  uint32 // offset of .extern .shared (dynamic) memory
	localSize uint32
	maxntid   []int // launch bounds: .maxntid (nil when absent)
	reqntid   []int
}

type specialReg struct {
	slot int32
	kind uint8
}

// special register kinds
const (
	srTidX uint8 = iota
	srTidY
	srTidZ
	srNtidX
	srNtidY
	srNtidZ
	srCtaidX
	srCtaidY
	srCtaidZ
	srNctaidX
	srNctaidY
	srNctaidZ
	srLaneid
	srWarpid
	srNwarpid
	srLanemaskEq
	srLanemaskLt
	srLanemaskLe
	srLanemaskGt
	srLanemaskGe
)

var specialNames = map[string]uint8{
	"%tid.x": srTidX, "%tid.y": srTidY, "%tid.z": srTidZ,
	"%ntid.x": srNtidX, "%ntid.y": srNtidY, "%ntid.z": srNtidZ,
	"%ctaid.x": srCtaidX, "%ctaid.y": srCtaidY, "%ctaid.z": srCtaidZ,
	"%nctaid.x": srNctaidX, "%nctaid.y": srNctaidY, "%nctaid.z": srNctaidZ,
	"%laneid": srLaneid, "%warpid": srWarpid, "%nwarpid": srNwarpid,
	"%lanemask_eq": srLanemaskEq, "%lanemask_lt": srLanemaskLt, "%lanemask_le": srLanemaskLe,
	"%lanemask_gt": srLanemaskGt, "%lanemask_ge": srLanemaskGe,
}

// Name returns the entry's name.
func (k *Kernel) Name() string { return k.name }

// Params returns the entry's .param list in order.
func (k *Kernel) Params() []Param { return append([]Param(nil), k.params...) }

// Kernel returns the entry called name.
func (m *Module) Kernel(name string) (*Kernel, error) {
	k, ok := m.kernels[name]
	if !ok {
		return nil, fmt.Errorf("ptxemu: module has no .entry %q (entries: %s)", name, strings.Join(m.names, ", "))
	}
	return k, nil
}

// Kernels returns the names of the module's entries in PTX order.
func (m *Module) Kernels() []string { return append([]string(nil), m.names...) }

// LoadModule parses and decodes PTX text (NUL-terminated or not). An
// instruction the emulator does not implement fails here, as a *Fault of
// kind UnknownOpcode naming the opcode and the kernel.
func (d *Device) LoadModule(ptx []byte) (m *Module, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("ptxemu: internal error loading module: %v", p)
		}
	}()
	if i := bytes.IndexByte(ptx, 0); i >= 0 {
		ptx = ptx[:i]
	}
	ast, err := parseModule(string(ptx))
	if err != nil {
		return nil, fmt.Errorf("ptxemu: parse: %w", err)
	}
	m = &Module{d: d, kernels: map[string]*Kernel{}}
	globals := map[string]uint64{}
	var modShared []*varDecl
	for _, v := range ast.vars {
		switch v.space {
		case ".shared":
			modShared = append(modShared, v)
		case ".global", ".const":
			if err := d.allocModuleVar(v, globals); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range ast.funcs {
		if !f.entry {
			continue
		}
		k, err := decodeKernel(f, modShared, globals)
		if err != nil {
			return nil, err
		}
		m.kernels[k.name] = k
		m.names = append(m.names, k.name)
	}
	return m, nil
}

// allocModuleVar places a module-scope .global/.const variable in device
// memory, initialised (to its initializer, or zero as C requires).
func (d *Device) allocModuleVar(v *varDecl, globals map[string]uint64) error {
	es := typeSize(v.typ)
	for _, n := range v.names {
		count := 1
		for _, dim := range n.dims {
			count *= dim
		}
		if n.open && len(v.init) > 0 {
			count = len(v.init)
		}
		size := uint64(es * count)
		addr, err := d.alloc(size)
		if err != nil {
			return fmt.Errorf("ptxemu: module variable %s: %w", n.name, err)
		}
		buf := make([]byte, size)
		t := parseType(v.typ)
		for i, lit := range v.init {
			if i >= count {
				break
			}
			bits, err := literalBits(lit, t)
			if err != nil {
				return fmt.Errorf("ptxemu: PTX line %d: initializer of %s: %w", v.line, n.name, err)
			}
			putLE(buf[i*es:], bits, es)
		}
		if err := d.write(addr, buf); err != nil {
			return err
		}
		globals[n.name] = addr
	}
	return nil
}

func putLE(b []byte, v uint64, n int) {
	for i := 0; i < n; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

func getLE(b []byte, n int) uint64 {
	switch n {
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	case 8:
		return binary.LittleEndian.Uint64(b)
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	}
	var v uint64
	for i := 0; i < n; i++ {
		v |= uint64(b[i]) << (8 * i)
	}
	return v
}

func parseType(s string) ptype {
	switch s {
	case ".pred":
		return ptype{'p', 1}
	case ".bf16":
		return ptype{'h', 16}
	case ".bf16x2":
		return ptype{'H', 32}
	case ".f16":
		return ptype{'e', 16}
	case ".f16x2":
		return ptype{'E', 32}
	case ".tf32":
		return ptype{'t', 32}
	}
	if len(s) < 3 || typeSize(s) == 0 {
		return ptype{}
	}
	w, _ := strconv.Atoi(s[2:])
	return ptype{s[1], uint8(w)}
}

// literalBits converts a PTX literal to the bit pattern of type t.
func literalBits(lit string, t ptype) (uint64, error) {
	neg := strings.HasPrefix(lit, "-")
	body := strings.TrimPrefix(lit, "-")
	isF := t.k == 'f'
	var f float64
	var fromFloat bool
	switch {
	case strings.HasPrefix(body, "0f") || strings.HasPrefix(body, "0F"):
		u, err := strconv.ParseUint(body[2:], 16, 32)
		if err != nil {
			return 0, fmt.Errorf("bad float literal %q", lit)
		}
		if !isF || t.w == 32 {
			if neg {
				u ^= 1 << 31
			}
			return u, nil
		}
		f, fromFloat = float64(math.Float32frombits(uint32(u))), true
	case strings.HasPrefix(body, "0d") || strings.HasPrefix(body, "0D"):
		u, err := strconv.ParseUint(body[2:], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("bad double literal %q", lit)
		}
		if !isF || t.w == 64 {
			if neg {
				u ^= 1 << 63
			}
			return u, nil
		}
		f, fromFloat = math.Float64frombits(u), true
	case strings.ContainsAny(body, ".eE") && !strings.HasPrefix(body, "0x") && !strings.HasPrefix(body, "0X"):
		v, err := strconv.ParseFloat(body, 64)
		if err != nil {
			return 0, fmt.Errorf("bad literal %q", lit)
		}
		f, fromFloat = v, true
	}
	if fromFloat {
		if neg {
			f = -f
		}
		if isF && t.w == 32 {
			return uint64(math.Float32bits(float32(f))), nil
		}
		return math.Float64bits(f), nil
	}
	v, err := parseIntLit(body)
	if err != nil {
		return 0, err
	}
	if neg {
		v = -v
	}
	if isF {
		if t.w == 32 {
			return uint64(math.Float32bits(float32(v))), nil
		}
		return math.Float64bits(float64(v)), nil
	}
	return uint64(v), nil
}
