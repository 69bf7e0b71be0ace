"""Typed configuration: omegaconf YAML under configs/ merged with command-line `key=value` overrides."""

from __future__ import annotations

import difflib
import operator
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqrec.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
WEIGHT_MODES = ("quarter", "raw", "binary", "none")
"""How a training target counts, from its listened fraction: the metric's quarter, the raw fraction, 1 from half
on, or always 1."""


MODELS = ("sasrec", "popular", "segment_popular", "relisten", "transitions", "als", "itemknn")
"""`model.name`: the trained network, or a baseline of seqrec.baselines (its BASELINES, in this order)."""
MAX_K = 100_000
"""The longest list any command or endpoint makes (eval.k, similar.k, serve.max_k, the candidate sources): memory
grows with it; each command also bounds it by the catalogue it reads."""
COMMAND = {"command": True}
"""Field metadata: a command may change this setting (or section) about a trained run (seqrec.run)."""


@dataclass(frozen=True)
class Range:
    """The values a numeric setting allows; NaN never."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def allows(self, value: float) -> bool:
        return value == value and all(bound is None or test(value, bound) for bound, test in (
            (self.ge, operator.ge), (self.gt, operator.gt), (self.le, operator.le), (self.lt, operator.lt)))

    def __str__(self) -> str:
        return " and ".join(f"{op} {bound:,}" if bound == int(bound) else f"{op} {bound}" for op, bound in (
            (">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)) if bound is not None)


def setting(default: object, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None, command: bool = False) -> object:
    """A config field with its default, the range its numbers must lie in (checked when the section is built), and
    whether a command may change it about a trained run."""
    meta: dict = {"command": True} if command else {}
    if (ge, gt, le, lt) != (None, None, None, None):
        meta["range"] = Range(ge, gt, le, lt)
    return field(default=default, metadata=meta)


def parse_devices(spec: Any) -> int | str | list[int]:
    """Lightning's `devices` from a setting (train.devices, decode.devices): a count (2), a list of device indices
    ([0,1], also as the text "[0,1]") or "auto"; ValueError for anything else."""
    text = str(spec).replace(" ", "")
    if not isinstance(spec, (str, int)):  # a list, as omegaconf reads [0,1]
        text = "[" + ",".join(str(d) for d in spec) + "]"
    try:
        if text.startswith("[") and text.endswith("]"):
            found = [int(d) for d in text[1:-1].split(",") if d]
            if found and min(found) >= 0:
                return found
        elif text == "auto":
            return text
        elif int(text) >= 1:
            return int(text)
    except ValueError:
        pass
    raise ValueError(f"must be a count >= 1, a list like [0,1] or auto, got {spec!r}")


class Section:
    """A config section: on construction every field's declared Range is checked (one line naming the key, the
    value and the range), then the section's own cross-field `check`."""

    prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            rng, value = f.metadata.get("range"), getattr(self, f.name)
            if rng is not None and value is not None and not rng.allows(float(value)):
                raise ValueError(f"{self.prefix}{f.name}={value} is out of range: it must be {rng}")
        self.check()

    def check(self) -> None:
        """Rules between fields; one line naming the keys."""


@dataclass(frozen=True)
class Objective:
    """What a training objective trains (`train.objective`)."""

    p_window: float = 0.0
    """The share of positions whose target is drawn from the following window rather than the next event."""
    next: bool = True
    """The loss over every position, every track of the catalog competing."""
    discover: bool = False
    """The loss over positions whose target is a first play, the tracks already in the window masked out."""
    discover_horizon: bool = False
    """The discover loss's target is a first play drawn from the following `horizon_days`, not the next event: each
    position learns every new track of the days ahead (a dense all-action loss, as PinnerFormer trains for a long
    horizon), the contest's window being 15 days, not one play."""


OBJECTIVES = {"next": Objective(), "window": Objective(p_window=1.0), "both": Objective(p_window=0.5),
              "discover": Objective(next=False, discover=True), "next_discover": Objective(discover=True),
              "discover_window": Objective(next=False, discover=True, discover_horizon=True),
              "next_discover_window": Objective(discover=True, discover_horizon=True)}


@dataclass
class DataConfig(Section):
    """Where the hear-me files are and where cleaned caches go."""

    prefix: ClassVar[str] = "data."

    dir: str = "data/synthetic/demo"
    """Folder with interactions.csv, item_metadata.csv, user_metadata.csv, test.csv (+ future.csv)."""
    cache_dir: str | None = None
    """Cleaned-log cache; None means `<dir>/.seqrec_cache`."""
    engine: str = "memory"
    """How interactions.csv is cleaned: `memory` (pyarrow, the whole log in memory) or `duckdb` (streamed,
    spilling to disk, for logs larger than memory): the same events and counts."""
    duckdb_memory: str = "4GB"
    """data.engine=duckdb: DuckDB's memory limit; past it, DuckDB spills to its temp folder."""
    local_cache: str = "~/.cache/seqrec"
    """Local copies of s3:// (any fsspec URL) inputs, run folders and submissions."""
    max_unknown_item_share: float = setting(0.5, ge=0, le=1)
    """Refuse a log whose share of events on item ids that item_metadata.csv does not list is above this: the sign
    of swapped user_id / item_id columns or files from different exports (1: never refuse)."""
    max_test_users_without_history: float = setting(0.5, ge=0, le=1)
    """Refuse a log where more than this share of test.csv's users has no usable history (plays of tracks with a
    valid length) (1: never refuse)."""

    def check(self) -> None:
        if self.engine not in ("memory", "duckdb"):
            raise ValueError(f"data.engine must be 'memory' or 'duckdb', got {self.engine!r}")


