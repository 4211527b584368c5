package ptxemu

import (
	"fmt"
	"strconv"
	"strings"

	"purpcode/kernels/ptxemu/ptxmath"
)

type regInfo struct {
	slot int32
	ty   ptype
}

type decoder struct {
	k       *Kernel
	scopes  []map[string]regInfo
	consts  map[uint64]int32
	syms    map[string]uint64 // symbol -> constant value (param/shared/local offsets, global addresses)
	labels  map[string]int32
	fixups  []labelFixup
	special map[uint8]int32
	sink    int32
	one     int32
	cur     *stmt
}

type labelFixup struct {
	pc    int
	label string
	line  int
}

func alignUp(v, a uint32) uint32 {
	if a <= 1 {
		return v
	}
	return (v + a - 1) / a * a
}

func declBytes(v *varDecl, n declName) uint32 {
	size := uint32(typeSize(v.typ))
	for _, d := range n.dims {
		size *= uint32(d)
	}
	return size
}

func declAlign(v *varDecl) uint32 {
	if v.align > 0 {
		return uint32(v.align)
	}
	return uint32(typeSize(v.typ))
}

func decodeKernel(f *funcAST, modShared []*varDecl, globals map[string]uint64) (*Kernel, error) {
	k := &Kernel{name: f.name, maxntid: f.maxntid, reqntid: f.reqntid}
	dc := &decoder{k: k, consts: map[uint64]int32{}, syms: map[string]uint64{}, labels: map[string]int32{}, special: map[uint8]int32{}}
	for name, addr := range globals {
		dc.syms[name] = addr
	}
	loadErr := func(line int, format string, a ...any) error {
		return &Fault{Kind: UnknownOpcode, Kernel: f.name, Line: line, Detail: fmt.Sprintf(format, a...)}
	}
	// .param layout: each parameter at its alignment, like the driver's
	// argument buffer.
	off := 0
	for _, p := range f.params {
		if len(p.names) != 1 {
			return nil, loadErr(p.line, "parameter declaration with %d names", len(p.names))
		}
		n := p.names[0]
		size := int(declBytes(p, n))
		al := int(declAlign(p))
		off = int(alignUp(uint32(off), uint32(al)))
		k.params = append(k.params, Param{Name: n.name, Size: size, Align: al})
		k.paramOff = append(k.paramOff, off)
		dc.syms[n.name] = uint64(off)
		off += size
	}
	k.paramSize = off
	// Shared and local layout: module-scope .shared first, then the
	// function's (demoted) variables; .extern .shared arrays all start at
	// the aligned end of the static part.
	var sh, local uint32
	dynAlign := uint32(16)
	var dynNames []string
	place := func(v *varDecl, at *uint32) {
		for _, n := range v.names {
			*at = alignUp(*at, declAlign(v))
			dc.syms[n.name] = uint64(*at)
			*at += declBytes(v, n)
		}
	}
	shVars := append([]*varDecl(nil), modShared...)
	for i := range f.body {
		if d := f.body[i].decl; d != nil && d.space == ".shared" {
			shVars = append(shVars, d)
		}
		if d := f.body[i].decl; d != nil && d.space == ".local" {
			place(d, &local)
		}
		if d := f.body[i].decl; d != nil && (d.space == ".global" || d.space == ".const") {
			return nil, loadErr(d.line, "function-scope %s variables are not supported", d.space)
		}
	}
	for _, v := range shVars {
		if v.ext || (len(v.names) == 1 && v.names[0].open) {
			if a := declAlign(v); a > dynAlign {
				dynAlign = a
			}
			for _, n := range v.names {
				dynNames = append(dynNames, n.name)
			}
			continue
		}
		place(v, &sh)
	}
	k.shStatic = sh
	k.shDynOff = alignUp(sh, dynAlign)
	for _, n := range dynNames {
		dc.syms[n] = uint64(k.shDynOff)
	}
	k.localSize = local
	if local > maxLocalBytes {
		return nil, loadErr(f.line, "%d bytes of .local memory per thread exceed the %d-byte limit", local, maxLocalBytes)
	}

	dc.scopes = []map[string]regInfo{{}}
	dc.sink = dc.newSlot(0)
	dc.one = dc.constSlot(1)
	for i := range f.body {
		s := &f.body[i]
		dc.cur = s
		switch {
		case s.scope > 0:
			dc.scopes = append(dc.scopes, map[string]regInfo{})
		case s.scope < 0:
			dc.scopes = dc.scopes[:len(dc.scopes)-1]
		case s.label != "":
			dc.labels[s.label] = int32(len(k.code))
		case s.decl != nil:
			if s.decl.space == ".reg" {
				if err := dc.declareRegs(s.decl); err != nil {
					return nil, loadErr(s.line, "%v", err)
				}
			}
		case s.op != "":
			in, err := dc.decodeInst(s)
			if err != nil {
				return nil, loadErr(s.line, "%s: %v", s.op, err)
			}
			in.line = int32(s.line)
			k.code = append(k.code, in)
		}
	}
	// A thread falling off the end exits, as if the body ended with ret.
	k.code = append(k.code, inst{op: opExit, g: dc.one, gx: 0, line: int32(f.line)})
	for _, fx := range dc.fixups {
		pc, ok := dc.labels[fx.label]
		if !ok {
			return nil, loadErr(fx.line, "branch to undefined label %s", fx.label)
		}
		k.code[fx.pc].off = int64(pc)
	}
	return k, nil
}

