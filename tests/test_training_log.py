"""The training log's per-batch episode metrics, from trajectories as the rollout leaves them."""

import pytest
import torch
from research_agents.grpo.rollout import Trajectory
from research_agents.grpo.training_log import episode_columns, episode_metrics


def _traj(group: int, reward: float, **components: float | None) -> Trajectory:
    info = {"reward_components": {"em": reward, **components}, "num_searches": 1}
    return Trajectory(prompt_ids=[1], info=info, reward=reward, group_id=group)


def test_bridge_recall_averages_only_over_questions_that_hide_an_entity():
    trajs = [
        _traj(0, 1.0, bridge_recall=None),  # a single-hop question: nothing hidden
        _traj(0, 0.0, bridge_recall=None),
        _traj(1, 0.0, bridge_recall=1.0, support_recall=1.0),
        _traj(1, 0.0, bridge_recall=0.0, support_recall=0.5),
    ]
    m = episode_metrics(episode_columns(trajs, torch.zeros(4)))
    assert m["env/bridge_recall"] == pytest.approx(0.5)
    assert m["env/support_recall"] == pytest.approx(0.375)  # None counts as 0 there
    assert m["grpo/zero_variance_groups"] == pytest.approx(0.5)
    none = episode_metrics(episode_columns(trajs[:2], torch.zeros(2)))
    assert none["env/bridge_recall"] == 0.0


def test_searches_are_split_by_hops_and_corrected_invalid_actions_counted():
    def played(hops: int | None, searches: int, invalid: int = 0) -> Trajectory:
        info = {
            "reward_components": {"em": 0.0, "hops": hops},
            "num_searches": searches,
            "invalid_actions": invalid,
        }
        return Trajectory(prompt_ids=[1], info=info)

    trajs = [played(1, 1), played(1, 2, invalid=1), played(2, 3), played(None, 4)]
    m = episode_metrics(episode_columns(trajs, torch.zeros(4)))
    assert m["env/searches_one_hop"] == pytest.approx(1.5)
    assert m["env/searches_multi_hop"] == pytest.approx(3.0)  # the hop-less question is in neither
    assert m["env/invalid_actions"] == pytest.approx(0.25)
    assert m["env/invalid"] == 0.0  # that one counts episodes an invalid action ended
