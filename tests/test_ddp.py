"""Data-parallel GRPO on 2 CPU processes (gloo): torchrun and accelerate launch.

``python tests/test_ddp.py OUT`` is also the worker that torchrun starts (see :func:`_worker`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from research_agents.grpo.checkpoint import read_trainer_state  # noqa: E402
from research_agents.grpo.config import GRPOConfig  # noqa: E402
from research_agents.grpo.distributed import Dist, init_distributed  # noqa: E402
from research_agents.grpo.presets import get_preset  # noqa: E402
from research_agents.grpo.training_log import read_metrics  # noqa: E402

BIN = Path(sys.executable).parent
TESTS = Path(__file__).resolve().parent
TIMEOUT = 300
TORCHRUN = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2"]
# --multi_gpu hands the job to torchrun, CPU or not (--cpu would start a single process)
ACCELERATE = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2"]
ACCELERATE += ["--num_machines", "1", "--main_process_port", "0"]
ACCELERATE += ["--mixed_precision", "no", "--dynamo_backend", "no"]


RUN_FILES = ["checkpoint", "curves.png", "metrics.jsonl", "run_config.json", "samples.jsonl"]
"""What a ``searchqa train`` run leaves in its output folder."""


def by_length(trajectory: Any) -> float:
    """A reward that varies within groups, so every step updates the weights."""
    return float(sum(trajectory.response_ids) % 3)


def _config(out: Path) -> GRPOConfig:
    # 4 questions x G=2 -> 8 trajectories, 4 per rank; mini-batches of 4 mix both ranks' rollouts
    return get_preset("tiny").replace(
        output_dir=str(out),
        questions_per_step=4,
        group_size=2,
        mini_batch_size=4,
        epochs=2,
        max_new_tokens=12,
        mask_truncated=False,
        reward_hook="test_ddp:by_length",
        checkpoint_every=1,
        threads=1,
    )


def _env(tmp_path: Path) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def _worker(out: Path) -> None:
    """Run by torchrun on each of 2 ranks; writes ``rank{r}.pt`` into ``out``.

    1. One GRPO update on each rank's share; saves params, grads, stats and the gathered batch.
    2. ``train()`` for one step (rank 0 writes metrics and the checkpoint), then a new trainer
       resumes from that checkpoint and trains a second step; saves the final params.
    """
    from research_agents.grpo.trainer import GRPOTrainer

    trainer = GRPOTrainer(_config(out / "update"))
    rank = trainer.dist.rank
    assert trainer.dist.world_size == 2
    named = list(trainer.model.named_parameters())
    initial = {n: p.detach().clone() for n, p in named}
    trajs, adv, _ = trainer.collect()
    assert [t.group_id for t in trajs] == [2 * rank, 2 * rank, 2 * rank + 1, 2 * rank + 1]
    stats = trainer._update(trajs, adv)
    result: dict[str, Any] = {
        "initial": initial,
        "params": {n: p.detach().clone() for n, p in named},
        "grads": {n: p.grad.clone() for n, p in named if p.grad is not None},
        "stats": stats,
        "batch": trainer.dist.gather((trajs, adv.tolist())),
    }
    GRPOTrainer(_config(out / "run").replace(steps=1)).train()
    resumed = GRPOTrainer(_config(out / "run").replace(steps=2), resume=True)
    result["resumed_at"] = resumed.step
    result["history"] = resumed.train()
    result["final"] = {n: p.detach().clone() for n, p in resumed.model.named_parameters()}
    torch.save(result, out / f"rank{rank}.pt")


# ------------------------------------------------------------------------------------ tests
def test_single_process_is_a_no_op() -> None:
    dist = init_distributed({})
    assert dist == Dist(device=dist.device) and not dist.enabled and dist.is_main
    assert dist.gather(3) == [3] and dist.all_sum([1.5, 2]) == [1.5, 2.0]
    assert list(dist.share(5)) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"RANK: expected 0\.\.1, got 2"):
        init_distributed({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(ValueError, match="WORLD_SIZE: expected an integer, got 'two'"):
        init_distributed({"WORLD_SIZE": "two"})
    with pytest.raises(ValueError, match="MASTER_ADDR is not set"):
        init_distributed({"WORLD_SIZE": "2", "RANK": "0"})


def test_torchrun_two_ranks_equal_one_process_and_resume(tmp_path: Path) -> None:
    assert (BIN / "torchrun").exists()
    _run([*TORCHRUN, __file__, str(tmp_path)], _env(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    # the replicas are identical, bit for bit, after one update and after train + resume
    for key in ("params", "final"):
        for name, p in ranks[0][key].items():
            assert torch.equal(p, ranks[1][key][name]), (key, name)
    assert ranks[0]["stats"] == ranks[1]["stats"]
    stats = ranks[0]["stats"]
    assert stats["grpo/updates"] == 4  # 2 epochs x 2 mini-batches of the 8 trajectories

    # the same update in one process over the union batch (rank 0's groups, then rank 1's)
    from research_agents.grpo.trainer import GRPOTrainer

    parts = ranks[0]["batch"]
    trajs = [t for part_trajs, _ in parts for t in part_trajs]
    adv = torch.tensor([a for _, part_adv in parts for a in part_adv])
    assert [t.group_id for t in trajs] == [0, 0, 1, 1, 2, 2, 3, 3]
    single = GRPOTrainer(_config(tmp_path / "single").replace(reward_hook=None))
    assert not single.dist.enabled
    ref = single._update(trajs, adv)
    assert ref["grpo/updates"] == 4 and ref["perf/train_tokens"] == stats["perf/train_tokens"]
    for key in ("loss/pg", "grpo/grad_norm", "grpo/clip_fraction", "grpo/ratio_mean"):
        assert stats[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-7), key
    for name, p in single.model.named_parameters():
        assert p.grad is not None
        # gradients of the last mini-batch: equal up to float summation order
        scale = float(p.grad.abs().max())
        assert float((ranks[0]["grads"][name] - p.grad).abs().max()) <= 1e-4 * scale, name
        # 4 AdamW steps of lr 1e-3 move weights by ~4e-3. Adam divides by sqrt(v): an element
        # whose gradient is ~0 moves by an amount (and sign) that follows float summation
        # order, so a handful of elements (1 of 3.1M embedding weights here, by 2.5e-5) may
        # differ by more than 1e-5; every other one agrees to 1e-5.
        got, initial = ranks[0]["params"][name], ranks[0]["initial"][name]
        assert float((got - initial).abs().max()) > 1e-3, name
        diff = (got - p.detach()).abs()
        assert int((diff > 1e-5).sum()) <= max(2, diff.numel() // 100_000), name
        assert float(diff.max()) < 5e-4, name

    # train one step, resume in new trainers, train a second: one metrics file, steps 1 and 2
    assert ranks[0]["resumed_at"] == ranks[1]["resumed_at"] == 1
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["train/episodes"] == 8 for r in rows)  # both ranks' rollouts counted
    assert rows[1]["reward/mean"] == pytest.approx(ranks[1]["history"][0]["reward/mean"])
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint",
        "curves.png",
        "metrics.jsonl",
        "samples.jsonl",
    ]
    state = read_trainer_state(run / "checkpoint")
    assert state["step"] == 2 and state["world_size"] == 2


def _cli(out: Path, steps: int, *extra: str) -> list[str]:
    return [
        "-m",
        "research_env.cli",
        "train",
        "--preset",
        "tiny",
        "--output_dir",
        str(out),
        "--steps",
        str(steps),
        "--questions_per_step",
        "4",
        "--group_size",
        "2",
        "--max_new_tokens",
        "12",
        "--reward_hook",
        "test_ddp:by_length",
        "--checkpoint_every",
        "1",
        "--threads",
        "1",
        *extra,
    ]


def test_searchqa_train_under_accelerate_launch(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(ACCELERATE + _cli(out, 1), _env(tmp_path))
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1] and rows[0]["train/episodes"] == 8
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    state = read_trainer_state(out / "checkpoint")
    assert state["step"] == 1 and state["world_size"] == 2


@pytest.mark.slow
def test_searchqa_train_under_torchrun_then_resume_under_accelerate(tmp_path: Path) -> None:
    env = _env(tmp_path)
    out = tmp_path / "run"
    _run(TORCHRUN + _cli(out, 2), env)
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]  # one writer: no line twice
    assert all(r["train/episodes"] == 8 for r in rows)  # both ranks' rollouts counted
    assert sum(r["grpo/updates"] for r in rows) > 0
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    state = read_trainer_state(out / "checkpoint")
    assert state["step"] == 2 and state["world_size"] == 2
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["questions_per_step"] == 4

    _run(ACCELERATE + _cli(out, 3, "--resume"), env)
    resumed = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [1, 2, 3]
    assert resumed[:2] == rows
    state = read_trainer_state(out / "checkpoint")
    assert state["step"] == 3
    assert not [p for p in out.iterdir() if ".tmp" in p.name or p.name.endswith(".old")]


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
