package ptxmath

import (
	"fmt"
	"math"
	"math/bits"
	"strings"
)

// Integer operands are passed as uint64 register contents holding the
// operation's width (16, 32 or 64 bits) in their low bits; results are
// returned the same way, zero-extended, unless a function says otherwise.

func mask(n uint) uint64 { return uint64(math.MaxUint64) >> (64 - n) }

// widen returns the exact value of the low n bits as a 128-bit two's
// complement pair (hi, lo), sign- or zero-extended.
func widen(x uint64, n uint, signed bool) (hi, lo uint64) {
	if signed {
		v := SignExtend(x, n)
		if v < 0 {
			return math.MaxUint64, uint64(v)
		}
		return 0, uint64(v)
	}
	return 0, ZeroExtend(x, n)
}

// mul128 is the low 128 bits of the product of two 128-bit two's-complement
// values, which is the exact product for sign-/zero-extended 64-bit inputs.
func mul128(ah, al, bh, bl uint64) (hi, lo uint64) {
	hi, lo = bits.Mul64(al, bl)
	hi += ah*bl + al*bh
	return hi, lo
}

// fullProduct returns the exact 2n-bit product of two n-bit operands.
func fullProduct(a, b uint64, n uint, signed bool) (hi, lo uint64) {
	ah, al := widen(a, n, signed)
	bh, bl := widen(b, n, signed)
	return mul128(ah, al, bh, bl)
}

// MulLo implements mul.lo.{s,u}N d, a, b: the low n bits of the product
// (identical for signed and unsigned operands).
func MulLo(a, b uint64, n uint) uint64 { return (a * b) & mask(n) }

// MulHi implements mul.hi.{s,u}N d, a, b: bits [2n-1:n] of the exact 2n-bit
// product of the signed or unsigned operands.
func MulHi(a, b uint64, n uint, signed bool) uint64 {
	hi, lo := fullProduct(a, b, n, signed)
	if n == 64 {
		return hi
	}
	return (lo >> n) & mask(n)
}

// MulWide implements mul.wide.{s,u}N d, a, b for N = 16 or 32: the exact
// 2N-bit product (d is twice as wide as the sources).
func MulWide(a, b uint64, n uint, signed bool) uint64 {
	_, lo := fullProduct(a, b, n, signed)
	return lo & mask(2*n)
}

// MadLo implements mad.lo.{s,u}N d, a, b, c: low n bits of a*b + c.
func MadLo(a, b, c uint64, n uint) uint64 { return (a*b + c) & mask(n) }

// MadHi implements mad.hi.{s,u}N d, a, b, c: (bits [2n-1:n] of a*b) + c,
// wrapping at n bits.
func MadHi(a, b, c uint64, n uint, signed bool) uint64 {
	return (MulHi(a, b, n, signed) + c) & mask(n)
}

// MadWide implements mad.wide.{s,u}N d, a, b, c for N = 16 or 32: the 2N-bit
// product plus the 2N-bit c, wrapping at 2N bits.
func MadWide(a, b, c uint64, n uint, signed bool) uint64 {
	return (MulWide(a, b, n, signed) + c) & mask(2*n)
}

// Mul24 implements mul24.{lo,hi}.{s,u}32 d, a, b: the 48-bit product of the
// operands' low 24 bits (sign-extended from bit 23 for .s32); .lo returns
// its bits [31:0], .hi its bits [47:16].
func Mul24(a, b uint32, hiHalf, signed bool) uint32 {
	var p int64
	if signed {
		p = SignExtend(uint64(a), 24) * SignExtend(uint64(b), 24)
	} else {
		p = int64(a&0xFFFFFF) * int64(b&0xFFFFFF)
	}
	if hiHalf {
		return uint32(uint64(p) >> 16)
	}
	return uint32(p)
}

// AddSatS32 implements add.sat.s32 d, a, b: the sum clamped to
// [MinInt32, MaxInt32] instead of wrapping.
func AddSatS32(a, b int32) int32 {
	return int32(min(max(int64(a)+int64(b), math.MinInt32), math.MaxInt32))
}

// SubSatS32 implements sub.sat.s32 d, a, b with the same clamp.
func SubSatS32(a, b int32) int32 {
	return int32(min(max(int64(a)-int64(b), math.MinInt32), math.MaxInt32))
}

