"""python -m seqrec.validate submission.csv data.dir=DIR: list every rule a submission breaks."""

from __future__ import annotations

import sys

import pandas as pd

from seqrec.cli import Command, is_override, run
from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.errors import UserError
from seqrec.inference.submission import check
from seqrec.storage import localised, storage_options

COMMAND = Command(
    usage="python -m seqrec.validate SUBMISSION.csv [data.dir=DIR] [key=value ...]",
    summary="Check a submission against the contest's rules for the folder's test.csv (columns, ranks, eval.k "
            "distinct known\ntracks per test user, no other user); prints every broken rule, exits 1 if any.",
    keys=("data.dir", "eval.k"),
    examples=("python -m seqrec.validate runs/demo/submission.csv",
              "python -m seqrec.validate runs/lr=1e-3/submission.csv data.dir=data/real"),
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    files = [a for a in argv if not is_override(a)]
    if len(files) != 1:
        raise UserError(f"give exactly one submission file, got {files or 'none'}; usage: {COMMAND.usage}")
    with localised(load_config([a for a in argv if is_override(a)])) as (cfg, _):
        ds = load_dataset(cfg.data, cfg.clean)
    try:
        frame = pd.read_csv(files[0], storage_options=storage_options(files[0]))
    except ValueError as err:  # parser errors, an empty file, bad encoding
        raise UserError(f"{files[0]}: cannot read as CSV: {str(err).splitlines()[0]}") from err
    problems = check(frame, ds, cfg.eval.k)
    for p in problems:
        print(f"{files[0]}: {p}")
    if problems:
        return 1
    print(f"{files[0]}: valid ({frame['user_id'].nunique():,} users x {cfg.eval.k} items)")
    return 0


if __name__ == "__main__":
    sys.exit(run(COMMAND, main))
