package ptxemu

import (
	"math"

	"purpcode/kernels/ptxemu/ptxmath"
)

// The numeric semantics live in ptxmath; this file maps decoded
// instructions onto its functions.

func rounding(r uint8) ptxmath.Rounding {
	switch r {
	case rndRZ, rndRZI:
		return ptxmath.RZ
	case rndRM, rndRMI:
		return ptxmath.RM
	case rndRP, rndRPI:
		return ptxmath.RP
	}
	return ptxmath.RN
}

func isIntRounding(r uint8) bool { return r >= rndRNI }

func mode(in *inst) ptxmath.Mode {
	return ptxmath.Mode{Rnd: rounding(in.rnd), FTZ: in.flags&flFtz != 0, Sat: in.flags&flSat != 0}
}

// canon32 turns any NaN of the fast fp32 paths into the canonical NaN the
// hardware (and ptxmath) produce.
func canon32(f float32) uint64 {
	if f != f {
		return uint64(ptxmath.CanonicalNaN32)
	}
	return uint64(math.Float32bits(f))
}

func fmaF32(a, b, c float32) uint64 {
	return uint64(math.Float32bits(ptxmath.FmaF32(a, b, c, ptxmath.Mode{})))
}

func floatOp(in *inst, a, b, c uint64) uint64 {
	if in.ty.w == 32 {
		return uint64(math.Float32bits(floatOp32(in, f32(a), f32(b), f32(c))))
	}
	return math.Float64bits(floatOp64(in, math.Float64frombits(a), math.Float64frombits(b), math.Float64frombits(c)))
}

func floatOp32(in *inst, x, y, z float32) float32 {
	m := mode(in)
	ftz := m.FTZ
	approx := in.flags&flApprox != 0
	var r float32
	switch in.sub {
	case fAdd:
		return ptxmath.AddF32(x, y, m)
	case fSub:
		return ptxmath.SubF32(x, y, m)
	case fMul:
		return ptxmath.MulF32(x, y, m)
	case fFma:
		return ptxmath.FmaF32(x, y, z, m)
	case fDiv:
		if approx {
			r = ptxmath.DivApproxF32(x, y, ftz)
		} else if in.rnd == rndNone {
			r = ptxmath.DivFullF32(x, y, ftz)
		} else {
			return ptxmath.DivF32(x, y, m)
		}
	case fNeg:
		return ptxmath.NegF32(x, ftz)
	case fAbs:
		return ptxmath.AbsF32(x, ftz)
	case fMin:
		return ptxmath.MinF32(x, y, ftz)
	case fMax:
		return ptxmath.MaxF32(x, y, ftz)
	case fSqrt:
		if approx {
			r = ptxmath.SqrtApproxF32(x, ftz)
		} else {
			return ptxmath.SqrtF32(x, m)
		}
	case fRcp:
		if approx {
			r = ptxmath.RcpApproxF32(x, ftz)
		} else {
			return ptxmath.RcpF32(x, m)
		}
	case fRsqrt:
		r = ptxmath.RsqrtApproxF32(x, ftz)
	case fEx2:
		r = ptxmath.Ex2ApproxF32(x, ftz)
	case fLg2:
		r = ptxmath.Lg2ApproxF32(x, ftz)
	case fSin:
		r = ptxmath.SinApproxF32(x, ftz)
	case fCos:
		r = ptxmath.CosApproxF32(x, ftz)
	case fTanh:
		r = ptxmath.TanhApproxF32(x)
	case fCopysign:
		return ptxmath.CopysignF32(x, y)
	}
	if m.Sat {
		r = ptxmath.SatF32(r)
	}
	return r
}

func floatOp64(in *inst, x, y, z float64) float64 {
	rnd := rounding(in.rnd)
	switch in.sub {
	case fAdd:
		return ptxmath.AddF64(x, y, rnd)
	case fSub:
		return ptxmath.SubF64(x, y, rnd)
	case fMul:
		return ptxmath.MulF64(x, y, rnd)
	case fFma:
		return ptxmath.FmaF64(x, y, z, rnd)
	case fDiv:
		return ptxmath.DivF64(x, y, rnd)
	case fNeg:
		return ptxmath.NegF64(x)
	case fAbs:
		return ptxmath.AbsF64(x)
	case fMin:
		return ptxmath.MinF64(x, y)
	case fMax:
		return ptxmath.MaxF64(x, y)
	case fSqrt:
		return ptxmath.SqrtF64(x, rnd)
	case fRcp:
		if in.flags&flApprox != 0 {
			return ptxmath.RcpApproxFtzF64(x)
		}
		return ptxmath.RcpF64(x, rnd)
	case fRsqrt:
		if in.flags&flFtz != 0 {
			return ptxmath.RsqrtApproxFtzF64(x)
		}
		return ptxmath.RsqrtApproxF64(x)
	case fCopysign:
		return ptxmath.CopysignF64(x, y)
	}
	// ex2/lg2/sin/cos/tanh exist only as .f32 in the ISA; the decoder
	// accepts the type generically, so say what happened.
	return math.NaN()
}

func floatCompare(in *inst, a, b uint64) bool {
	op := ptxmath.CmpOp(in.sub)
	if in.ty.w == 32 {
		return ptxmath.CmpF32(op, f32(a), f32(b), in.flags&flFtz != 0)
	}
	return ptxmath.CmpF64(op, math.Float64frombits(a), math.Float64frombits(b))
}

