"""One song, many ids: canonical artists and song groups of a catalogue, computed at ingestion.

- A name is normalised by transliterating every script to Latin (anyascii: Cyrillic and Kazakh letters included),
  dropping diacritics, case and punctuation, then folding spellings that transliterations disagree on
  (`clean.spelling_folds`: kh/h, q/k, y/i, ...).
- An artist field is split into its artists on the collaboration separators ("A feat. B", "A & B", "A x B",
  "A, B"); the first is the primary artist. Normalised names closer than `clean.artist_similarity` (rapidfuzz's
  ratio, among names that share their first letters) are one canonical artist.
- A track's song group is its primary canonical artist and its title without version markers ("(Remix)",
  "- Live", "[Sped Up]", ...); titles of one artist closer than `clean.title_similarity` (among those that share
  their first letters) whose tracks agree in length (within `clean.duplicate_length_s`) are one group: duplicate
  uploads under a spelling variant.

Written here because no library does it for us: rapidfuzz scores the spellings, anyascii transliterates, scipy
joins the matches into groups, the rules that combine them are ours; each is a setting of CleanConfig, counted in
the cleaning report.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anyascii import anyascii
from rapidfuzz import fuzz
from rapidfuzz.process import cdist
from scipy.sparse.csgraph import connected_components

from seqrec.config import CleanConfig

BLOCK_PREFIX = 2
"""Names are compared with the names that share their first this many normalised letters (a name's first
letters are the ones transliterations agree on most), so matching stays near-linear in the catalogue."""


def normalise(name: object, folds: tuple[str, ...] = ()) -> str:
    """Latin letters and digits, lower case, single spaces: 'Земфира' -> 'zemfira', 'Beyoncé' -> 'beyonce';
    `folds` ('kh=h', ...) then fold spellings transliterations disagree on. '' for a missing name."""
    if not isinstance(name, str):
        return ""
    latin = name if name.isascii() else anyascii(name)  # anyascii's output is ASCII: no accents left
    text = _NOT_ALNUM.sub(" ", latin.casefold()).strip()
    for fold in folds:
        src, dst = fold.split("=", 1)
        text = text.replace(src, dst)
    return _DOUBLED.sub(r"\1", text)  # doubled letters: 'Allla' and 'Alla' alike


_NOT_ALNUM, _DOUBLED = re.compile(r"[^0-9a-z]+"), re.compile(r"(.)\1+")


def split_artists(field: object, separators: tuple[str, ...]) -> list[str]:
    """The artists of an artist field, primary first: 'A feat. B & C' -> ['A', 'B', 'C']."""
    if not isinstance(field, str) or not field.strip():
        return []
    return [p.strip() for p in _separator(separators).split(field) if p.strip()]


@functools.lru_cache(maxsize=8)
def _separator(separators: tuple[str, ...]) -> re.Pattern:
    """One pattern for all separators, longest first; a word ('feat', 'x') only between spaces."""
    return re.compile("|".join(rf"\s+{re.escape(s)}\s+" if s.isalpha() or s.endswith(".") else
                               rf"\s*{re.escape(s)}\s*" for s in sorted(separators, key=len, reverse=True)),
                      flags=re.IGNORECASE)


def base_title(title: object, markers: tuple[str, ...]) -> str:
    """A title without its version markers: 'Love (Sped Up)', 'Love - Live at X', 'Love [Remastered 2011]' ->
    'Love'. A bracket or a ' - ' tail is dropped when it holds one of `markers`."""
    if not isinstance(title, str):
        return ""
    if not markers:
        return title.strip()
    bracket, tail = _marker_patterns(markers)
    text = tail.sub("", bracket.sub("", title))
    return text.strip() or title.strip()


@functools.lru_cache(maxsize=8)
def _marker_patterns(markers: tuple[str, ...]) -> tuple[re.Pattern, re.Pattern]:
    """A bracket holding a marker, and a ' - ' tail holding one."""
    marker = "|".join(re.escape(m) for m in markers)
    return (re.compile(rf"\s*[\(\[][^\)\]]*\b(?:{marker})\b[^\)\]]*[\)\]]", flags=re.IGNORECASE),
            re.compile(rf"\s+[-–—]\s+[^-–—]*\b(?:{marker})\b.*$", flags=re.IGNORECASE))


def cluster(keys: list[str], threshold: float, min_length: int) -> np.ndarray:
    """(len(keys),) cluster label of each key: keys that share their first BLOCK_PREFIX letters, are at least
    `min_length` long and score at least `threshold` (rapidfuzz ratio) are linked; identical keys always are."""
    uniq, inverse = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    links = []
    long_enough = np.flatnonzero(np.array([len(k) >= min_length for k in uniq], dtype=bool))
    for members in _blocks(long_enough, [uniq[m][:BLOCK_PREFIX] for m in long_enough]):
        scores = cdist(uniq[members], uniq[members], scorer=fuzz.ratio, score_cutoff=threshold, dtype=np.uint8)
        a, b = _upper(scores)
        links.append(np.stack([members[a], members[b]]))
    return _components(len(uniq), links)[inverse]


@dataclass
class Entities:
    """The catalogue's canonical artists and song groups, one row per catalogue row."""

    artist: np.ndarray
    """(n,) int32 primary canonical artist, -1 where the artist field is missing."""
    artists: list[tuple[int, ...]]
    """Every canonical artist of the track, primary first."""
    song_group: np.ndarray
    """(n,) int32 song group, -1 where the title or the artist is missing (such a track is its own song)."""


