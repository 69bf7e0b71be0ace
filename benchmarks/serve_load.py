"""The recommendation service under a bounded local load: throughput of the whole mix, p50/p99 latency per endpoint.

python benchmarks/serve_load.py run.dir=runs/demo [serve.lists=FOLDER] [--requests 2000] [--clients 4]
                                [--time-limit 180] [key=value ...]

Starts `python -m seqrec.serve` on a free loopback port over a fresh event store in a temporary folder (the
run's own store is not touched), waits for /health, then `--clients` threads share a fixed, seeded list of
`--requests` requests and fire them back to back until it is done or `--time-limit` seconds have passed. The
mix: recommendations for log users, for users who posted events during the run (their history is re-encoded)
and for unknown users, similar tracks, histories, and event posts (full or partial listens of catalog tracks).
Each endpoint's latency comes from its own requests; requests/s is given for the whole mix only (an endpoint's
count is its share of the mix, not its capacity). `answered from` counts the `source` of the recommendations'
answers: with serve.lists (predict.py users=all lists=FOLDER) a log user who has not posted is read from the lists.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np

from seqrec.data.dataset import load_dataset
from seqrec.run import Run
from seqrec.serve.app import load_serve_config

REFERENCE = "GET /health (reference)"  # the HTTP stack alone: other kinds are also given as multiples of it
MIX = {  # share of requests by kind
    REFERENCE: 0.05,
    "GET /recommendations (log user)": 0.30,
    "GET /recommendations (posting user)": 0.15,
    "GET /recommendations (unknown user)": 0.05,
    "GET /similar": 0.15,
    "GET /users/{id}/history": 0.10,
    "POST /events": 0.20,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plan(overrides: list[str], n: int, n_posters: int, seed: int) -> list[tuple[str, str, str, dict | None]]:
    """(kind, method, path, json body) for every request, seeded."""
    cfg = Run.load(load_serve_config(overrides)).cfg  # the data folder and settings the run was trained with
    ds = load_dataset(cfg.data, cfg.clean)
    rng = np.random.default_rng(seed)
    users = ds.users["user_id"].to_numpy()[np.unique(ds.events["user"].to_numpy())]
    posters = rng.choice(users, n_posters, replace=False)
    valid = np.flatnonzero(ds.items["valid"].to_numpy())
    ids, lengths = ds.items["item_id"].to_numpy(), ds.items["track_duration"].to_numpy()
    unknown = int(ds.users["user_id"].max()) + 1
    day = ds.end.to_pydatetime()
    kinds = rng.choice(list(MIX), size=n, p=list(MIX.values()))
    out = []
    for j, kind in enumerate(kinds):
        item = int(rng.choice(valid))
        if kind == REFERENCE:
            out.append((kind, "GET", "/health", None))
        elif kind == "GET /recommendations (log user)":
            out.append((kind, "GET", f"/recommendations/{rng.choice(users)}?k={cfg.serve.k}", None))
        elif kind == "GET /recommendations (posting user)":
            out.append((kind, "GET", f"/recommendations/{rng.choice(posters)}?k={cfg.serve.k}", None))
        elif kind == "GET /recommendations (unknown user)":
            out.append((kind, "GET", f"/recommendations/{unknown + j}?k={cfg.serve.k}", None))
        elif kind == "GET /similar":
            out.append((kind, "GET", f"/similar/{ids[item]}?k={cfg.serve.similar_k}", None))
        elif kind == "GET /users/{id}/history":
            out.append((kind, "GET", f"/users/{rng.choice(users)}/history?limit={cfg.serve.history_limit}", None))
        else:
            when = datetime.fromtimestamp(day.timestamp() + j)  # one second apart, after the log
            out.append((kind, "POST", "/events", {
                "user_id": int(rng.choice(posters)), "item_id": int(ids[item]),
                "listened_duration": float(np.round(lengths[item] * rng.choice([0.1, 1.0]))),
                "listened_datetime": when.strftime("%Y-%m-%d %H:%M:%S.%f")}))
    return out


def start_server(overrides: list[str], port: int, tmp: Path, wait_s: float) -> subprocess.Popen:
    """The service in a subprocess (its log in tmp/serve.log), once it answers /health."""
    cmd = [sys.executable, "-m", "seqrec.serve", *overrides, f"port={port}", "serve.host=127.0.0.1",
           f"serve.db={tmp / 'events.sqlite'}"]
    with open(tmp / "serve.log", "w") as log:  # a file, not a pipe: a full pipe would stall the service
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode}:\n{(tmp / 'serve.log').read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"the service did not answer /health within {wait_s:.0f}s")


def fire(port: int, todo: list, clients: int, time_limit: float) -> tuple[dict, float]:
    """Latencies (s) and status codes per kind, and the wall time."""
    lat: dict[str, list[float]] = defaultdict(list)
    bad: dict[str, list[int]] = defaultdict(list)
    source: dict[str, Counter] = defaultdict(Counter)
    lock, nxt = threading.Lock(), iter(todo)
    stop = time.monotonic() + time_limit

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=time_limit) as c:
            while time.monotonic() < stop:
                with lock:
                    req = next(nxt, None)
                if req is None:
                    return
                kind, method, path, body = req
                t = time.perf_counter()
                r = c.request(method, path, json=body)
                dt = time.perf_counter() - t
                with lock:
                    lat[kind].append(dt)
                    if r.status_code >= 400:
                        bad[kind].append(r.status_code)
                    elif path.startswith("/recommendations"):
                        source[kind][r.json()["source"]] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"lat": lat, "bad": bad, "source": source}, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--time-limit", type=float, default=180.0, help="seconds of load at most")
    p.add_argument("--posters", type=int, default=50, help="users who post events during the run")
    p.add_argument("--warmup", type=int, default=20, help="requests before timing (not counted)")
    p.add_argument("--start-timeout", type=float, default=300.0)
    p.add_argument("--seed", type=int, default=0)
    a, overrides = p.parse_known_args()
    todo = plan(overrides, a.warmup + a.requests, a.posters, a.seed)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        port = free_port()
        t0 = time.perf_counter()
        proc = start_server(overrides, port, Path(tmp), a.start_timeout)
        start_s = time.perf_counter() - t0
        try:
            fire(port, todo[:a.warmup], 1, a.time_limit)
            res, wall = fire(port, todo[a.warmup:], a.clients, a.time_limit)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    done = sum(len(v) for v in res["lat"].values())
    cut = "" if done == a.requests else f" (time limit hit: {a.requests} planned)"
    print(f"service start (to first /health) {start_s:.1f}s; {done} requests from {a.clients} clients in "
          f"{wall:.1f}s = {done / wall:.1f} requests/s{cut}")
    ref = np.percentile(np.array(res["lat"].get(REFERENCE, [np.nan])), 50) * 1000
    print("| endpoint | requests | errors | p50 ms | p99 ms | p50 x reference | answered from |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for kind in MIX:
        t = np.array(res["lat"].get(kind, [np.nan])) * 1000
        sources = ", ".join(f"{name} {n}" for name, n in res["source"][kind].most_common()) or "-"
        print(f"| {kind} | {len(res['lat'].get(kind, []))} | {len(res['bad'].get(kind, []))} | "
              f"{np.percentile(t, 50):.1f} | {np.percentile(t, 99):.1f} | {np.percentile(t, 50) / ref:.1f} | "
              f"{sources} |")
    t = np.concatenate([np.array(v) for v in res["lat"].values()]) * 1000
    print(f"| **all** ({done / wall:.1f} requests/s) | {done} | {sum(len(v) for v in res['bad'].values())} | "
          f"{np.percentile(t, 50):.1f} | {np.percentile(t, 99):.1f} | {np.percentile(t, 50) / ref:.1f} | |")


if __name__ == "__main__":
    main()
