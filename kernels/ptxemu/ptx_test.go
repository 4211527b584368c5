package ptxemu_test

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"purpcode/kernels/ptxemu"
)

const hdr = ".version 7.8\n.target sm_80\n.address_size 64\n"

// collatz: a data-dependent loop with a divergent if/else per thread.
const collatzPTX = hdr + `
.visible .entry collatz(.param .u64 out)
{
	.reg .pred %p<3>;
	.reg .b32 %r<8>;
	.reg .b64 %rd<4>;
	ld.param.u64 %rd1, [out];
	cvta.to.global.u64 %rd1, %rd1;
	mov.u32 %r1, %tid.x;
	mov.u32 %r5, %ctaid.x;
	mov.u32 %r6, %ntid.x;
	mad.lo.s32 %r1, %r5, %r6, %r1;
	add.s32 %r2, %r1, 1;
	mov.u32 %r3, 0;
$loop:
	setp.eq.s32 %p1, %r2, 1;
	@%p1 bra $done;
	and.b32 %r4, %r2, 1;
	setp.eq.b32 %p2, %r4, 0;
	@%p2 bra $even;
	mad.lo.s32 %r2, %r2, 3, 1;
	bra.uni $next;
$even:
	shr.u32 %r2, %r2, 1;
$next:
	add.s32 %r3, %r3, 1;
	bra $loop;
$done:
	mul.wide.u32 %rd2, %r1, 4;
	add.s64 %rd3, %rd1, %rd2;
	st.global.u32 [%rd3], %r3;
	ret;
}
`

func collatzSteps(n uint32) uint32 {
	var s uint32
	for n != 1 {
		if n%2 == 0 {
			n /= 2
		} else {
			n = 3*n + 1
		}
		s++
	}
	return s
}

func TestControlFlowDivergence(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(collatzPTX, "collatz")
	out := e.alloc(4 * 96)
	e.mustLaunch(k, dim(3), dim(32), 0, u64p(out))
	for i, got := range e.readU32(out, 96) {
		if want := collatzSteps(uint32(i + 1)); got != want {
			t.Errorf("thread %d: %d steps, want %d", i, got, want)
		}
	}
}

// spaces touches every state space: module .global (initialised) and
// .const variables, a by-value struct .param, .local through both its
// state-space and generic address, static and dynamic .shared.
const spacesPTX = hdr + `
.global .align 4 .u32 gtab[4] = {10, 20, 30, 40};
.const .align 4 .f32 cscale = 0f40000000;
.extern .shared .align 16 .b8 dyn[];
.visible .entry spaces(.param .u64 .ptr .global .align 16 out, .param .align 8 .b8 st[16], .param .f32 bias)
{
	.reg .f32 %f<6>;
	.reg .b32 %r<12>;
	.reg .b64 %rd<12>;
	.local .align 4 .b8 __local_depot0[16];
	.shared .align 4 .b8 stat[128];
	mov.u64 %rd1, __local_depot0;
	cvta.local.u64 %rd2, %rd1;
	mov.u32 %r1, %tid.x;
	st.local.u32 [%rd1+4], %r1;
	ld.u32 %r2, [%rd2+4];
	ld.param.u32 %r3, [st];
	ld.param.u64 %rd3, [st+8];
	mov.u64 %rd4, gtab;
	and.b32 %r4, %r1, 3;
	mul.wide.u32 %rd5, %r4, 4;
	add.s64 %rd6, %rd4, %rd5;
	ld.global.u32 %r5, [%rd6];
	ld.const.f32 %f1, [cscale];
	mov.u64 %rd7, stat;
	mul.wide.u32 %rd8, %r1, 4;
	add.s64 %rd9, %rd7, %rd8;
	st.shared.u32 [%rd9], %r5;
	mov.u64 %rd10, dyn;
	cvta.shared.u64 %rd10, %rd10;
	add.s64 %rd10, %rd10, %rd8;
	st.u32 [%rd10], %r2;
	bar.sync 0;
	sub.s32 %r6, 31, %r1;
	mul.wide.u32 %rd8, %r6, 4;
	add.s64 %rd9, %rd7, %rd8;
	ld.shared.u32 %r7, [%rd9];
	mov.u64 %rd10, dyn;
	add.s64 %rd10, %rd10, %rd8;
	ld.shared.u32 %r8, [%rd10];
	cvt.u32.u64 %r9, %rd3;
	add.s32 %r9, %r9, %r3;
	cvt.rn.f32.u32 %f2, %r1;
	ld.param.f32 %f3, [bias];
	fma.rn.f32 %f4, %f2, %f1, %f3;
	mov.b32 %r10, %f4;
	ld.param.u64 %rd11, [out];
	mul.wide.u32 %rd8, %r1, 16;
	add.s64 %rd11, %rd11, %rd8;
	st.global.v4.u32 [%rd11], {%r7, %r8, %r9, %r10};
	ret;
}
`

