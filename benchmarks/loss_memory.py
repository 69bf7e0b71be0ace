"""Peak memory and step time of the training loss: naive full softmax vs chunked (exact) vs sampled.

python benchmarks/loss_memory.py [--items 30000 100000 349000] [--positions 2048] [--d-model 64]

Each (loss, catalog size) runs in a fresh subprocess: one forward + backward of the loss on random states
and embeddings, timed, with the process's peak resident memory above what it held before the step (CPU)
or torch's peak allocated memory (CUDA). First it checks that the chunked loss equals the naive one, value
and gradients, to 1e-5 on a case that fits.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from seqrec import PAD
from seqrec.config import ModelConfig, TrainConfig
from seqrec.models.sasrec import SASRec, States
from seqrec.training.losses import sampled_ce, weighted_ce


def naive_ce(h: torch.Tensor, emb: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The reference: all (N, V) logits at once."""
    logits = (h @ emb.T).float()
    logits[:, PAD] = float("-inf")
    return (w * F.cross_entropy(logits, target, reduction="none")).sum() / w.sum()


def net_with(emb: torch.Tensor) -> SASRec:
    """A network whose item table is `emb` (the loss scores through SASRec.score; the blocks are not used)."""
    net = SASRec(ModelConfig(d_model=emb.shape[1], n_heads=1, n_blocks=1, use_repeat=False, use_side=False),
                 emb.shape[0] - 1)
    net.item_emb.weight = torch.nn.Parameter(emb)
    return net.to(emb.device)


def inputs(n: int, v: int, d: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = (torch.randn(n, d, generator=g) * 0.1).to(device).requires_grad_()
    emb = (torch.randn(v + 1, d, generator=g) * 0.1).to(device).requires_grad_()
    target = torch.randint(1, v + 1, (n,), generator=g).to(device)
    w = torch.rand(n, generator=g).to(device)
    return h, emb, target, w


def check_equal(device: str) -> float:
    """Largest absolute difference of chunked vs naive loss and gradients."""
    diffs = []
    for chunk in (1, 7, 64):
        h, emb, target, w = inputs(200, 3000, 32, device)
        a = naive_ce(h, emb, target, w)
        ga = torch.autograd.grad(a, (h, emb))
        net = net_with(emb.detach().clone().requires_grad_())
        b = weighted_ce(net, States(h, None), target, w, chunk)
        gb = torch.autograd.grad(b, (h, net.item_emb.weight))
        diffs += [(a - b).abs().item()] + [(x - y).abs().max().item() for x, y in zip(ga, gb, strict=True)]
    return max(diffs)


def step(loss: str, h: torch.Tensor, emb: torch.Tensor, net: SASRec, target: torch.Tensor, w: torch.Tensor,
         chunk: int, negatives: int) -> None:
    """One forward + backward of a loss."""
    v = emb.shape[0] - 1
    if loss == "naive":
        out = naive_ce(h, emb, target, w)
    elif loss == "chunked":
        out = weighted_ce(net, States(h, None), target, w, chunk)
    else:
        q = torch.full((v + 1,), 1.0 / v, device=h.device)
        q[PAD] = 0
        neg = torch.multinomial(q, negatives, replacement=True)
        window = torch.zeros(1, len(h), dtype=torch.int64, device=h.device)  # read only with a re-listen bias
        out = sampled_ce(net, h[None], window, target, w, neg, q.clamp_min(1e-12).log())
    out.backward()


def run_one(loss: str, n: int, v: int, d: int, chunk: int, negatives: int, device: str) -> dict:
    """One forward + backward, after one on a tiny problem (torch initialises checkpointing lazily, about a second
    on the first call); called in a fresh process."""
    tiny = inputs(8, 50, d, device, seed=1)
    step(loss, tiny[0], tiny[1], net_with(tiny[1]), tiny[2], tiny[3], chunk, min(negatives, 16))
    h, emb, target, w = inputs(n, v, d, device)
    net = net_with(emb)  # before the clock and the memory baseline: only the loss step is measured
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_now()
    t0 = time.perf_counter()
    step(loss, h, emb, net, target, w, chunk, negatives)
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _peak_rss() - base
    return {"seconds": time.perf_counter() - t0, "peak_mib": peak / 2**20}


def _rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, nargs="+", default=[30_000, 100_000, 349_000])
    p.add_argument("--positions", type=int, default=2048, help="non-PAD target positions in the step")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--chunk", type=int, default=TrainConfig.loss_chunk, help="positions per logits block")
    p.add_argument("--negatives", type=int, default=2048)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        loss, v = a.one.split(":")
        print(json.dumps(run_one(loss, a.positions, int(v), a.d_model, a.chunk, a.negatives, a.device)))
        return
    print(f"device {a.device}; chunked vs naive max |diff| (loss and gradients): {check_equal(a.device):.2e}")
    print(f"positions {a.positions}, d_model {a.d_model}, chunk {a.chunk} (train.loss_chunk default "
          f"{TrainConfig.loss_chunk}), sampled negatives {a.negatives}")
    print("| catalog | loss | step s | peak MiB | memory x naive | time x naive |")
    print("|---:|---|---:|---:|---:|---:|")
    for v in a.items:
        rows = {}
        for loss in ("naive", "chunked", "sampled"):
            cmd = [sys.executable, __file__, "--one", f"{loss}:{v}", "--positions", str(a.positions),
                   "--d-model", str(a.d_model), "--chunk", str(a.chunk), "--negatives", str(a.negatives),
                   "--device", a.device]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                rows[loss] = None
                print(f"| {v:,} | {loss} | failed: {out.stderr.strip().splitlines()[-1]} | | | |")
                continue
            rows[loss] = r = json.loads(out.stdout.strip().splitlines()[-1])
            ref = rows.get("naive")
            mem = f"{r['peak_mib'] / ref['peak_mib']:.2f}" if ref else "-"
            tim = f"{r['seconds'] / ref['seconds']:.2f}" if ref else "-"
            print(f"| {v:,} | {loss} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | {mem} | {tim} |", flush=True)


if __name__ == "__main__":
    main()