func (dc *decoder) newSlot(v uint64) int32 {
	dc.k.regInit = append(dc.k.regInit, v)
	return int32(len(dc.k.regInit) - 1)
}

func (dc *decoder) constSlot(v uint64) int32 {
	if s, ok := dc.consts[v]; ok {
		return s
	}
	s := dc.newSlot(v)
	dc.consts[v] = s
	return s
}

// Limits that keep malformed PTX from exhausting memory; NVRTC's output is
// far below them (the largest kernel here declares about 1,200 registers).
const (
	maxRegsPerDecl = 1 << 16
	maxRegSlots    = 1 << 20
	maxLocalBytes  = 512 << 10 // the CUDA per-thread local memory limit
)

func (dc *decoder) declareRegs(d *varDecl) error {
	t := parseType(d.typ)
	if t.k == 0 {
		return fmt.Errorf("register type %s not supported", d.typ)
	}
	scope := dc.scopes[len(dc.scopes)-1]
	for _, n := range d.names {
		if len(n.dims) > 0 {
			return fmt.Errorf("register arrays are not supported (%s)", n.name)
		}
		if n.count > 0 {
			if n.count > maxRegsPerDecl || len(dc.k.regInit)+n.count > maxRegSlots {
				return fmt.Errorf("%s<%d>: more registers than the emulator supports (%d)", n.name, n.count, maxRegSlots)
			}
			for i := 0; i < n.count; i++ {
				scope[n.name+strconv.Itoa(i)] = regInfo{slot: dc.newSlot(0), ty: t}
			}
			continue
		}
		scope[n.name] = regInfo{slot: dc.newSlot(0), ty: t}
	}
	return nil
}

func (dc *decoder) lookupReg(name string) (regInfo, bool) {
	for i := len(dc.scopes) - 1; i >= 0; i-- {
		if r, ok := dc.scopes[i][name]; ok {
			return r, true
		}
	}
	return regInfo{}, false
}

// dst resolves a destination operand to a register slot.
func (dc *decoder) dst(o operandAST) (int32, error) {
	switch o.kind {
	case '_':
		return dc.sink, nil
	case 'r':
		if r, ok := dc.lookupReg(o.name); ok && !o.not {
			return r.slot, nil
		}
	}
	return 0, fmt.Errorf("destination %s is not a declared register", describe(o))
}

func describe(o operandAST) string {
	switch o.kind {
	case 'r':
		return o.name
	case 'n':
		return o.num
	case 'a':
		return fmt.Sprintf("[%s%+d]", o.name, o.off)
	case 'v':
		return "{vector}"
	}
	return "_"
}

// src resolves a source operand of type t to a register slot.
func (dc *decoder) src(o operandAST, t ptype) (int32, error) {
	if o.not {
		return 0, fmt.Errorf("negated operand !%s not supported here", o.name)
	}
	switch o.kind {
	case 'r':
		if r, ok := dc.lookupReg(o.name); ok {
			return r.slot, nil
		}
		if sr, ok := specialNames[o.name]; ok {
			if s, ok := dc.special[sr]; ok {
				return s, nil
			}
			s := dc.newSlot(0)
			dc.special[sr] = s
			dc.k.special = append(dc.k.special, specialReg{slot: s, kind: sr})
			return s, nil
		}
		if strings.HasPrefix(o.name, "%") {
			return 0, fmt.Errorf("unknown register or unsupported special register %s", o.name)
		}
		if v, ok := dc.syms[o.name]; ok {
			return dc.constSlot(v), nil
		}
		return 0, fmt.Errorf("unknown symbol %s", o.name)
	case 'n':
		v, err := literalBits(o.num, t)
		if err != nil {
			return 0, err
		}
		return dc.constSlot(v), nil
	}
	return 0, fmt.Errorf("operand %s not allowed here", describe(o))
}

// addr resolves "[base+off]" to a base slot and offset.
func (dc *decoder) addr(o operandAST) (int32, int64, error) {
	if o.kind != 'a' {
		return 0, 0, fmt.Errorf("expected an address, found %s", describe(o))
	}
	if o.name == "" {
		return dc.constSlot(0), o.off, nil
	}
	s, err := dc.src(operandAST{kind: 'r', name: o.name}, ptype{'u', 64})
	return s, o.off, err
}

// mods is an instruction's dot-separated modifiers, sorted into what the
// decoders need; words are consumed by the decoder of each opcode, and any
// left over make the instruction unknown.
type mods struct {
	types []ptype
	rnd   uint8
	space uint8
	vec   uint8
	words map[string]bool
}

