"""One validation of a freshly seeded network, as train.py validates, on DEVICES CPU processes (DDP over gloo);
each process writes what it decoded and the metrics it logged to OUT/rank<r>.json.

python tests/ddp_validate.py OUT DEVICES key=value ...   (run by tests/test_ddp.py)
"""

import json
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.split import make_split
from seqrec.training.datamodule import SeqDataModule
from seqrec.training.module import SeqRecModule
from seqrec.training.ranking_stage import RankingStage


def main(out: Path, devices: int, overrides: list[str]) -> None:
    cfg = load_config(overrides)
    ds = load_dataset(cfg.data, cfg.clean)
    split = make_split(ds, cfg.split, cfg.seed, cfg.metric)
    pl.seed_everything(cfg.seed)
    dm = SeqDataModule(split, cfg)
    module = SeqRecModule.create(cfg.model, cfg.train, ds.n_items, ds.catalog_id, dm.side_tables())
    stage = RankingStage(split, dm.feats, cfg)
    trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", logger=False,
                         callbacks=[stage], enable_progress_bar=False, enable_model_summary=False,
                         use_distributed_sampler=False)
    trainer.validate(module, dm, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps({"decoded": stage.decoded, "metrics": metrics}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