func TestStateSpacesAndParamABI(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(spacesPTX, "spaces")
	ps := k.Params()
	want := []ptxemu.Param{{"out", 8, 16}, {"st", 16, 8}, {"bias", 4, 4}}
	for i := range want {
		if i >= len(ps) || ps[i] != want[i] {
			t.Fatalf("params %+v, want %+v", ps, want)
		}
	}
	out := e.alloc(16 * 32)
	st := make([]byte, 16)
	binary.LittleEndian.PutUint32(st, 5)
	binary.LittleEndian.PutUint64(st[8:], 1000)
	e.mustLaunch(k, dim(1), dim(32), 128, u64p(out), st, f32p(0.5))
	got := e.readU32(out, 4*32)
	for tid := 0; tid < 32; tid++ {
		g := got[4*tid : 4*tid+4]
		w := []uint32{[]uint32{10, 20, 30, 40}[(31-tid)&3], uint32(31 - tid), 1005, math.Float32bits(float32(tid)*2 + 0.5)}
		for j := range w {
			if g[j] != w[j] {
				t.Errorf("thread %d field %d: got %d want %d", tid, j, g[j], w[j])
			}
		}
	}
	// without the dynamic shared memory the extern array is out of bounds
	_, err := e.launch(k, dim(1), dim(32), 0, u64p(out), st, f32p(0.5))
	f := wantFault(t, err, ptxemu.OutOfBounds)
	if !strings.Contains(f.Detail, "shared") {
		t.Errorf("detail: %v", f)
	}
}

const atomPTX = hdr + `
.visible .entry atoms(.param .u64 fsum, .param .u64 flag, .param .u64 minout)
{
	.reg .pred %p<2>;
	.reg .f32 %f<3>;
	.reg .b32 %r<6>;
	.reg .b64 %rd<10>;
	.shared .align 8 .u64 smin;
	ld.param.u64 %rd1, [fsum];
	cvta.to.global.u64 %rd1, %rd1;
	ld.param.u64 %rd2, [flag];
	cvta.to.global.u64 %rd2, %rd2;
	ld.param.u64 %rd3, [minout];
	cvta.to.global.u64 %rd3, %rd3;
	mov.u32 %r1, %tid.x;
	setp.ne.s32 %p1, %r1, 0;
	@%p1 bra $skip;
	mov.u64 %rd4, -1;
	st.shared.u64 [smin], %rd4;
$skip:
	bar.sync 0;
	cvt.rn.f32.u32 %f1, %r1;
	atom.global.add.f32 %f2, [%rd1], %f1;
	add.s32 %r3, %r1, 100;
	atom.global.cas.b32 %r2, [%rd2], 0, %r3;
	mul.lo.s32 %r4, %r1, 7;
	xor.b32 %r4, %r4, 42;
	cvt.u64.u32 %rd5, %r4;
	atom.shared.min.u64 %rd6, [smin], %rd5;
	bar.sync 0;
	@%p1 bra $end;
	ld.shared.u64 %rd7, [smin];
	st.global.u64 [%rd3], %rd7;
$end:
	ret;
}
`

