"""The GRPO trainer end to end with a tiny random model: metrics, masking, checkpoints, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from research_agents.grpo.checkpoint import read_step  # noqa: E402
from research_agents.grpo.config import GRPOConfig  # noqa: E402
from research_agents.grpo.presets import get_preset  # noqa: E402
from research_agents.grpo.trainer import GRPOTrainer  # noqa: E402
from research_agents.grpo.training_log import read_metrics  # noqa: E402

from research_env.cli import main as cli_main  # noqa: E402

METRIC_KEYS = {
    "reward/mean",
    "reward/em",
    "reward/f1",
    "loss/pg",
    "grpo/clip_fraction",
    "grpo/kl",
    "grpo/entropy",
    "grpo/zero_variance_groups",
    "env/searches_per_episode",
    "env/format_ok",
    "env/answer_in_retrieval",
    "perf/gen_tokens_per_s",
    "perf/env_time_share",
    "perf/step_s",
}


def _cfg(tmp_path: Path, **kw: object) -> GRPOConfig:
    base = get_preset("tiny").replace(output_dir=str(tmp_path / "run"), steps=2)
    return base.replace(**kw)


def test_config_checks_name_the_field() -> None:
    with pytest.raises(ValueError, match="group_size"):
        GRPOConfig(group_size=1)
    with pytest.raises(ValueError, match="aggregation"):
        GRPOConfig(aggregation="sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown GRPOConfig field"):
        GRPOConfig().replace(learning_rate=1.0)
    cfg = GRPOConfig(curriculum=((0, ("capital",)), (5, ("capital", "bridge"))))
    assert cfg.types_at(0) == ("capital",) and cfg.types_at(7) == ("capital", "bridge")


def test_two_steps_log_every_metric_and_change_the_weights(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, reward="sub_em", checkpoint_every=1, tensorboard=True)
    trainer = GRPOTrainer(cfg)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    history = trainer.train()
    assert len(history) == 2 and trainer.step == 2
    assert set(history[0]) >= METRIC_KEYS
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    assert (tmp_path / "run" / "checkpoint" / "trainer_state.json").is_file()
    updated = sum(history[i]["grpo/updates"] for i in range(2))
    changed = any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())
    # weights move exactly when some group had reward variance
    assert changed == (updated > 0)


def test_update_with_forced_rewards_moves_only_trainable_layers(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, trainable_layers=1)
    trainer = GRPOTrainer(cfg)
    from research_agents.generation.base import SamplingParams
    from research_agents.grpo.advantages import group_advantages
    from research_agents.grpo.rollout import rollout

    trajs, _ = rollout(
        trainer.env,
        trainer.generator,
        trainer.tokenizer,
        [0, 0, 1, 1],
        SamplingParams(max_new_tokens=6, stop=trainer.stop, seed=0),
        group_ids=[0, 0, 1, 1],
        response_prefix="<search>",
        max_response_tokens=160,
    )
    for t, r in zip(trajs, [1.0, 0.0, 0.0, 1.0]):
        t.reward, t.truncated = r, False
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    stats = trainer._update(trajs, group_advantages([t.reward for t in trajs], [0, 0, 1, 1]))
    assert stats["grpo/updates"] == 1
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p)}
    assert moved and all("layers.1." in n or n.endswith("norm.weight") for n in moved)
    assert not any("layers.0." in n or "embed" in n for n in moved)


def test_truncated_trajectories_are_masked(tmp_path: Path) -> None:
    trainer = GRPOTrainer(_cfg(tmp_path))
    from research_agents.grpo.rollout import Trajectory

    t_ok = Trajectory(
        prompt_ids=[1, 2], response_ids=[3, 4], loss_mask=[1, 1], old_logprobs=[-1.0, -1.0]
    )
    t_cut = Trajectory(
        prompt_ids=[1, 2], response_ids=[3], loss_mask=[1], old_logprobs=[-1.0], truncated=True
    )
    t_fail = Trajectory(
        prompt_ids=[1], response_ids=[3], loss_mask=[1], old_logprobs=[-1.0], retrieval_failed=True
    )
    from research_agents.grpo.update import keep

    assert [keep(t, trainer.config) for t in (t_ok, t_cut, t_fail)] == [True, False, False]
    assert keep(t_cut, trainer.config.replace(mask_truncated=False))


def _train_cmd(out: Path, steps: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "research_env.cli",
        "train",
        "--preset",
        "tiny",
        "--steps",
        str(steps),
        "--output_dir",
        str(out),
        "--checkpoint_every",
        "1",
        "--tensorboard",
        "false",
        "--reward_hook",
        "hooks_mod:by_length",
        "--max_new_tokens",
        "12",
        *extra,
    ]


HOOK = """
def by_length(trajectory):
    # varies within groups, so every step updates the weights
    return float(sum(trajectory.response_ids) % 3)