var ignoredWords = map[string]bool{
	// memory-consistency, scope and cache qualifiers: no effect in a
	// sequentially-consistent, cacheless emulator
	"weak": true, "volatile": true, "relaxed": true, "acquire": true, "release": true, "acq_rel": true,
	"sc": true, "cta": true, "gpu": true, "sys": true, "ca": true, "cg": true, "cs": true, "lu": true,
	"cv": true, "wb": true, "wt": true,
}

func parseMods(parts []string) mods {
	m := mods{words: map[string]bool{}}
	for _, p := range parts {
		if t := parseType("." + p); t.k != 0 {
			m.types = append(m.types, t)
			continue
		}
		switch p {
		case "rn":
			m.rnd = rndRN
		case "rz":
			m.rnd = rndRZ
		case "rm":
			m.rnd = rndRM
		case "rp":
			m.rnd = rndRP
		case "rni":
			m.rnd = rndRNI
		case "rzi":
			m.rnd = rndRZI
		case "rmi":
			m.rnd = rndRMI
		case "rpi":
			m.rnd = rndRPI
		case "global":
			m.space = spGlobal
		case "shared":
			m.space = spShared
		case "local":
			m.space = spLocal
		case "param":
			m.space = spParam
		case "const":
			m.space = spConst
		case "v2":
			m.vec = 2
		case "v4":
			m.vec = 4
		default:
			m.words[p] = true
		}
	}
	return m
}

// take consumes a modifier word, reporting whether it was present.
func (m *mods) take(w string) bool {
	if m.words[w] {
		delete(m.words, w)
		return true
	}
	return false
}

func (m *mods) leftover() string {
	var out []string
	for w := range m.words {
		out = append(out, "."+w)
	}
	return strings.Join(out, "")
}

var floatOps = map[string]uint8{
	"add": fAdd, "sub": fSub, "mul": fMul, "fma": fFma, "mad": fFma, "div": fDiv, "neg": fNeg, "abs": fAbs,
	"min": fMin, "max": fMax, "sqrt": fSqrt, "rcp": fRcp, "rsqrt": fRsqrt, "ex2": fEx2, "lg2": fLg2,
	"sin": fSin, "cos": fCos, "tanh": fTanh, "copysign": fCopysign,
}

var intOps = map[string]op{
	"add": opAdd, "sub": opSub, "min": opMin, "max": opMax, "abs": opAbs, "neg": opNeg,
	"and": opAnd, "or": opOr, "xor": opXor, "not": opNot, "cnot": opCnot, "shl": opShl, "shr": opShr,
	"popc": opPopc, "clz": opClz, "brev": opBrev, "div": opDiv, "rem": opRem,
}

var atomNames = map[string]uint8{
	"add": atAdd, "min": atMin, "max": atMax, "inc": atInc, "dec": atDec, "and": atAnd, "or": atOr,
	"xor": atXor, "exch": atExch, "cas": atCas,
}

func (dc *decoder) decodeInst(s *stmt) (inst, error) {
	in := inst{g: dc.one, gx: 0, d: dc.sink, d2: dc.sink}
	if s.guard != "" {
		r, ok := dc.lookupReg(s.guard)
		if !ok || r.ty.k != 'p' {
			return in, fmt.Errorf("guard %s is not a predicate register", s.guard)
		}
		in.g = r.slot
		if s.guardNeg {
			in.gx = 1
		}
	}
	parts := strings.Split(s.op, ".")
	base := parts[0]
	m := parseMods(parts[1:])
	var err error
	switch base {
	case "bra":
		m.take("uni")
		err = dc.decBra(&in, s)
	case "ret", "exit":
		in.op = opExit
	case "membar", "fence":
		in.op = opNop
		for _, w := range []string{"gl", "cta", "sys", "proxy", "async", "sc", "acq_rel"} {
			m.take(w)
		}
	case "mov":
		err = dc.decMov(&in, s, &m)
	case "ld", "st":
		err = dc.decLdSt(&in, s, &m, base == "st")
	case "atom", "red":
		err = dc.decAtom(&in, s, &m, base == "red")
	case "cvta":
		err = dc.decCvta(&in, s, &m)
	case "cvt":
		err = dc.decCvt(&in, s, &m)
	case "setp":
		err = dc.decSetp(&in, s, &m)
	case "selp":
		err = dc.decSelp(&in, s, &m)
	case "mul", "mad":
		if len(m.types) == 1 && m.types[0].k == 'f' {
			err = dc.decFloat(&in, s, &m, base)
		} else {
			err = dc.decMul(&in, s, &m, base == "mad")
		}
	case "fma", "rcp", "rsqrt", "sqrt", "ex2", "lg2", "sin", "cos", "tanh", "copysign":
		err = dc.decFloat(&in, s, &m, base)
	case "bfe", "bfi", "prmt":
		err = dc.decBits(&in, s, &m, base)
	case "bar", "barrier":
		err = dc.decBar(&in, s, &m, base)
	case "shfl":
		err = dc.decShfl(&in, s, &m)
	case "mma":
		err = dc.decMma(&in, s, &m)
	case "cp":
		err = dc.decCpAsync(&in, s, &m)
	case "vote":
		err = dc.decVote(&in, s, &m)
	case "redux":
		err = dc.decRedux(&in, s, &m)
	default:
		if _, ok := intOps[base]; ok {
			if len(m.types) == 1 && m.types[0].k == 'f' {
				err = dc.decFloat(&in, s, &m, base)
			} else {
				err = dc.decInt(&in, s, &m, base)
			}
		} else {
			return in, fmt.Errorf("unknown opcode %s", s.op)
		}
	}
	if err != nil {
		return in, err
	}
	if len(m.words) > 0 {
		return in, fmt.Errorf("unknown opcode %s (unsupported modifier %s)", s.op, m.leftover())
	}
	return in, nil
}