func TestAtomics(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(atomPTX, "atoms")
	fsum, flag, minout := e.zeros(4), e.zeros(4), e.alloc(8)
	e.mustLaunch(k, dim(1), dim(64), 0, u64p(fsum), u64p(flag), u64p(minout))
	if got := e.readF32(fsum, 1)[0]; got != 63*64/2 {
		t.Errorf("atomic add: %v", got)
	}
	if got := e.readU32(flag, 1)[0]; got < 100 || got >= 164 {
		t.Errorf("cas winner %d not one of the threads' values", got)
	}
	wantMin := uint64(math.MaxUint64)
	for i := uint64(0); i < 64; i++ {
		wantMin = min(wantMin, (i*7)^42)
	}
	b := make([]byte, 8)
	if err := e.Read(b, minout); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(b); got != wantMin {
		t.Errorf("shared min: %d want %d", got, wantMin)
	}
}

// shfl runs the four shuffle modes; bfly and idx also with 8-lane segments.
const shflPTX = hdr + `
.visible .entry shfl(.param .u64 out)
{
	.reg .pred %p<8>;
	.reg .b32 %r<20>;
	.reg .b64 %rd<4>;
	ld.param.u64 %rd1, [out];
	mov.u32 %r1, %laneid;
	mad.lo.s32 %r2, %r1, 10, 1;
	shfl.sync.up.b32 %r3|%p1, %r2, 3, 0, -1;
	shfl.sync.down.b32 %r4|%p2, %r2, 5, 31, -1;
	shfl.sync.bfly.b32 %r5|%p3, %r2, 7, 31, -1;
	shfl.sync.idx.b32 %r6|%p4, %r2, 13, 31, -1;
	shfl.sync.idx.b32 %r7|%p5, %r2, 13, 6175, -1;
	shfl.sync.down.b32 %r8|%p6, %r2, 5, 6175, -1;
	selp.u32 %r9, 1, 0, %p1;
	selp.u32 %r10, 2, 0, %p2;
	or.b32 %r9, %r9, %r10;
	selp.u32 %r10, 4, 0, %p3;
	or.b32 %r9, %r9, %r10;
	selp.u32 %r10, 8, 0, %p4;
	or.b32 %r9, %r9, %r10;
	selp.u32 %r10, 16, 0, %p5;
	or.b32 %r9, %r9, %r10;
	selp.u32 %r10, 32, 0, %p6;
	or.b32 %r9, %r9, %r10;
	mul.wide.u32 %rd2, %r1, 32;
	add.s64 %rd3, %rd1, %rd2;
	st.global.v4.u32 [%rd3], {%r3, %r4, %r5, %r6};
	st.global.v4.u32 [%rd3+16], {%r7, %r8, %r9, %r9};
	ret;
}
`

func TestShuffleModes(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(shflPTX, "shfl")
	out := e.alloc(32 * 32)
	e.mustLaunch(k, dim(1), dim(32), 0, u64p(out))
	got := e.readU32(out, 8*32)
	val := func(l int) uint32 { return uint32(10*l + 1) }
	for l := 0; l < 32; l++ {
		// hand-derived from the ISA's pseudo-code
		up, upOK := l-3, l >= 3
		down, downOK := l+5, l+5 <= 31
		bfly := l ^ 7
		segBase := l &^ 7
		segIdx := segBase | (13 & 7)
		segDown, segDownOK := l+5, l+5 <= segBase+7
		if !upOK {
			up = l
		}
		if !downOK {
			down = l
		}
		if !segDownOK {
			segDown = l
		}
		w := []uint32{val(up), val(down), val(bfly), val(13), val(segIdx), val(segDown)}
		preds := uint32(4 | 8 | 16)
		if upOK {
			preds |= 1
		}
		if downOK {
			preds |= 2
		}
		if segDownOK {
			preds |= 32
		}
		g := got[8*l : 8*l+8]
		for j := range w {
			if g[j] != w[j] {
				t.Errorf("lane %d result %d: got %d want %d", l, j, g[j], w[j])
			}
		}
		if g[6] != preds {
			t.Errorf("lane %d predicates %06b want %06b", l, g[6], preds)
		}
	}
}

