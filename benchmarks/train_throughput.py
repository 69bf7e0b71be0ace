"""Does data loading keep up with training? Batches/s of the loader alone vs the training step alone.

python benchmarks/train_throughput.py data.dir=data/synthetic/demo [preset=demo] [train.compile=true] [key=value ...]

The loader is the real training DataLoader (batched gathers from flat numpy arrays); the step is forward,
loss, backward and an optimizer step of the configured model and loss on one pre-fetched batch. With
train.compile=true the step is also timed with the network under torch.compile (same weights, compiled at warm-up).
"""

from __future__ import annotations

import sys
import time

import torch

from seqrec import PAD
from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.split import make_split
from seqrec.training.datamodule import SeqDataModule
from seqrec.training.module import SeqRecModule

N_BATCHES = 50


def main(argv: list[str]) -> None:
    if not any(a.startswith("preset=") for a in argv):
        argv = [*argv, "preset=demo"]
    cfg = load_config(argv)
    torch.manual_seed(cfg.seed)
    ds = load_dataset(cfg.data, cfg.clean)
    dm = SeqDataModule(make_split(ds, cfg.split, cfg.seed), cfg)
    loader = dm.train_dataloader()
    n = min(N_BATCHES, len(loader))

    t0 = time.perf_counter()
    batches = [b for b, _ in zip(loader, range(n), strict=False)]
    loader_s = time.perf_counter() - t0

    side = dm.side_tables()
    plain = SeqRecModule.create(cfg.model, cfg.train, ds.n_items, side=side)
    compiled = None
    if cfg.train.compile:
        compiled = SeqRecModule.create(cfg.model, cfg.train, ds.n_items, side=side)
        compiled.load_state_dict(plain.state_dict())  # the same starting weights
    rates = {"training step alone": step_rate(plain, batches, cfg.train.lr)}
    if compiled is not None:
        compiled.configure_model()
        rates["training step alone, compiled"] = step_rate(compiled, batches, cfg.train.lr)

    print(f"{n} batches of {cfg.train.batch_size} windows x {cfg.model.max_len} events, loss={cfg.train.loss}, "
          f"workers={cfg.train.num_workers}, threads={torch.get_num_threads()}")
    print("| part | batches/s |")
    print("|---|---:|")
    print(f"| loader alone | {n / loader_s:.1f} |")
    for part, rate in rates.items():
        print(f"| {part} | {rate:.1f} |")
    step = rates["training step alone"]
    print(f"loader_over_step={(n / loader_s) / step:.1f}"
          + (f" compiled_over_plain={rates['training step alone, compiled'] / step:.2f}" if len(rates) > 1 else ""))


def step_rate(module: SeqRecModule, batches: list[dict], lr: float) -> float:
    """Optimizer steps per second over `batches`, after one warm-up step (where a compiled network compiles)."""
    n_items = module.net.n_items
    module.neg_q = torch.full((n_items + 1,), 1.0 / n_items)
    module.neg_q[PAD] = 0.0
    module.log = lambda *a, **k: None  # no trainer attached: logging is a no-op here
    opt = torch.optim.AdamW(module.parameters(), lr=lr)
    module.training_step(batches[0], 0).backward()
    t0 = time.perf_counter()
    for i, batch in enumerate(batches):
        opt.zero_grad()
        module.training_step(batch, i).backward()
        opt.step()
    return len(batches) / (time.perf_counter() - t0)


if __name__ == "__main__":
    main(sys.argv[1:])
