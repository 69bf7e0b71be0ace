"""Every entry point: --help says what it does with its main keys, defaults and an example; a user's mistake is
one `error:` line, exit 2, no traceback; SEQREC_DEBUG=1 brings the traceback back."""

import subprocess
import sys
from pathlib import Path

import pytest

from seqrec import cli, evaluate, predict, report, similar, train, validate
from seqrec.config import CONFIG_DIR, load_config, presets
from seqrec.errors import UserError
from seqrec.serve import __main__ as serve

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {"train": train, "predict": predict, "evaluate": evaluate, "validate": validate, "similar": similar,
            "report": report, "serve": serve}


@pytest.mark.parametrize("name", COMMANDS)
def test_help_lists_main_keys_with_defaults_docs_and_an_example(name, capsys):
    module = COMMANDS[name]
    assert cli.run(module.COMMAND, module.main, ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {module.COMMAND.usage}\n")
    for key in module.COMMAND.keys:
        assert f"  {key}=" in out, key
    assert "\nexamples:\n  python " in out
    if "run.dir" in module.COMMAND.keys:  # a default and its one-line doc, from the config dataclass
        assert "run.dir=runs/default" in out and "The run folder: checkpoints/" in out


@pytest.mark.parametrize("name, argv, named", [
    ("train", ["trainer.max_epochs=1"], "unknown key 'trainer.max_epochs'; did you mean train.max_epochs?"),
    ("train", ["train.max_epochs=abc"], "train.max_epochs: Value 'abc'"),
    ("predict", ["--fast"], "'--fast' is not key=value"),
    ("evaluate", ["clean.overlong=cut"], "clean.overlong must be 'clip' or 'drop', got 'cut'"),
    ("evaluate", ["preset=huge"], "preset 'huge' not found"),
    ("report", ["run.dir={tmp}/none"], "{tmp}/none/reports not found"),
    ("similar", ["item_id=1", "run.dir={tmp}/none"], "{tmp}/none/config.yaml not found"),
    ("serve", ["run.dir={tmp}/none"], "{tmp}/none"),
    ("validate", ["{tmp}/missing.csv", "data.dir={tmp}/nodata"], "{tmp}/nodata: data folder not found"),
    ("train", ["data.dir={tmp}/nodata", "train.progress_bar=false"], "{tmp}/nodata: data folder not found"),
])
def test_a_user_error_is_one_line_exit_2(name, argv, named, tmp_path, capsys):
    module = COMMANDS[name]
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert cli.run(module.COMMAND, module.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named.format(tmp=tmp_path) in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_scripts_exit_2_without_a_traceback_and_debug_shows_it(tmp_path):
    def script(*args, **env):
        return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={"PATH": "/usr/bin:/bin", **env})

    done = script("trainer.max_epochs=1")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: unknown key 'trainer.max_epochs'; did you mean train.max_epochs?\n"
    debug = script("trainer.max_epochs=1", SEQREC_DEBUG="1")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UserError" in debug.stderr
    help_ = script("--help")
    assert help_.returncode == 0 and help_.stdout.startswith("usage: python train.py")


def test_an_internal_error_keeps_its_traceback():
    def broken(argv):
        raise KeyError("a bug, not the user's")

    with pytest.raises(KeyError, match="a bug"):
        cli.run(train.COMMAND, broken, [])


def test_a_path_with_an_equals_sign_is_a_path(tmp_path):
    assert not cli.is_override("runs/lr=1e-3/submission.csv")
    assert cli.is_override("data.dir=runs/lr=1e-3")
    odd = tmp_path / "a=b.csv"
    odd.write_text("")
    assert not cli.is_override(str(odd))


def test_help_offers_exactly_the_presets_that_exist_and_each_loads(capsys):
    assert presets() == sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) and "tiny" in presets()
    assert cli.run(train.COMMAND, train.main, ["--help"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("preset=")]
    assert line.endswith(f"merge configs/NAME.yaml ({', '.join(presets())})")
    for name in presets():
        assert load_config([f"preset={name}"]).overrides  # every key of the preset is a real key


def test_a_moved_or_retired_key_says_where_it_went():
    with pytest.raises(UserError, match=r"^decode.n_transition_candidates is now rank.n_favourites_candidates$"):
        load_config(["decode.n_transition_candidates=10"])
    with pytest.raises(UserError, match="decode.blend_hidden was retired with the MLP blend ranking stage"):
        load_config(["decode.blend_hidden=8"])


def test_config_errors_are_user_errors_naming_the_key():
    with pytest.raises(UserError, match=r"unknown key 'rank.modle'; did you mean rank.model\?"):
        load_config(["rank.modle=gbdt"])
    with pytest.raises(UserError, match="train.lr: Value 'fast'"):
        load_config(["train.lr=fast"])


def test_synth_answers_help_and_a_bad_flag_in_its_own_words(tmp_path):
    def synth(*args):
        return subprocess.run([sys.executable, "-m", "seqrec.synth", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    help_ = synth("--help")
    assert help_.returncode == 0 and "--out OUT" in help_.stdout and "python -m seqrec.synth --out" in help_.stdout
    bad = synth("--out", str(tmp_path / "x"), "--users", "many")
    assert bad.returncode == 2 and "error: argument --users: invalid int value: 'many'" in bad.stderr
    assert "Traceback" not in bad.stderr


MISTAKES = [  # (command, argv, what the one error line must say); {tmp}: a scratch folder, {data}/{run}: tiny ones
    ("train", ["train.max_epochs=0"], "train.max_epochs=0 is out of range: it must be >= 1"),
    ("train", ["train.max_epochs=-1"], "train.max_epochs=-1 is out of range"),
    ("train", ["train.batch_size=0"], "train.batch_size=0 is out of range"),
    ("train", ["train.lr=nan"], "train.lr=nan is out of range"),
    ("train", ["train.lr=inf"], "train.lr=inf is out of range"),
    ("train", ["train.lr=-1"], "train.lr=-1.0 is out of range"),
    ("train", ["model.dropout=1.5"], "model.dropout=1.5 is out of range: it must be >= 0 and < 1"),
    ("train", ["model.d_model=65"], "model.d_model (65) must be divisible by model.n_heads (2)"),
    ("train", ["model=nope"], "model.name (model=) must be one of sasrec, popular"),
    ("train", ["train.devices=abc"], "train.devices must be a count >= 1, a list like [0,1] or auto"),
    ("train", ["train.objective=guess"], "train.objective must be one of next, window"),
    ("train", ["train.loss=approx"], "train.loss must be full or sampled"),
    ("train", ["preset=nope"], "preset 'nope' not found"),
    ("train", ["run.dir={tmp}/file"], "run.dir={tmp}/file is a file, not a folder"),
    ("train", ["data.dir={tmp}/file"], "{tmp}/file: data folder not found"),
    ("train", ["seed=-1"], "seed=-1 is out of range"),
    ("train", ["train.weight_mode=heavy"], "train.weight_mode must be one of quarter"),
    ("train", ["model.max_len=0"], "model.max_len=0 is out of range"),
    ("train", ["rank.trees=0"], "rank.trees=0 is out of range"),
    ("train", ["rank.model=forest"], "rank.model must be gbdt or by_feature"),
    ("train", ["train.max_epochs"], "'train.max_epochs' is not key=value"),
    ("train", ["ckpt=last", "run.dir={tmp}/fresh"], "ckpt=last: {tmp}/fresh/checkpoints/last.ckpt does not exist"),
    ("predict", ["eval.k=0"], "eval.k=0 is out of range"),
    ("predict", ["eval.k=-1"], "eval.k=-1 is out of range"),
    ("predict", ["eval.k=1000000000"], "eval.k=1000000000 is out of range: it must be >= 1 and <= 100,000"),
    ("predict", ["decode.workers=0"], "decode.workers=0 is out of range"),
    ("predict", ["decode.batch_users=0"], "decode.batch_users=0 is out of range"),
    ("predict", ["decode.devices=0"], "decode.devices must be a count >= 1"),
    ("predict", ["decode.device=tpu"], "decode.device must be auto, cpu or cuda"),
    ("predict", ["model=nope"], "model.name (model=) must be one of"),
    ("predict", ["run.dir={tmp}/none", "data.dir={data}"], "{tmp}/none/config.yaml not found"),
    ("predict", ["run.dir={run}", "ckpt=x.ckpt"], "ckpt=x.ckpt: a trained run decodes with ckpt=best or ckpt=last"),
    ("predict", ["run.dir={run}", "model.d_model=32"], "was trained with model.d_model=16 (given: 32)"),
    ("predict", ["data.dir={data}", "model=popular", "eval.k=100000", "submission={tmp}/s.csv"],
     "eval.k=100000: the catalogue has only"),
    ("evaluate", ["split.window_days=0"], "split.window_days=0 is out of range"),
    ("evaluate", ["split.mode=random"], "split.mode must be 'temporal' or 'future'"),
    ("evaluate", ["metric.fraction=max"], "metric.fraction must be one of"),
    ("evaluate", ["eval.cutoffs=[0]"], "eval.cutoffs must be in 1..eval.k (50), got [0]"),
    ("evaluate", ["split.max_users=0"], "split.max_users=0 is out of range"),
    ("evaluate", ["clean.max_duration_ratio=0.5"], "clean.max_duration_ratio=0.5 is out of range"),
    ("similar", ["k=0"], "similar.k=0 is out of range"),
    ("similar", ["k=1000000000"], "similar.k=1000000000 is out of range"),
    ("similar", ["item_id=abc"], "similar.item_id: Value 'abc'"),
    ("similar", ["similar.method=magic"], "similar.method must be embedding or cooccurrence"),
    ("similar", ["item_id=1", "data.dir={data}", "run.dir={run}"], "item_id 1 is not a track of"),
    ("similar", ["data.dir={data}", "run.dir={run}"], "no query track: give item_id=ID"),
    ("serve", ["port=70000"], "serve.port=70000 is out of range"),
    ("serve", ["serve.k=0"], "serve.k=0 is out of range"),
    ("serve", ["serve.max_body_bytes=10"], "serve.max_body_bytes=10 is out of range"),
    ("report", ["run.dir={tmp}/none"], "{tmp}/none/reports not found"),
]


def test_forty_command_line_mistakes_are_one_line_each(tiny_synth, tiny_run, tmp_path, capsys):
    assert len(MISTAKES) >= 40
    (tmp_path / "file").write_text("x")
    for name, argv, named in MISTAKES:
        module = COMMANDS[name]
        args = [a.format(tmp=tmp_path, data=tiny_synth, run=tiny_run) for a in argv]
        code = cli.run(module.COMMAND, module.main, args)
        err = capsys.readouterr().err
        assert code == 2, (name, args, err)
        expected = named.format(tmp=tmp_path, data=tiny_synth, run=tiny_run)
        assert err.startswith("error: ") and expected in err, (name, args, err)
        assert "Traceback" not in err and err.count("\n") == 1, (name, args, err)
    assert not (tmp_path / "s.csv").exists()
