package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
)

// runEmulated serves cublasLtMatmul on an emulated context: the argument
// checks cuBLASLt makes (null pointers, workspace, pointer alignment the
// plan promised) with its status codes, bounds checks cuBLASLt cannot make
// (every operand inside a live allocation), then the reference GEMM.
//
// Semantics: A and B are bf16; each product of two bf16 values is exact in
// fp32, and the K products of an output are summed in fp32 in increasing k
// (tensor cores sum in blocks of their own order, so a GPU result may
// differ in the last bits of fp32); then D = alpha*acc + beta*C in fp32,
// rounded to nearest even for a bf16 D. C is not read when beta is 0, as
// in cuBLAS, so garbage or NaN there does not leak into D.
func (g *LtGemm) runEmulated(ctx *Context, alpha, beta float32, a, b, c, d, ws DevicePtr, s Stream) error {
	if err := ctx.emu.stream(s); err != nil {
		return fmt.Errorf("cublasLtMatmul: %w", err)
	}
	status := func(code int, format string, args ...any) error {
		name := map[int]string{ltStatusInvalidValue: "CUBLAS_STATUS_INVALID_VALUE", ltStatusNotSupported: "CUBLAS_STATUS_NOT_SUPPORTED"}[code]
		return &CUDAError{Op: fmt.Sprintf("cublasLtMatmul %dx%dx%d", g.M, g.N, g.K), Code: code, Msg: name + ": " + fmt.Sprintf(format, args...)}
	}
	readC := beta != 0
	switch {
	case a == 0 || b == 0 || d == 0:
		return status(ltStatusInvalidValue, "null pointer among A=%#x B=%#x D=%#x", uint64(a), uint64(b), uint64(d))
	case readC && c == 0:
		return status(ltStatusInvalidValue, "C is null with beta=%g", beta)
	case g.algo.WorkspaceSize > 0 && ws == 0:
		return status(ltStatusInvalidValue, "the algorithm needs %d workspace bytes, the workspace pointer is null", g.algo.WorkspaceSize)
	}
	outSize := uint64(2)
	if g.OutF32 {
		outSize = 4
	}
	ar, ac := g.spec().storedA()
	br, bc := g.spec().storedB()
	type operand struct {
		name  string
		p     DevicePtr
		bytes uint64
	}
	ops := []operand{
		{"A", a, (uint64(ar-1)*uint64(g.LdA) + uint64(ac)) * 2},
		{"B", b, (uint64(br-1)*uint64(g.LdB) + uint64(bc)) * 2},
		{"D", d, (uint64(g.M-1)*uint64(g.LdC) + uint64(g.N)) * outSize},
	}
	if readC {
		ops = append(ops, operand{"C", c, ops[2].bytes})
	}
	for _, o := range ops {
		if uint64(o.p)%uint64(g.MinAlign) != 0 {
			return status(ltStatusNotSupported, "%s=%#x is not aligned to the %d bytes the plan promised (GemmSpec.MinAlign; cuBLASLt's default is 256)", o.name, uint64(o.p), g.MinAlign)
		}
		if err := ctx.emu.inBounds(o.p, o.bytes); err != nil {
			return fmt.Errorf("cublasLtMatmul %dx%dx%d: operand %s: %w", g.M, g.N, g.K, o.name, err)
		}
	}
	if g.algo.WorkspaceSize > 0 {
		if err := ctx.emu.inBounds(ws, g.algo.WorkspaceSize); err != nil {
			return fmt.Errorf("cublasLtMatmul: the algorithm's %d workspace bytes: %w", g.algo.WorkspaceSize, err)
		}
	}
	av, err := readBF16(ctx, a, ops[0].bytes)
	if err != nil {
		return err
	}
	bv, err := readBF16(ctx, b, ops[1].bytes)
	if err != nil {
		return err
	}
	var cb []byte
	if readC {
		cb = make([]byte, ops[2].bytes)
		if err := ctx.emu.read(cb, c); err != nil {
			return err
		}
	}
	aAt := func(i, k int) float32 {
		if g.TransA {
			return av[k*g.LdA+i]
		}
		return av[i*g.LdA+k]
	}
	bAt := func(k, j int) float32 {
		if g.TransB {
			return bv[j*g.LdB+k]
		}
		return bv[k*g.LdB+j]
	}
	row := make([]byte, uint64(g.N)*outSize)
	le := binary.LittleEndian
	for i := 0; i < g.M; i++ {
		for j := 0; j < g.N; j++ {
			var acc float32
			for k := 0; k < g.K; k++ {
				acc += aAt(i, k) * bAt(k, j)
			}
			v := alpha * acc
			off := (uint64(i)*uint64(g.LdC) + uint64(j)) * outSize
			if readC {
				if g.OutF32 {
					v += beta * math.Float32frombits(le.Uint32(cb[off:]))
				} else {
					v += beta * bf16ToF32(le.Uint16(cb[off:]))
				}
			}
			if g.OutF32 {
				le.PutUint32(row[uint64(j)*4:], math.Float32bits(v))
			} else {
				le.PutUint16(row[uint64(j)*2:], f32ToBF16(v))
			}
		}
		if err := ctx.emu.write(d+DevicePtr(uint64(i)*uint64(g.LdC)*outSize), row); err != nil {
			return err
		}
	}
	return nil
}

// spec is the plan's shape as a GemmSpec.
func (g *LtGemm) spec() GemmSpec {
	return GemmSpec{M: g.M, N: g.N, K: g.K, TransA: g.TransA, TransB: g.TransB}
}

func readBF16(ctx *Context, p DevicePtr, n uint64) ([]float32, error) {
	raw := make([]byte, n)
	if err := ctx.emu.read(raw, p); err != nil {
		return nil, err
	}
	out := make([]float32, n/2)
	for i := range out {
		out[i] = bf16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return out, nil
}

func bf16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// f32ToBF16 rounds to nearest even, keeping NaN a (quiet) NaN: cvt.rn.bf16.f32.
func f32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}
