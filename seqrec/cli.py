"""The command-line front of every entry point: --help built from the config dataclasses, a user's mistake as one
`error:` line with exit status 2, an internal error with its traceback (SEQREC_DEBUG=1: tracebacks for all)."""

from __future__ import annotations

import ast
import functools
import inspect
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import OmegaConf

from seqrec import config
from seqrec.errors import UserError

_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")
_KEY_WIDTH = 32  # --help's key=default column


@dataclass(frozen=True)
class Command:
    """What `--help` says about one entry point."""

    usage: str
    summary: str
    keys: tuple[str, ...]
    examples: tuple[str, ...]


def is_override(arg: str) -> bool:
    """`key=value` with a dotted-name key; anything else (`runs/lr=1e-3/sub.csv`, an existing path) is a path."""
    return bool(_OVERRIDE.match(arg)) and not os.path.exists(arg)


def help_text(cmd: Command) -> str:
    """Usage, summary, the main keys with their defaults and one-line docs, examples."""
    defaults = OmegaConf.structured(config.Config)
    docs = field_docs()
    rows = []
    for key in cmd.keys:
        value = OmegaConf.select(defaults, key) if key != "preset" else None
        shown = "-" if value is None else (OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
        rows.append((f"{key}={shown}", docs.get(key, f"merge configs/NAME.yaml ({', '.join(config.presets())})")))
    width = min(max((len(r[0]) for r in rows), default=0), _KEY_WIDTH)
    lines = [f"usage: {cmd.usage}", "", cmd.summary, ""]
    if rows:
        lines += ["main keys (default shown; every key of seqrec/config.py can be set as key=value):"]
        for k, doc in rows:  # a long key=default gets its doc on the next line
            lines += [f"  {k.ljust(width)}  {doc}"] if len(k) <= width else [f"  {k}", f"  {'':{width}}  {doc}"]
        lines += [""]
    lines += ["examples:"] + [f"  {e}" for e in cmd.examples]
    lines += ["", "A mistake in what you give prints `error: ...` and exits 2; SEQREC_DEBUG=1 shows the traceback."]
    return "\n".join(lines)


@functools.cache
def field_docs() -> dict[str, str]:
    """First line of each config field's docstring, by dotted key (read from seqrec/config.py's source)."""
    tree = ast.parse(inspect.getsource(config))
    by_class: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            docs, body = {}, node.body
            for a, b in zip(body, body[1:], strict=False):
                if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr)
                        and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)):
                    docs[a.target.id] = " ".join(b.value.value.split())
            by_class[node.name] = docs
    out = {}
    for key in config.config_keys():
        cls, parts = config.Config, key.split(".")
        for part in parts[:-1]:
            cls = type(getattr(cls(), part))
        doc = by_class.get(cls.__name__, {}).get(parts[-1], "")
        out[key] = doc.split(". ")[0].rstrip(".")
    return out


def run(cmd: Command | None, main: Callable[[list[str]], object], argv: list[str] | None = None) -> int:
    """`main(argv)` behind --help (None: main's own argparse answers it) and the user-error rule; returns the exit
    status (main's, when it returns an int)."""
    argv = sys.argv[1:] if argv is None else argv
    if cmd is not None and ("-h" in argv or "--help" in argv):
        print(help_text(cmd))
        return 0
    try:
        code = main(argv)
    except (UserError, FileNotFoundError, IsADirectoryError, PermissionError) as err:
        if os.environ.get("SEQREC_DEBUG") == "1":
            raise
        print(f"error: {describe(err)}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


def describe(err: Exception) -> str:
    """One line for a user error; an OSError names its file."""
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    return str(err)
