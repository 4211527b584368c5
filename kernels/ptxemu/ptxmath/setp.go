package ptxmath

import (
	"fmt"
	"math"
	"strings"
)

// CmpOp is the comparison of setp (and set/slct): ordered eq..ge, unordered
// equ..geu, num/nan, and the unsigned-integer spellings lo/ls/hi/hs.
type CmpOp uint8

// The comparison operators of setp.
const (
	EQ CmpOp = iota
	NE
	LT
	LE
	GT
	GE
	EQU
	NEU
	LTU
	LEU
	GTU
	GEU
	NUM
	NAN
	LO
	LS
	HI
	HS
)

var cmpNames = [...]string{"eq", "ne", "lt", "le", "gt", "ge", "equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan", "lo", "ls", "hi", "hs"}

// String returns the operator without its dot.
func (op CmpOp) String() string {
	if int(op) < len(cmpNames) {
		return cmpNames[op]
	}
	return fmt.Sprintf("CmpOp(%d)", uint8(op))
}

// ParseCmpOp accepts a comparison operator with or without its leading dot.
func ParseCmpOp(s string) (CmpOp, error) {
	t := strings.TrimPrefix(s, ".")
	for i, n := range cmpNames {
		if n == t {
			return CmpOp(i), nil
		}
	}
	return 0, fmt.Errorf("ptxmath: unknown comparison operator %q", s)
}

// ValidForFloat reports whether the ISA allows op on .f32/.f64 operands
// (every operator except lo/ls/hi/hs).
func (op CmpOp) ValidForFloat() bool { return op <= NAN }

// ValidForInt reports whether the ISA allows op on integer operands: eq, ne,
// lt, le, gt, ge for all integer types, lo/ls/hi/hs for unsigned/bit types.
func (op CmpOp) ValidForInt(signed bool) bool {
	return op <= GE || !signed && op >= LO
}

// CmpF64 implements setp.CmpOp.f64 (and .f32 through CmpF32): ordered
// operators are false when either operand is NaN, unordered ones (…u) true;
// num is "neither is NaN", nan "either is NaN". -0 == +0. Integer-only
// operators (lo…hs) return false.
func CmpF64(op CmpOp, a, b float64) bool {
	unordered := math.IsNaN(a) || math.IsNaN(b)
	switch op {
	case NUM:
		return !unordered
	case NAN:
		return unordered
	}
	if op >= LO {
		return false
	}
	if op >= EQU {
		if unordered {
			return true
		}
		op -= EQU
	} else if unordered {
		return false
	}
	switch op {
	case EQ:
		return a == b
	case NE:
		return a != b
	case LT:
		return a < b
	case LE:
		return a <= b
	case GT:
		return a > b
	}
	return a >= b
}

// CmpF32 implements setp.CmpOp{.ftz}.f32 d, a, b; .ftz flushes subnormal
// inputs to sign-preserving zero before comparing (so with .ftz a positive
// subnormal equals zero).
func CmpF32(op CmpOp, a, b float32, ftz bool) bool {
	if ftz {
		a, b = FlushF32(a), FlushF32(b)
	}
	return CmpF64(op, float64(a), float64(b))
}

// CmpS implements setp.CmpOp.sN d, a, b on sign-extended operands.
// Unordered operators equal their ordered forms (integers are never NaN),
// num is true and nan false.
func CmpS(op CmpOp, a, b int64) bool { return cmpInt(op, a, b) }

// CmpU implements setp.CmpOp.uN/.bN d, a, b on zero-extended operands; lo,
// ls, hi, hs are lt, le, gt, ge.
func CmpU(op CmpOp, a, b uint64) bool { return cmpInt(op, a, b) }

func cmpInt[T int64 | uint64](op CmpOp, a, b T) bool {
	switch op {
	case NUM:
		return true
	case NAN:
		return false
	}
	if op >= EQU && op <= GEU {
		op -= EQU
	}
	switch op {
	case EQ:
		return a == b
	case NE:
		return a != b
	case LT, LO:
		return a < b
	case LE, LS:
		return a <= b
	case GT, HI:
		return a > b
	}
	return a >= b
}