// shflExit: lanes 16..31 exit, then lanes 0..15 shuffle with a mask; the
// full mask names exited lanes.
const shflExitPTX = hdr + `
.visible .entry shfl_exit(.param .u64 out, .param .u32 mask)
{
	.reg .pred %p<2>;
	.reg .b32 %r<6>;
	.reg .b64 %rd<4>;
	ld.param.u64 %rd1, [out];
	ld.param.u32 %r5, [mask];
	mov.u32 %r1, %tid.x;
	setp.ge.u32 %p1, %r1, 16;
	@%p1 bra $end;
	shfl.sync.bfly.b32 %r2, %r1, 1, 31, %r5;
	mul.wide.u32 %rd2, %r1, 4;
	add.s64 %rd3, %rd1, %rd2;
	st.global.u32 [%rd3], %r2;
$end:
	ret;
}
`

func TestShuffleInactiveLane(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(shflExitPTX, "shfl_exit")
	out := e.alloc(64)
	e.mustLaunch(k, dim(1), dim(32), 0, u64p(out), u32p(0xffff))
	for i, v := range e.readU32(out, 16) {
		if v != uint32(i^1) {
			t.Errorf("lane %d got %d", i, v)
		}
	}
	_, err := e.launch(k, dim(1), dim(32), 0, u64p(out), u32p(0xffffffff))
	f := wantFault(t, err, ptxemu.InactiveLane)
	if !strings.Contains(f.Detail, "exited") {
		t.Errorf("detail: %v", f)
	}
	// a lane executing shfl outside its own mask
	_, err = e.launch(k, dim(1), dim(32), 0, u64p(out), u32p(0xfffe))
	wantFault(t, err, ptxemu.InactiveLane)
}

// barrierSplit: even warps and odd warps wait at different barriers.
const barrierSplitPTX = hdr + `
.visible .entry barrier_split()
{
	.reg .pred %p<2>;
	.reg .b32 %r<4>;
	mov.u32 %r1, %tid.x;
	and.b32 %r2, %r1, 32;
	setp.eq.s32 %p1, %r2, 0;
	@%p1 bra $a;
	bar.sync 0;
	bra.uni $end;
$a:
	bar.sync 0;
$end:
	ret;
}
`

func TestBarrierAtDifferentInstructions(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(barrierSplitPTX, "barrier_split")
	_, err := e.launch(k, dim(1), dim(64), 0)
	f := wantFault(t, err, ptxemu.BarrierDivergence)
	if !strings.Contains(f.Detail, "different barriers") {
		t.Errorf("detail: %v", f)
	}
}