@dataclass
class CleanConfig(Section):
    """Cleaning rules; every rule's effect is counted in the cleaning report."""

    prefix: ClassVar[str] = "clean."

    max_duration_ratio: float = setting(5.0, ge=1)
    """A listen longer than this many track lengths is an outlier."""
    max_listen_hours: float = setting(24.0, gt=0)
    """A listened_duration above this (or not a finite number) is an export error: the row is dropped; it bounds
    listens on tracks without a known length, which max_duration_ratio cannot judge."""
    overlong: str = "clip"
    """What to do with outliers: `clip` to one track length or `drop` the row."""
    negative: str = "drop"
    """Negative listened_duration: `drop` the row or `zero` it (a skip)."""
    start: str | None = "2025-02-28"
    """Events before this date are export bugs and are dropped; None keeps all."""
    end: str | None = "2025-08-31"
    """Events on or after this date are outside the log period and are dropped; None keeps all."""
    session_gap_min: float = setting(30.0, gt=0)
    """A gap longer than this many minutes starts a new listening session."""
    artist_separators: list[str] = field(default_factory=lambda: ["featuring", "feat.", "feat", "ft.", "ft", "&",
                                                                  "x", ","])
    """What joins the artists of a collaboration in artist_name ("A feat. B", "A & B", "A x B", "A, B"); a word
    separates only between spaces (seqrec.data.canon)."""
    artist_similarity: float = setting(95.0, ge=50, le=100)
    """Two normalised artist names at least this similar (rapidfuzz ratio, 0-100) are one canonical artist."""
    title_similarity: float = setting(90.0, ge=50, le=100)
    """Two titles of one artist at least this similar, with tracks of agreeing length, are one song (duplicate
    uploads under a spelling variant)."""
    duplicate_length_s: float = setting(2.0, ge=0, le=60)
    """Tracks whose lengths differ by at most this many seconds agree in length."""
    min_name_length: int = setting(5, ge=1, le=100)
    """Names and titles shorter than this (normalised) are matched exactly only: short names differ by a letter."""
    version_markers: list[str] = field(default_factory=lambda: [
        "remix", "mix", "edit", "live", "remaster", "remastered", "sped up", "speed up", "slowed", "reverb",
        "acoustic", "version", "instrumental", "extended", "radio", "nightcore", "demo", "ремикс", "версия"])
    """Words that mark a version of a song when they stand in brackets or after ' - ' in its title."""
    spelling_folds: list[str] = field(default_factory=lambda: ["kh=h", "zh=j", "q=k", "y=i", "w=v", "ph=f"])
    """Spellings transliterations disagree on, folded after transliteration to Latin ('from=to')."""

    def check(self) -> None:
        if self.overlong not in ("clip", "drop"):
            raise ValueError(f"clean.overlong must be 'clip' or 'drop', got {self.overlong!r}")
        if self.negative not in ("drop", "zero"):
            raise ValueError(f"clean.negative must be 'drop' or 'zero', got {self.negative!r}")


@dataclass
class SplitConfig(Section):
    """Temporal split mirroring the contest's 15-day window."""

    prefix: ClassVar[str] = "split."

    mode: str = "temporal"
    """`temporal`: hold out the last window of the log; `future`: score future.csv (synthetic data)."""
    window_days: int = setting(15, ge=1, le=366)
    """Length of the scored window."""
    cut: str | None = None
    """Start of the window; None means the last `window_days` days of the log."""
    min_window_events: int = setting(30, ge=0)
    """Temporal mode: evaluate users with at least this many window plays (the contest scored regular listeners).
    Future mode scores test.csv's users who have history, as the contest did."""
    max_users: int | None = setting(20000, ge=1)
    """Temporal mode: evaluate a seeded sample of at most this many window users (None: all)."""

    def check(self) -> None:
        if self.mode not in ("temporal", "future"):
            raise ValueError(f"split.mode must be 'temporal' or 'future', got {self.mode!r}")


@dataclass
class BaselineConfig(Section):
    """Hyper-parameters of the baselines."""

    prefix: ClassVar[str] = "baselines."

    popular_days: int = setting(30, ge=1)
    """Global popularity counts plays in the last this many days."""
    relisten_half_life_days: float = setting(30.0, gt=0)
    """Re-listen evidence halves every this many days."""
    relisten_quality_floor: float = setting(0.1, gt=0, le=1)
    """Weight of a skipped listen relative to a full one."""
    transitions_weight: float = setting(0.1, ge=0)
    """Weight of transition scores relative to re-listen scores."""
    transitions_last_n: int = setting(20, ge=1)
    """Transitions are read from the user's last this many plays."""
    transitions_max_gap_min: float = setting(30.0, gt=0)
    """Consecutive plays further apart than this do not form a transition."""
    als_factors: int = setting(64, ge=1, le=4096)
    """ALS latent dimension."""
    als_iterations: int = setting(15, ge=1, le=1000)
    """ALS sweeps."""
    als_regularization: float = setting(0.05, ge=0)
    """ALS L2 penalty."""
    als_alpha: float = setting(10.0, gt=0)
    """ALS confidence = 1 + alpha * listen-quality-weighted plays."""
    knn_neighbours: int = setting(100, ge=1, le=100_000)
    """Item-kNN keeps this many neighbours per item."""


