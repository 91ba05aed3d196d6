"""Checkpoints and --resume under hostile conditions, on real files and real processes.

A checkpoint is never unpickled freely (a payload that would create a file does not run); a
resume continues or fails with one line naming the path, never starts over; an interrupted
save's ``checkpoint.old`` is recovered and its ``checkpoint.tmp<pid>/`` removed; a resume takes
the checkpoint's saved config. The tiny random model keeps each run to seconds. One file past
~400 lines: every way a run can be cut, corrupted or resumed, beside the others.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from research_agents.grpo.checkpoint import (  # noqa: E402
    CheckpointError,
    _start_time,
    find_checkpoint,
    read_step,
    read_trainer_state,
    remove_orphans,
    saved_config,
)
from research_agents.grpo.presets import get_preset  # noqa: E402
from research_agents.grpo.trainer import GRPOTrainer  # noqa: E402
from research_agents.grpo.training_log import MetricsLogger, read_metrics  # noqa: E402

from research_env.cli import main as cli_main  # noqa: E402

HOOK = """
def by_length(trajectory):
    # varies within groups, so every step updates the weights (the optimiser has state)
    return float(sum(trajectory.response_ids) % 3)
"""


class Payload:
    """Unpickling this creates ``marker``: what a hostile trainer_state.pt would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def _env(hooks: Path) -> dict[str, str]:
    path = os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path}


def _train(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "research_env.cli",
        "train",
        "--output_dir",
        str(out),
        "--no-progress",
        *extra,
    ]


def _resume(run: Path, hooks: Path) -> subprocess.CompletedProcess[str]:
    """``searchqa train --resume`` of ``run`` to step 3, its output captured."""
    return subprocess.run(
        _train(run, "--resume", "--steps", "3"),
        env=_env(hooks),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _tiny(out: Path, steps: int, *extra: str) -> list[str]:
    return _train(
        out,
        "--preset",
        "tiny",
        "--steps",
        str(steps),
        "--checkpoint_every",
        "1",
        "--reward_hook",
        "hooks_mod:by_length",
        "--max_new_tokens",
        "12",
        *extra,
    )


def _step_or_none(path: Path) -> int | None:
    try:
        return read_step(path)
    except CheckpointError:  # renamed while we read it
        return None


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("searchqa train:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hooks")
    (folder / "hooks_mod.py").write_text(HOOK)
    return folder


def _tiny_config(out: Path, steps: int) -> Any:
    return get_preset("tiny").replace(
        output_dir=str(out),
        steps=steps,
        checkpoint_every=1,
        reward_hook="hooks_mod:by_length",
        max_new_tokens=12,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, hooks: Path) -> Path:
    """A run folder trained 2 steps (checkpoint at step 2), as ``_tiny`` would on the CLI."""
    out = tmp_path_factory.mktemp("trained") / "run"
    sys.path.insert(0, str(hooks))
    try:
        GRPOTrainer(_tiny_config(out, 2)).train(progress=False)
    finally:
        sys.path.remove(str(hooks))
    return out


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory, hooks: Path) -> GRPOTrainer:
    """An in-process trainer of the same shape as :func:`trained`'s run (nothing trained)."""
    out = tmp_path_factory.mktemp("fresh") / "run"
    sys.path.insert(0, str(hooks))
    try:
        return GRPOTrainer(_tiny_config(out, 2))
    finally:
        sys.path.remove(str(hooks))


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained run."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def test_saved_state_is_json_and_safetensors_and_round_trips(run: Path) -> None:
    ckpt = run / "checkpoint"
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == ["config.json", "model", "trainer_state.json", "trainer_state.safetensors"]
    state = read_trainer_state(ckpt)
    assert state["step"] == 2 and read_step(ckpt) == 2
    assert state["optimizer"]["state"], "the hook's rewards make the optimiser keep moments"
    assert isinstance(state["rng"]["python"], tuple) and state["rng"]["numpy"][0] == "MT19937"
    assert saved_config(ckpt).model == "tiny"


