package ptxemu

import (
	"fmt"
	"math"

	"purpcode/kernels/ptxemu/ptxmath"
)

// Stats describe one launch.
type Stats struct {
	// Instructions executed, summed over threads (predicated-off ones
	// included: they occupy an issue slot on hardware too).
	Instructions uint64
	Threads      uint64
	Blocks       uint64
	// Barriers is the number of bar.sync completions, summed over blocks.
	Barriers uint64
}

// thread states
const (
	stRun uint8 = iota
	stBar
	stWarp
	stExit
)

type asyncCopy struct {
	dst   uint32   // shared offset
	n     uint8    // bytes (4, 8 or 16)
	data  [16]byte // captured source bytes (zero-filled past src-size)
	group int      // commit group it belongs to
}

type thread struct {
	regs   []uint64
	pc     int32
	state  uint8
	lin    int32 // linear thread index in the block
	tid    [3]uint32
	steps  uint64
	local  []byte
	copies []asyncCopy
	group  int // index of the open (uncommitted) cp.async group
}

// shadow is the racecheck state of one shared-memory byte.
type shadow struct {
	w, r     int32  // last writer / reader (linear tid + 1; -1: several readers)
	we, re   uint32 // barrier epoch of that write / read
	wwe, rwe uint32 // warp-sync epoch of the writer's / reader's warp then
	pend     uint16 // cp.async copies in flight into this byte
	init     bool
}

type block struct {
	d       *Device
	k       *Kernel
	ctaid   [3]uint32
	grid    [3]uint32
	bdim    [3]uint32
	threads []thread
	shared  []byte
	sh      []shadow
	epoch   uint32
	params  []byte
	uninit  *Fault   // first read of never-written shared memory, pending
	wepoch  []uint32 // per warp: completed bar.warp.sync count
	stats   *Stats
}

// Launch runs kernel k over grid x block threads with dynShared bytes of
// dynamic shared memory. params[i] are the little-endian bytes of the
// entry's i-th parameter. The first fault any checker finds ends the launch
// and is returned as a *Fault.
func (d *Device) Launch(k *Kernel, grid, blk [3]uint32, dynShared uint32, params [][]byte) (st Stats, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() {
		// An interpreter bug must not take the test binary down with it.
		if p := recover(); p != nil {
			err = fmt.Errorf("ptxemu: internal error running kernel %s: %v", k.name, p)
		}
	}()
	bad := func(format string, a ...any) (Stats, error) {
		return st, &Fault{Kind: BadLaunch, Kernel: k.name, Detail: fmt.Sprintf(format, a...)}
	}
	if len(params) != len(k.params) {
		return bad("%d arguments for %d parameters", len(params), len(k.params))
	}
	pbuf := make([]byte, k.paramSize)
	for i, p := range params {
		if len(p) != k.params[i].Size {
			return bad("argument %d (%s) has %d bytes, the parameter %d", i, k.params[i].Name, len(p), k.params[i].Size)
		}
		copy(pbuf[k.paramOff[i]:], p)
	}
	nthreads := uint64(blk[0]) * uint64(blk[1]) * uint64(blk[2])
	if nthreads == 0 || nthreads > 1024 || blk[2] > 64 {
		return bad("block %v: 1 to 1024 threads (z at most 64) required", blk)
	}
	if limit := product(k.maxntid); limit > 0 && nthreads > limit {
		return bad("block %v has %d threads; the kernel's .maxntid (launch bounds) allows %d", blk, nthreads, limit)
	}
	if len(k.reqntid) > 0 {
		for i, n := range k.reqntid {
			if i < 3 && uint32(n) != blk[i] {
				return bad("block %v differs from the kernel's .reqntid %v", blk, k.reqntid)
			}
		}
	}
	if grid[0] == 0 || grid[1] == 0 || grid[2] == 0 || grid[1] > 65535 || grid[2] > 65535 || grid[0] > 1<<31-1 {
		return bad("grid %v out of range", grid)
	}
	const maxShared = 227 * 1024
	shTotal := uint64(k.shDynOff) + uint64(dynShared)
	if dynShared == 0 {
		shTotal = uint64(k.shStatic)
	}
	if shTotal > maxShared {
		return bad("%d bytes of shared memory (static %d + dynamic %d) exceed %d", shTotal, k.shStatic, dynShared, maxShared)
	}
	b := &block{d: d, k: k, grid: grid, bdim: blk, params: pbuf, stats: &st}
	b.threads = make([]thread, nthreads)
	for i := range b.threads {
		b.threads[i].regs = make([]uint64, len(k.regInit))
		if k.localSize > 0 {
			b.threads[i].local = make([]byte, k.localSize)
		}
	}
	b.wepoch = make([]uint32, (nthreads+31)/32)
	b.shared = make([]byte, shTotal)
	b.sh = make([]shadow, shTotal)
	for z := uint32(0); z < grid[2]; z++ {
		for y := uint32(0); y < grid[1]; y++ {
			for x := uint32(0); x < grid[0]; x++ {
				b.ctaid = [3]uint32{x, y, z}
				if err := b.run(); err != nil {
					return st, err
				}
				st.Blocks++
			}
		}
	}
	st.Threads = st.Blocks * nthreads
	return st, nil
}

