"""One song under many ids: versions, covers, duplicate uploads and collaborations (knobs `version_share`,
`cover_share`, `duplicate_share`, `version_play_share`; 0 turns each off).

- A song (popular songs more often) gets versions by its artist: remix, radio edit, live, remaster, sped up,
  slowed + reverb, each with the length that version has; another artist may cover it; it may be uploaded again
  under a spelling variant of its title or artist (a transliteration between Latin and Cyrillic, one or two
  typing slips, or another case and spacing), with the same length.
- A listener who likes a song plays some of its other ids: a share of the (user, song) pairs (fixed for the pair)
  hear a version, a cover or a duplicate in place of the song, each play drawn among them.
- The truth (`entities.csv` beside future.csv, not one of the four visible files): each track's song group (a
  version and a duplicate share the song's, a cover has its own), its work (a cover shares the work) and its
  artists (a collaboration lists both), for measurement only.

Draws come from their own random stream, so the rest of the data is the same with these knobs on or off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from anyascii import anyascii

from seqrec.hashing import mix64

VERSION, COVER, DUPLICATE = 1, 2, 3
MARKERS = {"Remix": (1.1, 1.4), "Radio Edit": (0.75, 0.9), "Live": (1.05, 1.25), "Remastered": (1.0, 1.0),
           "Sped Up": (0.75, 0.85), "Slowed + Reverb": (1.15, 1.3)}
"""Version marker: the range of its length relative to the song's."""
FORMS = ("{} ({})", "{} - {}", "{} [{}]")
"""How a marker is written after the title."""
SEPARATORS = (" feat. ", " ft. ", " & ", " x ", ", ")
"""How a collaboration is written in artist_name."""
SYLLABLES = ("ka", "ri", "mo", "len", "sa", "tor", "vi", "na", "dem", "lu", "ar", "zel", "ko", "mi", "ran", "te",
             "ва", "ли", "ро", "ма", "кай", "рат", "нұр", "тас", "жан", "ер", "ке", "сұл", "та", "ан", "ди", "ма")
"""Artist names are drawn from these (Latin and Cyrillic, Kazakh letters included): distinct artists rarely share
a name, as in real catalogues."""
CYRILLIC = dict(zip("abvgdezijklmnoprstufhc", "абвгдезийклмнопрстуфхц", strict=True))


@dataclass
class Alternates:
    """The tracks added to a catalogue of `n_base` tracks (indices n_base..): what each is of which song."""

    n_base: int
    base: np.ndarray
    """The song each added track is a version, cover or duplicate of (a base track index)."""
    kind: np.ndarray
    artist: np.ndarray
    """Who performs it (a cover: another artist)."""
    duration: np.ndarray
    label: list[str]
    """The version marker, or the spelling variant's kind ('translit', 'typo', 'case')."""
    variant_of: np.ndarray
    """Duplicates: 0 the title is respelt, 1 the artist."""

    @property
    def n(self) -> int:
        return len(self.base)


def make_alternates(artist: np.ndarray, duration: np.ndarray, pop: np.ndarray, cfg, rng) -> Alternates:
    """Versions, covers and duplicates of the base catalogue, popular songs more often."""
    n = len(artist)
    weight = pop / pop.mean()
    parts = []
    for kind, share in ((VERSION, cfg.version_share), (COVER, cfg.cover_share), (DUPLICATE, cfg.duplicate_share)):
        songs = np.flatnonzero(rng.random(n) < np.minimum(1.0, share * weight))
        count = 1 + (rng.poisson(0.6, len(songs)) if kind == VERSION else 0)
        parts.append((kind, np.repeat(songs, count)))
    base = np.concatenate([p for _, p in parts])
    kind = np.concatenate([np.full(len(p), k) for k, p in parts])
    markers = list(MARKERS)
    label, dur, who, variant = [], np.empty(len(base)), artist[base].copy(), np.zeros(len(base), np.int64)
    for i, (b, k) in enumerate(zip(base, kind, strict=True)):
        if k == VERSION:
            m = markers[rng.integers(len(markers))]
            lo, hi = MARKERS[m]
            label.append(m)
            dur[i] = round(duration[b] * rng.uniform(lo, hi))
        elif k == COVER:
            label.append("")
            who[i] = rng.integers(artist.max() + 1)
            dur[i] = round(duration[b] * rng.uniform(0.85, 1.2))
        else:
            label.append(str(rng.choice(["translit", "typo", "case"], p=[0.4, 0.4, 0.2])))
            variant[i] = int(rng.random() < 0.4)
            dur[i] = duration[b]
    return Alternates(n, base, kind, who, np.clip(dur, 30, None).astype(np.int64), label, variant)


