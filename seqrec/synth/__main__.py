"""`python -m seqrec.synth --out DIR [--preset demo|full|tiny] [--users N --items M --seed S ...]`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace

from seqrec.cli import run
from seqrec.synth import PRESETS, SynthConfig, generate

EXAMPLES = """examples:
  python -m seqrec.synth --out data/synthetic/demo --preset demo
  python -m seqrec.synth --out data/synthetic/full --preset full --progress
  python -m seqrec.synth --out data/synthetic/demo_seed1 --preset demo --seed 1"""


def main(argv: list[str] | None = None) -> None:
    """Write a synthetic hear-me data set; every SynthConfig field is a flag."""
    p = argparse.ArgumentParser(prog="python -m seqrec.synth", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Write a synthetic hear-me data set that reproduces the published facts "
                                            "of the real log\n(interactions, metadata, test.csv and future.csv, the "
                                            "true next 15 days). Flags left out take the preset's value.")
    p.add_argument("--out", required=True, help="folder to write the hear-me files into")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    p.add_argument("--progress", action="store_true", help="show users simulated so far")
    for f in fields(SynthConfig):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(SynthConfig(), f.name)), default=None)
    args = p.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in fields(SynthConfig) if getattr(args, f.name) is not None}
    counts = generate(replace(PRESETS[args.preset], **overrides), args.out, progress=args.progress)
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))


if __name__ == "__main__":
    sys.exit(run(None, main))