func product(dims []int) uint64 {
	if len(dims) == 0 {
		return 0
	}
	p := uint64(1)
	for _, d := range dims {
		p *= uint64(d)
	}
	return p
}

func (b *block) reset() {
	clear(b.shared)
	clear(b.sh)
	b.epoch = 1
	b.uninit = nil
	clear(b.wepoch)
	k := b.k
	n := len(b.threads)
	for i := range b.threads {
		t := &b.threads[i]
		copy(t.regs, k.regInit)
		t.pc, t.state, t.steps, t.copies, t.group = 0, stRun, 0, t.copies[:0], 0
		t.lin = int32(i)
		t.tid = [3]uint32{uint32(i) % b.bdim[0], uint32(i) / b.bdim[0] % b.bdim[1], uint32(i) / (b.bdim[0] * b.bdim[1])}
		if t.local != nil {
			clear(t.local)
		}
		lane := uint32(i) % 32
		for _, s := range k.special {
			var v uint64
			switch s.kind {
			case srTidX, srTidY, srTidZ:
				v = uint64(t.tid[s.kind-srTidX])
			case srNtidX, srNtidY, srNtidZ:
				v = uint64(b.bdim[s.kind-srNtidX])
			case srCtaidX, srCtaidY, srCtaidZ:
				v = uint64(b.ctaid[s.kind-srCtaidX])
			case srNctaidX, srNctaidY, srNctaidZ:
				v = uint64(b.grid[s.kind-srNctaidX])
			case srLaneid:
				v = uint64(lane)
			case srWarpid:
				v = uint64(i / 32)
			case srNwarpid:
				v = uint64((n + 31) / 32)
			case srLanemaskEq:
				v = 1 << lane
			case srLanemaskLt:
				v = 1<<lane - 1
			case srLanemaskLe:
				v = 1<<(lane+1) - 1
			case srLanemaskGt:
				v = uint64(^uint32(1<<(lane+1) - 1))
			case srLanemaskGe:
				v = uint64(^uint32(1<<lane - 1))
			}
			t.regs[s.slot] = v
		}
	}
}

// run executes one block: every thread runs until it exits or stops at a
// collective; then the collectives whose participants have all arrived
// complete, and the threads they release run again.
func (b *block) run() error {
	b.reset()
	for {
		for i := range b.threads {
			t := &b.threads[i]
			if t.state == stRun {
				if err := b.exec(t); err != nil {
					return err
				}
			}
		}
		progressed, err := b.resolveWarps()
		if err != nil {
			return err
		}
		if progressed {
			continue
		}
		done, err := b.resolveBarrier()
		if err != nil || done {
			return err
		}
	}
}

func (b *block) fault(t *thread, in *inst, kind FaultKind, format string, a ...any) *Fault {
	f := &Fault{Kind: kind, Kernel: b.k.name, Block: b.ctaid, Detail: fmt.Sprintf(format, a...)}
	if t != nil {
		f.Thread = t.tid
	}
	if in != nil {
		f.Line = int(in.line)
	}
	return f
}

