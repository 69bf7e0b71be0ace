from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def hear_me(tmp_path: Path) -> Callable[..., Path]:
    """Writes a tiny hear-me folder from CSV lines (header included); `None` leaves a file out."""

    def write(
        interactions: list[str],
        items: list[str] | None = ("item_id,track_duration", "300,100", "500,200"),
        test: list[str] | None = ("user_id", "42"),
        users: list[str] | None = ("user_id,gender", "42,F"),
        future: list[str] | None = None,
        name: str = "hear_me",
    ) -> Path:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        files = {
            "interactions.csv": interactions,
            "item_metadata.csv": items,
            "test.csv": test,
            "user_metadata.csv": users,
            "future.csv": future,
        }
        for file, lines in files.items():
            if lines is not None:
                (folder / file).write_text("\n".join(lines) + "\n", encoding="utf-8")
        return folder

    return write
