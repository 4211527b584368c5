#!/usr/bin/env python3
"""Generates adamw_ref.json: three torch.optim.AdamW steps on a small float32
parameter set (one tensor with weight decay, one without), with a different
learning rate each step. Run once with PyTorch (Debian: /usr/bin/python3);
the output is committed and read by optim_test.go.

    /usr/bin/python3 adamw_ref.py > adamw_ref.json
"""
import json

import torch

torch.manual_seed(1234)
w = torch.randn(3, 4, dtype=torch.float32).requires_grad_()
b = torch.randn(5, dtype=torch.float32).requires_grad_()
init = {"w": w.detach().flatten().tolist(), "b": b.detach().flatten().tolist()}
cfg = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}
opt = torch.optim.AdamW(
    [{"params": [w], "weight_decay": cfg["weight_decay"]}, {"params": [b], "weight_decay": 0.0}],
    lr=1e-2, betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"], foreach=False,
)
steps = []
for lr in (1e-2, 3e-2, 5e-3):
    for g in opt.param_groups:
        g["lr"] = lr
    gw = torch.randn_like(w)
    gb = torch.randn_like(b) * 1e-3  # small gradients: eps and bias correction matter
    w.grad, b.grad = gw, gb
    opt.step()
    steps.append({
        "lr": lr,
        "grad_w": gw.flatten().tolist(), "grad_b": gb.flatten().tolist(),
        "w": w.detach().flatten().tolist(), "b": b.detach().flatten().tolist(),
        "exp_avg_w": opt.state[w]["exp_avg"].flatten().tolist(),
        "exp_avg_sq_b": opt.state[b]["exp_avg_sq"].flatten().tolist(),
    })
print(json.dumps({"torch": torch.__version__, "config": cfg, "init": init, "steps": steps}))