# ------------------------------------------------------------------ untrusted files


def test_a_pickle_payload_never_runs(run: Path, hooks: Path, tmp_path: Path) -> None:
    ckpt = run / "checkpoint"
    marker = tmp_path / "payload-ran"
    # an old-layout checkpoint whose trainer_state.pt carries code
    (ckpt / "trainer_state.json").unlink()
    (ckpt / "trainer_state.safetensors").unlink()
    (ckpt / "trainer_state.pt").write_bytes(pickle.dumps({"step": Payload(marker)}))
    with pytest.raises(CheckpointError, match=r"trainer_state\.pt: refused to load"):
        read_trainer_state(ckpt)
    with pytest.raises(CheckpointError, match=r"trainer_state\.pt: refused to load"):
        read_step(ckpt)  # what `searchqa eval --checkpoint` reads
    from research_agents.eval.agents import _checkpoint_details

    from research_env.settings import TurnSettings

    with pytest.raises(CheckpointError, match="refused to load"):
        _checkpoint_details(ckpt, TurnSettings(), None)
    proc = _resume(run, hooks)
    line = _one_line_error(proc)
    assert f"{ckpt / 'trainer_state.pt'}: refused to load" in line
    assert not marker.exists()


@pytest.mark.slow
def test_eval_refuses_a_pickle_payload(run: Path, tmp_path: Path) -> None:
    ckpt = run / "checkpoint"
    marker = tmp_path / "payload-ran"
    (ckpt / "trainer_state.json").unlink()
    (ckpt / "trainer_state.safetensors").unlink()
    (ckpt / "trainer_state.pt").write_bytes(pickle.dumps({"step": Payload(marker)}))
    cmd = [sys.executable, "-m", "research_env.cli", "eval", "--suite", "factbook-dev"]
    cmd += ["--limit", "2", "--checkpoint", str(ckpt), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("searchqa eval:")]
    assert len(errors) == 1 and "trainer_state.pt: refused to load" in errors[0], proc.stderr
    assert not marker.exists()


def test_a_pickle_next_to_the_json_state_is_never_read(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    ckpt = run / "checkpoint"
    (ckpt / "trainer_state.pt").write_bytes(pickle.dumps(Payload(marker)))
    assert read_trainer_state(ckpt)["step"] == 2 and read_step(ckpt) == 2
    assert not marker.exists()


def test_an_older_checkpoint_with_plain_values_still_loads(run: Path) -> None:
    ckpt = run / "checkpoint"
    state = read_trainer_state(ckpt)
    (ckpt / "trainer_state.json").unlink()
    (ckpt / "trainer_state.safetensors").unlink()
    torch.save(state, ckpt / "trainer_state.pt")  # the earlier versions' layout (numpy RNG too)
    legacy = read_trainer_state(ckpt)
    assert legacy["step"] == 2
    assert (legacy["rng"]["numpy"][1] == state["rng"]["numpy"][1]).all()


# ------------------------------------------------------------------ resume never starts over


def test_resume_without_a_checkpoint_fails_and_keeps_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    metrics = out / "metrics.jsonl"
    metrics.write_text('{"step": 1, "reward/mean": 0.5}\n')
    assert cli_main(["train", "--preset", "tiny", "--output_dir", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("searchqa train: no checkpoint at"), err
    assert str(out / "checkpoint") in err[0] and "nothing to resume" in err[0]
    assert metrics.read_text() == '{"step": 1, "reward/mean": 0.5}\n'
    assert not (out / "checkpoint").exists()
    # the Python API fails the same way
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        GRPOTrainer(get_preset("tiny").replace(output_dir=str(out)), resume=True)


def test_checkpoint_old_is_moved_back_and_loads(run: Path, trainer: GRPOTrainer) -> None:
    ckpt = run / "checkpoint"
    ckpt.rename(run / "checkpoint.old")
    assert find_checkpoint(ckpt, repair=False) == run / "checkpoint.old"  # nothing moved yet
    assert find_checkpoint(ckpt) == ckpt and not (run / "checkpoint.old").exists()
    trainer.load_checkpoint(ckpt)
    assert trainer.step == 2
    # a kill after the second rename leaves a stale .old next to the new checkpoint: dropped
    shutil.copytree(ckpt, run / "checkpoint.old")
    assert find_checkpoint(ckpt) == ckpt and not (run / "checkpoint.old").exists()


@pytest.mark.slow
def test_checkpoint_old_left_between_the_renames_is_recovered(run: Path, hooks: Path) -> None:
    # The state a kill between `checkpoint -> checkpoint.old` and `tmp -> checkpoint` leaves:
    # no checkpoint/, the previous one in checkpoint.old/, the new one in checkpoint.tmp<pid>/.
    ckpt = run / "checkpoint"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    shutil.copytree(ckpt, run / f"checkpoint.tmp{dead.pid}")
    ckpt.rename(run / "checkpoint.old")
    # and no --preset: the saved config (model "tiny") is what resumes
    proc = _resume(run, hooks)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "recovered" in proc.stderr and "checkpoint.old" in proc.stderr
    assert read_step(ckpt) == 3
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("checkpoint")) == [
        "checkpoint"
    ]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("trainer_state.json", b'{"format": 2, "step": '),
        ("trainer_state.safetensors", b"\x00" * 7),
        ("config.json", b"not json"),
        ("model/model.safetensors", b"garbage, not a safetensors header"),
    ],
)
def test_a_corrupted_file_is_one_line_naming_it(
    run: Path, trainer: GRPOTrainer, name: str, damage: bytes
) -> None:
    ckpt = run / "checkpoint"
    (ckpt / name).write_bytes(damage)
    with pytest.raises(CheckpointError) as info:
        trainer.load_checkpoint(ckpt)
    message = str(info.value)
    assert str(ckpt / name) in message and "\n" not in message