// exec runs thread t until it exits, reaches a collective or faults.
func (b *block) exec(t *thread) error {
	code := b.k.code
	r := t.regs
	pc := t.pc
	limit := b.d.opts.MaxSteps
	steps := t.steps
	defer func() {
		b.stats.Instructions += steps - t.steps
		t.steps = steps
	}()
	for {
		in := &code[pc]
		steps++
		if steps > limit {
			t.pc = pc
			return b.fault(t, in, StepLimit, "thread executed more than %d instructions", limit)
		}
		if r[in.g]^in.gx == 0 {
			pc++
			continue
		}
		switch in.op {
		case opNop:
		case opMov:
			r[in.d] = r[in.a] & in.mask
		case opAdd:
			r[in.d] = (r[in.a] + r[in.b]) & in.mask
		case opSub:
			r[in.d] = (r[in.a] - r[in.b]) & in.mask
		case opMulLo:
			r[in.d] = (r[in.a] * r[in.b]) & in.mask
		case opMadLo:
			r[in.d] = (r[in.a]*r[in.b] + r[in.c]) & in.mask
		case opMulWide, opMadWide:
			var p uint64
			if in.flags&flSigned != 0 {
				p = uint64(sext(r[in.a], in.ty.w) * sext(r[in.b], in.ty.w))
			} else {
				p = (r[in.a] & in.mask) * (r[in.b] & in.mask)
			}
			if in.op == opMadWide {
				p += r[in.c]
			}
			r[in.d] = p & widthMask(in.ty.w*2)
		case opAnd:
			r[in.d] = r[in.a] & r[in.b] & in.mask
		case opOr:
			r[in.d] = (r[in.a] | r[in.b]) & in.mask
		case opXor:
			r[in.d] = (r[in.a] ^ r[in.b]) & in.mask
		case opNot:
			r[in.d] = ^r[in.a] & in.mask
		case opCnot:
			r[in.d] = b2u(r[in.a]&in.mask == 0)
		case opShl:
			s := r[in.b] & 0xffffffff
			if s >= uint64(in.ty.w) {
				r[in.d] = 0
			} else {
				r[in.d] = (r[in.a] << s) & in.mask
			}
		case opShr:
			s := r[in.b] & 0xffffffff
			if s >= uint64(in.ty.w) {
				s = uint64(in.ty.w) - 1
				if in.flags&flSigned == 0 {
					r[in.d] = 0
					break
				}
			}
			if in.flags&flSigned != 0 {
				r[in.d] = uint64(sext(r[in.a], in.ty.w)>>s) & in.mask
			} else {
				r[in.d] = (r[in.a] & in.mask) >> s
			}
		case opAddF32:
			r[in.d] = canon32(f32(r[in.a]) + f32(r[in.b]))
		case opSubF32:
			r[in.d] = canon32(f32(r[in.a]) - f32(r[in.b]))
		case opMulF32:
			r[in.d] = canon32(f32(r[in.a]) * f32(r[in.b]))
		case opFmaF32:
			r[in.d] = fmaF32(f32(r[in.a]), f32(r[in.b]), f32(r[in.c]))
		case opFloat:
			r[in.d] = floatOp(in, r[in.a], r[in.b], r[in.c])
		case opSetp, opSetpF:
			var p bool
			if in.op == opSetp {
				p = intCompare(in, r[in.a], r[in.b])
			} else {
				p = floatCompare(in, r[in.a], r[in.b])
			}
			c := r[in.c] != 0
			if in.flags&flPredNot != 0 {
				c = !c
			}
			q := !p
			switch {
			case in.flags&flBoolAnd != 0:
				p, q = p && c, q && c
			case in.flags&flBoolOr != 0:
				p, q = p || c, q || c
			case in.flags&flBoolXor != 0:
				p, q = p != c, q != c
			}
			r[in.d] = b2u(p)
			if in.d2 != 0 {
				r[in.d2] = b2u(q)
			}
		case opSelp:
			c := r[in.c] != 0
			if in.flags&flPredNot != 0 {
				c = !c
			}
			if c {
				r[in.d] = r[in.a] & in.mask
			} else {
				r[in.d] = r[in.b] & in.mask
			}
		case opCvtInt:
			v := r[in.a] & widthMask(in.ty2.w)
			if in.ty2.k == 's' {
				v = uint64(sext(v, in.ty2.w))
			}
			r[in.d] = v & in.mask
		case opCvt:
			r[in.d] = cvtOp(in, r[in.a])
		case opCvtBF16x2:
			r[in.d] = uint64(f32ToBF16(f32(r[in.a])))<<16 | uint64(f32ToBF16(f32(r[in.b])))
		case opBra:
			pc = int32(in.off)
			continue
		case opExit:
			t.pc = pc
			b.landAll(t)
			t.state = stExit
			return nil
		case opLd:
			if err := b.load(t, in); err != nil {
				t.pc = pc
				return err
			}
		case opSt:
			if err := b.store(t, in); err != nil {
				t.pc = pc
				return err
			}
		case opAtom:
			if err := b.atom(t, in); err != nil {
				t.pc = pc
				return err
			}
		case opCvta:
			r[in.d] = cvta(in, r[in.a])
		case opCpAsync:
			if err := b.cpAsync(t, in); err != nil {
				t.pc = pc
				return err
			}
		case opCpCommit:
			t.group++
		case opCpWait:
			keep := int(in.off)
			if in.flags&flWaitAll != 0 {
				t.group++
				keep = 0
			}
			b.land(t, t.group-keep)
		case opBar:
			t.pc = pc
			t.state = stBar
			return nil
		case opShfl, opMma, opWarpSync, opVote, opRedux:
			t.pc = pc
			t.state = stWarp
			return nil
		case opPack:
			var v uint64
			w := in.ty.w / uint8(len(in.list))
			for i, s := range in.list {
				v |= (r[s] & widthMask(w)) << (uint(w) * uint(i))
			}
			r[in.d] = v & in.mask
		case opUnpack:
			v := r[in.a]
			w := in.ty.w / uint8(len(in.list))
			for i, s := range in.list {
				r[s] = (v >> (uint(w) * uint(i))) & widthMask(w)
			}
		default:
			if err := b.execRare(t, in); err != nil {
				t.pc = pc
				return err
			}
		}
		pc++
	}
}