// cpasync: 32 threads each copy 16 bytes global->shared with cp.async, then
// every thread reads its neighbour's 16 bytes after a barrier. wait selects
// whether cp.async.wait_group 0 runs before the barrier.
const cpAsyncPTX = hdr + `
.visible .entry cpasync(.param .u64 src, .param .u64 dst, .param .u32 wait)
{
	.reg .pred %p<2>;
	.reg .b32 %r<12>;
	.reg .b64 %rd<8>;
	.shared .align 16 .b8 buf[512];
	ld.param.u64 %rd1, [src];
	cvta.to.global.u64 %rd1, %rd1;
	ld.param.u64 %rd2, [dst];
	cvta.to.global.u64 %rd2, %rd2;
	ld.param.u32 %r5, [wait];
	mov.u32 %r1, %tid.x;
	mul.wide.u32 %rd3, %r1, 16;
	add.s64 %rd4, %rd1, %rd3;
	mov.u32 %r2, buf;
	shl.b32 %r3, %r1, 4;
	add.s32 %r4, %r2, %r3;
	cp.async.cg.shared.global [%r4], [%rd4], 16;
	cp.async.commit_group;
	setp.ne.u32 %p1, %r5, 0;
	@%p1 cp.async.wait_group 0;
	bar.sync 0;
	add.s32 %r6, %r1, 1;
	and.b32 %r6, %r6, 31;
	shl.b32 %r6, %r6, 4;
	add.s32 %r6, %r2, %r6;
	ld.shared.v4.u32 {%r7, %r8, %r9, %r10}, [%r6];
	add.s64 %rd5, %rd2, %rd3;
	st.global.v4.u32 [%rd5], {%r7, %r8, %r9, %r10};
	cp.async.wait_all;
	ret;
}
`

func TestCpAsyncLandsOnlyAtWait(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(cpAsyncPTX, "cpasync")
	src := make([]uint32, 128)
	for i := range src {
		src[i] = uint32(i*3 + 1)
	}
	sa, dst := e.u32s(src), e.alloc(512)
	e.mustLaunch(k, dim(1), dim(32), 0, u64p(sa), u64p(dst), u32p(1))
	got := e.readU32(dst, 128)
	for i := range got {
		if want := src[(i+4)%128]; got[i] != want {
			t.Fatalf("word %d: got %d want %d", i, got[i], want)
		}
	}
	_, err := e.launch(k, dim(1), dim(32), 0, u64p(sa), u64p(dst), u32p(0))
	f := wantFault(t, err, ptxemu.SharedRace)
	if !strings.Contains(f.Detail, "cp.async") {
		t.Errorf("detail does not name the missing wait: %v", f)
	}
}

// mma: each lane loads its fragment registers from arrays laid out
// [lane][reg], runs one mma.sync and stores its four D values.
const mmaPTX = hdr + `
.visible .entry mma(.param .u64 a, .param .u64 b, .param .u64 c, .param .u64 d)
{
	.reg .b32 %r<8>;
	.reg .f32 %f<12>;
	.reg .b64 %rd<12>;
	ld.param.u64 %rd1, [a];
	ld.param.u64 %rd2, [b];
	ld.param.u64 %rd3, [c];
	ld.param.u64 %rd4, [d];
	mov.u32 %r7, %laneid;
	mul.wide.u32 %rd5, %r7, 16;
	mul.wide.u32 %rd6, %r7, 8;
	add.s64 %rd7, %rd1, %rd5;
	ld.global.v4.u32 {%r0, %r1, %r2, %r3}, [%rd7];
	add.s64 %rd8, %rd2, %rd6;
	ld.global.v2.u32 {%r4, %r5}, [%rd8];
	add.s64 %rd9, %rd3, %rd5;
	ld.global.v4.f32 {%f0, %f1, %f2, %f3}, [%rd9];
	mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%f4,%f5,%f6,%f7}, {%r0,%r1,%r2,%r3}, {%r4,%r5}, {%f0,%f1,%f2,%f3};
	add.s64 %rd10, %rd4, %rd5;
	st.global.v4.f32 [%rd10], {%f4, %f5, %f6, %f7};
	ret;
}
`