func intCompare(in *inst, a, b uint64) bool {
	op := ptxmath.CmpOp(in.sub)
	if in.flags&flSigned != 0 {
		return ptxmath.CmpS(op, sext(a, in.ty.w), sext(b, in.ty.w))
	}
	return ptxmath.CmpU(op, a&in.mask, b&in.mask)
}

func f32ToBF16(f float32) uint16 { return ptxmath.CvtBF16F32(f, ptxmath.RN, false) }

// cvtOp is every cvt except plain integer resizing and bf16x2 packing.
func cvtOp(in *inst, v uint64) uint64 {
	dt, st := in.ty, in.ty2
	m := mode(in)
	rnd := rounding(in.rnd)
	isInt := func(t ptype) bool { return t.k == 'u' || t.k == 's' || t.k == 'b' }
	if isInt(dt) && isInt(st) { // .sat resizing
		return ptxmath.CvtInt(v, uint(st.w), st.k == 's', uint(dt.w), dt.k == 's', true)
	}
	// the source as a float64 (exact for every float and bf16 source)
	var x float64
	switch {
	case st.k == 'f' && st.w == 32:
		x = float64(f32(v))
	case st.k == 'f' && st.w == 64:
		x = math.Float64frombits(v)
	case st.k == 'h':
		x = float64(ptxmath.BF16ToF32(uint16(v)))
	}
	switch {
	case isInt(dt):
		if st.k == 'f' && st.w == 32 && m.FTZ {
			x = float64(ptxmath.FlushF32(float32(x)))
		}
		if dt.k == 's' {
			return uint64(ptxmath.CvtFToS(x, st.w == 64, rnd, uint(dt.w))) & in.mask
		}
		return ptxmath.CvtFToU(x, st.w == 64, rnd, uint(dt.w)) & in.mask
	case dt.k == 'h':
		return uint64(ptxmath.CvtBF16F32(float32(x), rnd, false))
	case dt.w == 32:
		var r float32
		switch {
		case isInt(st):
			if st.k == 's' {
				r = ptxmath.CvtSToF32(sext(v, st.w), rnd)
			} else {
				r = ptxmath.CvtUToF32(v&widthMask(st.w), rnd)
			}
			if m.Sat {
				r = ptxmath.SatF32(r)
			}
		case st.w == 64:
			if isIntRounding(in.rnd) {
				r = ptxmath.CvtF32F64(ptxmath.RoundIntF64(x, rnd), m)
			} else {
				r = ptxmath.CvtF32F64(x, m)
			}
		case isIntRounding(in.rnd):
			r = ptxmath.RoundIntF32(float32(x), rnd, m)
		default:
			r = ptxmath.CvtF32F32(float32(x), m)
		}
		return uint64(math.Float32bits(r))
	default: // f64
		var r float64
		switch {
		case isInt(st):
			if st.k == 's' {
				r = ptxmath.CvtSToF64(sext(v, st.w), rnd)
			} else {
				r = ptxmath.CvtUToF64(v&widthMask(st.w), rnd)
			}
		case st.w == 32:
			r = ptxmath.CvtF64F32(float32(x), m.FTZ)
		case isIntRounding(in.rnd):
			r = ptxmath.RoundIntF64(x, rnd)
		default:
			r = x
		}
		if m.Sat {
			r = math.Max(0, math.Min(1, r))
			if math.IsNaN(x) {
				r = 0
			}
		}
		return math.Float64bits(r)
	}
}

func mmaM16N8K16(a *[32][4]uint32, b *[32][2]uint32, c *[32][4]float32) [32][4]float32 {
	return ptxmath.MmaM16N8K16BF16(a, b, c)
}

// atomApply returns the value an atom/red writes, given the old value, the
// operand b and (for cas) the new value c.
func atomApply(in *inst, old, b, c uint64) uint64 {
	w := in.ty.w
	mask := in.mask
	old, b, c = old&mask, b&mask, c&mask
	if in.ty.k == 'f' {
		switch in.sub {
		case atAdd:
			if w == 32 {
				// the ISA: atom.add.f32 rounds to nearest even and
				// flushes subnormal inputs and results
				return uint64(math.Float32bits(ptxmath.AddF32(f32(old), f32(b), ptxmath.Mode{FTZ: true})))
			}
			return math.Float64bits(ptxmath.AddF64(math.Float64frombits(old), math.Float64frombits(b), ptxmath.RN))
		case atMin, atMax:
			if w == 32 {
				if in.sub == atMin {
					return uint64(math.Float32bits(ptxmath.MinF32(f32(old), f32(b), false)))
				}
				return uint64(math.Float32bits(ptxmath.MaxF32(f32(old), f32(b), false)))
			}
		case atExch:
			return b
		case atCas:
			if old == b {
				return c
			}
			return old
		}
		return old
	}
	signed := in.ty.k == 's'
	less := func(x, y uint64) bool {
		if signed {
			return sext(x, w) < sext(y, w)
		}
		return x < y
	}
	switch in.sub {
	case atAdd:
		return (old + b) & mask
	case atMin:
		if less(b, old) {
			return b
		}
		return old
	case atMax:
		if less(old, b) {
			return b
		}
		return old
	case atInc:
		if old >= b {
			return 0
		}
		return old + 1
	case atDec:
		if old == 0 || old > b {
			return b
		}
		return old - 1
	case atAnd:
		return old & b
	case atOr:
		return old | b
	case atXor:
		return old ^ b
	case atExch:
		return b
	case atCas:
		if old == b {
			return c
		}
		return old
	}
	return old
}
