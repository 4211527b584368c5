#!/usr/bin/env python3
"""torch.distributed gloo all-reduce of a 64 MiB fp32 buffer between 2 local
processes: the side-by-side number for dist's BenchmarkAllReduce64MB.

    python3 bench/gloo_allreduce.py [--iters 20] [--mib 64] [--nproc 2]

Prints the median and mean milliseconds per all-reduce measured on rank 0
(after one warm-up call; a barrier before each timed call), and MB/s counting
the buffer once per call as the Go benchmark does.
"""
import argparse
import os
import socket
import statistics
import time

import torch
import torch.distributed as tdist
import torch.multiprocessing as mp


def worker(rank, args, port, out):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=args.nproc)
    n = args.mib * (1 << 20) // 4
    buf = torch.arange(n, dtype=torch.float32).remainder_(1000).mul_(0.001 * (rank + 1))
    tdist.all_reduce(buf)  # warm-up
    times = []
    for _ in range(args.iters):
        tdist.barrier()
        t0 = time.perf_counter()
        tdist.all_reduce(buf)
        times.append(time.perf_counter() - t0)
    if rank == 0:
        out.put(times)
    tdist.barrier()
    tdist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--nproc", type=int, default=2)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, args, port, out)) for r in range(args.nproc)]
    for p in procs:
        p.start()
    times = out.get()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"rank exited with {p.exitcode}")
    med = statistics.median(times)
    mb = args.mib * (1 << 20) / 1e6
    print(f"torch {torch.__version__} gloo all-reduce {args.mib} MiB fp32, {args.nproc} local processes, "
          f"{args.iters} iters: median {med * 1e3:.1f} ms, mean {statistics.mean(times) * 1e3:.1f} ms, "
          f"{mb / med:.0f} MB/s")


if __name__ == "__main__":
    main()