func wantOps(s *stmt, n ...int) error {
	for _, c := range n {
		if len(s.ops) == c {
			return nil
		}
	}
	return fmt.Errorf("expected %v operands, got %d", n, len(s.ops))
}

func oneType(m *mods) (ptype, error) {
	if len(m.types) != 1 {
		return ptype{}, fmt.Errorf("expected exactly one type modifier")
	}
	return m.types[0], nil
}

// srcs resolves operands s.ops[from:] of type t into slots a, b, c, e.
func (dc *decoder) srcs(in *inst, s *stmt, from int, t ptype) error {
	slots := []*int32{&in.a, &in.b, &in.c, &in.e}
	for i, o := range s.ops[from:] {
		if i >= len(slots) {
			return fmt.Errorf("too many operands")
		}
		v, err := dc.src(o, t)
		if err != nil {
			return err
		}
		*slots[i] = v
	}
	return nil
}

func (dc *decoder) decBra(in *inst, s *stmt) error {
	if err := wantOps(s, 1); err != nil {
		return err
	}
	if s.ops[0].kind != 'r' {
		return fmt.Errorf("branch target must be a label")
	}
	in.op = opBra
	dc.fixups = append(dc.fixups, labelFixup{pc: len(dc.k.code), label: s.ops[0].name, line: s.line})
	return nil
}

func (dc *decoder) decMov(in *inst, s *stmt, m *mods) error {
	t, err := oneType(m)
	if err != nil {
		return err
	}
	if err := wantOps(s, 2); err != nil {
		return err
	}
	in.ty, in.mask = t, widthMask(t.w)
	d, a := s.ops[0], s.ops[1]
	switch {
	case a.kind == 'v':
		in.op = opPack
		in.d, err = dc.dst(d)
		if err != nil {
			return err
		}
		for _, e := range a.elems {
			v, err := dc.src(e, ptype{'b', t.w / uint8(len(a.elems))})
			if err != nil {
				return err
			}
			in.list = append(in.list, v)
		}
	case d.kind == 'v':
		in.op = opUnpack
		in.a, err = dc.src(a, t)
		if err != nil {
			return err
		}
		for _, e := range d.elems {
			v, err := dc.dst(e)
			if err != nil {
				return err
			}
			in.list = append(in.list, v)
		}
	default:
		in.op = opMov
		if in.d, err = dc.dst(d); err != nil {
			return err
		}
		if t.k == 'p' {
			// mov.pred from an immediate: any non-zero value is true
			if a.kind == 'n' {
				v, err := literalBits(a.num, ptype{'s', 64})
				if err != nil {
					return err
				}
				if v != 0 {
					v = 1
				}
				in.a = dc.constSlot(v)
				return nil
			}
		}
		in.a, err = dc.src(a, t)
	}
	return err
}

func (dc *decoder) decInt(in *inst, s *stmt, m *mods, base string) error {
	t, err := oneType(m)
	if err != nil {
		return err
	}
	in.op = intOps[base]
	in.ty, in.mask = t, widthMask(t.w)
	if t.k == 's' {
		in.flags |= flSigned
	}
	if t.k == 'p' && in.op != opAnd && in.op != opOr && in.op != opXor && in.op != opNot {
		return fmt.Errorf("predicate type not allowed")
	}
	nsrc := 2
	switch in.op {
	case opAbs, opNeg, opNot, opCnot, opPopc, opClz, opBrev:
		nsrc = 1
	}
	if err := wantOps(s, nsrc+1); err != nil {
		return err
	}
	if in.d, err = dc.dst(s.ops[0]); err != nil {
		return err
	}
	if in.op == opShl || in.op == opShr {
		if in.a, err = dc.src(s.ops[1], t); err != nil {
			return err
		}
		in.b, err = dc.src(s.ops[2], ptype{'u', 32})
		return err
	}
	return dc.srcs(in, s, 1, t)
}

