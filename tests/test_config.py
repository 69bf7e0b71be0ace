"""Every numeric setting declares its range where it is declared; what a command may change about a trained run is
declared on the fields too."""

import math
import typing
from dataclasses import fields, is_dataclass

import pytest

from seqrec.baselines import BASELINES
from seqrec.config import MODELS, Config, Range, command_may_change, load_config, parse_devices
from seqrec.errors import UserError

NOT_RANGED = {"similar.item_id", "eval.cutoffs"}
"""Numeric settings that are ids, not quantities, or lists checked by their section."""


def numeric_fields(cls=Config, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if is_dataclass(f.default_factory):
            yield from numeric_fields(f.default_factory, f"{prefix}{f.name}.")
            continue
        types = set(typing.get_args(hints[f.name])) or {hints[f.name]}
        if types & {int, float} and bool not in types:
            yield f"{prefix}{f.name}", f


def test_every_numeric_setting_declares_a_range():
    missing = [key for key, f in numeric_fields() if "range" not in f.metadata and key not in NOT_RANGED]
    assert missing == []


RANGED = [(key, f.metadata["range"]) for key, f in numeric_fields() if "range" in f.metadata]


def outside(rng: Range) -> list[float]:
    """Values just outside each bound, and NaN."""
    out = [math.nan]
    if rng.ge is not None:
        out.append(rng.ge - 1)
    if rng.gt is not None:
        out.append(rng.gt)
    if rng.le is not None:
        out.append(rng.le + 1)
    if rng.lt is not None:
        out.append(rng.lt)
    return out


@pytest.mark.parametrize(("key", "rng"), RANGED, ids=[k for k, _ in RANGED])
def test_a_value_outside_its_range_is_one_line_naming_key_value_and_range(key, rng):
    for value in outside(rng):
        text = "nan" if value != value else repr(int(value)) if value == int(value) else repr(value)
        with pytest.raises(UserError) as err:
            load_config([f"{key}={text}"])
        message = str(err.value)
        assert "\n" not in message and key in message, message
        if "out of range" in message:
            assert f"must be {rng}" in message


def test_the_defaults_are_inside_their_ranges_and_cutoffs_are_checked():
    load_config([])  # would raise
    with pytest.raises(UserError, match=r"eval.cutoffs must be in 1..eval.k \(50\), got \[0, 10\]"):
        load_config(["eval.cutoffs=[0,10]"])


def test_an_unknown_model_is_refused_and_the_known_ones_are_the_baselines():
    with pytest.raises(UserError, match="model.name .model=. must be one of sasrec, popular"):
        load_config(["model=nope"])
    assert list(MODELS) == ["sasrec", *BASELINES]


@pytest.mark.parametrize(("key", "may"), [
    ("data.dir", True), ("eval.k", True), ("decode.workers", True), ("train.devices", True), ("model.name", True),
    ("seed", True), ("submission", True), ("model.d_model", False), ("train.lr", False), ("rank.trees", False),
    ("clean.max_duration_ratio", False), ("decode.mask_skipped", False), ("nonsense.key", False),
])
def test_what_a_command_may_change_about_a_run_is_declared_on_the_field(key, may):
    assert command_may_change(key) is may


def test_device_settings_are_one_type_read_one_way():
    for key in ("train.devices", "decode.devices"):
        for good, parsed in (("2", 2), ("[0,1]", [0, 1]), ("auto", "auto")):
            assert parse_devices(getattr(load_config([f"{key}={good}"]), key.split(".")[0]).devices) == parsed
        for bad in ("0", "-1", "abc", "[]", "[-1]"):
            with pytest.raises(UserError, match=rf"{key} must be a count >= 1, a list like \[0,1\] or auto"):
                load_config([f"{key}={bad}"])
    assert not load_config([]).decode.distributed and load_config(["decode.devices=2"]).decode.distributed
