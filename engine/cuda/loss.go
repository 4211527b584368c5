package cuda

import (
	"fmt"

	"purpcode/engine"
	"purpcode/kernels"
)

// lossChunk is how many token rows of full-vocabulary F32 logits exist at
// once (plus their bf16 gradient): 256 rows keep the head GEMMs large
// (M = 256 against V x C) while a 152k vocabulary needs about 220 MiB of
// scratch, not the (N, V) logits of the whole batch.
const lossChunk = 256

// headRows is a head call's rows that have a target, in row order: only
// they get logits (prompt tokens in SFT and GRPO cost nothing).
type headRows struct {
	ids        []int32 // global row numbers, ascending
	tg         []int32 // their targets
	contiguous bool    // ids are consecutive: h and dh are used in place
}

// rowKernel launches the per-row kernel on chunk rows [c0, c0+m) of the
// compacted rows: z is their F32 logits (m, V), zb their bf16 gradient
// buffer (0 when no gradient is wanted) and tg their targets on the device.
type rowKernel func(c0, m int, z, zb, tg kernels.DevicePtr)

// selectRows checks a head call's operands and returns its rows with a
// target. Targets are checked on the host, with the CPU's message; the
// kernels' error flag, read at the end of lmHead, is a second guard.
func selectRows(op string, h, w *engine.Tensor, targets []int32, dh, dw *engine.Tensor) headRows {
	mustDev(op, h, w, dh, dw)
	mustType(op, "h", h, engine.BF16)
	mustType(op, "w", w, engine.BF16)
	n, c := rowsCols(h)
	vocab := w.Shape[0]
	if len(w.Shape) != 2 || w.Shape[1] != c || len(targets) != n {
		panic(fmt.Sprintf("cuda.%s: h %s, w %s with %d targets", op, engine.ShapeString(h.Shape), engine.ShapeString(w.Shape), len(targets)))
	}
	if dh != nil {
		mustType(op, "dh", dh, engine.BF16)
		if dh.Numel() != n*c {
			panic(fmt.Sprintf("cuda.%s: dh %s for h %s", op, engine.ShapeString(dh.Shape), engine.ShapeString(h.Shape)))
		}
	}
	if dw != nil {
		mustType(op, "dw", dw, engine.F32)
		if dw.Numel() != vocab*c {
			panic(fmt.Sprintf("cuda.%s: dw %s for w %s", op, engine.ShapeString(dw.Shape), engine.ShapeString(w.Shape)))
		}
	}
	var hr headRows
	for r, t := range targets {
		switch {
		case t == engine.IgnoreIndex:
		case t < 0 || int(t) >= vocab:
			panic(fmt.Sprintf("cuda.%s: target %d at row %d outside vocab of %d", op, t, r, vocab))
		default:
			hr.ids = append(hr.ids, int32(r))
			hr.tg = append(hr.tg, t)
		}
	}
	hr.contiguous = len(hr.ids) > 0 && int(hr.ids[len(hr.ids)-1]-hr.ids[0]) == len(hr.ids)-1
	return hr
}

