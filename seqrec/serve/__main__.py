"""CLI: python -m seqrec.serve run.dir=RUN [port=8000] [key=value ...]."""

from __future__ import annotations

import sys

import torch
import uvicorn

from seqrec.cli import Command, run
from seqrec.serve.app import check_exposure, create_app, load_serve_config
from seqrec.storage import pulled_run

COMMAND = Command(
    usage="python -m seqrec.serve run.dir=RUN [port=8000] [key=value ...]",
    summary="Serve a trained run over HTTP: recommendations, similar tracks, a user's history and live events "
            "(stored in SQLite).\nOpenAPI docs at /docs.",
    keys=("run.dir", "serve.host", "serve.port", "serve.token", "serve.insecure", "serve.db", "serve.k", "serve.max_k",
          "serve.max_body_bytes", "serve.torch_threads"),
    examples=("python -m seqrec.serve run.dir=runs/demo port=8000",),
)


def main(argv: list[str] | None = None) -> int:
    cfg = load_serve_config(sys.argv[1:] if argv is None else argv)
    check_exposure(cfg)
    cfg, _ = pulled_run(cfg)  # a remote run is served from its local copy, which keeps the posted events
    if cfg.serve.torch_threads:
        torch.set_num_threads(cfg.serve.torch_threads)
    app = create_app(cfg)  # a bad run folder or checkpoint stops here, before serving
    uvicorn.run(app, host=cfg.serve.host, port=cfg.serve.port)
    return 0


if __name__ == "__main__":
    sys.exit(run(COMMAND, main))