def artist_names(n_artists: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct artist names of two or three syllables, title-cased, one or two words."""
    out: dict[str, None] = {}
    while len(out) < n_artists:
        k = rng.integers(2, 4)
        word = "".join(SYLLABLES[j] for j in rng.integers(0, len(SYLLABLES), k)).title()
        if rng.random() < 0.3:
            word += " " + "".join(SYLLABLES[j] for j in rng.integers(0, len(SYLLABLES), 2)).title()
        out.setdefault(word)
    return np.array(list(out), dtype=object)


def respell(name: str, how: str, rng: np.random.Generator) -> str:
    """A spelling variant: transliterated between scripts, one or two typing slips, or case and spacing."""
    if how == "translit":
        latin = anyascii(name)
        if latin != name:
            return latin
        return "".join(CYRILLIC.get(c.lower(), c) if c.isalpha() else c for c in name).title()
    if how == "typo":
        text = list(name)
        for _ in range(rng.integers(1, 3)):
            j = int(rng.integers(1, max(2, len(text) - 1)))
            op = rng.integers(3)
            if op == 0 and len(text) > 4:
                del text[j]
            elif op == 1:
                text.insert(j, text[j - 1])
            else:
                text[j - 1], text[j] = text[j], text[j - 1]
        return "".join(text)
    return f"  {name.upper()} " if rng.random() < 0.5 else name.lower().replace(" ", "  ") + "!"


def names(titles: np.ndarray, artists: np.ndarray, base_artist: np.ndarray, alt: Alternates, partner: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(track_name, artist_name) of the base tracks and their alternates: collaborations written with any of the
    separators, versions with their marker, duplicates respelt."""
    def credit(a: int) -> str:
        if partner[a] < 0:
            return artists[a]
        return artists[a] + SEPARATORS[(a * 7919) % len(SEPARATORS)] + artists[partner[a]]

    title = _distinct_per_artist(list(titles), base_artist, rng)
    titles = np.array(title, dtype=object)
    artist = [credit(a) for a in base_artist]
    for i in range(alt.n):
        b, k = alt.base[i], alt.kind[i]
        if k == VERSION:
            title.append(FORMS[rng.integers(len(FORMS))].format(titles[b], alt.label[i]))
            artist.append(artist[b])
        elif k == COVER:
            title.append(titles[b])
            artist.append(credit(alt.artist[i]))
        else:
            respelt_title = alt.variant_of[i] == 0
            title.append(respell(titles[b], alt.label[i], rng) if respelt_title else titles[b])
            artist.append(artist[b] if respelt_title else respell(artist[b], alt.label[i], rng))
    return np.array(title, dtype=object), np.array(artist, dtype=object)


def _distinct_per_artist(titles: list[str], artist: np.ndarray, rng: np.random.Generator) -> list[str]:
    """An artist does not give two of its songs one title: a repeated one gets a word more."""
    seen: set[tuple[int, str]] = set()
    for i, a in enumerate(artist):
        while (a, titles[i].casefold()) in seen:
            titles[i] += " " + "".join(SYLLABLES[j] for j in rng.integers(0, len(SYLLABLES), 2)).title()
        seen.add((a, titles[i].casefold()))
    return titles


def redirect(user: np.ndarray, item: np.ndarray, listened: np.ndarray, alt: Alternates, share: float,
             duration: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Plays moved from a song to its other ids: for the (user, song) pairs that adopt them (a share, fixed by the
    pair), each play goes to one of the song's alternates; the listened seconds keep their share of the length,
    in whole seconds (floored) like every other play's."""
    order = np.argsort(alt.base, kind="stable")
    lo = np.searchsorted(alt.base[order], np.arange(alt.n_base))
    hi = np.searchsorted(alt.base[order], np.arange(alt.n_base), side="right")
    base_item = np.clip(item, 0, alt.n_base - 1)
    has = (item < alt.n_base) & (hi[base_item] > lo[base_item])
    pair = mix64(user.astype(np.uint64) * np.uint64(1_000_003) + item.astype(np.uint64))
    moved = has & (pair % np.uint64(10_000) < np.uint64(share * 10_000))
    pick = lo[item[moved]] + rng.integers(0, 1 << 30, moved.sum()) % (hi[item[moved]] - lo[item[moved]])
    new = alt.n_base + order[pick]
    item, out = item.copy(), listened.copy()
    out[moved] = np.floor(listened[moved] * duration[new] / duration[item[moved]])  # whole seconds, as every play
    item[moved] = new
    return item, out


def truth(item_ids: np.ndarray, alt: Alternates, base_artist: np.ndarray, partner: np.ndarray) -> pd.DataFrame:
    """entities.csv: item_id, song (its song group), work, artists (';'-joined, the performing artist first), kind
    (0 a song, 1 a version, 2 a cover, 3 a duplicate upload) and label (the marker or the respelling)."""
    n = alt.n_base
    song = np.concatenate([np.arange(n), np.where(alt.kind == COVER, n + np.arange(alt.n), alt.base)])
    work = np.concatenate([np.arange(n), alt.base])
    who = np.concatenate([base_artist, alt.artist])
    artists = [str(a) if partner[a] < 0 else f"{a};{partner[a]}" for a in who]
    return pd.DataFrame({"item_id": item_ids, "song": song, "work": work, "artists": artists,
                         "kind": np.r_[np.zeros(n, np.int64), alt.kind], "label": [""] * n + alt.label})