// Div implements div.{s,u}N d, a, b, truncating toward zero. The ISA leaves
// division by zero machine-specific: ok is false then and the value (all
// ones) is arbitrary, so callers should report the condition. MinInt / -1
// wraps to MinInt.
func Div(a, b uint64, n uint, signed bool) (q uint64, ok bool) {
	if ZeroExtend(b, n) == 0 {
		return mask(n), false
	}
	if signed {
		x, y := SignExtend(a, n), SignExtend(b, n)
		if y == -1 {
			return uint64(-x) & mask(n), true // wraps for MinInt
		}
		return uint64(x/y) & mask(n), true
	}
	return ZeroExtend(a, n) / ZeroExtend(b, n), true
}

// Rem implements rem.{s,u}N d, a, b: the remainder with the dividend's sign
// (C semantics). ok is false for a zero divisor (result unspecified by the
// ISA; a is returned).
func Rem(a, b uint64, n uint, signed bool) (r uint64, ok bool) {
	if ZeroExtend(b, n) == 0 {
		return ZeroExtend(a, n), false
	}
	if signed {
		x, y := SignExtend(a, n), SignExtend(b, n)
		if y == -1 {
			return 0, true
		}
		return uint64(x%y) & mask(n), true
	}
	return ZeroExtend(a, n) % ZeroExtend(b, n), true
}

// Shl implements shl.bN d, a, b: shift amounts (an unsigned 32-bit operand)
// greater than N are clamped to N, giving 0.
func Shl(a uint64, b uint32, n uint) uint64 {
	if uint(b) >= n {
		return 0
	}
	return (a << b) & mask(n)
}

// Shr implements shr.{s,u,b}N d, a, b: logical for .u/.b, arithmetic (sign
// fill) for .s; amounts above N are clamped to N, giving 0 or all sign bits.
func Shr(a uint64, b uint32, n uint, signed bool) uint64 {
	s := uint(min(b, uint32(n)))
	if signed {
		if s >= 64 {
			s = 63
		}
		return uint64(SignExtend(a, n)>>s) & mask(n)
	}
	if s >= n {
		return 0
	}
	return ZeroExtend(a, n) >> s
}

// Bfe implements bfe.{s,u}N d, a, b, c (N = 32 or 64): extract c&0xFF bits
// of a starting at bit b&0xFF. Per the ISA pseudocode, bits beyond the msb
// of a are filled with the sign bit — a's bit min(pos+len-1, N-1) for .s,
// zero for .u or len = 0 — so an extraction reaching past the top is
// sign-extended from the top bit.
func Bfe(a uint64, b, c uint32, n uint, signed bool) uint64 {
	pos, length := uint(b&0xFF), uint(c&0xFF)
	msb := n - 1
	var sbit uint64
	if signed && length != 0 {
		sbit = (a >> min(pos+length-1, msb)) & 1
	}
	var d uint64
	for i := uint(0); i <= msb; i++ {
		bit := sbit
		if i < length && pos+i <= msb {
			bit = (a >> (pos + i)) & 1
		}
		d |= bit << i
	}
	return d
}

// Bfi implements bfi.bN f, a, b, c, d: b with the low d&0xFF bits of a
// inserted at bit c&0xFF; bits that would land beyond the msb are dropped.
// (bfi.b64 f, a, b, 32, 32 puts a's low word into b's high word.)
func Bfi(a, b uint64, c, d uint32, n uint) uint64 {
	pos, length := uint(c&0xFF), uint(d&0xFF)
	if pos >= n {
		return b & mask(n)
	}
	length = min(length, n-pos)
	if length == 0 {
		return b & mask(n)
	}
	field := mask(length) << pos
	return (b&^field | (a<<pos)&field) & mask(n)
}

// PrmtMode is prmt's mode: the default generic byte permute or one of the
// ISA's fixed modes.
type PrmtMode uint8

// The prmt modes.
const (
	PrmtDefault PrmtMode = iota
	PrmtF4E              // forward 4 extract
	PrmtB4E              // backward 4 extract
	PrmtRC8              // replicate 8
	PrmtECL              // edge clamp left
	PrmtECR              // edge clamp right
	PrmtRC16             // replicate 16
)