func (dc *decoder) decMul(in *inst, s *stmt, m *mods, mad bool) error {
	t, err := oneType(m)
	if err != nil {
		return err
	}
	in.ty, in.mask = t, widthMask(t.w)
	if t.k == 's' {
		in.flags |= flSigned
	}
	switch {
	case m.take("lo"):
		in.op = opMulLo
	case m.take("hi"):
		in.op = opMulHi
	case m.take("wide"):
		in.op = opMulWide
		if t.w > 32 {
			return fmt.Errorf(".wide needs a 16- or 32-bit type")
		}
	default:
		return fmt.Errorf("integer mul/mad needs .lo, .hi or .wide")
	}
	if mad {
		in.op += opMadLo - opMulLo
		if m.take("sat") {
			return fmt.Errorf("mad.sat not supported")
		}
		if err := wantOps(s, 4); err != nil {
			return err
		}
	} else if err := wantOps(s, 3); err != nil {
		return err
	}
	if in.d, err = dc.dst(s.ops[0]); err != nil {
		return err
	}
	if err := dc.srcs(in, s, 1, t); err != nil {
		return err
	}
	if mad && in.op == opMadWide {
		// the addend of mad.wide is double width
		in.c, err = dc.src(s.ops[3], ptype{t.k, t.w * 2})
	}
	return err
}

func (dc *decoder) decFloat(in *inst, s *stmt, m *mods, base string) error {
	t, err := oneType(m)
	if err != nil {
		return err
	}
	if t.k != 'f' || (t.w != 32 && t.w != 64) {
		return fmt.Errorf("floating-point type .f32 or .f64 expected")
	}
	in.op = opFloat
	in.sub = floatOps[base]
	in.ty, in.mask = t, widthMask(t.w)
	in.rnd = m.rnd
	if m.take("ftz") {
		in.flags |= flFtz
	}
	if m.take("sat") {
		in.flags |= flSat
	}
	if m.take("approx") {
		in.flags |= flApprox
	}
	m.take("full")
	if m.take("NaN") || m.take("xorsign") {
		return fmt.Errorf("min/max .NaN/.xorsign not supported")
	}
	nsrc := 2
	switch in.sub {
	case fFma:
		nsrc = 3
	case fNeg, fAbs, fSqrt, fRcp, fRsqrt, fEx2, fLg2, fSin, fCos, fTanh:
		nsrc = 1
	}
	if err := wantOps(s, nsrc+1); err != nil {
		return err
	}
	switch in.sub {
	case fDiv, fRcp, fSqrt:
		if in.rnd == rndNone && in.flags&flApprox == 0 {
			return fmt.Errorf("needs a rounding modifier or .approx")
		}
	case fRsqrt, fEx2, fLg2, fSin, fCos, fTanh:
		if in.flags&flApprox == 0 {
			return fmt.Errorf("only the .approx form exists")
		}
	}
	if in.d, err = dc.dst(s.ops[0]); err != nil {
		return err
	}
	if err := dc.srcs(in, s, 1, t); err != nil {
		return err
	}
	if t.w == 32 && in.flags&(flFtz|flSat) == 0 && (in.rnd == rndNone || in.rnd == rndRN) {
		switch in.sub {
		case fAdd:
			in.op = opAddF32
		case fSub:
			in.op = opSubF32
		case fMul:
			in.op = opMulF32
		case fFma:
			in.op = opFmaF32
		}
	}
	return nil
}

func (dc *decoder) decSetp(in *inst, s *stmt, m *mods) error {
	t, err := oneType(m)
	if err != nil {
		return err
	}
	cmp := -1
	for w := range m.words {
		if c, err := ptxmath.ParseCmpOp(w); err == nil {
			m.take(w)
			cmp = int(c)
			break
		}
	}
	if cmp < 0 {
		return fmt.Errorf("missing compare operation")
	}
	in.sub = uint8(cmp)
	in.ty, in.mask = t, widthMask(t.w)
	in.op = opSetp
	if t.k == 'f' {
		in.op = opSetpF
		if m.take("ftz") {
			in.flags |= flFtz
		}
	} else if t.k == 's' {
		in.flags |= flSigned
	}
	switch {
	case m.take("and"):
		in.flags |= flBoolAnd
	case m.take("or"):
		in.flags |= flBoolOr
	case m.take("xor"):
		in.flags |= flBoolXor
	}
	comb := in.flags&(flBoolAnd|flBoolOr|flBoolXor) != 0
	if comb {
		err = wantOps(s, 4)
	} else {
		err = wantOps(s, 3)
	}
	if err != nil {
		return err
	}
	d := s.ops[0]
	if in.d, err = dc.dst(operandAST{kind: d.kind, name: d.name}); err != nil {
		return err
	}
	if d.pair != "" {
		if in.d2, err = dc.dst(operandAST{kind: 'r', name: d.pair}); err != nil {
			return err
		}
	}
	if in.a, err = dc.src(s.ops[1], t); err != nil {
		return err
	}
	if in.b, err = dc.src(s.ops[2], t); err != nil {
		return err
	}
	in.c = dc.one
	if comb {
		c := s.ops[3]
		if c.not {
			in.flags |= flPredNot
			c.not = false
		}
		in.c, err = dc.src(c, ptype{'p', 1})
	}
	return err
}

