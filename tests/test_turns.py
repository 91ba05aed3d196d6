"""The turn stepper that the GRPO rollout and the policy agent share."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from research_agents.generation.base import Generation
from research_agents.grpo.rollout import Trajectory
from research_agents.grpo.turns import TurnStepper
from research_agents.models import load_tokenizer

from research_env.settings import TurnSettings

TURNS = TurnSettings(
    max_new_tokens=8,
    max_response_tokens=40,
    temperature=0.7,
    response_prefix="<search>",
    turn_prefix="<",
    final_prefix="<answer>",
)


@pytest.fixture(scope="module")
def stepper() -> TurnStepper:
    return TurnStepper(load_tokenizer("tiny"), TURNS, ("</search>", "</answer>"))


def test_each_turn_gets_its_prefix(stepper: TurnStepper) -> None:
    assert [stepper.prefix(t, 4) for t in range(4)] == ["<search>", "<", "<", "<answer>"]
    # one turn only: the first turn's prefix wins over the last turn's
    assert stepper.prefix(0, 1) == "<search>"
    assert stepper.prefix(1, 2) == "<answer>"


def test_a_turn_forces_samples_and_observes_with_the_right_masks(stepper: TurnStepper) -> None:
    tok = stepper.tokenizer
    traj = Trajectory(prompt_ids=[1, 2, 3])
    prefix, budget = stepper.open(traj, max_turns=4)
    forced = tok.encode("<search>", add_special_tokens=False)
    assert prefix == "<search>" and budget == 40 - len(forced)
    assert traj.loss_mask == [0] * len(forced) and traj.old_logprobs == [0.0] * len(forced)
    sampled = tok.encode(" Peru capital</search>", add_special_tokens=False)
    gen = Generation(sampled, [-0.5] * len(sampled), "stop")
    action = stepper.take(traj, prefix, gen, budget, eos_suffix="")
    assert action == "<search>" + tok.decode(sampled, skip_special_tokens=True)
    assert traj.turns == 1 and traj.num_generated == len(sampled)
    assert traj.old_logprobs[-len(sampled) :] == [-0.5] * len(sampled)
    stepper.observe(traj, "<result>Lima</result>")
    observed = tok.encode("<result>Lima</result>", add_special_tokens=False)
    assert traj.response_ids[-len(observed) :] == observed and traj.loss_mask[-1] == 0
    stepper.observe(traj, "")  # nothing to append
    assert len(traj.response_ids) == len(forced) + len(sampled) + len(observed)


def test_sampled_ids_are_cut_to_the_budget_and_eos_gets_the_protocols_suffix(
    stepper: TurnStepper,
) -> None:
    tok = stepper.tokenizer
    traj = Trajectory(prompt_ids=[1])
    ids = [*tok.encode(" Lima", add_special_tokens=False), tok.eos_token_id]
    action = stepper.take(traj, "", Generation(ids, [0.0] * len(ids), "eos"), 99, "<|eos|>")
    assert action.endswith("<|eos|>")
    short = Trajectory(prompt_ids=[1])
    stepper.take(short, "", Generation(ids, [0.0] * len(ids), "eos"), 1, "<|eos|>")
    assert short.response_ids == ids[:1]


def test_one_generate_call_serves_the_largest_remaining_budget(stepper: TurnStepper) -> None:
    params = stepper.sampling([3, 5], seed=10, calls=2)
    assert (params.max_new_tokens, params.seed, params.temperature) == (5, 12, 0.7)
    assert stepper.sampling([100], seed=None, calls=0).max_new_tokens == 8
    assert stepper.sampling([100], seed=None, calls=0).seed is None
