"""Canonical artists and song groups (seqrec.data.canon) against the generator's truth (entities.csv).

python benchmarks/entities.py --data DIR [key=value ...]   (DIR from python -m seqrec.synth, whose versions knobs
                                                            are on by default, so it holds entities.csv)

Pairwise scores over the catalogue's tracks: two tracks are a pair when they share a song group (ours / the
truth's song); precision = true pairs found / pairs we made, recall = true pairs found / true pairs. Artists: the
same over the tracks' primary artist (F1), and the share of collaborations whose partner we split out. Then the
alternates (versions, covers, duplicates) we did not put with their song, by kind, and the largest false merges.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from seqrec.config import load_config
from seqrec.data.canon import canonicalise
from seqrec.data.ingest import read_csv
from seqrec.synth.versions import COVER, DUPLICATE, VERSION


def pair_scores(ours: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of the pairs of items that share a label."""
    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) / 2).sum())

    joint = pd.DataFrame({"ours": ours, "truth": truth}).value_counts().to_numpy()  # the non-empty cells only
    both, made, true = pairs(joint), pairs(np.bincount(pd.factorize(ours)[0])), \
        pairs(np.bincount(pd.factorize(truth)[0]))
    return (both / made if made else 1.0), (both / true if true else 1.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    args, rest = p.parse_known_args()
    cfg = load_config(rest).clean
    folder = Path(args.data)
    items = read_csv(folder / "item_metadata.csv").to_pandas()
    truth = pd.read_csv(folder / "entities.csv").merge(items[["item_id"]], on="item_id")  # tracks in the metadata
    items = items.set_index("item_id").loc[truth["item_id"]].reset_index()
    t0 = time.perf_counter()
    report: dict = {}
    ent = canonicalise(items["artist_name"], items["track_name"], items["track_duration"].to_numpy(np.float64), cfg,
                       report)
    seconds = time.perf_counter() - t0
    named = items["artist_name"].notna().to_numpy()
    primary = truth["artists"].astype(str).str.split(";").str[0].astype(int).to_numpy()
    sp, sr = pair_scores(ent.song_group, truth["song"].to_numpy())
    ap, ar = pair_scores(ent.artist[named], primary[named])
    collab = truth["artists"].astype(str).str.contains(";").to_numpy() & named
    partner = truth["artists"].astype(str).str.split(";").str[1]
    owner = pd.Series(ent.artist[named], index=primary[named]).groupby(level=0).agg(lambda s: s.mode().iloc[0])
    split = [len(ent.artists[i]) > 1 and owner.get(int(partner[i])) == ent.artists[i][1]
             for i in np.flatnonzero(collab)]
    print(f"catalogue: {len(items):,} tracks ({args.data}), {seconds:.1f} s; report {report}\n")
    print("| what | precision | recall | F1 |\n|---|---|---|---|")
    print(f"| song groups (pairs of tracks) | {sp:.3f} | {sr:.3f} | {2 * sp * sr / (sp + sr):.3f} |")
    print(f"| canonical artists (pairs of tracks, primary artist) | {ap:.3f} | {ar:.3f} | "
          f"{2 * ap * ar / (ap + ar):.3f} |")
    print(f"\ncollaborations whose partner is split out as the partner's own canonical artist: "
          f"{np.mean(split):.1%} of {len(split):,}")

    kind, label = truth["kind"].to_numpy(), truth["label"].fillna("").to_numpy()
    song_row = pd.Series(np.flatnonzero(kind == 0), index=truth["work"][kind == 0].to_numpy())
    has_song = np.isin(truth["work"], song_row.index)  # the song itself made it into the metadata
    own = np.full(len(truth), -1)
    own[has_song] = ent.song_group[song_row.loc[truth["work"][has_song]].to_numpy()]
    missed = has_song & (kind != 0) & (ent.song_group != own)
    print("\n| alternate | label | tracks | not in their song's group |\n|---|---|---|---|")
    for k, name in ((VERSION, "version"), (DUPLICATE, "duplicate upload"), (COVER, "cover (must stay apart)")):
        for lab in sorted(set(label[kind == k])):
            sel = has_song & (kind == k) & (label == lab)
            wrong = (~missed[sel]).sum() if k == COVER else missed[sel].sum()
            print(f"| {name} | {lab or '-'} | {sel.sum():,} | {wrong:,} ({wrong / max(sel.sum(), 1):.1%}) |")
    examples = [(items["track_name"][i], items["artist_name"][i], items["track_name"][song_row[truth["work"][i]]])
                for i in np.flatnonzero(missed & (kind != COVER))[:8]]
    print("\nmissed, e.g.: " + "; ".join(f"{a!r} by {b!r} (song {c!r})" for a, b, c in examples))


if __name__ == "__main__":
    main()
