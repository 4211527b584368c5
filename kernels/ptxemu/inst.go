package ptxemu

// op is the pre-decoded operation of an instruction. Type, rounding and
// state space are resolved at LoadModule, so execution never looks at text.
type op uint8

const (
	opNop op = iota
	opMov
	opPack   // mov.bN d, {a, b, ...}
	opUnpack // mov.bN {d0, d1, ...}, a
	// integer ALU: values masked to the type width
	opAdd
	opSub
	opMulLo
	opMulHi
	opMulWide
	opMadLo
	opMadHi
	opMadWide
	opDiv
	opRem
	opMin
	opMax
	opAbs
	opNeg
	opAnd
	opOr
	opXor
	opNot
	opCnot
	opShl
	opShr
	opPopc
	opClz
	opBrev
	opBfe
	opBfi
	opPrmt
	opSetp
	opSelp
	// fp32 fast paths (.rn or unspecified rounding, no .ftz/.sat)
	opAddF32
	opSubF32
	opMulF32
	opFmaF32
	// any other floating-point arithmetic
	opFloat
	opSetpF
	opCvt
	opCvtInt // int -> int without .sat
	opCvtBF16x2
	// memory
	opLd
	opSt
	opAtom
	opCvta
	opCpAsync
	opCpCommit
	opCpWait
	// collectives: the thread stops here until the group resolves
	opBar
	opShfl
	opMma
	opWarpSync
	opVote  // vote.sync: sub is the vote mode
	opRedux // redux.sync: sub is an atom operation (add/min/max/and/or/xor)
	// control
	opBra
	opExit
)

// floating-point sub-operations of opFloat
const (
	fAdd uint8 = iota
	fSub
	fMul
	fFma
	fDiv
	fNeg
	fAbs
	fMin
	fMax
	fSqrt
	fRcp
	fRsqrt
	fEx2
	fLg2
	fSin
	fCos
	fTanh
	fCopysign
)

// rounding modes
const (
	rndNone uint8 = iota
	rndRN
	rndRZ
	rndRM
	rndRP
	rndRNI
	rndRZI
	rndRMI
	rndRPI
)

// state spaces
const (
	spGeneric uint8 = iota
	spGlobal
	spShared
	spLocal
	spParam
	spConst
)

// atom operations
const (
	atAdd uint8 = iota
	atMin
	atMax
	atInc
	atDec
	atAnd
	atOr
	atXor
	atExch
	atCas
)

// shfl modes
const (
	shUp uint8 = iota
	shDown
	shBfly
	shIdx
)

// inst flags
const (
	flFtz uint16 = 1 << iota
	flSat
	flSigned
	flApprox
	flCvtaTo // cvta.to.space (generic -> space); else space -> generic
	flBoolAnd
	flBoolOr
	flBoolXor
	flPredNot // setp/selp third operand negated
	flWaitAll
)

// ptype is a PTX fundamental type.
type ptype struct {
	k byte  // 'b', 'u', 's', 'f', 'p' (pred), 'h' (bf16), 'H' (bf16x2), 'e' (f16)
	w uint8 // width in bits
}

// inst is one decoded instruction. Every source operand is a register
// index: immediates, symbol addresses and special registers live in
// registers the thread's register file is initialised with.
type inst struct {
	op    op
	sub   uint8 // fp sub-op, compare, atom op, shfl mode
	rnd   uint8
	space uint8
	flags uint16
	ty    ptype // the (destination) type
	ty2   ptype // cvt source type
	n     uint8 // vector length of ld/st (1, 2, 4)
	g     int32 // guard predicate register
	gx    uint64
	d, d2 int32 // destinations (d2: second predicate of setp/shfl)
	a, b  int32
	c, e  int32
	mask  uint64 // width mask of ty
	off   int64  // address offset, or branch target
	list  []int32
	line  int32
}

func widthMask(w uint8) uint64 {
	if w >= 64 {
		return ^uint64(0)
	}
	return uint64(1)<<w - 1
}

// sext sign-extends the low w bits of v.
func sext(v uint64, w uint8) int64 {
	s := 64 - w
	return int64(v<<s) >> s
}
