"""A trained run, rebuilt one way: `Run.load(cfg)` is how predict.py, seqrec.evaluate, seqrec.similar and the
service get the network, its ranking stage and the full config it was trained with (cleaning, baselines,
features, decoding), from the run folder's config.yaml and best.ckpt.

A command may change where data and outputs live, how lists are cut, served or re-ranked, and the device (the
settings declared so in seqrec.config, `command=True`); any other setting it gives that differs from the run's is
refused, naming the key, because the network and its ranking stage were fitted on features computed that way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from seqrec import runfolder
from seqrec.baselines import make_baseline
from seqrec.config import Config, command_may_change, saved_model, upgrade_saved
from seqrec.data.dataset import Dataset
from seqrec.data.ids import IdMap
from seqrec.data.sequences import build_sequences
from seqrec.errors import UserError
from seqrec.inference.decode import Decoder, make_decoder
from seqrec.inference.shards import decode_shards
from seqrec.metrics import repeat_share
from seqrec.models.features import event_features
from seqrec.models.sasrec import SASRec
from seqrec.ranking.evidence import LogTables
from seqrec.ranking.rankers import Ranker, load_ranker


class RunError(UserError):
    """A run that cannot be used as asked; the message names the file or the setting and what to do."""


@dataclass
class Run:
    """The network, its ranking stage and the config they were trained with (plus the command's allowed changes)."""

    cfg: Config
    net: SASRec
    ranker: Ranker
    catalog: str | None
    ckpt: Path
    """The checkpoint the network and ranker came from."""

    @classmethod
    def load(cls, cfg: Config, whole_log: bool = True) -> Run:
        """The run in cfg.run.dir under the settings `cfg` was given (cfg.overrides). `whole_log`: the lists are
        decoded from the whole log (predict.py, the service, similar tracks), so the network refitted on it
        (refit.ckpt) is used when there is one; else best.ckpt, the network that never saw the last window."""
        run_dir = runfolder.check_folder(cfg.run)
        saved, ckpt = run_dir / "config.yaml", _checkpoint(cfg, whole_log)
        for path in (saved, ckpt):
            if not path.exists():
                raise RunError(f"{path} not found: train first with `python train.py run.dir={cfg.run.dir}`")
        try:  # a run trained before a key moved is read with the key in its new place
            upgraded = upgrade_saved(OmegaConf.to_container(OmegaConf.load(saved)))
        except UserError as e:
            raise RunError(f"{run_dir}: {e}") from e
        trained = OmegaConf.merge(OmegaConf.structured(Config), upgraded)
        given = OmegaConf.structured(cfg)
        refused = []
        for item in cfg.overrides:
            key = item.split("=", 1)[0]
            value = OmegaConf.select(given, key)
            if command_may_change(key):
                OmegaConf.update(trained, key, value, merge=False)
            elif OmegaConf.select(trained, key) != value:
                refused.append(f"{key}={OmegaConf.select(trained, key)} (given: {value})")
        if refused:
            raise RunError(f"{run_dir} was trained with {', '.join(refused)}: the network and its ranking stage "
                           f"were fitted on features made that way; drop the override to use the run as trained, "
                           f"or train a new run with it")
        merged = OmegaConf.to_object(trained)
        merged.overrides = list(cfg.overrides)
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            hp = state["hyper_parameters"]
            digest = hp.get("config_digest")  # None: saved before checkpoints carried it
            if digest is not None and digest != runfolder.config_digest(saved.read_text()):
                raise RunError(f"{ckpt} was written by another training than {saved} (its config digest differs): "
                               f"train again with `python train.py run.dir={cfg.run.dir}`")
            net = SASRec(saved_model(hp["model"]), hp["n_items"], hp.get("side"))
            net.load_state_dict({k[len("net."):]: v for k, v in state["state_dict"].items() if k.startswith("net.")})
            ranker = load_ranker(state["ranker"])
        except RunError:
            raise
        except Exception as e:  # truncated, not a checkpoint, another shape: no model
            raise RunError(f"{ckpt}: cannot load the trained model ({type(e).__name__}: {e}); retrain with "
                           f"`python train.py run.dir={cfg.run.dir}`") from e
        return cls(merged, net.eval().to(decode_device(merged)), ranker, hp.get("catalog"), ckpt)

    @property
    def item_map(self) -> IdMap | None:
        """The catalogue's ids as the run was trained on them (None for a run saved before runs kept them)."""
        path = self.cfg.run.item_ids
        return IdMap.load(path) if path.exists() else None

    def check_catalog(self, ds: Dataset) -> None:
        """Refuse a data set whose catalog is not the one the run was trained on."""
        if self.net.n_items != ds.n_items or (self.catalog is not None and self.catalog != ds.catalog_id):
            raise RunError(f"{self.cfg.run.dir} was trained on another catalog ({self.net.n_items:,} tracks) than "
                           f"{self.cfg.data.dir} has ({ds.n_items:,}): use the data set the run was trained on")

    def decoder(self, ds: Dataset, tables: LogTables | None = None) -> Decoder:
        """The decoder of a history in `ds`, with the run's settings; `tables` default to ds's own log."""
        self.check_catalog(ds)
        seqs = build_sequences(ds.events, ds.n_users, self.cfg.clean.session_gap_min)
        return make_decoder(ds, event_features(seqs, self.cfg.train.weight_mode), self.cfg,
                            tables if tables is not None else LogTables.build(ds, self.cfg.rank))

    def recommend(self, ds: Dataset, users: np.ndarray, k: int) -> np.ndarray:
        """(n, k) lists for `users` from their history in `ds`, decoded in shards of decode.shard_users (each with
        its own evidence, all reading the whole log's tables) by decode.workers processes."""
        d = self.cfg.decode
        recs = decode_shards(self.shard_topk(ds, k), np.asarray(users, dtype=np.int64), d.shard_users, d.workers)
        self.report_repeats(recs, users, ds)
        return recs

    def shard_topk(self, ds: Dataset, k: int) -> Callable[[np.ndarray], np.ndarray]:
        """users -> their (n, k) lists, decoded as one shard: the shard's own evidence, the whole log's tables
        (built here, once)."""
        ranked = self.shard_ranked(ds, k)
        return lambda u: ranked(u)[0]

    def shard_ranked(self, ds: Dataset, k: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """users -> their (n, k) lists and ranking scores, decoded as one shard (shard_topk)."""
        tables = LogTables.build(ds, self.cfg.rank)
        return lambda u: self.decoder(ds.shard(u), tables).ranked(self.net, u, self.ranker, k)

    def report_repeats(self, recs: np.ndarray, users: np.ndarray, ds: Dataset) -> None:
        ev = ds.shard(users).events  # their plays only: the rest of the log cannot make a repeat
        rep = repeat_share(recs, users, ev["user"].to_numpy(), ev["item"].to_numpy())
        print(f"sasrec ({self.ckpt.name}): lists are {rep:.0%} repeats, {1 - rep:.0%} new tracks")


def _checkpoint(cfg: Config, whole_log: bool) -> Path:
    """The checkpoint a command decodes with: `ckpt=best` / `ckpt=last` when named; else, for a run that finished
    training, refit.ckpt (with `whole_log` and when there is one) or best.ckpt. A run that did not finish is refused
    unless the checkpoint is named."""
    named = cfg.run.named_ckpts
    st = runfolder.state(cfg.run.dir)
    if cfg.ckpt in named:
        if st is not None and st.get("state") != "complete":
            print(f"{cfg.run.dir} did not finish training: decoding with its {cfg.ckpt} checkpoint as asked")
        return named[cfg.ckpt]
    if cfg.ckpt:
        raise RunError(f"ckpt={cfg.ckpt}: a trained run decodes with ckpt=best or ckpt=last (or, left out, the "
                       "checkpoint its training finished with)")
    if st is not None and st.get("state") != "complete":
        raise RunError(f"{cfg.run.dir} did not finish training (state {st.get('state')!r} since {st.get('at')}; "
                       f"stopped or still running): pass ckpt=best or ckpt=last to decode with its checkpoint anyway, "
                       f"or train again")
    return cfg.run.refit_ckpt if whole_log and cfg.run.refit_ckpt.exists() else cfg.run.best_ckpt


def recommend(cfg: Config, ds: Dataset, users: np.ndarray, k: int, run: Run | None = None) -> np.ndarray:
    """(n, k) lists for `users` from history `ds` by cfg.model.name: `sasrec` decodes the trained run (loaded from
    cfg.run.dir unless given), anything else fits that baseline."""
    if cfg.model.name == "sasrec":
        return (run or Run.load(cfg)).recommend(ds, users, k)
    return make_baseline(cfg.model.name, cfg.baselines, cfg.seed).fit(ds).recommend(users, k)[0]


def decode_device(cfg: Config) -> str:
    """decode.device, with auto meaning a GPU when there is one: the one rule for where a trained run decodes."""
    if cfg.decode.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.decode.device
