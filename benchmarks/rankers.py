"""The ranking stage over one trained run's candidates: the MLP blend vs LightGBM (pointwise and lambdarank), and
what the network is worth to the GBDT.

python benchmarks/rankers.py run.dir=RUN [data.dir=DIR] [key=value ...]

The run's network decodes the candidates of the temporal split's users once (Run.load, the run's own settings);
every row ranks those same candidates:
- `val`: cross-fitted on the temporal window, as train.py's val/score (each half of the users ranked by a ranker
  fitted on the other half);
- `future` (synthetic data): the ranker fitted on the whole temporal window ranks the candidates that the same
  network decodes from the whole log for test.csv's users, scored on future.csv, as predict.py does.
`no network` replaces the network by recent popularity (the same tracks for everyone) as the candidates' scorer
and drops the three model_* features: the GBDT without the network's candidates and features. Fit seconds are one
fit on the whole window; score seconds rank the whole window once. The candidate-recall table says how much of
the best achievable window credit the candidates hold, for tracks the user played before and never played.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
import torch
from candidates import recall  # benchmarks/ is on the path: this file runs as a script

from seqrec import PAD, metrics
from seqrec.config import Config, load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.split import Split, make_split
from seqrec.inference.decode import Decoder, fit_ranker, make_ranker
from seqrec.models.ranker import Candidates, top_k
from seqrec.run import Run

MODEL_FEATURES = ["model_logp", "model_rank", "model_cos"]
ROWS = {
    "blend (MLP, 10 features)": ["rank.model=blend"],
    "gbdt xentropy (all features)": ["rank.model=gbdt", "rank.objective=xentropy"],
    "gbdt lambdarank (all features)": ["rank.model=gbdt", "rank.objective=lambdarank"],
    "gbdt xentropy, no network features": ["rank.model=gbdt", "rank.objective=xentropy",
                                           f"decode.drop_features=[{','.join(MODEL_FEATURES)}]"],
}


def candidates(run: Run, split: Split, users: np.ndarray, popularity: bool = False) -> tuple[Candidates, Decoder]:
    """The candidates of `users` from `split.history`, scored by the run's network or by recent popularity."""
    decoder = run.decoder(split.history)
    if not popularity:
        return decoder.candidates(run.net, users, run.cfg.eval.k), decoder
    pop = torch.as_tensor(decoder.evidence.tables.log_pop, dtype=torch.float32)
    logp = torch.log_softmax(pop.masked_fill(~torch.as_tensor(decoder.allowed), float("-inf")), dim=0)
    step = run.cfg.decode.batch_users
    parts = [decoder.candidates_for(users[i:i + step], logp.expand(len(users[i:i + step]), -1), run.cfg.eval.k)
             for i in range(0, len(users), step)]
    return Candidates.concat(parts, parts[0].names), decoder


def fit_rows(run: Run, split: Split, c: Candidates, c_no: Candidates, future: tuple | None) -> dict[str, dict]:
    k = run.cfg.eval.k
    gain, gain_no = (split.truth.lookup(split.users, x.items) for x in (c, c_no))
    hist = split.history.events
    rows = {}
    for name, extra in {**ROWS, "no network (popularity scorer, no network features)": ROWS[
            "gbdt xentropy, no network features"]}.items():
        v = load_config(extra)  # only the ranker and its features change; the rest is the run's own
        cfg = dataclasses.replace(run.cfg, rank=v.rank, decode=dataclasses.replace(
            run.cfg.decode, drop_features=v.decode.drop_features))
        cands, g = (c_no, gain_no) if name.startswith("no network") else (c, gain)
        t0 = time.perf_counter()
        fitted, recs = fit_ranker(cands, g, cfg.decode, cfg.rank, k)
        crossfit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        whole = make_ranker(cfg.decode, cfg.rank)
        whole = whole.fit(cands, g) if cfg.rank.model == "gbdt" else whole.fit(
            cands, g, cfg.decode.blend_steps, cfg.decode.blend_lr, cfg.decode.blend_l2)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        top_k(cands, whole.score(cands), k)
        score_s = time.perf_counter() - t0
        row = {"val": metrics.competition_score(recs, split.users, split.truth),
               "val ndcg": metrics.ndcg_at_k(recs, split.users, split.truth),
               "val repeat": metrics.repeat_share(recs, split.users, hist["user"].to_numpy(), hist["item"].to_numpy()),
               "fit s": fit_s, "score s": score_s, "crossfit s": crossfit_s}
        if future is not None:
            fsplit, fc, fc_no = future
            fcands = fc_no if name.startswith("no network") else fc
            frecs = top_k(fcands, fitted.score(fcands), k)[0]
            row["future"] = metrics.competition_score(frecs, fsplit.users, fsplit.truth)
        rows[name] = row
        print(name, {key: round(v, 4) for key, v in row.items()}, file=sys.stderr, flush=True)
    return rows


def main(argv: list[str]) -> None:
    cfg: Config = load_config(argv)
    run = Run.load(cfg, whole_log=False)  # scored on the temporal window: the cut's network
    torch.set_grad_enabled(False)
    ds = load_dataset(run.cfg.data, run.cfg.clean)
    split = make_split(ds, run.cfg.split, run.cfg.seed, run.cfg.metric)
    t0 = time.perf_counter()
    c, _ = candidates(run, split, split.users)
    c_no, _ = candidates(run, split, split.users, popularity=True)
    print(f"{len(split.users)} validation users, {int(c.mask.sum()):,} candidates "
          f"({c.mask.sum(1).mean():.0f} per user), decoded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    future = None
    if ds.future is not None:
        fsplit = make_split(ds, dataclasses.replace(run.cfg.split, mode="future"), run.cfg.seed, run.cfg.metric)
        future = (fsplit, candidates(run, fsplit, fsplit.users)[0],
                  candidates(run, fsplit, fsplit.users, popularity=True)[0])
    rows = fit_rows(run, split, c, c_no, future)
    head = ["ranker", "val/score", "val ndcg@k", "val repeat", "future score", "fit s", "score s"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, r in rows.items():
        print(f"| {name} | {r['val']:.4f} | {r['val ndcg']:.4f} | {r['val repeat']:.2f} | "
              f"{r.get('future', float('nan')):.4f} | {r['fit s']:.1f} | {r['score s']:.1f} |")
    print("\n| candidates | users | per user | recall of the best credit: played | never played |")
    print("|---|---|---|---|---|")
    for name, cc in (("network + history + transitions", c), ("popularity + history + transitions", c_no)):
        rc = recall(np.where(cc.mask, cc.items, PAD), split, run.cfg.eval.k)
        print(f"| {name} | {len(split.users)} | {cc.mask.sum(1).mean():.0f} | {rc['played']:.1%} | "
              f"{rc['never played']:.1%} |")


if __name__ == "__main__":
    main(sys.argv[1:])
