"""The FastAPI app: routes over an OnlineRecommender and an event store, built eagerly so start-up errors raise."""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from seqrec.config import Config, load_config
from seqrec.errors import UserError
from seqrec.serve.online import BadEvent, OnlineRecommender, Ranked
from seqrec.serve.schemas import (
    ID_MAX,
    ID_MIN,
    EventAck,
    Health,
    History,
    HistoryEvent,
    ListeningEvent,
    Recommendations,
    ScoredItem,
    Similar,
)
from seqrec.serve.store import Event, EventStore, SqliteEventStore


def load_serve_config(overrides: list[str]) -> Config:
    """The command line's settings; the run's own (its data folder, cleaning, features) join them when it loads."""
    return load_config(overrides)


TOKEN_ENV = "SEQREC_SERVE_TOKEN"
OPEN_PATHS = ("/health",)
"""Endpoints that answer without the token."""


def serve_token(cfg: Config) -> str | None:
    """serve.token, else the SEQREC_SERVE_TOKEN variable; None: no token required."""
    return cfg.serve.token or os.environ.get(TOKEN_ENV) or None


def check_exposure(cfg: Config) -> None:
    """Refuse to listen beyond loopback without a token unless serve.insecure=true."""
    host = cfg.serve.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and serve_token(cfg) is None and not cfg.serve.insecure:
        raise UserError(f"serve.host={host} exposes every user's history beyond this machine: set serve.token "
                        f"(or {TOKEN_ENV}) so requests need it, or serve.insecure=true to allow it anyway")


class Guard:
    """ASGI middleware: the bearer token on every path but OPEN_PATHS, and a bound on request bodies (declared by
    Content-Length; a body without one is refused, 411)."""

    def __init__(self, app, token: str | None, max_body: int):
        self.app, self.token, self.max_body = app, token, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.token is not None and scope["path"] not in OPEN_PATHS:
            if not hmac.compare_digest(headers.get(b"authorization", b""), f"Bearer {self.token}".encode()):
                return await _reply(send, 401, "missing or wrong token: send Authorization: Bearer <token>",
                                    [(b"www-authenticate", b"Bearer")])
        if scope["method"] in ("POST", "PUT", "PATCH"):
            length = headers.get(b"content-length")
            if length is None:
                return await _reply(send, 411, "a request body needs a Content-Length header")
            if not length.isdigit() or int(length) > self.max_body:
                return await _reply(send, 413, f"request body over serve.max_body_bytes ({self.max_body})")
        return await self.app(scope, receive, send)


async def _reply(send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def db_path(cfg: Config) -> Path:
    return Path(cfg.serve.db) if cfg.serve.db else Path(cfg.run.dir) / "events.sqlite"


def create_app(cfg: Config, store: EventStore | None = None) -> FastAPI:
    """Load the run and the store's events now, so that a bad checkpoint stops start-up before serving.

    `store` defaults to the SQLite file cfg.serve.db (`<run.dir>/events.sqlite`); the app closes it on shutdown.
    """
    rec = OnlineRecommender.load(cfg)
    store = store if store is not None else SqliteEventStore(db_path(cfg))
    rec.replay(store.since(0))
    s = cfg.serve

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="seqrec", summary="Next-track recommendations from a trained SASRec run and live events.",
                  lifespan=lifespan)
    app.state.recommender, app.state.store = rec, store
    app.add_middleware(Guard, token=serve_token(cfg), max_body=s.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        """422 with where and why, without echoing the input (NaN or Infinity would not serialise: a 500)."""
        return JSONResponse(status_code=422, content={"detail": [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in err.errors()]})
    UserId = PathParam(ge=ID_MIN, le=ID_MAX, description="user_id as in the hear-me files.")
    ItemId = PathParam(ge=ID_MIN, le=ID_MAX, description="item_id as in the hear-me files.")

    @app.get("/health")
    def health() -> Health:
        return Health(status="ok", run=cfg.run.dir, users=rec.ds.n_users, items=rec.ds.n_items,
                      posted_events=rec.n_posted, offline_lists=rec.n_offline)

    @app.get("/recommendations/{user_id}")
    def recommendations(user_id: int = UserId, k: int = Query(s.k, ge=1, le=s.max_k)) -> Recommendations:
        r = rec.recommend(user_id, k)
        return Recommendations(user_id=user_id, source=r.source, items=_scored(r))

    @app.post("/events", status_code=201)
    def post_event(body: ListeningEvent) -> EventAck:
        event = Event(body.user_id, body.item_id, body.listened_duration, body.listened_datetime)
        try:
            rec.check(event)
        except BadEvent as e:
            raise HTTPException(422, str(e)) from e
        seq = store.add(event)  # durable before it is acknowledged or used
        rec.add(event)
        return EventAck(seq=seq, user_id=event.user_id, item_id=event.item_id)

    @app.get("/similar/{item_id}")
    def similar(item_id: int = ItemId, k: int = Query(s.similar_k, ge=1, le=s.max_k)) -> Similar:
        r = rec.similar(item_id, k)
        if r is None:
            raise HTTPException(404, f"item_id {item_id} is not in the catalog of {cfg.data.dir}")
        return Similar(item_id=item_id, items=_scored(r))

    @app.get("/users/{user_id}/history")
    def history(user_id: int = UserId,
                limit: int = Query(s.history_limit, ge=1, le=s.max_history_limit)) -> History:
        h = rec.history(user_id, limit)
        if h is None:
            raise HTTPException(404, f"user_id {user_id} is neither in the log of {cfg.data.dir} nor has "
                                     f"posted events")
        return History(user_id=user_id, events=[HistoryEvent(**row) for row in h.to_dict("records")])

    return app


def _scored(r: Ranked) -> list[ScoredItem]:
    scores = r.scores if r.scores is not None else np.full(len(r.items), np.nan)
    return [ScoredItem(item_id=int(i), rank=n + 1, score=None if np.isnan(v) else float(v), song_group=int(g))
            for n, (i, v, g) in enumerate(zip(r.items, scores, r.songs, strict=True))]