func (dc *decoder) decSelp(in *inst, s *stmt, m *mods) error {
	t, err := oneType(m)
	if err != nil {
		return err
	}
	if err := wantOps(s, 4); err != nil {
		return err
	}
	in.op = opSelp
	in.ty, in.mask = t, widthMask(t.w)
	if in.d, err = dc.dst(s.ops[0]); err != nil {
		return err
	}
	if in.a, err = dc.src(s.ops[1], t); err != nil {
		return err
	}
	if in.b, err = dc.src(s.ops[2], t); err != nil {
		return err
	}
	c := s.ops[3]
	if c.not {
		in.flags |= flPredNot
		c.not = false
	}
	in.c, err = dc.src(c, ptype{'p', 1})
	return err
}

func (dc *decoder) decBits(in *inst, s *stmt, m *mods, base string) error {
	t, err := oneType(m)
	if err != nil {
		return err
	}
	in.ty, in.mask = t, widthMask(t.w)
	if t.k == 's' {
		in.flags |= flSigned
	}
	u32 := ptype{'u', 32}
	switch base {
	case "bfe":
		in.op = opBfe
		if err := wantOps(s, 4); err != nil {
			return err
		}
		if in.d, err = dc.dst(s.ops[0]); err != nil {
			return err
		}
		if in.a, err = dc.src(s.ops[1], t); err != nil {
			return err
		}
		if in.b, err = dc.src(s.ops[2], u32); err != nil {
			return err
		}
		in.c, err = dc.src(s.ops[3], u32)
		return err
	case "bfi":
		in.op = opBfi
		if err := wantOps(s, 5); err != nil {
			return err
		}
		if in.d, err = dc.dst(s.ops[0]); err != nil {
			return err
		}
		if in.a, err = dc.src(s.ops[1], t); err != nil {
			return err
		}
		if in.b, err = dc.src(s.ops[2], t); err != nil {
			return err
		}
		if in.c, err = dc.src(s.ops[3], u32); err != nil {
			return err
		}
		in.e, err = dc.src(s.ops[4], u32)
		return err
	}
	in.op = opPrmt
	for i, w := range []string{"f4e", "b4e", "rc8", "ecl", "ecr", "rc16"} {
		if m.take(w) {
			in.sub = uint8(i + 1)
		}
	}
	if err := wantOps(s, 4); err != nil {
		return err
	}
	if in.d, err = dc.dst(s.ops[0]); err != nil {
		return err
	}
	return dc.srcs(in, s, 1, t)
}

func (dc *decoder) decCvt(in *inst, s *stmt, m *mods) error {
	if len(m.types) != 2 {
		return fmt.Errorf("cvt needs a destination and a source type")
	}
	if err := wantOps(s, 2, 3); err != nil {
		return err
	}
	dt, st := m.types[0], m.types[1]
	in.ty, in.ty2, in.mask = dt, st, widthMask(dt.w)
	in.rnd = m.rnd
	if m.take("ftz") {
		in.flags |= flFtz
	}
	if m.take("sat") {
		in.flags |= flSat
	}
	if m.take("relu") || m.take("satfinite") {
		return fmt.Errorf("cvt .relu/.satfinite not supported")
	}
	var err error
	if in.d, err = dc.dst(s.ops[0]); err != nil {
		return err
	}
	if dt.k == 'H' {
		if st.k != 'f' || st.w != 32 || len(s.ops) != 3 {
			return fmt.Errorf("cvt to .bf16x2 takes two .f32 sources")
		}
		in.op = opCvtBF16x2
		return dc.srcs(in, s, 1, st)
	}
	if len(s.ops) != 2 {
		return fmt.Errorf("expected 2 operands")
	}
	isInt := func(t ptype) bool { return t.k == 'u' || t.k == 's' || t.k == 'b' }
	switch {
	case isInt(dt) && isInt(st):
		in.op = opCvtInt
		if in.flags&flSat != 0 {
			in.op = opCvt
		}
	case (dt.k == 'f' || dt.k == 'h') && (st.k == 'f' || isInt(st)), isInt(dt) && st.k == 'f', dt.k == 'f' && st.k == 'h':
		in.op = opCvt
	default:
		return fmt.Errorf("conversion %c%d <- %c%d not supported", dt.k, dt.w, st.k, st.w)
	}
	in.a, err = dc.src(s.ops[1], st)
	return err
}

func (dc *decoder) decLdSt(in *inst, s *stmt, m *mods, store bool) error {
	t, err := oneType(m)
	if err != nil {
		return err
	}
	for w := range ignoredWords {
		m.take(w)
	}
	nc := m.take("nc")
	if nc && (store || m.space != spGlobal) {
		return fmt.Errorf(".nc is only valid on ld.global")
	}
	in.space = m.space
	in.ty, in.mask = t, widthMask(t.w)
	in.n = 1
	if m.vec != 0 {
		in.n = m.vec
	}
	if t.k == 's' {
		in.flags |= flSigned
	}
	if err := wantOps(s, 2); err != nil {
		return err
	}
	regOp, addrOp := s.ops[0], s.ops[1]
	in.op = opLd
	if store {
		in.op = opSt
		regOp, addrOp = addrOp, regOp
	}
	if in.a, in.off, err = dc.addr(addrOp); err != nil {
		return err
	}
	var regs []operandAST
	if in.n > 1 {
		if regOp.kind != 'v' || len(regOp.elems) != int(in.n) {
			return fmt.Errorf("vector access needs %d registers", in.n)
		}
		regs = regOp.elems
	} else {
		regs = []operandAST{regOp}
	}
	for _, r := range regs {
		var v int32
		if store {
			v, err = dc.src(r, t)
		} else {
			v, err = dc.dst(r)
		}
		if err != nil {
			return err
		}
		in.list = append(in.list, v)
	}
	return nil
}