// ParsePrmtMode accepts "" (the generic form) or one of f4e, b4e, rc8,
// ecl, ecr, rc16, with or without the leading dot.
func ParsePrmtMode(s string) (PrmtMode, error) {
	t := strings.TrimPrefix(s, ".")
	for i, n := range prmtModeNames {
		if n == t {
			return PrmtMode(i), nil
		}
	}
	return 0, fmt.Errorf("ptxmath: unknown prmt mode %q", s)
}

var prmtModeNames = [...]string{"", "f4e", "b4e", "rc8", "ecl", "ecr", "rc16"}

// prmtModeTable lists, per mode and selector c[1:0], the source byte index
// for result bytes 0..3.
var prmtModeTable = [...][4][4]uint8{
	PrmtF4E:  {{0, 1, 2, 3}, {1, 2, 3, 4}, {2, 3, 4, 5}, {3, 4, 5, 6}},
	PrmtB4E:  {{0, 7, 6, 5}, {1, 0, 7, 6}, {2, 1, 0, 7}, {3, 2, 1, 0}},
	PrmtRC8:  {{0, 0, 0, 0}, {1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 3, 3}},
	PrmtECL:  {{0, 1, 2, 3}, {1, 1, 2, 3}, {2, 2, 2, 3}, {3, 3, 3, 3}},
	PrmtECR:  {{0, 0, 0, 0}, {0, 1, 1, 1}, {0, 1, 2, 2}, {0, 1, 2, 3}},
	PrmtRC16: {{0, 1, 0, 1}, {2, 3, 2, 3}, {0, 1, 0, 1}, {2, 3, 2, 3}},
}

// Prmt implements prmt.b32{.mode} d, a, b, c. The eight source bytes are
// {b, a} = b7..b4 a3..a0 (a supplies bytes 0-3, b bytes 4-7). In the default
// mode each result byte i is chosen by nibble c[4i+3:4i]: its low 3 bits pick
// the source byte, and if its bit 3 is set the byte is replaced by 0xFF or
// 0x00 replicating the picked byte's sign bit. The fixed modes use only
// c[1:0] and the ISA's tables (prmtModeTable). An unknown mode returns 0.
func Prmt(a, b, c uint32, mode PrmtMode) uint32 {
	src := uint64(b)<<32 | uint64(a)
	byteAt := func(i uint8) uint32 { return uint32(src>>(8*uint(i&7))) & 0xFF }
	var d uint32
	if mode == PrmtDefault {
		for i := range uint(4) {
			sel := uint8(c >> (4 * i) & 0xF)
			v := byteAt(sel)
			if sel&8 != 0 {
				v = 0
				if byteAt(sel)&0x80 != 0 {
					v = 0xFF
				}
			}
			d |= v << (8 * i)
		}
		return d
	}
	if int(mode) >= len(prmtModeTable) {
		return 0
	}
	for i, sel := range prmtModeTable[mode][c&3] {
		d |= byteAt(sel) << (8 * uint(i))
	}
	return d
}

// Popc implements popc.bN d, a: the number of set bits (d is .u32).
func Popc(a uint64, n uint) uint32 { return uint32(bits.OnesCount64(ZeroExtend(a, n))) }

// Clz implements clz.bN d, a: leading zeros counted in N bits (N for 0).
func Clz(a uint64, n uint) uint32 {
	return uint32(bits.LeadingZeros64(ZeroExtend(a, n)) - int(64-n))
}

// Brev implements brev.bN d, a: the N-bit bit reversal.
func Brev(a uint64, n uint) uint64 { return bits.Reverse64(a) >> (64 - n) }

// Bfind implements bfind{.shiftamt}.{s,u}N d, a: the bit position of the most
// significant non-sign bit (for .s, of the most significant 0 in a negative
// value), or 0xFFFFFFFF when there is none; .shiftamt returns N-1-pos, the
// left shift that normalises a, instead (still 0xFFFFFFFF when not found).
func Bfind(a uint64, n uint, signed, shiftAmt bool) uint32 {
	v := ZeroExtend(a, n)
	if signed && SignExtend(a, n) < 0 {
		v = ^v & mask(n)
	}
	if v == 0 {
		return math.MaxUint32
	}
	pos := uint32(bits.Len64(v) - 1)
	if shiftAmt {
		return uint32(n-1) - pos
	}
	return pos
}
