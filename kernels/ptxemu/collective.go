package ptxemu

import (
	"fmt"
	"math"
)

// memberMask returns the membermask operand of a warp collective.
func memberMask(t *thread, in *inst) uint32 {
	if in.op == opWarpSync {
		return uint32(t.regs[in.a])
	}
	return uint32(t.regs[in.e])
}

// resolveWarps completes every warp collective whose participants have all
// arrived. It reports whether any completed.
func (b *block) resolveWarps() (bool, error) {
	code := b.k.code
	progressed := false
	for w := 0; w*32 < len(b.threads); w++ {
		lanes := b.threads[w*32 : min(len(b.threads), w*32+32)]
		for li := range lanes {
			t := &lanes[li]
			if t.state != stWarp {
				continue
			}
			in := &code[t.pc]
			var ok bool
			var err error
			if in.op == opMma {
				ok, err = b.tryMma(lanes, t, in)
			} else {
				ok, err = b.tryMasked(lanes, li, t, in)
			}
			if err != nil {
				return false, err
			}
			progressed = progressed || ok
		}
	}
	return progressed, nil
}

func (b *block) tryMasked(lanes []thread, li int, t *thread, in *inst) (bool, error) {
	code := b.k.code
	mask := memberMask(t, in)
	if mask&(1<<li) == 0 {
		return false, b.fault(t, in, InactiveLane, "lane %d executes %s with membermask %#08x, which does not include it", li, opName(in.op), mask)
	}
	for j := 0; j < 32; j++ {
		if mask&(1<<j) == 0 {
			continue
		}
		if j >= len(lanes) {
			return false, b.fault(t, in, InactiveLane, "membermask %#08x names lane %d, which does not exist (the last warp has %d threads)", mask, j, len(lanes))
		}
		u := &lanes[j]
		if u.state == stExit {
			return false, b.fault(t, in, InactiveLane, "membermask %#08x names lane %d, which has exited", mask, j)
		}
		if u.state != stWarp || code[u.pc].op != in.op || memberMask(u, &code[u.pc]) != mask {
			return false, nil // not arrived (yet): decided when nothing else can run
		}
	}
	switch in.op {
	case opShfl:
		if err := b.shuffle(lanes, mask); err != nil {
			return false, err
		}
	case opVote, opRedux:
		b.voteRedux(lanes, mask)
	case opWarpSync:
		// bar.warp.sync orders the lanes' memory accesses; racecheck
		// counts it per warp, so with a partial mask the lanes outside it
		// are treated as synchronised too (a race among them is missed).
		b.wepoch[t.lin/32]++
	}
	for j := range lanes {
		if mask&(1<<j) != 0 {
			lanes[j].pc++
			lanes[j].state = stRun
		}
	}
	return true, nil
}

// shuffle performs shfl.sync for the lanes of mask, each with the operands
// of the instruction it stopped at.
func (b *block) shuffle(lanes []thread, mask uint32) error {
	code := b.k.code
	var vals [32]uint64
	var preds [32]bool
	for i := range lanes {
		if mask&(1<<i) == 0 {
			continue
		}
		t := &lanes[i]
		in := &code[t.pc]
		j, ok := shflSource(in.sub, i, uint32(t.regs[in.b]), uint32(t.regs[in.c]))
		if mask&(1<<j) == 0 {
			return b.fault(t, in, InactiveLane, "lane %d reads lane %d, which is not in membermask %#08x", i, j, mask)
		}
		u := &lanes[j]
		vals[i] = u.regs[code[u.pc].a] & 0xffffffff
		preds[i] = ok
	}
	for i := range lanes {
		if mask&(1<<i) == 0 {
			continue
		}
		t := &lanes[i]
		in := &code[t.pc]
		t.regs[in.d] = vals[i]
		if in.d2 != 0 {
			t.regs[in.d2] = b2u(preds[i])
		}
	}
	return nil
}

// voteRedux performs vote.sync or redux.sync over the lanes of mask.
func (b *block) voteRedux(lanes []thread, mask uint32) {
	code := b.k.code
	var ballot uint32
	var acc uint64
	first := true
	for i := range lanes {
		if mask&(1<<i) == 0 {
			continue
		}
		t := &lanes[i]
		in := &code[t.pc]
		v := t.regs[in.a]
		if in.op == opVote {
			p := v != 0
			if in.flags&flPredNot != 0 {
				p = !p
			}
			if p {
				ballot |= 1 << i
			}
			continue
		}
		v &= in.mask
		if first {
			acc, first = v, false
		} else {
			acc = atomApply(in, acc, v, 0)
		}
	}
	for i := range lanes {
		if mask&(1<<i) == 0 {
			continue
		}
		t := &lanes[i]
		in := &code[t.pc]
		if in.op == opRedux {
			t.regs[in.d] = acc
			continue
		}
		switch in.sub {
		case voteBallot:
			t.regs[in.d] = uint64(ballot)
		case voteAny:
			t.regs[in.d] = b2u(ballot != 0)
		case voteAll:
			t.regs[in.d] = b2u(ballot == mask)
		case voteUni:
			t.regs[in.d] = b2u(ballot == 0 || ballot == mask)
		}
	}
}

