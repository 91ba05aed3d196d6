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


@pytest.fixture(scope="module")
def boxing() -> TurnStepper:
    turns = TurnSettings(
        max_new_tokens=8,
        max_response_tokens=60,
        turn_prefix="<",
        final_prefix="<answer>\\boxed{",
        answer_continuation="\\boxed{",
    )
    return TurnStepper(load_tokenizer("tiny"), turns, ("</search>", "</answer>"))


def _sampled(stepper: TurnStepper, text: str) -> Generation:
    ids = stepper.tokenizer.encode(text, add_special_tokens=False)
    return Generation(ids, [-0.25 - 0.01 * i for i in range(len(ids))], "stop")


def test_an_answer_the_policy_opens_gets_the_continuation_forced(boxing: TurnStepper) -> None:
    tok = boxing.tokenizer
    traj = Trajectory(prompt_ids=[1], turns=1)
    prefix, budget = boxing.open(traj, max_turns=4)  # turn 2: "<" forced
    gen = _sampled(boxing, "answer> Dublin capital </answer>")
    text = boxing.open_answer(traj, prefix, gen, budget)
    assert text == "<answer>\\boxed{"
    # the ids are those of the last turn's forced "<answer>\\boxed{" (SmolLM2 spells it with
    # one ">\\" token): the sampled "answer" is kept with its log-prob, the rest is forced
    opened = tok.encode("<answer>\\boxed{", add_special_tokens=False)
    assert traj.response_ids == opened
    assert traj.loss_mask == [0, 1] + [0] * (len(opened) - 2)
    assert traj.response_ids[1] == gen.token_ids[0] and traj.old_logprobs[1] == gen.logprobs[0]
    assert traj.turns == 1  # the turn goes on: the next generate call continues it
    rest = _sampled(boxing, "Dublin}</answer>")
    action = boxing.take(traj, text, rest, boxing.budget(traj), eos_suffix="")
    assert action == "<answer>\\boxed{Dublin}</answer>" and traj.turns == 2


def test_where_the_prefix_is_not_the_tags_start_the_text_is_completed(boxing: TurnStepper) -> None:
    tok = boxing.tokenizer
    traj = Trajectory(prompt_ids=[1])
    gen = _sampled(boxing, "<answer> Dublin</answer>")  # nothing forced, a space before
    assert boxing.open_answer(traj, " ", gen, 50) == " <answer>\\boxed{"
    kept = [i for i, m in zip(traj.response_ids, traj.loss_mask, strict=True) if m]
    assert " " + tok.decode(kept) == " <answer>"  # the sampled ids that spell the tag
    assert kept == gen.token_ids[: len(kept)]
    forced = tok.encode("\\boxed{", add_special_tokens=False)
    assert traj.response_ids[len(kept) :] == forced


@pytest.mark.parametrize(
    ("prefix", "sampled"),
    [
        ("<", "search> Ireland capital </search>"),  # a search
        ("<", "answer> \\boxed{Dublin} </answer>"),  # the policy wrote the continuation
        ("<answer>\\boxed{", "Dublin}</answer>"),  # the last turn's prefix already holds it
    ],
)
def test_nothing_is_forced_where_the_turn_needs_no_continuation(
    boxing: TurnStepper, prefix: str, sampled: str
) -> None:
    traj = Trajectory(prompt_ids=[1])
    assert boxing.open_answer(traj, prefix, _sampled(boxing, sampled), 50) is None
    assert traj.response_ids == []


def test_the_continuation_follows_a_forced_answer_tag_and_is_off_by_default(
    boxing: TurnStepper, stepper: TurnStepper
) -> None:
    traj = Trajectory(prompt_ids=[1])
    assert boxing.open_answer(traj, "<answer>", _sampled(boxing, " Dublin</answer>"), 50) == (
        "<answer>\\boxed{"
    )
    assert traj.num_generated == 0  # no sampled id was part of the tag
    off = Trajectory(prompt_ids=[1])
    assert stepper.open_answer(off, "<", _sampled(stepper, "answer> Dublin</answer>"), 50) is None
