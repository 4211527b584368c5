#!/usr/bin/env python3
"""PyTorch baseline for `purpcode sft` throughput (BenchmarkSFTStep in
train/sft): the same Qwen2 shape (hidden 512, 8 layers, 8 heads / 2 kv heads,
intermediate 1408, vocab 8192, untied head), a 4 x 256 batch, float32 on the
CPU with as many threads as cores, and a full step: forward, token-mean
cross-entropy, backward, clip_grad_norm_(1.0), AdamW. The model is written out
in plain torch (no transformers needed) with HF Qwen2 semantics: RMSNorm,
rotate-half RoPE, GQA with q/k/v bias, SwiGLU.

Prints one JSON line: {"tokens_per_s": ..., ...}. Exits 0 with a message on
stderr, printing {"skipped": "..."}, when torch cannot be imported.

    /usr/bin/python3 bench/torch_sft.py [--steps N] [--threads N]
"""
import argparse
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

HIDDEN, LAYERS, HEADS, KV_HEADS, INTER, VOCAB = 512, 8, 8, 2, 1408, 8192
BATCH, SEQ, THETA, EPS = 4, 256, 1e6, 1e-6
HEAD_DIM = HIDDEN // HEADS


class RMSNorm(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def attention(q, k, v):
    """Causal attention: torch's fused kernel where it exists (>= 2.0), the
    textbook masked softmax otherwise (Debian bookworm ships torch 1.13)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    t = q.shape[-2]
    mask = torch.full((t, t), float("-inf")).triu(1)
    return torch.softmax(q @ k.transpose(-1, -2) / HEAD_DIM ** 0.5 + mask, dim=-1) @ v


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = RMSNorm(HIDDEN), RMSNorm(HIDDEN)
        self.q = torch.nn.Linear(HIDDEN, HEADS * HEAD_DIM, bias=True)
        self.k = torch.nn.Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=True)
        self.v = torch.nn.Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=True)
        self.o = torch.nn.Linear(HEADS * HEAD_DIM, HIDDEN, bias=False)
        self.gate = torch.nn.Linear(HIDDEN, INTER, bias=False)
        self.up = torch.nn.Linear(HIDDEN, INTER, bias=False)
        self.down = torch.nn.Linear(INTER, HIDDEN, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(b, t, HEADS, HEAD_DIM).transpose(1, 2)
        k = self.k(h).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = self.v(h).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = HEADS // KV_HEADS
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        a = attention(q, k, v)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, HIDDEN))
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, HIDDEN)
        self.layers = torch.nn.ModuleList(Layer() for _ in range(LAYERS))
        self.norm = RMSNorm(HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, VOCAB, bias=False)
        inv = 1.0 / (THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))
        ang = torch.outer(torch.arange(SEQ, dtype=torch.float32), inv)
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Model()
    no_decay = [p for n, p in model.named_parameters() if p.ndim == 1]
    decay = [p for n, p in model.named_parameters() if p.ndim != 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    labels = ids.clone()
    labels[:, 0] = -100

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    dt = time.perf_counter() - start
    print(json.dumps({"tokens_per_s": BATCH * SEQ * args.steps / dt, "step_s": dt / args.steps, "loss": loss,
                      "threads": args.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