// execRare handles the integer and bit operations that hot loops do not use.
func (b *block) execRare(t *thread, in *inst) error {
	r := t.regs
	a, c := r[in.a]&in.mask, r[in.b]&in.mask
	w := uint(in.ty.w)
	signed := in.flags&flSigned != 0
	switch in.op {
	case opDiv, opRem:
		var v uint64
		var ok bool
		if in.op == opDiv {
			v, ok = ptxmath.Div(a, c, w, signed)
		} else {
			v, ok = ptxmath.Rem(a, c, w, signed)
		}
		if !ok {
			return b.fault(t, in, InvalidInstruction, "integer division by zero (the ISA leaves the result unspecified)")
		}
		r[in.d] = v
	case opMin, opMax:
		less := a < c
		if signed {
			less = sext(a, in.ty.w) < sext(c, in.ty.w)
		}
		if less == (in.op == opMin) {
			r[in.d] = a
		} else {
			r[in.d] = c
		}
	case opAbs:
		x := sext(a, in.ty.w)
		if x < 0 {
			x = -x
		}
		r[in.d] = uint64(x) & in.mask
	case opNeg:
		r[in.d] = -a & in.mask
	case opPopc:
		r[in.d] = uint64(ptxmath.Popc(a, w))
	case opClz:
		r[in.d] = uint64(ptxmath.Clz(a, w))
	case opBrev:
		r[in.d] = ptxmath.Brev(a, w)
	case opBfe:
		r[in.d] = ptxmath.Bfe(a, uint32(r[in.b]), uint32(r[in.c]), w, signed)
	case opBfi:
		r[in.d] = ptxmath.Bfi(a, c, uint32(r[in.c]), uint32(r[in.e]), w)
	case opPrmt:
		r[in.d] = uint64(ptxmath.Prmt(uint32(a), uint32(c), uint32(r[in.c]), ptxmath.PrmtMode(in.sub)))
	case opMulHi, opMadHi:
		if in.op == opMulHi {
			r[in.d] = ptxmath.MulHi(a, c, w, signed)
		} else {
			r[in.d] = ptxmath.MadHi(a, c, r[in.c], w, signed)
		}
	default:
		return b.fault(t, in, InvalidInstruction, "internal: opcode %d has no executor", in.op)
	}
	return nil
}

func b2u(p bool) uint64 {
	if p {
		return 1
	}
	return 0
}

func f32(v uint64) float32 { return math.Float32frombits(uint32(v)) }

func cvta(in *inst, v uint64) uint64 {
	var win uint64
	switch in.space {
	case spShared:
		win = sharedWindow
	case spLocal:
		win = localWindow
	default:
		return v & in.mask
	}
	if in.flags&flCvtaTo != 0 {
		return (v - win) & in.mask
	}
	return (v + win) & in.mask
}
