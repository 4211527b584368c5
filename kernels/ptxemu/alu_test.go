package ptxemu_test

import (
	"math"
	"testing"
)

// aluPTX runs one thread through the integer, bit, conversion and compare
// forms the decoder maps to the interpreter's own paths; each result goes
// to out[i] (u32) in order.
const aluPTX = hdr + `
.visible .entry alu(.param .u64 out, .param .u32 x, .param .u32 y)
{
	.reg .pred %p<6>;
	.reg .b16 %rs<4>;
	.reg .b32 %r<40>;
	.reg .f32 %f<8>;
	.reg .b64 %rd<8>;
	.reg .f64 %fd<4>;
	ld.param.u64 %rd1, [out];
	ld.param.u32 %r1, [x];
	ld.param.u32 %r2, [y];
	div.s32 %r3, %r1, %r2;
	rem.s32 %r4, %r1, %r2;
	div.u32 %r5, %r1, %r2;
	mul.hi.s32 %r6, %r1, %r2;
	mul.hi.u32 %r7, %r1, %r2;
	mul.wide.s32 %rd2, %r1, %r2;
	cvt.u32.u64 %r8, %rd2;
	shr.u64 %rd3, %rd2, 32;
	cvt.u32.u64 %r9, %rd3;
	min.s32 %r10, %r1, %r2;
	max.u32 %r11, %r1, %r2;
	abs.s32 %r12, %r1;
	neg.s32 %r13, %r2;
	popc.b32 %r14, %r1;
	clz.b32 %r15, %r2;
	brev.b32 %r16, %r2;
	shr.s32 %r17, %r1, 4;
	shr.u32 %r18, %r1, 4;
	bfe.u32 %r19, %r1, 4, 8;
	bfe.s32 %r20, %r1, 4, 8;
	bfi.b32 %r21, %r2, %r1, 8, 4;
	prmt.b32 %r22, %r1, %r2, 0x7531;
	prmt.b32 %r23, %r1, %r2, 0x8880;
	setp.lt.s32 %p1, %r1, %r2;
	setp.lt.u32 %p2, %r1, %r2;
	setp.gt.and.s32 %p3, %r1, %r2, !%p1;
	selp.u32 %r24, 1, 0, %p1;
	selp.u32 %r25, 1, 0, %p2;
	selp.u32 %r26, 1, 0, %p3;
	cvt.rn.f32.s32 %f1, %r1;
	mov.b32 %r27, %f1;
	cvt.rzi.s32.f32 %r28, %f1;
	cvt.rni.s32.f32 %r29, 0f40200000;
	cvt.rmi.s32.f32 %r30, 0fC0200000;
	cvt.sat.u8.s32 %r31, %r1;
	cvt.u16.u32 %rs1, %r2;
	cvt.s32.s16 %r32, %rs1;
	cvt.rn.bf16.f32 %rs2, 0f3F808000;
	cvt.u32.u16 %r33, %rs2;
	cvt.rn.bf16x2.f32 %r34, 0f3F818000, 0fBF800000;
	cvt.f64.f32 %fd1, 0f3DCCCCCD;
	cvt.rn.f32.f64 %f2, %fd1;
	mov.b32 %r35, %f2;
	setp.equ.f32 %p4, 0f7FC00000, 0f00000000;
	setp.eq.f32 %p5, 0f7FC00000, 0f7FC00000;
	selp.u32 %r36, 1, 0, %p4;
	selp.u32 %r37, 1, 0, %p5;
	mov.b64 {%r38, %r39}, %rd2;
	st.global.v4.u32 [%rd1], {%r3, %r4, %r5, %r6};
	st.global.v4.u32 [%rd1+16], {%r7, %r8, %r9, %r10};
	st.global.v4.u32 [%rd1+32], {%r11, %r12, %r13, %r14};
	st.global.v4.u32 [%rd1+48], {%r15, %r16, %r17, %r18};
	st.global.v4.u32 [%rd1+64], {%r19, %r20, %r21, %r22};
	st.global.v4.u32 [%rd1+80], {%r23, %r24, %r25, %r26};
	st.global.v4.u32 [%rd1+96], {%r27, %r28, %r29, %r30};
	st.global.v4.u32 [%rd1+112], {%r31, %r32, %r33, %r34};
	st.global.v4.u32 [%rd1+128], {%r35, %r36, %r37, %r38};
	st.global.u32 [%rd1+144], %r39;
	ret;
}
`

func TestIntegerBitAndConversionForms(t *testing.T) {
	e := newEmu(t)
	k := e.kernel(aluPTX, "alu")
	out := e.alloc(4 * 37)
	x, y := int32(-1000003), int32(7<<16|0x8123) // y = 0x78123
	e.mustLaunch(k, dim(1), dim(1), 0, u64p(out), u32p(uint32(x)), u32p(uint32(y)))
	got := e.readU32(out, 37)
	ux, uy := uint32(x), uint32(y)
	wide := int64(x) * int64(y)
	want := []uint32{
		uint32(x / y), uint32(x % y), ux / uy, // div/rem truncate toward zero
		uint32(wide >> 32), uint32(uint64(ux) * uint64(uy) >> 32), // mul.hi
		uint32(wide), uint32(uint64(wide) >> 32), // mul.wide split
		uint32(x), ux, // min.s32 / max.u32 (x is negative: huge unsigned)
		1000003, uint32(-y), 24, // abs, neg, popc(0xFFF0BDBD)
		13,                      // clz(0x00078123): 32-19
		0xC481E000,              // brev(0x00078123)
		uint32(x >> 4), ux >> 4, // shr.s / shr.u
		0xDB, 0xFFFFFFDB, // bfe.u / bfe.s of bits 4..11 of 0xFFF0BDBD
		0xFFF0B3BD, // bfi: low 4 bits of y (3) into bits 8..11 of x
		0x0081FFBD, // prmt 0x7531: bytes 1,3,5,7 of {y:x} = BD FF 81 00
		0xFFFFFFBD, // prmt 0x8880: byte 0 (0xBD), then 3x its sign (0xFF)
		1, 0, 0,    // x<y signed, not unsigned; (x>y)&&!(x<y) false
		math.Float32bits(-1000003), // cvt.rn.f32.s32 (exact: < 2^24)
		uint32(x),                  // cvt.rzi back
		2, uint32(0xFFFFFFFD),      // rni(2.5) = 2 (ties to even), rmi(-2.5) = -3
		0,                                // cvt.sat.u8 of a negative number
		uint32(int32(int16(uint16(uy)))), // u32 -> u16 -> s32 sign extension
		0x3F80,                           // bf16 of 1.00390625: a tie, rounds to even (down)
		0x3F82BF80,                       // bf16x2: hi = bf16(1.01171875), a tie, up to even; lo = bf16(-1)
		math.Float32bits(0.1),            // f32 -> f64 -> f32 round trip
		1, 0,                             // NaN: equ true, eq false
		uint32(wide), uint32(uint64(wide) >> 32),
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("result %d: got %#x want %#x", i, got[i], want[i])
		}
	}
}