"""


def test_kill_minus_9_then_resume_reproduces_the_next_step(tmp_path: Path) -> None:
    (tmp_path / "hooks_mod.py").write_text(HOOK)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path}
    full = tmp_path / "full"
    subprocess.run(_train_cmd(full, 3), check=True, env=env, capture_output=True, timeout=600)
    reference = read_metrics(full / "metrics.jsonl")
    assert [r["step"] for r in reference] == [1, 2, 3]

    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        _train_cmd(cut, 1000), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            rows = read_metrics(cut / "metrics.jsonl") if (cut / "metrics.jsonl").exists() else []
            step = read_step(cut / "checkpoint")
            if len(rows) >= 2 and step is not None and step >= 2:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    step_at_kill = read_step(cut / "checkpoint")
    assert step_at_kill is not None
    assert step_at_kill >= 2
    subprocess.run(
        _train_cmd(cut, step_at_kill + 1, "--resume"),
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    resumed = read_metrics(cut / "metrics.jsonl")
    assert [r["step"] for r in resumed] == list(range(1, step_at_kill + 2))
    if step_at_kill + 1 <= 3:
        ref = reference[step_at_kill]
        got = resumed[step_at_kill]
        assert ref["grpo/updates"] > 0
        for key in (
            "reward/mean",
            "loss/pg",
            "grpo/entropy",
            "env/generated_tokens",
            "grpo/grad_norm",
        ):
            assert got[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-9), key


def test_cli_print_config_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli_main(
            [
                "train",
                "--preset",
                "tiny",
                "--print-config",
                "--lr",
                "3e-4",
                "--question_types",
                "capital,bridge",
                "--trainable_layers",
                "none",
            ]
        )
        == 0
    )
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["lr"] == 3e-4 and cfg["question_types"] == ["capital", "bridge"]
    assert cfg["trainable_layers"] is None
    assert cli_main(["train", "--preset", "tiny", "--learning_rate", "1"]) == 2
    assert "--learning_rate: not a GRPOConfig field" in capsys.readouterr().err


def test_research_preset_follows_the_papers_code() -> None:
    from research_agents.grpo.presets import get_preset

    cfg = get_preset("research")
    assert cfg.protocol == "research"
    assert cfg.mini_batch_size == cfg.rollouts_per_step and cfg.epochs == 1  # one update
    assert (cfg.entropy_coef, cfg.weight_decay, cfg.beta, cfg.kl_clamp) == (0.001, 0.01, 0.001, 10)
    assert cfg.mask_truncated is False and cfg.max_prompt_tokens == 512
    assert (cfg.eps_low, cfg.eps_high, cfg.lr, cfg.group_size) == (0.2, 0.2, 1e-6, 5)
    with pytest.raises(ValueError, match="protocol: expected one of ours, research, searchr1"):
        cfg.replace(protocol="reserach")


def test_research_protocol_trains_with_entropy_bonus_and_clamped_kl(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        protocol="research",
        response_prefix="",
        final_prefix="",
        max_turns=3,
        entropy_coef=0.001,
        beta=0.001,
        kl_clamp=10.0,
        mask_truncated=False,
        max_prompt_tokens=4096,
        steps=1,
    )
    trainer = GRPOTrainer(cfg)
    assert trainer.stop == ("</search>",)
    assert trainer.env.envs[0].protocol.name == "research"
    before = [p.detach().clone() for p in trainer.model.parameters() if p.requires_grad]
    (metrics,) = trainer.train()
    assert metrics["grpo/entropy"] > 0
    after = [p for p in trainer.model.parameters() if p.requires_grad]
    # rewards are all 0 (random model), so only the entropy bonus and KL move the weights
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


def test_template_file_reads_a_checkout_constant(tmp_path: Path) -> None:
    from research_agents.grpo.trainer import _template_of

    src = tmp_path / "template.py"
    src.write_text('sys_prompt = """Think, search, answer in \\\\boxed{}."""\n', encoding="utf-8")
    cfg = get_preset("tiny").replace(template_file=f"{src}:sys_prompt", protocol="research")
    template = _template_of(cfg)
    assert template.system_prompt == "Think, search, answer in \\boxed{}."
    assert _template_of(get_preset("tiny")) == "research_compact"


def test_searchr1_preset_follows_the_papers_script() -> None:
    cfg = get_preset("searchr1")
    assert (cfg.protocol, cfg.top_k, cfg.max_turns, cfg.last_turn) == (
        "searchr1",
        3,
        3,
        "no_search",
    )
    assert cfg.rollouts_per_step == 2 * cfg.mini_batch_size  # two updates per batch
    assert (cfg.beta, cfg.kl_clamp, cfg.entropy_coef, cfg.lr) == (0.001, 10.0, 0.001, 1e-6)


def _odd_questions_vary(trainer: GRPOTrainer) -> None:
    """A reward hook: every rollout of an even-indexed question scores 1 (a flat group); an
    odd-indexed question's rollouts alternate 0, 1 (a group that trains)."""
    flip = iter(range(10**6))

    def hook(t: object) -> float:
        if t.question_index % 2 == 0:  # type: ignore[attr-defined]
            return 1.0
        return float(next(flip) % 2)

    trainer.reward_hook = hook


