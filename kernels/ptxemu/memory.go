package ptxemu

import "fmt"

// where resolves a state-space address. Generic addresses are classified
// by the window they fall in, as the hardware's generic-to-space mapping
// does.
func classify(space uint8, addr uint64) (uint8, uint64) {
	if space != spGeneric {
		return space, addr
	}
	switch {
	case addr >= sharedWindow && addr < sharedWindow+windowSize:
		return spShared, addr - sharedWindow
	case addr >= localWindow && addr < localWindow+windowSize:
		return spLocal, addr - localWindow
	}
	return spGlobal, addr
}

var spaceNames = [...]string{"generic", "global", "shared", "local", "param", "const"}

func (b *block) threadName(lin int32) string {
	x, y := b.bdim[0], b.bdim[1]
	l := uint32(lin)
	return fmt.Sprintf("(%d,%d,%d)", l%x, l/x%y, l/(x*y))
}

// globalSpan checks a global access and returns its allocation and offset.
func (b *block) globalSpan(t *thread, in *inst, addr uint64, n int, what string) (*allocation, uint64, error) {
	a := b.d.find(addr, uint64(n))
	if a == nil {
		return nil, 0, b.fault(t, in, OutOfBounds, "%s of %d bytes at global address %#x: %s", what, n, addr, b.d.describeAddr(addr))
	}
	return a, addr - a.base, nil
}

// describeAddr names the allocation nearest to an out-of-bounds address.
func (d *Device) describeAddr(addr uint64) string {
	var best *allocation
	for _, a := range d.allocs {
		if a.base <= addr {
			best = a
		}
	}
	if best == nil {
		return "below every allocation"
	}
	end := best.base + uint64(len(best.data))
	if addr >= end {
		return fmt.Sprintf("%d bytes past the end of the %d-byte allocation at %#x", addr-end, len(best.data), best.base)
	}
	return fmt.Sprintf("straddles the end of the %d-byte allocation at %#x", len(best.data), best.base)
}

// readMem reads len(buf) bytes, running every checker on the way.
func (b *block) readMem(t *thread, in *inst, space uint8, addr uint64, buf []byte) error {
	n := len(buf)
	space, addr = classify(space, addr)
	switch space {
	case spGlobal, spConst:
		a, off, err := b.globalSpan(t, in, addr, n, "read")
		if err != nil {
			return err
		}
		for i := off; i < off+uint64(n); i++ {
			if a.init[i] == 0 {
				return b.fault(t, in, UninitializedRead, "read of %d bytes at global address %#x (offset %d of the %d-byte allocation at %#x): byte %d was never written",
					n, addr, off, len(a.data), a.base, i-off)
			}
		}
		copy(buf, a.data[off:])
	case spShared:
		if addr+uint64(n) > uint64(len(b.shared)) || addr+uint64(n) < addr {
			return b.fault(t, in, OutOfBounds, "read of %d bytes at shared offset %d: the block has %d bytes of shared memory", n, int64(addr), len(b.shared))
		}
		if err := b.checkSharedRead(t, in, uint32(addr), n); err != nil {
			return err
		}
		copy(buf, b.shared[addr:])
	case spLocal:
		if addr+uint64(n) > uint64(len(t.local)) || addr+uint64(n) < addr {
			return b.fault(t, in, OutOfBounds, "read of %d bytes at local offset %d: the thread has %d bytes of local memory", n, int64(addr), len(t.local))
		}
		copy(buf, t.local[addr:])
	case spParam:
		if addr+uint64(n) > uint64(len(b.params)) {
			return b.fault(t, in, OutOfBounds, "read of %d bytes at param offset %d: the parameters take %d bytes", n, addr, len(b.params))
		}
		copy(buf, b.params[addr:])
	}
	return nil
}

// writeMem writes buf, running every checker on the way.
func (b *block) writeMem(t *thread, in *inst, space uint8, addr uint64, buf []byte) error {
	n := len(buf)
	space, addr = classify(space, addr)
	switch space {
	case spGlobal:
		a, off, err := b.globalSpan(t, in, addr, n, "write")
		if err != nil {
			return err
		}
		copy(a.data[off:], buf)
		fill(a.init[off:off+uint64(n)], 1)
	case spShared:
		if addr+uint64(n) > uint64(len(b.shared)) || addr+uint64(n) < addr {
			return b.fault(t, in, OutOfBounds, "write of %d bytes at shared offset %d: the block has %d bytes of shared memory", n, int64(addr), len(b.shared))
		}
		return b.sharedWrite(t, in, uint32(addr), buf)
	case spLocal:
		if addr+uint64(n) > uint64(len(t.local)) || addr+uint64(n) < addr {
			return b.fault(t, in, OutOfBounds, "write of %d bytes at local offset %d: the thread has %d bytes of local memory", n, int64(addr), len(t.local))
		}
		copy(t.local[addr:], buf)
	default:
		return b.fault(t, in, InvalidInstruction, "store to the read-only %s space", spaceNames[space])
	}
	return nil
}

