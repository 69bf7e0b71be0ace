"""python -m seqrec.validate submission.csv data.dir=DIR: list every rule a submission breaks."""

from __future__ import annotations

import sys

import pandas as pd

from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.inference.submission import check


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    files = [a for a in argv if "=" not in a]
    if len(files) != 1:
        print("usage: python -m seqrec.validate SUBMISSION.csv data.dir=DIR [key=value ...]", file=sys.stderr)
        return 2
    cfg = load_config([a for a in argv if "=" in a])
    ds = load_dataset(cfg.data, cfg.clean)
    try:
        frame = pd.read_csv(files[0])
    except (OSError, ValueError) as err:  # ValueError: parser errors, an empty file, bad encoding
        print(f"{files[0]}: cannot read: {err}", file=sys.stderr)
        return 1
    problems = check(frame, ds, cfg.eval.k)
    for p in problems:
        print(f"{files[0]}: {p}")
    if problems:
        return 1
    print(f"{files[0]}: valid ({frame['user_id'].nunique():,} users x {cfg.eval.k} items)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