func TestMmaLayoutMatchesScalarProduct(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(mmaPTX, "mma")
	// small integers: every product and sum is exact, so the result does
	// not depend on the accumulation order and must match bit for bit
	var A [16][16]float32
	var B [16][8]float32
	var C [16][8]float32
	for i := range A {
		for j := range A[i] {
			A[i][j] = float32((i*3+j*5)%7 - 3)
		}
	}
	for i := range B {
		for j := range B[i] {
			B[i][j] = float32((i*2+j*11)%5 - 2)
		}
	}
	for i := range C {
		for j := range C[i] {
			C[i][j] = float32(i*8 + j)
		}
	}
	bf := func(x float32) uint32 { return math.Float32bits(x) >> 16 }
	pack := func(lo, hi float32) uint32 { return bf(lo) | bf(hi)<<16 }
	var fa, fb, fc []uint32
	for lane := 0; lane < 32; lane++ {
		g, q := lane/4, lane%4
		// PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"
		fa = append(fa, pack(A[g][2*q], A[g][2*q+1]), pack(A[g+8][2*q], A[g+8][2*q+1]),
			pack(A[g][2*q+8], A[g][2*q+9]), pack(A[g+8][2*q+8], A[g+8][2*q+9]))
		fb = append(fb, pack(B[2*q][g], B[2*q+1][g]), pack(B[2*q+8][g], B[2*q+9][g]))
		fc = append(fc, math.Float32bits(C[g][2*q]), math.Float32bits(C[g][2*q+1]),
			math.Float32bits(C[g+8][2*q]), math.Float32bits(C[g+8][2*q+1]))
	}
	d := e.alloc(32 * 16)
	e.mustLaunch(k, dim(1), dim(32), 0, u64p(e.u32s(fa)), u64p(e.u32s(fb)), u64p(e.u32s(fc)), u64p(d))
	got := e.readF32(d, 128)
	for lane := 0; lane < 32; lane++ {
		g, q := lane/4, lane%4
		for i := 0; i < 4; i++ {
			row, col := g+8*(i/2), 2*q+i%2
			want := C[row][col]
			for kk := 0; kk < 16; kk++ {
				want += A[row][kk] * B[kk][col]
			}
			if got[4*lane+i] != want {
				t.Errorf("D[%d][%d] (lane %d reg %d) = %v, want %v", row, col, lane, i, got[4*lane+i], want)
			}
		}
	}
	// a warp of 16 threads cannot run mma.sync
	_, err := e.launch(k, dim(1), dim(16), 0, u64p(e.u32s(fa)), u64p(e.u32s(fb)), u64p(e.u32s(fc)), u64p(d))
	wantFault(t, err, ptxemu.InactiveLane)
}

const faultsPTX = hdr + `
.visible .entry rd(.param .u64 p, .param .u64 off)
{
	.reg .b32 %r<2>;
	.reg .b64 %rd<4>;
	ld.param.u64 %rd1, [p];
	ld.param.u64 %rd2, [off];
	add.s64 %rd3, %rd1, %rd2;
	ld.global.u32 %r1, [%rd3];
	st.global.u32 [%rd1], %r1;
	ret;
}
.visible .entry spin()
{
$l:
	bra.uni $l;
}
`

func TestMemoryFaults(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(faultsPTX, "rd")
	p := e.u32s([]uint32{1, 2, 3, 4})
	e.mustLaunch(k, dim(1), dim(1), 0, u64p(p), u64p(8))
	if got := e.readU32(p, 1)[0]; got != 3 {
		t.Errorf("got %d", got)
	}
	_, err := e.launch(k, dim(1), dim(1), 0, u64p(p), u64p(2))
	wantFault(t, err, ptxemu.Misaligned)
	_, err = e.launch(k, dim(1), dim(1), 0, u64p(p), u64p(16))
	wantFault(t, err, ptxemu.OutOfBounds)
	fresh := e.alloc(16)
	_, err = e.launch(k, dim(1), dim(1), 0, u64p(fresh), u64p(4))
	f := wantFault(t, err, ptxemu.UninitializedRead)
	if f.Line == 0 || f.Kernel != "rd" {
		t.Errorf("fault lacks location: %v", f)
	}
	// param size mismatch is rejected like the driver would
	_, err = e.launch(k, dim(1), dim(1), 0, u64p(p), u32p(0))
	wantFault(t, err, ptxemu.BadLaunch)
	if err := e.Free(fresh); err != nil {
		t.Fatal(err)
	}
	_, err = e.launch(k, dim(1), dim(1), 0, u64p(p), u64p(fresh-p))
	wantFault(t, err, ptxemu.OutOfBounds)
}

