"""Object storage for data.dir, run.dir and submission (`s3://bucket/prefix`, or any fsspec URL).

Inputs are copied once into a local cache keyed on each object's ETag and size, so the parquet cache and every
reader work on local files; a run folder is mirrored locally, pulled before the command and pushed back after
each epoch and at the end; a submission is written locally, then uploaded. fsspec and s3fs do the transfers;
credentials come from the standard AWS variables and files, the endpoint from AWS_ENDPOINT_URL when set, and
neither is ever printed or written into a report (errors name the URL and the error class only).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec

from seqrec.config import Config
from seqrec.errors import UserError

HEAR_ME = ("interactions.csv", "item_metadata.csv", "user_metadata.csv", "test.csv", "future.csv")
REQUIRED = ("interactions.csv", "item_metadata.csv", "test.csv")


def is_remote(path: str | None) -> bool:
    return path is not None and "://" in str(path) and not str(path).startswith("file://")


def storage_options(url: str) -> dict | None:
    """fsspec options for `url`: the S3 endpoint from AWS_ENDPOINT_URL when set; None for a local path."""
    if not is_remote(url):
        return None
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint and url.startswith("s3://") else {}


def _fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(url, **(storage_options(url) or {}))


@contextmanager
def _named(url: str) -> Iterator[None]:
    """Storage errors as UserErrors naming the URL (a missing bucket or object, refused credentials)."""
    try:
        yield
    except (FileNotFoundError, PermissionError) as err:
        raise UserError(f"{url}: {type(err).__name__}: {_reason(err)}") from None
    except OSError as err:
        raise UserError(f"{url}: cannot be reached ({type(err).__name__}: {_reason(err)})") from None


def _reason(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text.split("(Service:")[0][:200]


def stage_inputs(url: str, cache: Path) -> Path:
    """A local copy of the hear-me objects under `url`, reused while their ETags and sizes are unchanged."""
    fs, root = _fs(url)
    with _named(url):
        if not fs.exists(root):
            raise FileNotFoundError("no such bucket or prefix")
        found = {Path(info["name"]).name: info for info in fs.ls(root, detail=True)}
    present = {n: found[n] for n in HEAR_ME if n in found}
    missing = [n for n in REQUIRED if n not in present]
    if missing:
        raise UserError(f"{url.rstrip('/')}/{missing[0]}: no such object (expected the hear-me files "
                        f"{', '.join(REQUIRED)} under {url})")
    key = hashlib.sha256("|".join(f"{n}:{i.get('ETag', '')}:{i.get('size')}" for n, i in present.items())
                          .encode()).hexdigest()[:16]
    local = cache / "inputs" / hashlib.sha256(url.encode()).hexdigest()[:12] / key
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=local.parent, prefix=".tmp-"))
        try:
            with _named(url):
                for name, info in present.items():
                    fs.get(info["name"], str(tmp / name))
            os.replace(tmp, local)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return local


class RunMirror:
    """A local folder that mirrors a remote run folder."""

    def __init__(self, url: str, cache: Path):
        self.url = url.rstrip("/")
        self.fs, self.root = _fs(self.url)
        self.local = cache / "runs" / hashlib.sha256(self.url.encode()).hexdigest()[:12]

    def pull(self) -> None:
        self.local.mkdir(parents=True, exist_ok=True)
        with _named(self.url):
            bucket = self.root.split("/")[0]
            if not self.fs.exists(bucket):
                raise FileNotFoundError("no such bucket")
            if self.fs.exists(self.root):
                self.fs.get(self.root + "/", str(self.local) + "/", recursive=True)

    def push(self) -> None:
        with _named(self.url):
            for path in sorted(self.local.rglob("*")):
                if path.is_file():
                    self.fs.put_file(str(path), f"{self.root}/{path.relative_to(self.local).as_posix()}")


def pulled_run(cfg: Config) -> tuple[Config, RunMirror | None]:
    """`cfg` with a remote run.dir replaced by its pulled local mirror (returned, to push it back later)."""
    if not is_remote(cfg.run.dir):
        return cfg, None
    mirror = RunMirror(cfg.run.dir, _cache(cfg))
    mirror.pull()
    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, dir=str(mirror.local))), mirror


def _cache(cfg: Config) -> Path:
    return Path(os.path.expanduser(cfg.data.local_cache))


@contextmanager
def localised(cfg: Config) -> Iterator[tuple[Config, RunMirror | None]]:
    """`cfg` with remote data.dir, run.dir and submission replaced by local paths; the run folder and the
    submission are pushed back when the block ends (also when it fails, so a report of the error lands too)."""
    data, sub = cfg.data, cfg.submission
    if is_remote(data.dir):
        data = dataclasses.replace(data, dir=str(stage_inputs(data.dir, _cache(cfg))))
    local, mirror = pulled_run(cfg)
    if is_remote(sub):
        sub = str(_cache(cfg) / "submissions" / hashlib.sha256(sub.encode()).hexdigest()[:12] / Path(sub).name)
    try:
        yield dataclasses.replace(local, data=data, submission=sub), mirror
    finally:
        if mirror is not None:
            mirror.push()
        if is_remote(cfg.submission) and Path(sub).exists():
            fs, path = _fs(cfg.submission)
            with _named(cfg.submission):
                fs.put_file(sub, path)
