package ptxmath

import "testing"

// Per-call cost of the hot paths the interpreter executes per lane.
var sink32 float32

func BenchmarkAddF32RN(b *testing.B) {
	x := float32(1.5)
	for range b.N {
		x = AddF32(x, 1e-7, Mode{})
	}
	sink32 = x
}

func BenchmarkFmaF32RN(b *testing.B) {
	x := float32(1.5)
	for range b.N {
		x = FmaF32(x, 0.999, 1e-3, Mode{})
	}
	sink32 = x
}

func BenchmarkFmaF32RM(b *testing.B) {
	x := float32(1.5)
	for range b.N {
		x = FmaF32(x, 0.999, 1e-3, Mode{Rnd: RM})
	}
	sink32 = x
}

func BenchmarkDivF32RN(b *testing.B) {
	x := float32(1.5)
	for range b.N {
		x = DivF32(x, 0.999, Mode{})
	}
	sink32 = x
}

func BenchmarkEx2ApproxF32(b *testing.B) {
	x := float32(0)
	for i := range b.N {
		x += Ex2ApproxF32(float32(i&15)*-0.37, true)
	}
	sink32 = x
}

func BenchmarkCvtBF16x2F32(b *testing.B) {
	var s uint32
	for i := range b.N {
		s += CvtBF16x2F32(float32(i), 1.0/float32(i+1), RN, false)
	}
	sink32 = float32(s)
}

func BenchmarkFmaF64RM(b *testing.B) {
	x := 1.5
	for range b.N {
		x = FmaF64(x, 0.999, 1e-3, RM)
	}
	sink32 = float32(x)
}

func BenchmarkMmaM16N8K16BF16(b *testing.B) {
	var a [32][4]uint32
	var bb [32][2]uint32
	var c [32][4]float32
	for l := range 32 {
		for i := range 4 {
			a[l][i] = 0x3F803F80 + uint32(l*i)
			c[l][i] = float32(l)
		}
		bb[l] = [2]uint32{0x40003F80, 0x3F00BF80}
	}
	for range b.N {
		d := MmaM16N8K16BF16(&a, &bb, &c)
		sink32 = d[3][1]
	}
}