func (dc *decoder) decAtom(in *inst, s *stmt, m *mods, red bool) error {
	t, err := oneType(m)
	if err != nil {
		return err
	}
	for w := range ignoredWords {
		m.take(w)
	}
	in.sub = 255
	for w, a := range atomNames {
		if m.take(w) {
			in.sub = a
			break
		}
	}
	if in.sub == 255 {
		return fmt.Errorf("missing atomic operation")
	}
	if m.space != spGlobal && m.space != spShared && m.space != spGeneric {
		return fmt.Errorf("atom is only valid on global, shared or generic addresses")
	}
	in.op = opAtom
	in.space = m.space
	in.ty, in.mask = t, widthMask(t.w)
	if t.k == 's' {
		in.flags |= flSigned
	}
	ops := s.ops
	if red {
		ops = append([]operandAST{{kind: '_'}}, ops...)
	}
	want := 3
	if in.sub == atCas {
		want = 4
	}
	if len(ops) != want {
		return fmt.Errorf("expected %d operands", want)
	}
	if in.d, err = dc.dst(ops[0]); err != nil {
		return err
	}
	if in.a, in.off, err = dc.addr(ops[1]); err != nil {
		return err
	}
	if in.b, err = dc.src(ops[2], t); err != nil {
		return err
	}
	if want == 4 {
		in.c, err = dc.src(ops[3], t)
	}
	return err
}

func (dc *decoder) decCvta(in *inst, s *stmt, m *mods) error {
	t, err := oneType(m)
	if err != nil {
		return err
	}
	if t.w != 64 && t.w != 32 {
		return fmt.Errorf("cvta needs .u32 or .u64")
	}
	if m.take("to") {
		in.flags |= flCvtaTo
	}
	if m.space == spGeneric {
		return fmt.Errorf("cvta needs a state space")
	}
	in.op = opCvta
	in.space = m.space
	in.ty, in.mask = t, widthMask(t.w)
	if err := wantOps(s, 2); err != nil {
		return err
	}
	if in.d, err = dc.dst(s.ops[0]); err != nil {
		return err
	}
	in.a, err = dc.src(s.ops[1], t)
	return err
}

func (dc *decoder) decBar(in *inst, s *stmt, m *mods, base string) error {
	if base == "bar" && m.take("warp") {
		if !m.take("sync") {
			return fmt.Errorf("only bar.warp.sync is supported")
		}
		in.op = opWarpSync
		if err := wantOps(s, 1); err != nil {
			return err
		}
		var err error
		in.a, err = dc.src(s.ops[0], ptype{'b', 32})
		return err
	}
	m.take("cta")
	m.take("aligned")
	if !m.take("sync") {
		return fmt.Errorf("only bar.sync / barrier.sync / bar.warp.sync are supported")
	}
	if err := wantOps(s, 1, 2); err != nil {
		return err
	}
	in.op = opBar
	var err error
	if in.a, err = dc.src(s.ops[0], ptype{'u', 32}); err != nil {
		return err
	}
	in.b = -1
	if len(s.ops) == 2 {
		in.b, err = dc.src(s.ops[1], ptype{'u', 32})
	}
	return err
}

func (dc *decoder) decShfl(in *inst, s *stmt, m *mods) error {
	if !m.take("sync") {
		return fmt.Errorf("only shfl.sync is supported")
	}
	t, err := oneType(m)
	if err != nil || t.w != 32 {
		return fmt.Errorf("shfl.sync needs .b32")
	}
	in.sub = 255
	for i, w := range []string{"up", "down", "bfly", "idx"} {
		if m.take(w) {
			in.sub = uint8(i)
		}
	}
	if in.sub == 255 {
		return fmt.Errorf("missing shuffle mode")
	}
	if err := wantOps(s, 5); err != nil {
		return err
	}
	in.op = opShfl
	in.ty, in.mask = t, widthMask(32)
	d := s.ops[0]
	if in.d, err = dc.dst(operandAST{kind: d.kind, name: d.name}); err != nil {
		return err
	}
	if d.pair != "" {
		if in.d2, err = dc.dst(operandAST{kind: 'r', name: d.pair}); err != nil {
			return err
		}
	}
	return dc.srcs(in, s, 1, t)
}

