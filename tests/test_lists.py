"""Offline lists: every user's top k as parquet shards, checked, resumable after a kill -9, served by the service."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.errors import UserError
from seqrec.inference.lists import MANIFEST, check_lists, lists_digest, read_lists
from seqrec.predict import predict
from seqrec.run import Run
from seqrec.serve.app import create_app, load_serve_config

ROOT = Path(__file__).resolve().parent.parent
K = 50


@pytest.fixture(scope="module")
def written(tiny_run, tmp_path_factory) -> Path:
    """Every user's lists of the tiny run, in shards of 64 users."""
    folder = tmp_path_factory.mktemp("lists") / "lists"
    predict(load_config([f"run.dir={tiny_run}", "users=all", f"lists={folder}", "decode.shard_users=64"]))
    return folder


def parts(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.glob("part-*.parquet"))}


def test_every_users_list_is_written_once_and_is_the_submissions_list(tiny_run, written):
    run = Run.load(load_config([f"run.dir={tiny_run}"]))
    ds = load_dataset(run.cfg.data, run.cfg.clean)
    manifest = json.loads((written / MANIFEST).read_text())
    assert manifest["complete"] and manifest["users"] == ds.n_users and manifest["k"] == K
    assert manifest["digest"] == lists_digest(run.ckpt, ds)
    assert len(parts(written)) == -(-ds.n_users // 64)
    assert check_lists(written, ds, np.arange(ds.n_users)) == []
    table = pq.read_table(sorted(written.glob("part-*.parquet"))).to_pandas()
    assert list(table.columns) == ["user_id", "item_id", "rank", "score"] and len(table) == ds.n_users * K
    lists = read_lists(written, ds, manifest["digest"])
    want = run.recommend(ds, ds.test_users, K)  # what predict.py writes into the submission
    rows = np.searchsorted(lists.users, ds.test_users)
    np.testing.assert_array_equal(lists.items[rows], want)
    assert (np.diff(lists.scores, axis=1) <= 0).all()  # best first


def test_check_lists_names_what_is_wrong(tiny_run, written, tmp_path):
    ds = load_dataset(Run.load(load_config([f"run.dir={tiny_run}"])).cfg.data, load_config([]).clean)
    users = np.arange(ds.n_users)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / MANIFEST).write_text((written / MANIFEST).read_text())
    first = pq.read_table(written / "part-00000.parquet")
    for p in sorted(written.glob("part-*.parquet"))[1:]:
        (broken / p.name).write_bytes(p.read_bytes())
    assert any("64 user(s) missing" in m for m in check_lists(broken, ds, users))
    t = first.to_pandas()
    t.loc[1, "item_id"] = t.loc[0, "item_id"]  # a repeated track in the first user's list
    pq.write_table(pa.Table.from_pandas(t, preserve_index=False), broken / "part-00000.parquet")
    assert check_lists(broken, ds, users) == ["1 list(s) repeat a track"]


def test_a_run_killed_halfway_resumes_without_redoing_finished_shards(tiny_run, tmp_path):
    folder = tmp_path / "lists"
    cmd = [sys.executable, "predict.py", f"run.dir={tiny_run}", "users=all", f"lists={folder}",
           "decode.shard_users=2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(parts(folder) if folder.exists() else {}) < 5 and proc.poll() is None:
            assert time.monotonic() < deadline, "no shard written in 120 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = parts(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    shards = -(-manifest["users"] // 2)
    assert not manifest["complete"] and 5 <= len(before) < shards // 2, "the kill came too late"
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{len(before)} of {shards} shards already written: resuming" in out.stderr
    after = parts(folder)
    assert {n: after[n] for n in before} == before  # finished shards were not decoded or written again
    assert len(after) == shards and json.loads((folder / MANIFEST).read_text())["complete"]
    ds = load_dataset(Run.load(load_config([f"run.dir={tiny_run}"])).cfg.data, load_config([]).clean)
    assert check_lists(folder, ds, np.arange(ds.n_users)) == []


def test_lists_of_another_run_or_data_are_written_afresh_and_never_served(tiny_run, written, tmp_path, capsys):
    folder = tmp_path / "lists"
    for p in [*written.glob("part-*.parquet"), written / MANIFEST]:
        (folder / p.name).parent.mkdir(exist_ok=True)
        (folder / p.name).write_bytes(p.read_bytes())
    manifest = json.loads((folder / MANIFEST).read_text())
    run = Run.load(load_config([f"run.dir={tiny_run}"]))
    ds = load_dataset(run.cfg.data, run.cfg.clean)
    with pytest.raises(ValueError, match="decoded by another checkpoint or from other data"):
        read_lists(folder, ds, "0" * 16)
    (folder / MANIFEST).write_text(json.dumps({**manifest, "digest": "0" * 16}))
    predict(load_config([f"run.dir={tiny_run}", "users=all", f"lists={folder}", "decode.shard_users=64"]))
    assert "lists of another run, data, k or user set" in capsys.readouterr().err
    assert json.loads((folder / MANIFEST).read_text()) == manifest


def test_users_all_needs_a_folder_and_lists_need_a_run():
    with pytest.raises(UserError, match="lists=FOLDER"):
        load_config(["users=all"])
    with pytest.raises(UserError, match="users must be test or all"):
        load_config(["users=some", "lists=x"])


def test_the_service_answers_from_the_lists_until_the_user_posts(tiny_run, written, tmp_path):
    cfg = load_serve_config([f"run.dir={tiny_run}", f"serve.db={tmp_path / 'events.sqlite'}",
                             f"serve.lists={written}"])
    with TestClient(create_app(cfg)) as client:
        rec = client.app.state.recommender
        assert client.get("/health").json()["offline_lists"] == rec.ds.n_users
        u = int(rec.ds.test_users[0])
        uid = int(rec.ds.users["user_id"].iloc[u])
        body = client.get(f"/recommendations/{uid}?k=20").json()
        stored = rec.lists.of(u)
        assert body["source"] == "lists" and [it["item_id"] for it in body["items"]] == \
            rec.item_ids[stored[0][:20]].tolist()
        want = rec.run.recommend(rec.ds, np.array([u]), K)[0]  # the lists are the decoder's
        assert [it["item_id"] for it in client.get(f"/recommendations/{uid}").json()["items"]] == \
            rec.item_ids[want].tolist()
        assert client.get(f"/recommendations/{uid}?k=60").json()["source"] == "model"  # longer than the lists
        track = int(rec.item_ids[np.flatnonzero(rec.allowed)[0]])
        r = client.post("/events", json={"user_id": uid, "item_id": track, "listened_duration": 60.0,
                                         "listened_datetime": "2025-09-01 10:00:00"})
        assert r.status_code == 201
        assert client.get(f"/recommendations/{uid}?k=20").json()["source"] == "model"  # re-encoded since


def test_the_service_leaves_lists_of_another_run_unused(tiny_run, written, tmp_path, caplog):
    folder = tmp_path / "lists"
    folder.mkdir()
    for p in written.glob("part-*.parquet"):
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / MANIFEST).write_text(json.dumps({**json.loads((written / MANIFEST).read_text()), "digest": "0" * 16}))
    cfg = load_serve_config([f"run.dir={tiny_run}", f"serve.db={tmp_path / 'events.sqlite'}", f"serve.lists={folder}"])
    with TestClient(create_app(cfg)) as client:
        assert client.get("/health").json()["offline_lists"] == 0
        uid = int(client.app.state.recommender.ds.users["user_id"].iloc[0])
        assert client.get(f"/recommendations/{uid}").json()["source"] in ("model", "popular")
    assert "serve.lists unused" in caplog.text