// shflSource is the ISA's source-lane computation: b is the lane/offset
// operand, c packs the clamp (bits 0-4) and segment mask (bits 8-12). It
// returns the source lane and whether it was in range (the predicate).
func shflSource(mode uint8, lane int, bv, cv uint32) (int, bool) {
	bval := int(bv & 31)
	cval := int(cv & 31)
	seg := int((cv >> 8) & 31)
	maxLane := (lane & seg) | (cval &^ seg)
	minLane := lane & seg
	var j int
	var ok bool
	switch mode {
	case shUp:
		j = lane - bval
		ok = j >= maxLane
	case shDown:
		j = lane + bval
		ok = j <= maxLane
	case shBfly:
		j = lane ^ bval
		ok = j <= maxLane
	default:
		j = minLane | (bval &^ seg)
		ok = j <= maxLane
	}
	if !ok {
		j = lane
	}
	return j, ok
}

func (b *block) tryMma(lanes []thread, t *thread, in *inst) (bool, error) {
	if len(lanes) < 32 {
		return false, b.fault(t, in, InactiveLane, "mma.sync needs a full warp; the last warp has %d threads", len(lanes))
	}
	for j := range lanes {
		u := &lanes[j]
		if u.state == stExit {
			return false, b.fault(t, in, InactiveLane, "mma.sync: lane %d of the warp has exited", j)
		}
		if u.state != stWarp || u.pc != t.pc {
			return false, nil
		}
	}
	var a [32][4]uint32
	var bb [32][2]uint32
	var c [32][4]float32
	for j := range lanes {
		r := lanes[j].regs
		for i := 0; i < 4; i++ {
			a[j][i] = uint32(r[in.list[4+i]])
			c[j][i] = f32(r[in.list[10+i]])
		}
		bb[j][0], bb[j][1] = uint32(r[in.list[8]]), uint32(r[in.list[9]])
	}
	d := mmaM16N8K16(&a, &bb, &c)
	for j := range lanes {
		r := lanes[j].regs
		for i := 0; i < 4; i++ {
			r[in.list[i]] = uint64(math.Float32bits(d[j][i]))
		}
		lanes[j].pc++
		lanes[j].state = stRun
	}
	return true, nil
}

// resolveBarrier is called when no thread can run and no warp collective
// can complete: either every thread exited (done), or every live thread
// waits at the same bar.sync (released), or the block is deadlocked, which
// is reported.
func (b *block) resolveBarrier() (bool, error) {
	code := b.k.code
	var atBar, exited int
	var first, firstExit *thread
	for i := range b.threads {
		t := &b.threads[i]
		switch t.state {
		case stBar:
			atBar++
			if first == nil {
				first = t
			}
		case stExit:
			exited++
			if firstExit == nil {
				firstExit = t
			}
		case stWarp:
			return false, b.warpDeadlock(t)
		}
	}
	if atBar == 0 {
		if b.uninit != nil {
			return true, b.uninit
		}
		return true, nil
	}
	in := &code[first.pc]
	if exited > 0 {
		return false, b.fault(first, in, BarrierDivergence,
			"bar.sync reached by %d threads while %d threads of the block exited without reaching it (e.g. thread %s): a barrier inside a divergent branch deadlocks or corrupts on hardware",
			atBar, exited, b.threadName(firstExit.lin))
	}
	id := first.regs[in.a]
	for i := range b.threads {
		t := &b.threads[i]
		if t.pc != first.pc {
			return false, b.fault(first, in, BarrierDivergence,
				"threads wait at different barriers: thread %s at PTX line %d, thread %s at PTX line %d (a barrier inside a divergent branch)",
				b.threadName(first.lin), in.line, b.threadName(t.lin), code[t.pc].line)
		}
		if t.regs[in.a] != id {
			return false, b.fault(t, in, BarrierDivergence, "threads use different barrier ids (%d and %d)", id, t.regs[in.a])
		}
	}
	if in.b >= 0 {
		want := (len(b.threads) + 31) / 32 * 32
		if cnt := first.regs[in.b]; int(cnt) != want {
			return false, b.fault(first, in, InvalidInstruction, "bar.sync with thread count %d: only the whole block (%d) is supported", cnt, want)
		}
	}
	if b.uninit != nil {
		return false, b.uninit
	}
	b.epoch++
	b.stats.Barriers++
	for i := range b.threads {
		b.threads[i].pc++
		b.threads[i].state = stRun
	}
	return false, nil
}

// warpDeadlock explains why the warp collective t waits at can never
// complete.
func (b *block) warpDeadlock(t *thread) error {
	code := b.k.code
	in := &code[t.pc]
	w := int(t.lin) / 32
	lanes := b.threads[w*32 : min(len(b.threads), w*32+32)]
	mask := ^uint32(0)
	if in.op != opMma {
		mask = memberMask(t, in)
	}
	for j := range lanes {
		if mask&(1<<j) == 0 {
			continue
		}
		u := &lanes[j]
		if u.state == stWarp && code[u.pc].op == in.op && (in.op != opMma || u.pc == t.pc) {
			continue
		}
		where := fmt.Sprintf("waits at %s (PTX line %d)", opName(code[u.pc].op), code[u.pc].line)
		return b.fault(t, in, InactiveLane, "%s with membermask %#08x never completes: lane %d %s", opName(in.op), mask, j, where)
	}
	return b.fault(t, in, InactiveLane, "%s with membermask %#08x never completes: lanes disagree on the mask", opName(in.op), mask)
}

func opName(o op) string {
	switch o {
	case opShfl:
		return "shfl.sync"
	case opMma:
		return "mma.sync"
	case opWarpSync:
		return "bar.warp.sync"
	case opVote:
		return "vote.sync"
	case opRedux:
		return "redux.sync"
	case opBar:
		return "bar.sync"
	}
	return "another instruction"
}