// lmHead is the chunked head shared by the loss and the policy ops: for the
// rows hr selected, chunk rows at a time, logits = h W^T (F32), then
// rows(), then (when dh is not nil) dh = dlogits W and dw += dlogits^T h
// from the bf16 gradient rows() left in zb. dh (N, C) bf16 is overwritten
// (zero on ignored rows); dw (V, C) F32 is accumulated into.
func (b *Backend) lmHead(op string, chunk int, h, w *engine.Tensor, hr headRows, dh, dw *engine.Tensor, rows rowKernel) {
	n, c := rowsCols(h)
	vocab := w.Shape[0]
	m := len(hr.ids)
	if m == 0 {
		if dh != nil {
			b.Zero(dh)
		}
		return
	}
	// hs (m, C) are the rows with a target, dhs their gradient rows.
	var hs, dhs *engine.Tensor
	if hr.contiguous {
		hs = h.View(int(hr.ids[0])*c, m, c)
	} else {
		hs = b.bf16Scratch("lmhead.h", m, c)
		b.gather(op, "lmhead.rows", hs, h, hr.ids, c, n)
	}
	if dh != nil {
		if hr.contiguous {
			lo, hi := int(hr.ids[0]), int(hr.ids[m-1])+1
			if lo > 0 {
				b.zeroBytes(dh.Dev, uint64(2*lo*c))
			}
			if hi < n {
				b.zeroBytes(dh.View(hi*c, (n-hi)*c).Dev, uint64(2*(n-hi)*c))
			}
			dhs = dh.View(lo*c, m, c)
		} else {
			// One spare zero row that ignored rows gather from below.
			dhs = b.bf16Scratch("lmhead.dh", m+1, c)
			b.zeroBytes(dhs.View(m*c, c).Dev, uint64(2*c))
		}
	}
	tg := b.ints("lmhead.targets", hr.tg)
	z := b.buf("lmhead.logits", uint64(4*min(chunk, m)*vocab))
	var zb kernels.DevicePtr
	if dh != nil {
		zb = b.buf("lmhead.dlogits", uint64(2*min(chunk, m)*vocab))
	}
	for c0 := 0; c0 < m; c0 += chunk {
		k := min(chunk, m-c0)
		hk := hs.View(c0*c, k, c)
		zt := &engine.Tensor{DType: engine.F32, Shape: []int{k, vocab}, Dev: z}
		b.gemm(op+" logits", false, true, k, vocab, c, 1, 0, hk, w, zt)
		rows(c0, k, z, zb, tg+kernels.DevicePtr(4*c0))
		if dh == nil {
			continue
		}
		g := &engine.Tensor{DType: engine.BF16, Shape: []int{k, vocab}, Dev: zb}
		b.gemm(op+" dh", false, false, k, c, vocab, 1, 0, g, w, dhs.View(c0*c, k, c))
		if dw != nil {
			b.gemm(op+" dw", true, false, vocab, c, k, 1, 1, g, hk, dw)
		}
	}
	if dh != nil && !hr.contiguous {
		inv := make([]int32, n)
		for i := range inv {
			inv[i] = int32(m)
		}
		for k, r := range hr.ids {
			inv[r] = int32(k)
		}
		b.gather(op, "lmhead.inv", dh, dhs, inv, c, m+1)
	}
	b.checkErr(op, "target outside the vocabulary")
}

// rowF32 returns n F32 values of scratch slot, for per-row outputs.
func (b *Backend) rowF32(slot string, n int) kernels.DevicePtr {
	return b.buf(slot, uint64(4*max(n, 1)))
}

// downloadRows downloads the first len(hr.ids) values of the per-row
// buffer p and scatters them into dst (one slot per row of the call;
// ignored rows get 0).
func (b *Backend) downloadRows(dst []float32, p kernels.DevicePtr, hr headRows) {
	clear(dst)
	if len(hr.ids) == 0 {
		return
	}
	v := make([]float32, len(hr.ids))
	b.Download(v, &engine.Tensor{DType: engine.F32, Shape: []int{len(v)}, Dev: p})
	for k, r := range hr.ids {
		dst[r] = v[k]
	}
}

// uploadRows uploads the values of v at the rows with a target, compacted,
// into scratch slot; nil stays a null pointer.
func (b *Backend) uploadRows(slot string, v []float32, hr headRows) kernels.DevicePtr {
	if v == nil {
		return 0
	}
	p := b.rowF32(slot, len(hr.ids))
	if len(hr.ids) == 0 {
		return p
	}
	c := make([]float32, len(hr.ids))
	for k, r := range hr.ids {
		c[k] = v[r]
	}
	check("upload "+slot, b.ctx.CopyToDevice(p, f32Bytes(c)))
	return p
}

// LMHeadLoss fuses the head GEMM, log-softmax and cross-entropy
// (engine.CPU.LMHeadLoss): h (N, C) and w (V, C) bf16; tokLoss (N) F32 or
// nil receives each row's loss; dh (N, C) bf16 is overwritten and dw
// (V, C) F32 accumulated into with the gradient of scale * sum loss when dh
// is not nil. Returns the loss sum (float64, added on the host in row
// order) and the number of counted targets.
func (b *Backend) LMHeadLoss(h, w *engine.Tensor, targets []int32, tokLoss, dh, dw *engine.Tensor, scale float32) (float64, int) {
	return b.lmHeadLoss(lossChunk, h, w, targets, tokLoss, dh, dw, scale)
}