func TestStepLimit(t *testing.T) {
	e := &emu{t: t, Device: ptxemu.NewDevice(ptxemu.Options{MaxSteps: 1000})}
	k := e.kernel(faultsPTX, "spin")
	_, err := e.launch(k, dim(1), dim(1), 0)
	wantFault(t, err, ptxemu.StepLimit)
}

func TestUnknownOpcodeNamesOpcodeAndKernel(t *testing.T) {
	e := newEmu(t)
	for _, tc := range []struct{ body, want string }{
		{"frobnicate.b32 %r1, %r1;", "frobnicate.b32"},
		{"add.cc.u32 %r1, %r1, %r1;", "add.cc.u32"},
		{"mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%r1,%r1,%r1,%r1}, {%r1,%r1}, {%r1}, {%r1,%r1,%r1,%r1};", "m16n8k8"},
	} {
		ptx := hdr + ".visible .entry newkernel()\n{\n.reg .b32 %r<2>;\n" + tc.body + "\nret;\n}\n"
		_, err := e.LoadModule([]byte(ptx + "\x00"))
		f := wantFault(t, err, ptxemu.UnknownOpcode)
		if f.Kernel != "newkernel" || !strings.Contains(f.Error(), tc.want) || f.Line != 7 {
			t.Errorf("%q: error does not name opcode, kernel and line: %v", tc.body, f)
		}
	}
}

func TestLaunchBoundsEnforced(t *testing.T) {
	e := newEmu(t)
	ptx := hdr + ".visible .entry lb()\n.maxntid 64, 1, 1\n{\nret;\n}\n.visible .entry rq()\n.reqntid 32, 2\n{\nret;\n}\n"
	lb := e.kernel(ptx, "lb")
	e.mustLaunch(lb, dim(2), dim(64), 0)
	_, err := e.launch(lb, dim(1), dim(65), 0)
	wantFault(t, err, ptxemu.BadLaunch)
	rq := e.kernel(ptx, "rq")
	e.mustLaunch(rq, dim(1), [3]uint32{32, 2, 1}, 0)
	_, err = e.launch(rq, dim(1), dim(64), 0)
	wantFault(t, err, ptxemu.BadLaunch)
}

// cpGroups: two commit groups; wait_group 1 lands only the older one.
// early selects a read of the younger group's bytes before its wait.
const cpGroupsPTX = hdr + `
.visible .entry cpgroups(.param .u64 src, .param .u64 dst, .param .u32 early)
{
	.reg .pred %p<2>;
	.reg .b32 %r<6>;
	.reg .b64 %rd<4>;
	.shared .align 8 .b8 buf[8];
	ld.param.u64 %rd1, [src];
	ld.param.u64 %rd2, [dst];
	ld.param.u32 %r5, [early];
	mov.u32 %r1, buf;
	cp.async.ca.shared.global [%r1], [%rd1], 4;
	cp.async.commit_group;
	cp.async.ca.shared.global [%r1+4], [%rd1+4], 4;
	cp.async.commit_group;
	cp.async.wait_group 1;
	ld.shared.u32 %r2, [buf];
	setp.ne.u32 %p1, %r5, 0;
	@%p1 ld.shared.u32 %r3, [buf+4];
	cp.async.wait_group 0;
	ld.shared.u32 %r3, [buf+4];
	st.global.v2.u32 [%rd2], {%r2, %r3};
	ret;
}
`