@dataclass
class EvalConfig(Section):
    """Offline evaluation."""

    prefix: ClassVar[str] = "eval."

    k: int = setting(50, ge=1, le=MAX_K)
    """List length; the contest asks for 50."""
    models: list[str] = field(
        default_factory=lambda: ["popular", "segment_popular", "relisten", "transitions", "als", "itemknn"]
    )
    """Models in the table."""
    out: str = "reports/eval"
    """Where the markdown and JSON tables go."""
    cutoffs: list[int] = field(default_factory=lambda: [3, 10])
    """precision@c, MAP@c and hit rate@c are reported at these c and at k."""

    def check(self) -> None:
        if not all(1 <= c <= self.k for c in self.cutoffs):
            raise ValueError(f"eval.cutoffs must be in 1..eval.k ({self.k}), got {self.cutoffs}")


@dataclass
class MetricConfig(Section):
    """How the contest metric reads the window (the contest text leaves these open; defaults: its wording)."""

    prefix: ClassVar[str] = "metric."

    fraction: str = "longest"
    """A track's listened fraction: its `longest` single listen, or the `sum` of its listens, capped at 1."""
    rounding: str = "floor"
    """The fraction to a quarter: `floor` or `round`."""
    normalise: str = "k"
    """A user's sum of quarters over `k` (50) or over min(k, the user's distinct window tracks) (`window`)."""

    def check(self) -> None:
        for name, allowed in (("fraction", ("longest", "sum")), ("rounding", ("floor", "round")),
                              ("normalise", ("k", "window"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"metric.{name} must be one of {allowed}, got {getattr(self, name)!r}")


@dataclass
class ModelConfig(Section):
    """Which recommender to use, and the shape of the SASRec network."""

    prefix: ClassVar[str] = "model."

    name: str = setting("sasrec", command=True)
    """`sasrec`, or a baseline: popular, segment_popular, relisten, transitions, als, itemknn."""
    d_model: int = setting(64, ge=2, le=8192)
    """Embedding and hidden size."""
    n_blocks: int = setting(2, ge=1, le=128)
    """Transformer blocks."""
    n_heads: int = setting(2, ge=1, le=256)
    """Attention heads; must divide d_model."""
    max_len: int = setting(100, ge=1, le=100_000)
    """Events of history the model reads."""
    dropout: float = setting(0.2, ge=0, lt=1)
    """Dropout on embeddings, attention and MLPs."""
    use_frac: bool = True
    """Feed each past event's listened-fraction bucket."""
    use_gap: bool = True
    """Feed the time-gap bucket since the previous event."""
    use_session: bool = True
    """Feed the position inside the listening session."""
    use_repeat: bool = True
    """Learned re-listen bias: a track played in the window gets a score bonus by recency and listen quality."""
    use_side: bool = True
    """Sum, with each track's id embedding, embeddings of its artist, genres, length and popularity
    (seqrec.models.side), on the input and the output side; false: the id-only network."""
    side: list[str] = field(default_factory=lambda: ["artist", "genres", "duration", "popularity"])
    """The side information read with `model.use_side`, by name from seqrec.models.side.SIDES (`canonical_artists`
    in place of `artist`: the artists of seqrec.data.canon, collaborators included)."""

    def check(self) -> None:
        if self.name not in MODELS:
            raise ValueError(f"model.name (model=) must be one of {', '.join(MODELS)}, got {self.name!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model ({self.d_model}) must be divisible by model.n_heads ({self.n_heads})")


@dataclass
class TrainConfig(Section):
    """Optimisation and the Lightning trainer."""

    prefix: ClassVar[str] = "train."

    batch_size: int = setting(128, ge=1, le=1 << 20)
    """Training windows per batch."""
    lr: float = setting(2e-3, gt=0, le=10)
    """Peak AdamW learning rate."""
    weight_decay: float = setting(0.01, ge=0, le=10)
    """AdamW weight decay."""
    warmup_steps: int = setting(100, ge=0)
    """Linear warm-up steps before the cosine decay."""
    max_epochs: int = setting(5, ge=1, le=100_000)
    """Passes over the training windows."""
    grad_clip: float = setting(1.0, gt=0)
    """Gradient-norm clip."""
    weight_mode: str = "quarter"
    """Target weight from the target's listened fraction: quarter, raw, binary (>= 0.5) or none."""
    loss: str = "full"
    """`full`: exact softmax over the whole catalog (chunked); `sampled`: shared negatives with logQ correction."""
    loss_chunk: int = setting(2048, ge=1)
    """Positions per logits block in the full-catalog loss."""
    n_negatives: int = setting(2048, ge=1, le=1 << 24)
    """Negatives shared by a batch for the sampled loss."""
    neg_alpha: float = setting(0.75, ge=0, le=4)
    """Sampled negatives follow play count ** neg_alpha (0: uniform)."""
    accelerator: str = setting("auto", command=True)
    """Lightning accelerator: auto, cpu, gpu."""
    devices: Any = setting("1", command=True)
    """Lightning devices: a count, a list like [0,1], or auto (seqrec.config.parse_devices)."""
    num_nodes: int = setting(1, ge=1, command=True)
    """Machines for multi-node training."""
    precision: str | None = setting(None, command=True)
    """None: bf16-mixed on GPU, 32 on CPU."""
    compile: bool = False
    """Compile the network with torch.compile (worth it on GPU; checkpoints are unchanged)."""
    num_workers: int = setting(0, ge=0, le=1024, command=True)
    """DataLoader worker processes."""
    patience: int = setting(3, ge=1)
    """Early stopping: validations without improvement of val/score."""
    limit_train_batches: float = setting(1.0, gt=0)
    """Share (<= 1.0) or count (> 1) of training batches per epoch."""
    log_every_n_steps: int = setting(20, ge=1)
    """TensorBoard logging interval."""
    progress_bar: bool = setting(True, command=True)
    """Show Lightning's progress bar."""
    objective: str = "next_discover_window"
    """What each position learns to predict: the `next` track, a track of the following `horizon_days` (`window`:
    each position's target drawn among the events of that window, so over draws it is a multi-positive softmax
    weighted by listens), `both` (either with even odds), `discover` (only positions whose next track is a first play
    of it, with the tracks of the window masked out of the softmax: the network learns what the history cannot
    offer), `next_discover` (the sum of the `next` and the `discover` losses), `discover_window` (`discover` with
    each position's target a first play drawn from the following `horizon_days`) or `next_discover_window` (the
    sum of `next` and `discover_window`)."""
    horizon_days: float = setting(15.0, gt=0)
    """The window of the `window` and `*discover_window` objectives, as long as the contest's."""
    refit: bool = True
    """After validation has chosen the epoch count and fitted the ranking stage, train the network again on the whole
    log (the last window included, so the newest tracks are learned) for that many epochs: checkpoints/refit.ckpt,
    with the cut's ranking stage. predict.py, the service and seqrec.similar decode with it; validation figures stay
    those of the cut."""

    def check(self) -> None:
        if self.weight_mode not in WEIGHT_MODES:
            raise ValueError(f"train.weight_mode must be one of {', '.join(WEIGHT_MODES)}, got {self.weight_mode!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"train.objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.loss not in ("full", "sampled"):
            raise ValueError(f"train.loss must be full or sampled, got {self.loss!r}")
        try:
            parse_devices(self.devices)
        except ValueError as err:
            raise ValueError(f"train.devices {err}") from None


@dataclass
class DecodeConfig(Section):
    """Where and in what batches and shards a trained run decodes its lists (what it decodes: `rank.*`)."""

    prefix: ClassVar[str] = "decode."

    mask_skipped: int = setting(0, ge=0)
    """Never recommend a track the user skipped this many times and never half-listened (0: off)."""
    batch_users: int = setting(256, ge=1, le=1 << 20, command=True)
    """Users scored against the whole catalog at once."""
    shard_users: int = setting(20_000, ge=1, command=True)
    """predict.py and seqrec.evaluate decode this many users per shard: the per-user evidence, sequences and skip
    masks are built for one shard at a time, so their memory follows the shard, not the log (the log-wide tables,
    which track follows which and popularity, are built once)."""
    workers: int = setting(1, ge=1, le=1024, command=True)
    """Processes decoding shards in parallel on CPU (forked: each holds its own shard's evidence). 1: in this
    process."""
    devices: Any = setting("1", command=True)
    """predict.py: processes (GPUs, or CPU processes with decode.device=cpu) decoding shards under Lightning's
    predict with DDP, as train.devices reads them (a count, a list like [0,1], or auto); beyond one device, or
    with decode.num_nodes above 1, the lists are gathered through RUN/predict_shards."""
    num_nodes: int = setting(1, ge=1, command=True)
    """predict.py: nodes decoding under DDP (launched as for training; RUN must be a shared folder)."""
    device: str = setting("auto", command=True)
    """Where a trained run decodes (predict.py, seqrec.evaluate, the service): auto (a GPU when there is one),
    cpu or cuda. Validation decodes where training runs."""

    def check(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"decode.device must be auto, cpu or cuda, got {self.device!r}")
        try:
            parse_devices(self.devices)
        except ValueError as err:
            raise ValueError(f"decode.devices {err}") from None

    @property
    def distributed(self) -> bool:
        """Whether predict.py decodes under Lightning's DDP: more than one device or node."""
        return parse_devices(self.devices) not in (1, [0]) or self.num_nodes > 1


@dataclass
class RankConfig(Section):
    """The ranking stage: its candidate sources and their sizes, the log statistics its features read, and the
    ranker fitted on the validation window over the candidates' named features (seqrec.ranking)."""

    prefix: ClassVar[str] = "rank."

    n_model_candidates: int = setting(100, ge=0, le=MAX_K)
    """Source `model`: the network's best tracks (at least eval.k of them, so a list can be made of them alone)."""
    n_explore_candidates: int = setting(100, ge=0, le=MAX_K)
    """Source `explore`: the network's best tracks among those the user never played."""
    n_history_candidates: int = setting(200, ge=0, le=MAX_K)
    """Source `history`: the user's best tracks by re-listen score."""
    n_favourites_candidates: int = setting(60, ge=0, le=MAX_K)
    """Source `favourites`: the tracks that usually follow the user's favourites."""
    n_next_candidates: int = setting(30, ge=0, le=MAX_K)
    """Source `next`: the tracks that usually follow the user's last `rank.transitions_last_n` plays."""
    n_artist_candidates: int = setting(0, ge=0, le=MAX_K)
    """Source `artists`: tracks of the user's artists, by the user's share of the artist and the track's recent
    listeners."""
    model_rank_top: int = setting(1000, ge=1, le=MAX_K, command=True)
    """The `model_rank` feature is counted exactly among the scorer's best this many tracks..."""
    model_rank_sample: int = setting(4096, ge=0, le=MAX_K, command=True)
    """...and estimated below them from the scores of this many tracks drawn once (seeded by rank.seed); 0 counts
    it exactly over the whole catalog (BENCHMARKS.md, "Decoding at catalog scale": what each costs and the
    estimate's effect on val/score). A command may change both: the same feature, counted or estimated."""
    relisten_half_life_days: float = setting(BaselineConfig.relisten_half_life_days, gt=0)
    """Half-life of the re-listen score (the `relisten` feature and the history source)."""
    short_half_life_days: float = setting(7.0, gt=0)
    """Half-life of the short-memory re-listen feature (`relisten_short`)."""
    relisten_quality_floor: float = setting(BaselineConfig.relisten_quality_floor, gt=0, le=1)
    """Weight of a skipped listen relative to a full one in the re-listen sums and the transitions."""
    transitions_weight: float = setting(BaselineConfig.transitions_weight, ge=0)
    """Weight of what follows the recent plays relative to re-listen scores in the `next` feature."""
    transitions_last_n: int = setting(BaselineConfig.transitions_last_n, ge=1)
    """The `next` source and feature read the user's last this many plays."""
    transitions_max_gap_min: float = setting(BaselineConfig.transitions_max_gap_min, gt=0)
    """Consecutive plays further apart than this do not form a transition."""
    popular_days: int = setting(BaselineConfig.popular_days, ge=1)
    """The `log_popularity` feature counts distinct listeners in the last this many days."""
    source_features: bool = False
    """Candidates carry, for each source, the track's rank in it (NaN where the source did not list it). Off:
    +0.3 % on future.csv, no clear gain on validation (BENCHMARKS.md, "The ranking stage as a package")."""
    drop_features: list[str] = field(default_factory=list)
    """Features the ranker leaves out (for ablations), by name from seqrec.ranking.features.FEATURES."""
    model: str = "gbdt"
    """`gbdt`: LightGBM over the named features; `by_feature`: candidates ranked by one feature (`rank.by`)."""
    fallback: bool = True
    """After the cross-fit, keep the fitted ranker only if its validation score beats the best single source's
    (`rank.fallback_by`); otherwise that source ranks the lists (train's report says which)."""
    fallback_by: str = "relisten"
    """The single source the ranking stage must beat: the feature it ranks by (ties by recent listeners)."""
    by: str = "model_logp"
    """The feature a `by_feature` ranker ranks by (higher first); also the ranking before the first fit."""
    objective: str = "xentropy"
    """LightGBM objective: `xentropy` (pointwise, the window's quarter as a soft label) or `lambdarank`."""
    trees: int = setting(300, ge=1, le=100_000)
    """Boosting rounds."""
    learning_rate: float = setting(0.05, gt=0, le=10)
    """LightGBM's shrinkage."""
    num_leaves: int = setting(31, ge=2, le=131_072)
    """Leaves per tree."""
    min_data_in_leaf: int = setting(100, ge=1)
    """Candidates a leaf holds at least."""
    feature_fraction: float = setting(0.8, gt=0, le=1)
    """Share of the features each tree sees."""
    negative_share: float = setting(1.0, gt=0, le=1)
    """Share of the candidates the user did not play that a pointwise (`xentropy`) fit keeps, drawn seeded: most
    candidates are negatives, and fewer of them fit faster."""
    seed: int = setting(0, ge=0)
    """LightGBM's seed (its feature and row sampling) and the negative sampling's: the same candidates, gains and
    seed fit the same ranker."""
    threads: int = setting(1, ge=0, le=1024)
    """LightGBM threads (0: one per core). Its OpenMP threads spin beside torch's and any other job's: on a busy
    2-core machine a 184K-row fit took 21 s with one thread and 522 s with two. Raise it on a machine with cores
    to spare."""

    def check(self) -> None:
        if self.model not in ("gbdt", "by_feature"):
            raise ValueError(f"rank.model must be gbdt or by_feature, got {self.model!r}")
        if self.objective not in ("xentropy", "lambdarank"):
            raise ValueError(f"rank.objective must be xentropy or lambdarank, got {self.objective!r}")


@dataclass
class SimilarConfig(Section):
    """Similar tracks: `python -m seqrec.similar data.dir=DIR run.dir=RUN item_id=ID k=20`."""

    prefix: ClassVar[str] = "similar."

    method: str = "embedding"
    """`embedding`: cosine over the trained run's item embeddings; `cooccurrence`: item-kNN over co-listening."""
    same_song: bool = False
    """List the query's own versions and duplicate uploads (its song group) too; by default they are left out."""
    item_id: int | None = None
    """The query track, an item_id of item_metadata.csv (shorthand `item_id=`)."""
    k: int = setting(20, ge=1, le=MAX_K)
    """Neighbours to list (shorthand `k=`)."""
    batch: int = setting(128, ge=1, le=1 << 20)
    """Query tracks scored against the whole catalog at once (a (batch, n_items) float32 block)."""

    def check(self) -> None:
        if self.method not in ("embedding", "cooccurrence"):
            raise ValueError(f"similar.method must be embedding or cooccurrence, got {self.method!r}")


@dataclass
class RerankConfig(Section):
    """Optional diversity / novelty re-ranking of top-k lists; off because the contest metric rewards repeats."""

    prefix: ClassVar[str] = "rerank."

    enabled: bool = False
    """predict.py re-ranks its lists; seqrec.evaluate adds a `<model>+rerank` row for every model."""
    candidates: int = setting(2, ge=1, le=100)
    """The model's best `candidates * k` tracks are re-ranked down to k."""
    artist_cap: int | None = setting(5, ge=1)
    """At most this many tracks of one artist per list while other candidates remain (None: no cap)."""
    song_cap: int | None = setting(None, ge=1)
    """At most this many versions of one song (its song group: remixes, live takes, duplicate uploads) per list
    while other candidates remain (None: no cap)."""
    mmr_lambda: float = setting(0.8, ge=0, le=1)
    """MMR trade-off: lambda * relevance - (1 - lambda) * max similarity to the tracks already picked."""
    genre_similarity: float = setting(0.3, ge=0, le=1)
    """Similarity of two tracks that share a genre but not the artist (same artist: 1, else 0)."""
    novelty_weight: float = setting(0.05, ge=0)
    """Bonus times normalised -log2 popularity (0: a track every user played, 1: a track nobody played)."""
    batch_users: int = setting(4096, ge=1, le=1 << 20)
    """Users re-ranked at once; memory grows with batch_users x candidates x k."""



@dataclass
class RunConfig(Section):
    """Where a training run keeps checkpoints, TensorBoard logs and its resolved config."""

    prefix: ClassVar[str] = "run."

    dir: str = "runs/default"
    """The run folder: checkpoints/, tb/ (TensorBoard), reports/, ids/, config.yaml, state.json."""

    @property
    def checkpoints(self) -> Path:
        """best.ckpt (highest val/score) and last.ckpt live here."""
        return Path(self.dir) / "checkpoints"

    @property
    def refit_ckpt(self) -> Path:
        """The network refitted on the whole log (train.refit) with best.ckpt's ranking stage."""
        return self.checkpoints / "refit.ckpt"

    @property
    def last_ckpt(self) -> Path:
        """The newest epoch's checkpoint (resuming, or decoding a run that did not finish)."""
        return self.checkpoints / "last.ckpt"

    @property
    def named_ckpts(self) -> dict[str, Path]:
        """The checkpoints `ckpt=` may name: best and last."""
        return {"best": self.best_ckpt, "last": self.last_ckpt}

    @property
    def item_ids(self) -> Path:
        """The catalogue's item ids by index (seqrec.data.ids.IdMap), written when training starts."""
        return Path(self.dir) / "ids" / "items.npy"

    @property
    def user_ids(self) -> Path:
        """The log's user ids by index."""
        return Path(self.dir) / "ids" / "users.npy"

    @property
    def best_ckpt(self) -> Path:
        """The checkpoint with the highest val/score: what predict.py, similar and the service load."""
        return self.checkpoints / "best.ckpt"


@dataclass
class ServeConfig(Section):
    """The recommendation service: `python -m seqrec.serve run.dir=RUN [port=8000]`."""

    prefix: ClassVar[str] = "serve."

    host: str = "127.0.0.1"
    """Interface to listen on; the default is loopback only."""
    port: int = setting(8000, ge=0, le=65535)
    """TCP port."""
    db: str | None = None
    """SQLite file of posted events; None means `<run.dir>/events.sqlite`."""
    k: int = setting(50, ge=1, le=MAX_K)
    """Default length of /recommendations lists."""
    max_k: int = setting(200, ge=1, le=MAX_K)
    """Longest list /recommendations and /similar return."""
    similar_k: int = setting(20, ge=1, le=MAX_K)
    """Default length of /similar lists."""
    history_limit: int = setting(20, ge=1)
    """Default number of events /users/{id}/history returns."""
    max_history_limit: int = setting(1000, ge=1, le=1_000_000)
    """Most events /users/{id}/history returns."""
    cache_users: int = setting(1024, ge=1, le=1_000_000)
    """Decoders of users with posted events kept between requests (rebuilt when they post again)."""
    torch_threads: int | None = setting(None, ge=1, le=1024)
    """torch intra-op threads; None keeps torch's default."""
    token: str | None = None
    """When set (or SEQREC_SERVE_TOKEN), every endpoint but /health requires `Authorization: Bearer <token>`."""
    insecure: bool = False
    """Allow listening beyond loopback without a token (anyone who can reach the port reads users' histories)."""
    max_body_bytes: int = setting(16384, ge=1024, le=1 << 30)
    """Longest request body; a longer one is answered 413."""
    clock_skew_minutes: float = setting(10.0, ge=0)
    """A posted event may be dated at most this far after the server's clock."""
    lists: str | None = None
    """A folder of offline lists (predict.py users=all lists=FOLDER) of this run and data: users without posted
    events are answered from it; users who posted since are decoded afresh."""

    def check(self) -> None:
        if not 1 <= self.k <= self.max_k or not 1 <= self.similar_k <= self.max_k:
            raise ValueError(f"serve.k ({self.k}) and serve.similar_k ({self.similar_k}) must be in "
                             f"1..serve.max_k ({self.max_k})")
        if not 1 <= self.history_limit <= self.max_history_limit:
            raise ValueError(f"serve.history_limit ({self.history_limit}) must be in "
                             f"1..serve.max_history_limit ({self.max_history_limit})")


@dataclass
class Config(Section):
    """Everything a command needs."""

    seed: int = setting(42, ge=0, le=2**32 - 1, command=True)
    data: DataConfig = field(default_factory=DataConfig, metadata=COMMAND)
    clean: CleanConfig = field(default_factory=CleanConfig)
    split: SplitConfig = field(default_factory=SplitConfig, metadata=COMMAND)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    eval: EvalConfig = field(default_factory=EvalConfig, metadata=COMMAND)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    metric: MetricConfig = field(default_factory=MetricConfig, metadata=COMMAND)
    run: RunConfig = field(default_factory=RunConfig, metadata=COMMAND)
    similar: SimilarConfig = field(default_factory=SimilarConfig, metadata=COMMAND)
    rerank: RerankConfig = field(default_factory=RerankConfig, metadata=COMMAND)
    serve: ServeConfig = field(default_factory=ServeConfig, metadata=COMMAND)
    submission: str = setting("submission.csv", command=True)
    """Where predict.py writes."""
    users: str = setting("test", command=True)
    """predict.py: whose lists it decodes: `test` (test.csv's users) or `all` (every user of the log and of
    test.csv; with `lists`)."""
    lists: str | None = setting(None, command=True)
    """predict.py: write the lists (`user_id, item_id, rank, score`) into this folder as parquet files of
    decode.shard_users users each, resumable shard by shard, instead of the submission; the service serves them
    (serve.lists)."""
    ckpt: str | None = setting(None, command=True)
    """train.py: resume from the run's `last` (or `best`) checkpoint, or from a path. Commands that decode a trained
    run (predict.py, seqrec.evaluate, seqrec.similar, the service): `best` or `last` decodes with that checkpoint
    instead of the one training finished with, also for a run that did not finish."""
    overrides: list[str] = field(default_factory=list, metadata=COMMAND)
    """The key=value settings this config was built with, presets expanded (filled by load_config): a trained
    run refuses those that would change what it was trained on."""

    def check(self) -> None:
        if self.users not in ("test", "all"):
            raise ValueError(f"users must be test or all, got {self.users!r}")
        if self.users == "all" and not self.lists:
            raise ValueError("users=all decodes every user's list: name the folder to write them to with "
                             "lists=FOLDER")


# `model=NAME` is shorthand for `model.name=NAME`, `port=N` for `serve.port=N`, `item_id=ID` and `k=N` for
# `similar.item_id` and `similar.k`; `preset=NAME` merges configs/NAME.yaml.
_SHORTHANDS = {"model": "model.name", "item_id": "similar.item_id", "k": "similar.k", "port": "serve.port"}


def load_config(overrides: list[str] | None = None) -> Config:
    """The dataclasses' defaults (the one source of them) <- presets <- command-line overrides, type-checked.

    A wrong key, value or preset raises UserError naming it (with the closest known key for a typo)."""
    overrides = list(overrides or [])
    schema = OmegaConf.structured(Config)
    layers = []
    rest, given = [], []
    for item in overrides:
        if "=" not in item:
            raise UserError(f"{item!r} is not key=value (e.g. data.dir=data/real); --help lists the main keys")
        key, value = item.split("=", 1)
        if key == "preset":
            preset = CONFIG_DIR / f"{value}.yaml"
            if not preset.exists():
                raise UserError(f"preset {value!r} not found in {CONFIG_DIR}; known: {presets()}")
            layer = OmegaConf.load(preset)
            layers.append(layer)
            given += [f"{k}={v}" for k, v in _leaves(OmegaConf.to_container(layer))]
        else:
            rest.append(f"{_SHORTHANDS.get(key, key)}={value}")
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(schema, *layers, OmegaConf.from_dotlist(rest)))
    except OmegaConfBaseException as err:
        raise _config_error(err, [r.split("=", 1)[0] for r in rest]) from err
    except ValueError as err:  # a dataclass's __post_init__ check: its message names the key
        raise UserError(str(err)) from err
    cfg.overrides = given + rest
    return cfg


MOVED = {"decode.n_model_candidates": "rank.n_model_candidates",
         "decode.n_history_candidates": "rank.n_history_candidates",
         "decode.n_transition_candidates": "rank.n_favourites_candidates",
         "decode.n_next_candidates": "rank.n_next_candidates", "decode.n_artist_candidates": "rank.n_artist_candidates",
         "decode.short_half_life_days": "rank.short_half_life_days", "decode.drop_features": "rank.drop_features"}
"""Keys that moved: a run trained before the move is read with them in their new place."""
RETIRED = ("decode.blend_hidden", "decode.blend_l2", "decode.blend_steps", "decode.blend_lr", "decode.use_history")
"""Keys that left with the MLP blend ranking stage."""
RANK_FROM_BASELINES = ("relisten_half_life_days", "relisten_quality_floor", "transitions_weight",
                       "transitions_last_n", "transitions_max_gap_min", "popular_days")
"""rank.* keys a run trained before they existed took from baselines.*."""


ADDED = {"model.use_side": False, "rank.n_explore_candidates": 0, "rank.model_rank_sample": 0,
         "model.side": ["artist", "genres", "duration", "popularity"]}
"""Keys added since some runs were saved, with what such a run did without them (not necessarily today's
default)."""


def saved_model(model: dict) -> ModelConfig:
    """The ModelConfig of a checkpoint's saved `model` settings, keys it predates at their value before then."""
    before = {k.split(".")[1]: v for k, v in ADDED.items() if k.startswith("model.")}
    return ModelConfig(**{**before, **model})


def upgrade_saved(tree: dict) -> dict:
    """A run folder's saved config (a plain nested dict) in today's keys: moved keys in their new place, retired
    ones dropped, the ranking stage's log statistics taken from baselines.* where the run predates rank.*, keys
    added since (ADDED) at what the run did without them. Raises
    UserError for a run whose settings no longer exist (the MLP blend, decoding without the history)."""
    tree = {k: dict(v) if isinstance(v, dict) else v for k, v in tree.items()}
    rank, decode, baselines = (tree.setdefault(s, {}) for s in ("rank", "decode", "baselines"))
    if rank.get("model") == "blend" or decode.get("use_history", True) is not True:
        raise UserError("this run was trained with the retired MLP blend ranking stage (rank.model=blend or "
                        "decode.use_history=false); train it again")
    for old, new in MOVED.items():
        section, key = old.split(".")
        if key in tree[section]:
            rank.setdefault(new.split(".")[1], tree[section].pop(key))
    for old in RETIRED:
        decode.pop(old.split(".")[1], None)
    for key in RANK_FROM_BASELINES:
        if key not in rank and key in baselines:
            rank[key] = baselines[key]
    for dotted, value in ADDED.items():
        section, key = dotted.split(".")
        tree.setdefault(section, {}).setdefault(key, value)
    return tree


def command_may_change(key: str) -> bool:
    """Whether a command may give `key` (dotted) a value other than a trained run's: declared on the field, or on
    the section holding it, with `setting(..., command=True)` / `metadata=COMMAND`."""
    cls: type | None = Config
    for part in key.split("."):
        found = next((f for f in fields(cls) if f.name == part), None) if cls is not None else None
        if found is None:
            return False
        if found.metadata.get("command"):
            return True
        cls = found.default_factory if is_dataclass(found.default_factory) else None
    return False


def presets() -> list[str]:
    """The presets `preset=NAME` can merge: configs/NAME.yaml."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_keys(cls: type | None = None, prefix: str = "") -> list[str]:
    """Every dotted key of the config, in declaration order."""
    out = []
    for f in fields(cls or Config):
        typ = f.default_factory if is_dataclass(f.default_factory) else None
        out += config_keys(typ, f"{prefix}{f.name}.") if typ else [f"{prefix}{f.name}"]
    return [k for k in out if k != "overrides"]


def _config_error(err: OmegaConfBaseException, given: list[str]) -> UserError:
    """omegaconf's error as one line naming the key (as the user typed it, among `given`)."""
    key = getattr(err, "full_key", None) or ""
    message = str(err).split("\n")[0]
    if isinstance(err, KeyError) and key:
        key = next((g for g in given if g == key or g.startswith(f"{key}.")), key)
        if key in MOVED:
            return UserError(f"{key} is now {MOVED[key]}")
        if key in RETIRED:
            return UserError(f"{key} was retired with the MLP blend ranking stage; drop it")
        close = difflib.get_close_matches(key, config_keys(), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else "; --help lists the main keys"
        return UserError(f"unknown key {key!r}{hint}")
    return UserError(f"{key}: {message}" if key else message)


def _leaves(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, value) of every leaf of a nested dict."""
    out = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out += _leaves(v, f"{key}.") if isinstance(v, dict) else [(key, v)]
    return out


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, for run directories and reports."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
