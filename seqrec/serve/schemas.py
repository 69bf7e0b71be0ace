"""Request and response bodies of the service (pydantic): what the OpenAPI schema shows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

ID_MIN, ID_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)  # ids are int64 in the hear-me files
ExternalId = Annotated[int, Field(ge=ID_MIN, le=ID_MAX)]


class ListeningEvent(BaseModel):
    """A listening event as in interactions.csv."""

    user_id: ExternalId
    item_id: ExternalId
    listened_duration: float = Field(ge=0, allow_inf_nan=False, description="Seconds listened.")
    listened_datetime: datetime = Field(
        description="When it was played: naive `YYYY-MM-DD HH:MM:SS[.ffffff]` as in the log (ISO `T` also works).")

    @field_validator("listened_datetime", mode="before")
    @classmethod
    def _text_only(cls, v: object) -> object:
        if not isinstance(v, str):
            raise ValueError("must be a text time like '2025-08-30 21:15:03.000000'")
        return v

    @field_validator("listened_datetime")
    @classmethod
    def _naive(cls, v: datetime) -> datetime:
        if v.tzinfo is not None:
            raise ValueError("must have no timezone: the log's times are naive, so an offset cannot be placed")
        return v


class EventAck(BaseModel):
    """The event is stored durably."""

    seq: int = Field(description="Position of the event in the store.")
    user_id: int
    item_id: int


class ScoredItem(BaseModel):
    item_id: int
    rank: int = Field(description="1 = best.")
    score: float | None = Field(description="Ranking score (recommendations) or cosine (similar); null for popular.")
    song_group: int = Field(description="The track's song: its versions, and uploads of it under another spelling, "
                                        "share this number.")


class Recommendations(BaseModel):
    user_id: int
    source: Literal["model", "lists", "popular"] = Field(
        description="`model`: the trained run on the user's history and posted events; `lists`: the run's offline "
                    "list of a user without posted events (serve.lists), the same list predict.py decodes; "
                    "`popular`: an unknown user gets recently popular tracks.")
    items: list[ScoredItem]


class Similar(BaseModel):
    item_id: int
    items: list[ScoredItem]


class HistoryEvent(BaseModel):
    item_id: int
    listened_duration: float = Field(description="Seconds; the cleaned value for log events (outliers clipped).")
    listened_datetime: datetime
    source: Literal["log", "posted"] = Field(description="`log`: the training log; `posted`: POST /events.")


class History(BaseModel):
    user_id: int
    events: list[HistoryEvent] = Field(description="Newest first.")


class Health(BaseModel):
    status: Literal["ok"]
    run: str
    users: int = Field(description="Users in the training log.")
    items: int = Field(description="Tracks in the catalog.")
    posted_events: int = Field(description="Events posted since training, the store's included.")
    offline_lists: int = Field(description="Users answered from offline lists while they post nothing (0: none "
                                           "loaded).")