def canonicalise(names: pd.Series, titles: pd.Series, durations: np.ndarray, cfg: CleanConfig,
                 report: dict) -> Entities:
    """Canonical artists and song groups of catalogue rows (artist_name, track_name, track_duration); the report
    gets the counts before and after."""
    folds = tuple(cfg.spelling_folds)
    fields = names.astype(object).where(names.notna(), None).tolist()
    codes, raw = pd.factorize(pd.Series(fields, dtype=object))  # one parse per distinct artist field
    parts = [split_artists(f, tuple(cfg.artist_separators)) for f in raw]
    flat = [normalise(p, folds) for ps in parts for p in ps]
    label = cluster(flat, cfg.artist_similarity, cfg.min_name_length) if flat else np.zeros(0, np.int64)
    per_field, at = [], 0
    for ps in parts:
        per_field.append(tuple(dict.fromkeys(int(x) for x in label[at:at + len(ps)])))
        at += len(ps)
    artists = [per_field[c] if c >= 0 else () for c in codes]
    primary = np.array([a[0] if a else -1 for a in artists], dtype=np.int32)

    markers = tuple(cfg.version_markers)
    title_codes, title_uniq = pd.factorize(titles.astype(object).where(titles.notna(), None))
    keys = [normalise(base_title(t, markers), folds) for t in title_uniq]  # one parse per distinct title
    title_key = [keys[c] if c >= 0 else "" for c in title_codes]
    group = np.full(len(primary), -1, dtype=np.int64)
    known = np.flatnonzero((primary >= 0) & np.array([bool(k) for k in title_key]))
    if len(known):
        exact = pd.factorize(pd.Series([f"{primary[i]}\x00{title_key[i]}" for i in known]))[0]
        group[known] = _merge_spellings(exact, primary[known], [title_key[i] for i in known],
                                        np.asarray(durations, np.float64)[known], cfg)
    group[group < 0] = np.arange(group.max() + 1, group.max() + 1 + (group < 0).sum())  # own song each
    report["artists_raw"] = int(len(set(f for f in fields if f)))
    report["artists_canonical"] = int(len(np.unique(label)))
    report["song_groups"] = int(len(np.unique(group)))
    sizes = np.bincount(group)
    report["tracks_in_shared_song_groups"] = int(sizes[sizes > 1].sum())
    report["largest_song_group"] = int(sizes.max()) if len(sizes) else 0
    return Entities(primary, artists, group.astype(np.int32))


def _merge_spellings(exact: np.ndarray, artist: np.ndarray, titles: list[str], durations: np.ndarray,
                     cfg: CleanConfig) -> np.ndarray:
    """Exact (artist, title) groups merged where one artist's titles are near spellings of each other and a track
    of each agrees in length: duplicate uploads."""
    n_groups = int(exact.max()) + 1
    links = []
    _, first = np.unique(exact, return_index=True)  # a row of each group, in group order
    g_artist, g_title = artist[first], [titles[i] for i in first]
    order = np.argsort(exact, kind="stable")  # each group's rows, for its lengths
    bounds = np.searchsorted(exact[order], np.arange(n_groups + 1))

    def lengths(g: int) -> np.ndarray:
        d = durations[order[bounds[g]:bounds[g + 1]]]
        return d[np.isfinite(d)]

    block_key = pd.factorize(pd.Series([f"{a}\x00{t[:BLOCK_PREFIX]}" for a, t in zip(g_artist, g_title,
                                                                                  strict=True)]))[0]
    for groups in _blocks(np.arange(n_groups), block_key):  # one artist's titles that share their first letters
        keys = [g_title[g] for g in groups]
        scores = cdist(keys, keys, scorer=fuzz.ratio, score_cutoff=cfg.title_similarity, dtype=np.uint8)
        for a, b in zip(*_upper(scores), strict=True):
            if min(len(keys[a]), len(keys[b])) < cfg.min_name_length:
                continue
            la, lb = lengths(groups[a]), lengths(groups[b])
            if len(la) and len(lb) and (np.abs(la[:, None] - lb[None, :]) <= cfg.duplicate_length_s).any():
                links.append(np.array([[groups[a]], [groups[b]]]))
    return _components(n_groups, links)[exact]


def _upper(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs a < b of a square score matrix with a non-zero score."""
    a, b = np.nonzero(scores)
    keep = a < b
    return a[keep], b[keep]


def _blocks(members: np.ndarray, keys: list | np.ndarray) -> list[np.ndarray]:
    """`members` split by their `keys`, the blocks of two members or more only (a sort, not a pandas groupby:
    most blocks hold one member)."""
    codes = pd.factorize(pd.Series(keys, dtype=object))[0] if len(members) else np.zeros(0, np.int64)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
    return [members[order[a:b]] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b - a > 1]


def _components(n: int, links: list[np.ndarray]) -> np.ndarray:
    """(n,) the connected component of each node, numbered in order of first appearance, given (2, m) links."""
    edges = np.concatenate(links, axis=1) if links else np.zeros((2, 0), np.int64)
    graph = sp.coo_matrix((np.ones(edges.shape[1], np.int8), (edges[0], edges[1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    return pd.factorize(label)[0]