// checkSharedRead is racecheck for reads: the byte must be written, not
// the target of an in-flight cp.async, and not written by another thread
// since the last barrier.
func (b *block) checkSharedRead(t *thread, in *inst, off uint32, n int) error {
	me := t.lin + 1
	for i := off; i < off+uint32(n); i++ {
		s := &b.sh[i]
		if s.pend > 0 {
			return b.fault(t, in, SharedRace, "read of shared offset %d while a cp.async copy into it is still in flight (missing cp.async.wait_group/wait_all before the read)", i)
		}
		if !s.init && b.uninit == nil {
			// Reported at the next barrier unless another thread writes
			// the byte first: then it is a race (the read came too early).
			b.uninit = b.fault(t, in, UninitializedRead, "read of shared offset %d, which no thread of the block had written (and none wrote before the next barrier)", i)
		}
		if s.we == b.epoch && s.w != me && !b.warpOrdered(t, s.w, s.wwe) {
			return b.fault(t, in, SharedRace, "read of shared offset %d written by thread %s with no bar.sync in between (read-after-write hazard)", i, b.threadName(s.w-1))
		}
		if s.re != b.epoch || s.r == me || (s.r > 0 && b.warpOrdered(t, s.r, s.rwe)) {
			s.r, s.re, s.rwe = me, b.epoch, b.wepoch[t.lin/32]
		} else {
			s.r = -1
		}
	}
	return nil
}

// warpOrdered reports whether an access by thread other (linear id + 1),
// made when its warp's warp-sync epoch was epoch, is ordered before t's by a
// bar.warp.sync both took part in: same warp, and a __syncwarp since.
func (b *block) warpOrdered(t *thread, other int32, epoch uint32) bool {
	w := t.lin / 32
	return (other-1)/32 == w && b.wepoch[w] != epoch
}

// sharedWrite is racecheck for writes: writing a byte that another thread
// wrote or read since the last barrier is a hazard when the value changes
// (a store of the value already there cannot change what anyone read).
func (b *block) sharedWrite(t *thread, in *inst, off uint32, buf []byte) error {
	me := t.lin + 1
	for j, v := range buf {
		i := off + uint32(j)
		s := &b.sh[i]
		if s.pend > 0 {
			return b.fault(t, in, SharedRace, "write to shared offset %d while a cp.async copy into it is still in flight", i)
		}
		changed := !s.init || b.shared[i] != v
		if changed && s.we == b.epoch && s.w != me && s.w != 0 && !b.warpOrdered(t, s.w, s.wwe) {
			return b.fault(t, in, SharedRace, "write to shared offset %d, which thread %s wrote with no bar.sync in between (write-after-write hazard)", i, b.threadName(s.w-1))
		}
		if changed && s.re == b.epoch && s.r != me && s.r != 0 && !(s.r > 0 && b.warpOrdered(t, s.r, s.rwe)) {
			who := "other threads"
			if s.r > 0 {
				who = "thread " + b.threadName(s.r-1)
			}
			return b.fault(t, in, SharedRace, "write to shared offset %d, which %s read with no bar.sync in between (write-after-read hazard)", i, who)
		}
		b.shared[i] = v
		s.w, s.we, s.wwe, s.init = me, b.epoch, b.wepoch[t.lin/32], true
	}
	return nil
}

func (b *block) checkAlign(t *thread, in *inst, addr uint64, n int, what string) error {
	if addr%uint64(n) != 0 {
		return b.fault(t, in, Misaligned, "%s of %d bytes at %s address %#x is not %d-byte aligned", what, n, spaceNames[in.space], addr, n)
	}
	return nil
}

func (b *block) load(t *thread, in *inst) error {
	r := t.regs
	size := int(in.ty.w / 8)
	n := size * int(in.n)
	addr := r[in.a] + uint64(in.off)
	if err := b.checkAlign(t, in, addr, n, "load"); err != nil {
		return err
	}
	var buf [32]byte
	if err := b.readMem(t, in, in.space, addr, buf[:n]); err != nil {
		return err
	}
	for i, d := range in.list {
		v := getLE(buf[i*size:], size)
		if in.flags&flSigned != 0 {
			v = uint64(sext(v, in.ty.w))
		}
		r[d] = v
	}
	return nil
}