func TestCpAsyncCommitGroups(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(cpGroupsPTX, "cpgroups")
	src, dst := e.u32s([]uint32{7, 9}), e.alloc(8)
	e.mustLaunch(k, dim(1), dim(1), 0, u64p(src), u64p(dst), u32p(0))
	if got := e.readU32(dst, 2); got[0] != 7 || got[1] != 9 {
		t.Errorf("got %v", got)
	}
	_, err := e.launch(k, dim(1), dim(1), 0, u64p(src), u64p(dst), u32p(1))
	f := wantFault(t, err, ptxemu.SharedRace)
	if f.Line != 22 {
		t.Errorf("fault at PTX line %d, want the early read (22): %v", f.Line, f)
	}
}

// grid3d: every thread of a 3-D grid of 3-D blocks writes a code of its
// indices at its linear position, computed from %ntid/%nctaid.
const grid3dPTX = hdr + `
.visible .entry grid3d(.param .u64 out)
{
	.reg .pred %p<2>;
	.reg .b32 %r<24>;
	.reg .b64 %rd<4>;
	ld.param.u64 %rd1, [out];
	mov.u32 %r1, %tid.x;
	mov.u32 %r2, %tid.y;
	mov.u32 %r3, %tid.z;
	mov.u32 %r4, %ctaid.x;
	mov.u32 %r5, %ctaid.y;
	mov.u32 %r6, %ctaid.z;
	mov.u32 %r7, %ntid.x;
	mov.u32 %r8, %ntid.y;
	mov.u32 %r9, %ntid.z;
	mov.u32 %r10, %nctaid.x;
	mov.u32 %r11, %nctaid.y;
	mad.lo.s32 %r12, %r6, %r11, %r5;
	mad.lo.s32 %r12, %r12, %r10, %r4;
	mul.lo.s32 %r13, %r7, %r8;
	mul.lo.s32 %r13, %r13, %r9;
	mad.lo.s32 %r14, %r3, %r8, %r2;
	mad.lo.s32 %r14, %r14, %r7, %r1;
	mad.lo.s32 %r15, %r12, %r13, %r14;
	mad.lo.s32 %r16, %r2, 10, %r1;
	mad.lo.s32 %r16, %r3, 100, %r16;
	mad.lo.s32 %r16, %r4, 1000, %r16;
	mad.lo.s32 %r16, %r5, 10000, %r16;
	mad.lo.s32 %r16, %r6, 100000, %r16;
	mov.u32 %r17, %laneid;
	mov.u32 %r18, %warpid;
	shl.b32 %r18, %r18, 5;
	add.s32 %r17, %r17, %r18;
	setp.ne.s32 %p1, %r17, %r14;
	@%p1 mov.u32 %r16, 0xDEAD;
	mul.wide.u32 %rd2, %r15, 4;
	add.s64 %rd3, %rd1, %rd2;
	st.global.u32 [%rd3], %r16;
	ret;
}
`

func TestGridAndBlock3D(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(grid3dPTX, "grid3d")
	grid, block := [3]uint32{3, 2, 2}, [3]uint32{5, 4, 3}
	n := 3 * 2 * 2 * 5 * 4 * 3
	out := e.alloc(4 * n)
	st := e.mustLaunch(k, grid, block, 0, u64p(out))
	if st.Blocks != 12 || st.Threads != uint64(n) {
		t.Errorf("stats %+v", st)
	}
	got := e.readU32(out, n)
	i := 0
	for cz := 0; cz < 2; cz++ {
		for cy := 0; cy < 2; cy++ {
			for cx := 0; cx < 3; cx++ {
				for tz := 0; tz < 3; tz++ {
					for ty := 0; ty < 4; ty++ {
						for tx := 0; tx < 5; tx++ {
							want := uint32(tx + 10*ty + 100*tz + 1000*cx + 10000*cy + 100000*cz)
							if got[i] != want {
								t.Fatalf("element %d: got %d want %d", i, got[i], want)
							}
							i++
						}
					}
				}
			}
		}
	}
}