def test_dynamic_sampling_replaces_flat_groups_with_groups_that_train(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, questions_per_step=6, dynamic_sampling=12)
    trainer = GRPOTrainer(cfg)
    _odd_questions_vary(trainer)
    first = trainer.sample_questions(0)
    assert any(q % 2 == 0 for q in first), "the fixed draw should hold a flat group"
    trajs, adv, stats = trainer.collect()
    assert len(trajs) == 6 * cfg.group_size
    assert sorted({t.group_id for t in trajs}) == list(range(6))
    assert all(t.question_index % 2 == 1 for t in trajs)
    assert stats.rounds > 1
    assert stats.replaced_groups == sum(q % 2 == 0 for q in first)
    assert all(adv[i] != 0 for i in range(len(trajs)))
    # the odd questions of the step's own draw are played as drawn, in their groups
    for g, q in enumerate(first):
        if q % 2 == 1:
            assert [t.question_index for t in trajs if t.group_id == g] == [q] * cfg.group_size
    # a pure function of seed and step: a second trainer draws the same replacements
    again = GRPOTrainer(cfg)
    _odd_questions_vary(again)
    assert [t.question_index for t in again.collect()[0]] == [t.question_index for t in trajs]


def test_dynamic_sampling_off_plays_the_steps_questions_once(tmp_path: Path) -> None:
    trainer = GRPOTrainer(_cfg(tmp_path, questions_per_step=6))
    _odd_questions_vary(trainer)
    trajs, adv, stats = trainer.collect()
    assert stats.rounds == 1 and stats.replaced_groups == 0
    played = [trajs[i].question_index for i in range(0, len(trajs), trainer.config.group_size)]
    assert played == trainer.sample_questions(0)
    flat = [float(adv[i]) for i, t in enumerate(trajs) if t.question_index % 2 == 0]
    assert flat and all(a == 0.0 for a in flat)


def test_dynamic_sampling_logs_its_rounds(tmp_path: Path) -> None:
    trainer = GRPOTrainer(_cfg(tmp_path, questions_per_step=6, dynamic_sampling=12, steps=1))
    _odd_questions_vary(trainer)
    (m,) = trainer.train(progress=False)
    assert m["train/dynamic_rounds"] > 1 and m["train/dynamic_replaced"] >= 1
    assert m["grpo/zero_variance_groups"] == 0.0