@pytest.mark.slow
def test_a_corrupted_file_through_the_cli(run: Path, hooks: Path) -> None:
    (run / "checkpoint" / "trainer_state.safetensors").write_bytes(b"\x01\x02")
    before = (run / "metrics.jsonl").read_text()
    proc = _resume(run, hooks)
    assert "trainer_state.safetensors: unreadable" in _one_line_error(proc)
    assert (run / "metrics.jsonl").read_text() == before


def test_a_half_written_last_metrics_line_is_dropped_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "reward/mean": s / 10} for s in (1, 2, 3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "rew')
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]  # a live reader skips it too
    MetricsLogger(tmp_path, tensorboard=False, resume_step=2).close()
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    assert path.read_text().endswith("\n")
    assert f"{path}:4: dropped an unfinished last line" in capsys.readouterr().err
    # a bad line before the end is not a kill's doing: an error naming file:line
    path.write_text('{"step": 1}\n{"step": oops}\n{"step": 3}\n')
    with pytest.raises(CheckpointError, match=r"metrics\.jsonl:2: not a metrics record"):
        MetricsLogger(tmp_path, tensorboard=False, resume_step=3)
    assert path.read_text() == '{"step": 1}\n{"step": oops}\n{"step": 3}\n'  # untouched


# ------------------------------------------------------------------ orphaned temporary folders


