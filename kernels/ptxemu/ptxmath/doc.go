// Package ptxmath is the numeric semantics of the PTX instructions the
// project's CUDA kernels compile to, as pure functions on Go values and bit
// patterns: no state, no interpreter, no cgo. The PTX interpreter in the
// parent package decodes an instruction's modifiers and calls one of these
// functions per lane, so the rules of the PTX ISA live — and are tested
// against hand-derived bit patterns — in one place.
//
// Conventions:
//
//   - Every function documents the PTX instruction form(s) it implements and
//     the ISA rule it follows.
//   - Rounded floating-point operations (.rn/.rz/.rm/.rp) are computed
//     exactly: fp32 through error-free transforms in float64 followed by a
//     round-to-odd step (one further rounding is then correct in every mode),
//     fp64 through error-free transforms or math/big. Subnormals are handled
//     with gradual underflow unless .ftz is given, which flushes subnormal
//     inputs and subnormal (after rounding) results to sign-preserving zero.
//   - NaN results of arithmetic are canonical: CanonicalNaN32 (what NVIDIA
//     GPUs produce for fp32) and CanonicalNaN64 (fp64 payloads are left open
//     by the ISA; only NaN-ness is meaningful). Conversions to bf16/f16 keep
//     a NaN's sign and top payload bits and set the quiet bit.
//   - .approx instructions (ex2, lg2, rcp, rsqrt, sqrt, sin, cos, tanh) return
//     the correctly rounded value of the exact function (computed in float64,
//     so correct except within 2^-53 relative of a float32 rounding boundary).
//     Hardware is only within the ISA's stated error bound of that, so
//     results of kernels using them are compared with a tolerance, never
//     bitwise. Each function states the bound.
//   - mma.sync sums the exact bf16 products in float64 and rounds to fp32 at
//     the end; the hardware's accumulation order and internal precision are
//     unspecified by the ISA, so its result may differ in the last bits.
//
// The opcode variants NVRTC emits for the project's kernels (compute_80) map
// to these functions as follows; the rest (mov, ld/st, cvta, selp,
// and/or/xor/not, bra, bar.sync, cp.async, atom.cas/min, integer add/sub/min/max)
// have no numeric subtlety and are the interpreter's own.
//
//	add/sub/mul{.rn}.f32, fma.rn/.rm.f32      AddF32 SubF32 MulF32 FmaF32
//	add/sub/mul.f64, fma.rn.f64               AddF64 SubF64 MulF64 FmaF64
//	div.rn.f32/.f64, rcp.rn.f32, sqrt.rn.*    DivF32 DivF64 RcpF32 SqrtF32 SqrtF64
//	max.f32, neg.f32/.f64                     MaxF32 NegF32 NegF64
//	ex2.approx{.ftz}.f32, rsqrt.approx.f32    Ex2ApproxF32 RsqrtApproxF32
//	rcp.approx.ftz.f64                        RcpApproxFtzF64
//	cvt.rn.bf16.f32, cvt.rn.bf16x2.f32        CvtBF16F32 CvtBF16x2F32
//	cvt.sat.f32.f32, cvt.f64.f32, cvt.rn.f32.f64   CvtF32F32 CvtF64F32 CvtF32F64
//	cvt.rn.f32.s32                            CvtSToF32
//	cvt.s64.s32, cvt.u32.u64, cvt.u64.u32     CvtInt
//	setp.{eq,ne,lt,le,gt,ge,leu,neu}.{f32,f64}   CmpF32 CmpF64
//	setp.*.{s16,s32,s64,u32,u64}              CmpS CmpU
//	mul.lo/.wide, mad.lo, div.{s,u}           MulLo MulWide MadLo Div
//	shl, shr.{s,u}32                          Shl Shr
//	bfi.b64, prmt.b32                         Bfi Prmt
//	shfl.sync.bfly.b32                        ShflSource ShflWarp
//	mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32   MmaM16N8K16BF16
//	atom.global.add.f32                       AtomAddF32
//
// Neighbouring forms the kernels do not use yet (other roundings, float to
// integer cvt, f16, mul.hi, mul24, bfe, popc, clz, brev, bfind, min, lg2,
// sin, cos, tanh, div.approx/.full) are implemented and tested too, so a new
// kernel does not start with an unverified instruction.
package ptxmath