func (b *Backend) lmHeadLoss(chunk int, h, w *engine.Tensor, targets []int32, tokLoss, dh, dw *engine.Tensor, scale float32) (float64, int) {
	const op = "LMHeadLoss"
	mustDev(op, tokLoss)
	if tokLoss != nil {
		mustType(op, "tokLoss", tokLoss, engine.F32)
		if tokLoss.Numel() != len(targets) {
			panic(fmt.Sprintf("cuda.%s: tokLoss %s for %d targets", op, engine.ShapeString(tokLoss.Shape), len(targets)))
		}
	}
	loss := b.rowF32("lmhead.loss", len(targets))
	vocab := int32(w.Shape[0])
	grad := int32(0)
	if dh != nil {
		grad = 1
	}
	hr := selectRows(op, h, w, targets, dh, dw)
	b.lmHead(op, chunk, h, w, hr, dh, dw, func(c0, m int, z, zb, tg kernels.DevicePtr) {
		b.launch("xent_fwd_bwd", grid1(m, 1), block(512), z, zb, loss+kernels.DevicePtr(4*c0), tg,
			int32(m), vocab, scale, grad, b.errBuf)
	})
	rowLoss := make([]float32, len(targets))
	b.downloadRows(rowLoss, loss, hr)
	var sum float64
	for _, l := range rowLoss {
		sum += float64(l)
	}
	if tokLoss != nil {
		b.Upload(tokLoss, rowLoss)
	}
	return sum, len(hr.ids)
}

// LMHeadTokenStats computes each row's target log-probability and,
// when st.Entropy is not nil, its distribution's entropy
// (engine.CPU.LMHeadTokenStats) into the host slices of st; rows with the
// ignore index get 0.
func (b *Backend) LMHeadTokenStats(h, w *engine.Tensor, targets []int32, st engine.TokenStats) {
	b.lmHeadTokenStats(lossChunk, h, w, targets, st)
}

func (b *Backend) lmHeadTokenStats(chunk int, h, w *engine.Tensor, targets []int32, st engine.TokenStats) {
	const op = "LMHeadTokenStats"
	if len(st.LogProb) != len(targets) || (st.Entropy != nil && len(st.Entropy) != len(targets)) {
		panic(fmt.Sprintf("cuda.%s: %d log-prob and %d entropy slots for %d targets", op, len(st.LogProb), len(st.Entropy), len(targets)))
	}
	logp := b.rowF32("lmhead.logp", len(targets))
	var ent kernels.DevicePtr
	if st.Entropy != nil {
		ent = b.rowF32("lmhead.ent", len(targets))
	}
	vocab := int32(w.Shape[0])
	hr := selectRows(op, h, w, targets, nil, nil)
	b.lmHead(op, chunk, h, w, hr, nil, nil, func(c0, m int, z, _, tg kernels.DevicePtr) {
		entK := kernels.DevicePtr(0)
		if ent != 0 {
			entK = ent + kernels.DevicePtr(4*c0)
		}
		b.launch("policy_rows", grid1(m, 1), block(512), z, kernels.DevicePtr(0), logp+kernels.DevicePtr(4*c0), entK, tg,
			kernels.DevicePtr(0), kernels.DevicePtr(0), int32(m), vocab, int32(0), b.errBuf)
	})
	b.downloadRows(st.LogProb, logp, hr)
	if st.Entropy != nil {
		b.downloadRows(st.Entropy, ent, hr)
	}
}

// LMHeadTokenGrad backpropagates L = sum_r a_r logp_r + e_r H_r
// (engine.CPU.LMHeadTokenGrad) into dh (N, C) bf16, overwritten, and dw
// (V, C) F32, accumulated into; a and e (nil: no entropy term) are host
// per-row coefficients.
func (b *Backend) LMHeadTokenGrad(h, w *engine.Tensor, targets []int32, a, e []float32, dh, dw *engine.Tensor) {
	b.lmHeadTokenGrad(lossChunk, h, w, targets, a, e, dh, dw)
}

func (b *Backend) lmHeadTokenGrad(chunk int, h, w *engine.Tensor, targets []int32, a, e []float32, dh, dw *engine.Tensor) {
	const op = "LMHeadTokenGrad"
	if len(a) != len(targets) || (e != nil && len(e) != len(targets)) {
		panic(fmt.Sprintf("cuda.%s: %d and %d coefficients for %d targets", op, len(a), len(e), len(targets)))
	}
	hr := selectRows(op, h, w, targets, dh, dw)
	if dh == nil {
		return // nothing to write, as on the CPU
	}
	logp := b.rowF32("lmhead.logp", len(targets))
	vocab := int32(w.Shape[0])
	pa, pe := b.uploadRows("lmhead.a", a, hr), b.uploadRows("lmhead.e", e, hr)
	b.lmHead(op, chunk, h, w, hr, dh, dw, func(c0, m int, z, zb, tg kernels.DevicePtr) {
		off := kernels.DevicePtr(4 * c0)
		peK := kernels.DevicePtr(0)
		if pe != 0 {
			peK = pe + off
		}
		b.launch("policy_rows", grid1(m, 1), block(512), z, zb, logp+off, kernels.DevicePtr(0), tg,
			pa+off, peK, int32(m), vocab, int32(1), b.errBuf)
	})
}