func (dc *decoder) decMma(in *inst, s *stmt, m *mods) error {
	want := []string{"sync", "aligned", "m16n8k16", "row", "col"}
	for _, w := range want {
		if !m.take(w) {
			return fmt.Errorf("only mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 is supported")
		}
	}
	if len(m.types) != 4 || m.types[0] != (ptype{'f', 32}) || m.types[1] != (ptype{'h', 16}) ||
		m.types[2] != (ptype{'h', 16}) || m.types[3] != (ptype{'f', 32}) {
		return fmt.Errorf("only the .f32.bf16.bf16.f32 form is supported")
	}
	if err := wantOps(s, 4); err != nil {
		return err
	}
	sizes := []int{4, 4, 2, 4}
	in.op = opMma
	for i, o := range s.ops {
		if o.kind != 'v' || len(o.elems) != sizes[i] {
			return fmt.Errorf("operand %d must be a vector of %d registers", i, sizes[i])
		}
		for _, e := range o.elems {
			var v int32
			var err error
			if i == 0 {
				v, err = dc.dst(e)
			} else {
				v, err = dc.src(e, ptype{'b', 32})
			}
			if err != nil {
				return err
			}
			in.list = append(in.list, v)
		}
	}
	return nil
}

func (dc *decoder) decCpAsync(in *inst, s *stmt, m *mods) error {
	if !m.take("async") {
		return fmt.Errorf("only cp.async is supported")
	}
	switch {
	case m.take("commit_group"):
		in.op = opCpCommit
		return wantOps(s, 0)
	case m.take("wait_group"):
		in.op = opCpWait
		if err := wantOps(s, 1); err != nil {
			return err
		}
		n, err := literalBits(s.ops[0].num, ptype{'u', 32})
		if s.ops[0].kind != 'n' || err != nil {
			return fmt.Errorf("wait_group needs an immediate count")
		}
		in.off = int64(n)
		return nil
	case m.take("wait_all"):
		in.op = opCpWait
		in.flags |= flWaitAll
		return wantOps(s, 0)
	}
	m.take("ca")
	m.take("cg")
	if m.space != spGlobal || len(m.types) != 0 {
		return fmt.Errorf("cp.async needs .shared.global")
	}
	// the parser sorted ".shared" and ".global" into one space: both must
	// have been written, in that order, for this form
	if err := wantOps(s, 3, 4); err != nil {
		return err
	}
	in.op = opCpAsync
	var err error
	var off2 int64
	if in.a, in.off, err = dc.addr(s.ops[0]); err != nil {
		return err
	}
	if in.b, off2, err = dc.addr(s.ops[1]); err != nil {
		return err
	}
	in.list = []int32{int32(off2)}
	sz, err := literalBits(s.ops[2].num, ptype{'u', 32})
	if s.ops[2].kind != 'n' || err != nil || (sz != 4 && sz != 8 && sz != 16) {
		return fmt.Errorf("cp-size must be 4, 8 or 16")
	}
	in.n = uint8(sz)
	in.c = dc.constSlot(sz)
	if len(s.ops) == 4 {
		in.c, err = dc.src(s.ops[3], ptype{'u', 32})
	}
	return err
}

// vote modes
const (
	voteBallot uint8 = iota
	voteAny
	voteAll
	voteUni
)

func (dc *decoder) decVote(in *inst, s *stmt, m *mods) error {
	if !m.take("sync") {
		return fmt.Errorf("only vote.sync is supported")
	}
	in.sub = 255
	for i, w := range []string{"ballot", "any", "all", "uni"} {
		if m.take(w) {
			in.sub = uint8(i)
		}
	}
	t, err := oneType(m)
	if in.sub == 255 || err != nil || (in.sub == voteBallot) != (t == ptype{'b', 32}) || (in.sub != voteBallot && t.k != 'p') {
		return fmt.Errorf("expected vote.sync.ballot.b32 or vote.sync.{any,all,uni}.pred")
	}
	if err := wantOps(s, 3); err != nil {
		return err
	}
	in.op = opVote
	in.ty, in.mask = t, widthMask(t.w)
	if in.d, err = dc.dst(s.ops[0]); err != nil {
		return err
	}
	p := s.ops[1]
	if p.not {
		in.flags |= flPredNot
		p.not = false
	}
	if in.a, err = dc.src(p, ptype{'p', 1}); err != nil {
		return err
	}
	in.e, err = dc.src(s.ops[2], ptype{'b', 32})
	return err
}

func (dc *decoder) decRedux(in *inst, s *stmt, m *mods) error {
	if !m.take("sync") {
		return fmt.Errorf("only redux.sync is supported")
	}
	in.sub = 255
	for _, w := range []string{"add", "min", "max", "and", "or", "xor"} {
		if m.take(w) {
			in.sub = atomNames[w]
		}
	}
	t, err := oneType(m)
	if in.sub == 255 || err != nil || t.w != 32 || t.k == 'f' {
		return fmt.Errorf("expected redux.sync.{add,min,max,and,or,xor} on a 32-bit integer type")
	}
	if err := wantOps(s, 3); err != nil {
		return err
	}
	in.op = opRedux
	in.ty, in.mask = t, widthMask(32)
	if t.k == 's' {
		in.flags |= flSigned
	}
	if in.d, err = dc.dst(s.ops[0]); err != nil {
		return err
	}
	if in.a, err = dc.src(s.ops[1], t); err != nil {
		return err
	}
	in.e, err = dc.src(s.ops[2], ptype{'b', 32})
	return err
}