func (b *block) store(t *thread, in *inst) error {
	r := t.regs
	size := int(in.ty.w / 8)
	n := size * int(in.n)
	addr := r[in.a] + uint64(in.off)
	if err := b.checkAlign(t, in, addr, n, "store"); err != nil {
		return err
	}
	var buf [32]byte
	for i, s := range in.list {
		putLE(buf[i*size:], r[s], size)
	}
	return b.writeMem(t, in, in.space, addr, buf[:n])
}

// atom performs a read-modify-write. Blocks run one at a time and a block's
// threads never interleave inside one instruction, so it is atomic.
func (b *block) atom(t *thread, in *inst) error {
	r := t.regs
	size := int(in.ty.w / 8)
	addr := r[in.a] + uint64(in.off)
	if err := b.checkAlign(t, in, addr, size, "atomic"); err != nil {
		return err
	}
	space, saddr := classify(in.space, addr)
	var buf [8]byte
	var old uint64
	switch space {
	case spGlobal:
		a, off, err := b.globalSpan(t, in, saddr, size, "atomic")
		if err != nil {
			return err
		}
		if err := b.readMem(t, in, spGlobal, saddr, buf[:size]); err != nil {
			return err
		}
		old = getLE(buf[:], size)
		nv := atomApply(in, old, r[in.b], r[in.c])
		putLE(a.data[off:], nv, size)
	case spShared:
		if saddr+uint64(size) > uint64(len(b.shared)) {
			return b.fault(t, in, OutOfBounds, "atomic on %d bytes at shared offset %d: the block has %d bytes of shared memory", size, saddr, len(b.shared))
		}
		for i := saddr; i < saddr+uint64(size); i++ {
			s := &b.sh[i]
			if s.pend > 0 {
				return b.fault(t, in, SharedRace, "atomic on shared offset %d while a cp.async copy into it is in flight", i)
			}
			if !s.init {
				return b.fault(t, in, UninitializedRead, "atomic on shared offset %d, which no thread has written", i)
			}
		}
		old = getLE(b.shared[saddr:], size)
		nv := atomApply(in, old, r[in.b], r[in.c])
		putLE(b.shared[saddr:], nv, size)
		// Atomics do not race with each other; a plain access by another
		// thread in the same barrier interval still races with them.
		for i := saddr; i < saddr+uint64(size); i++ {
			b.sh[i].w, b.sh[i].we, b.sh[i].wwe = t.lin+1, b.epoch, b.wepoch[t.lin/32]
		}
	default:
		return b.fault(t, in, InvalidInstruction, "atomic on %s memory", spaceNames[space])
	}
	r[in.d] = old
	return nil
}

func (b *block) cpAsync(t *thread, in *inst) error {
	r := t.regs
	size := int(in.n)
	dst := (r[in.a] + uint64(in.off)) & 0xffffffff
	src := r[in.b] + uint64(in.list[0])
	srcSize := int(r[in.c] & 0xffffffff)
	if srcSize > size {
		return b.fault(t, in, InvalidInstruction, "cp.async src-size %d exceeds cp-size %d", srcSize, size)
	}
	if dst%uint64(size) != 0 || src%uint64(size) != 0 {
		return b.fault(t, in, Misaligned, "cp.async of %d bytes from global %#x to shared offset %d: both must be %d-byte aligned", size, src, dst, size)
	}
	if dst+uint64(size) > uint64(len(b.shared)) {
		return b.fault(t, in, OutOfBounds, "cp.async of %d bytes to shared offset %d: the block has %d bytes of shared memory", size, dst, len(b.shared))
	}
	c := asyncCopy{dst: uint32(dst), n: uint8(size), group: t.group}
	if srcSize > 0 {
		if err := b.readMem(t, in, spGlobal, src, c.data[:srcSize]); err != nil {
			return err
		}
	}
	for i := dst; i < dst+uint64(size); i++ {
		b.sh[i].pend++
	}
	t.copies = append(t.copies, c)
	return nil
}

// land completes the thread's cp.async copies of groups before upTo: only
// now do their bytes appear in shared memory.
func (b *block) land(t *thread, upTo int) {
	kept := t.copies[:0]
	for _, c := range t.copies {
		if c.group >= upTo {
			kept = append(kept, c)
			continue
		}
		for i := range int(c.n) {
			s := &b.sh[c.dst+uint32(i)]
			s.pend--
			b.shared[c.dst+uint32(i)] = c.data[i]
			s.w, s.we, s.wwe, s.init = t.lin+1, b.epoch, b.wepoch[t.lin/32], true
		}
	}
	t.copies = kept
}

func (b *block) landAll(t *thread) { b.land(t, int(^uint(0)>>1)) }
