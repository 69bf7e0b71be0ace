"""Genres of the catalog's `track_genres_list` cells."""

from __future__ import annotations

import ast


def parse_genres(text: object) -> list[str]:
    """Genres of one `track_genres_list` cell (a Python-list literal), case-folded; [] when empty or missing."""
    if not isinstance(text, str):
        return []
    try:
        value = ast.literal_eval(text)
        names = value if isinstance(value, list | tuple) else [value]
    except (ValueError, SyntaxError, MemoryError, RecursionError):  # free text or a broken literal
        names = text.strip("[]").split(",")
    names = (str(g).strip(" '\"").casefold() for g in names)
    return [g for g in names if g]
