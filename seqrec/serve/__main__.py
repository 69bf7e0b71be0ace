"""CLI: python -m seqrec.serve run.dir=RUN [port=8000] [key=value ...]."""

from __future__ import annotations

import sys

import torch
import uvicorn

from seqrec.data.ingest import DataError
from seqrec.serve.app import create_app, load_serve_config
from seqrec.serve.online import StartupError


def main(argv: list[str] | None = None) -> int:
    cfg = load_serve_config(sys.argv[1:] if argv is None else argv)
    if cfg.serve.torch_threads:
        torch.set_num_threads(cfg.serve.torch_threads)
    try:
        app = create_app(cfg)
    except (StartupError, DataError) as e:
        print(f"seqrec.serve: cannot start: {e}", file=sys.stderr)
        return 1
    uvicorn.run(app, host=cfg.serve.host, port=cfg.serve.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