def test_orphaned_tmp_folders_of_dead_processes_are_removed(run: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        final = run / "checkpoint"
        orphan = run / f"checkpoint.tmp{dead.pid}"
        busy = run / f"checkpoint.tmp{alive.pid}"
        reused = run / f"checkpoint.tmp{os.getppid()}"  # a live pid that did not write it
        for folder in (orphan, busy, reused):
            shutil.copytree(final / "model", folder / "model")
        (busy / ".owner.json").write_text(
            json.dumps({"pid": alive.pid, "start": _start_time(alive.pid)})
        )
        (reused / ".owner.json").write_text(json.dumps({"pid": os.getppid(), "start": "1"}))
        unrelated = run / "checkpoint.tmpX"
        unrelated.mkdir()
        assert sorted(remove_orphans(final)) == sorted([orphan, reused])
        assert busy.is_dir() and unrelated.is_dir() and final.is_dir()
        assert find_checkpoint(final) == final
    finally:
        alive.kill()
        alive.wait()
    assert find_checkpoint(final) == final and not busy.exists()  # its writer is gone now


@pytest.mark.slow
def test_kill_minus_9_during_a_save_leaves_a_folder_the_resume_removes(
    tmp_path: Path, hooks: Path
) -> None:
    out = tmp_path / "run"
    env = _env(hooks)
    caught: list[Path] = []
    for _attempt in range(3):  # a save takes a fraction of a step: poll until one is caught
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.Popen(
            _tiny(out, 1000), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 300
        try:
            while time.time() < deadline and proc.poll() is None:
                caught = [p for p in out.glob("checkpoint.tmp*") if (p / "model").is_dir()]
                if caught and _step_or_none(out / "checkpoint"):  # a save after the first
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.001)
        finally:
            proc.kill()
            proc.wait(timeout=60)
        if caught and any(p.exists() for p in caught):
            break
    leftovers = [p for p in out.glob("checkpoint.tmp*")]
    assert leftovers, "no save was caught in the act"
    step = read_step(find_checkpoint(out / "checkpoint", repair=False))
    assert step is not None
    done = subprocess.run(
        _train(out, "--resume", "--steps", str(step + 1)),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list(out.glob("checkpoint.tmp*")) and not (out / "checkpoint.old").exists()
    assert read_step(out / "checkpoint") == step + 1


# ------------------------------------------------------------------ the saved config


def test_resume_uses_the_saved_config(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        ["train", "--output_dir", str(run), "--resume", "--steps", "7", "--print-config"]
    )
    assert code == 0
    config = json.loads(capsys.readouterr().out)
    assert config["model"] == "tiny" and config["max_new_tokens"] == 12  # saved, not the preset
    assert config["steps"] == 7 and config["output_dir"] == str(run)  # set on the command line
    for extra in (["--model", "smollm2"], ["--preset", "factbook-smollm2"], ["--lora_rank", "4"]):
        assert cli_main(["train", "--output_dir", str(run), "--resume", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("searchqa train: "), err
        assert "cannot resume with" in err[0] and "decide the weights' shapes" in err[0]


def test_the_python_api_refuses_a_checkpoint_of_another_shape(
    run: Path, trainer: GRPOTrainer
) -> None:
    ckpt = run / "checkpoint"
    config = json.loads((ckpt / "config.json").read_text())
    config["lora_rank"] = 4
    (ckpt / "config.json").write_text(json.dumps(config))
    step, trainer.step = trainer.step, 99
    try:
        with pytest.raises(
            CheckpointError, match=r"does not fit this run: lora_rank=0 \(checkpoint: 4\)"
        ):
            trainer.load_checkpoint(ckpt)
        assert trainer.step == 99  # refused before anything was restored
    finally:
        trainer.step = step


def test_eval_of_a_checkpoint_goes_through_the_harness_with_its_own_settings(
    run: Path, tmp_path: Path
) -> None:
    """``searchqa eval --checkpoint`` plays the checkpoint's settings (the tiny preset's top-2,
    not the default preset's top-3) through the evaluation harness, with no trainer built."""
    out = tmp_path / "result.json"
    cmd = [
        sys.executable,
        "-m",
        "research_env.cli",
        "eval",
        "--checkpoint",
        str(run / "checkpoint"),
    ]
    cmd += ["--split", "dev", "--limit", "3", "--no-progress", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on suite checkpoint-dev" in proc.stdout and "3 questions" in proc.stdout
    result = json.loads(out.read_text())
    env = result["protocol"]["tasks"]["factbook"]["env"]
    assert (env["top_k"], env["max_turns"]) == (2, 2)
    assert result["protocol"]["tasks"]["factbook"]["generation"]["max_new_tokens"] == 12  # run's
    assert result["provenance"]["checkpoint"]["differs_from_suite"] == []
