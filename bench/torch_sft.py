#!/usr/bin/env python3
"""PyTorch baseline for `purpcode sft` throughput (BenchmarkSFTStep in
train/sft): the same Qwen2 shape (by default the `make bench` one: hidden 512,
8 layers, 8 heads / 2 kv heads, intermediate 1408, vocab 8192, untied head), a
4 x 256 batch, float32 on the CPU with as many threads as cores, and a full
step: forward, token-mean cross-entropy, backward, clip_grad_norm_(1.0), AdamW.
The model is written out in plain torch (no transformers needed) with HF Qwen2
semantics: RMSNorm, rotate-half RoPE, GQA with q/k/v bias, SwiGLU.

--device cuda runs the step as `purpcode bench --device cuda` does it: fp32
master weights, gradients and AdamW state, the forward and backward under bf16
autocast (PyTorch eager, no compile). --shape, --layers, --batch and --seq take
the values `purpcode bench` was given, so the two measure the same step.

Prints one JSON line: {"tokens_per_s": ..., ...}. Exits 0 with a message on
stderr, printing {"skipped": "..."}, when torch cannot be imported or
--device cuda finds no GPU.

    /usr/bin/python3 bench/torch_sft.py [--steps N] [--threads N]
    python3 bench/torch_sft.py --device cuda --shape qwen2.5-7b --layers 4 --batch 4 --seq 2048
"""
import argparse
import contextlib
import json
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"torch_sft: torch is not importable ({e}); skipping", file=sys.stderr)
    print(json.dumps({"skipped": f"torch not importable: {e}"}))
    sys.exit(0)

# The shapes of `purpcode bench --shape` (cmd/purpcode/bench.go's benchShapes):
# hidden, layers, heads, kv heads, intermediate, vocab, tied head.
SHAPES = {
    "tiny": (64, 2, 4, 2, 160, 256, True),
    "bench": (512, 8, 8, 2, 1408, 8192, False),
    "qwen2.5-0.5b": (896, 24, 14, 2, 4864, 151936, True),
    "qwen2.5-7b": (3584, 28, 28, 4, 18944, 152064, False),
}
THETA, EPS = 1e6, 1e-6


class Shape:
    def __init__(self, name, layers=0):
        self.hidden, self.layers, self.heads, self.kv_heads, self.inter, self.vocab, self.tied = SHAPES[name]
        if layers > 0:
            self.layers = layers
        self.head_dim = self.hidden // self.heads


class RMSNorm(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))

    def forward(self, x):
        # The statistics in fp32 even under autocast, as HF's Qwen2RMSNorm.
        dt = x.dtype
        x = x.float()
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)).to(dt)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def attention(q, k, v):
    """Causal attention: torch's fused kernel where it exists (>= 2.0), the
    textbook masked softmax otherwise (Debian bookworm ships torch 1.13)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    t = q.shape[-2]
    mask = torch.full((t, t), float("-inf"), device=q.device).triu(1)
    return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + mask, dim=-1) @ v


class Layer(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        hd = s.head_dim
        self.ln1, self.ln2 = RMSNorm(s.hidden), RMSNorm(s.hidden)
        self.q = torch.nn.Linear(s.hidden, s.heads * hd, bias=True)
        self.k = torch.nn.Linear(s.hidden, s.kv_heads * hd, bias=True)
        self.v = torch.nn.Linear(s.hidden, s.kv_heads * hd, bias=True)
        self.o = torch.nn.Linear(s.heads * hd, s.hidden, bias=False)
        self.gate = torch.nn.Linear(s.hidden, s.inter, bias=False)
        self.up = torch.nn.Linear(s.hidden, s.inter, bias=False)
        self.down = torch.nn.Linear(s.inter, s.hidden, bias=False)

    def forward(self, x, cos, sin):
        s, (b, t, _) = self.s, x.shape
        h = self.ln1(x)
        q = self.q(h).view(b, t, s.heads, s.head_dim).transpose(1, 2)
        k = self.k(h).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        v = self.v(h).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = s.heads // s.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        a = attention(q, k, v)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, s.hidden))
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self, s, seq):
        super().__init__()
        self.embed = torch.nn.Embedding(s.vocab, s.hidden)
        self.layers = torch.nn.ModuleList(Layer(s) for _ in range(s.layers))
        self.norm = RMSNorm(s.hidden)
        self.head = torch.nn.Linear(s.hidden, s.vocab, bias=False)
        if s.tied:
            self.head.weight = self.embed.weight
        hd = s.head_dim
        inv = 1.0 / (THETA ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = torch.outer(torch.arange(seq, dtype=torch.float32), inv)
        ang = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", ang.cos()[None, None])
        self.register_buffer("sin", ang.sin()[None, None])

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin)
        return self.head(self.norm(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cpu: float32; cuda: fp32 weights and AdamW, bf16 autocast")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="bench")
    ap.add_argument("--layers", type=int, default=0, help="layers of the shape to build (0: all)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    args = ap.parse_args()
    if args.steps <= 0 or args.batch <= 0 or args.seq <= 1 or args.layers < 0:
        ap.error("need steps > 0, batch > 0, seq > 1 and layers >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("torch_sft: torch %s sees no CUDA device; skipping" % torch.__version__, file=sys.stderr)
        print(json.dumps({"skipped": "torch.cuda.is_available() is false", "torch": torch.__version__}))
        sys.exit(0)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    s = Shape(args.shape, args.layers)
    dev = torch.device(args.device)
    # On the GPU, build the parameters there (torch >= 2.0): initialising a
    # 7B-shape layer stack on the host first costs tens of seconds.
    on_dev = dev if args.device == "cuda" and hasattr(dev, "__enter__") else contextlib.nullcontext()
    with on_dev:
        model = Model(s, args.seq).to(dev)
    no_decay = [p for n, p in model.named_parameters() if p.ndim == 1]
    decay = [p for n, p in model.named_parameters() if p.ndim != 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    ids = torch.randint(0, s.vocab, (args.batch, args.seq)).to(dev)
    labels = ids.clone()
    labels[:, 0] = -100
    # bf16 autocast on the GPU only: the CPU baseline stays float32.
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if args.device == "cuda" else contextlib.nullcontext

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            logits = model(ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, s.vocab), labels[:, 1:].reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()  # waits for the GPU: each step is timed to its end

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    dt = time.perf_counter() - start
    out = {"tokens_per_s": args.batch * args.seq * args.steps / dt, "step_s": dt / args.steps, "loss": loss,
           "threads": args.threads, "torch": torch.__version__}
    if args.device == "cuda":
        out.update(device=torch.cuda.get_device_name(dev), shape=args.shape, layers=s.layers, batch=args.batch,
                   seq=args.seq, params=sum(p.numel() for p in model.parameters()),
                   peak_bytes=torch.cuda.max_memory_allocated(dev))
    print(json.dumps(out))

if __name__ == "__main__":
    main()
