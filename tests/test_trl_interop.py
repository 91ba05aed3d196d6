"""SearchQA-v0 drives TRL's GRPOTrainer: real trainer, real env and BM25 index, tiny model.

A random model never closes a ``<search>`` tag, so the tiny model is first warm-started with a
few supervised steps on scripted demonstrations (as one would SFT before RL); then two real
``GRPOTrainer`` steps run through :class:`~research_agents.trl_interop.SearchQARollout`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
trl = pytest.importorskip("trl")

from research_agents.models import load_model, load_tokenizer  # noqa: E402
from research_agents.trl_interop import (  # noqa: E402
    SearchQARollout,
    SearchQARolloutConfig,
    searchqa_reward,
)

from research_env.env import SearchQAEnv  # noqa: E402
from research_env.templates import PromptTemplate  # noqa: E402

# A short prompt and 12-word passages keep every sequence ~100 tokens: CPU-cheap.
SHORT = PromptTemplate(
    name="short", user_template="Question: {question}\nAnswer:", max_doc_words=12
)

# The demonstration the tiny model is warm-started on: after the forced "<think>", close the
# thought and search; after the results, answer.
PREFIX = "<think>"
TURN_1 = " find it </think><search> capital of Peru </search>"
TURN_2 = "<answer>\\boxed{Lima}</answer>"


def _config(**kw: Any) -> SearchQARolloutConfig:
    base: dict[str, Any] = {
        "split": "train",
        "top_k": 2,
        "max_turns": 2,
        "reward": "research",  # 0.1 for a well-formed wrong answer, 0 for a broken episode
        "template": SHORT,
        "max_new_tokens": 24,
        "response_prefix": PREFIX,
    }
    return SearchQARolloutConfig(**{**base, **kw})


def _capital_questions(env: SearchQAEnv, n: int) -> list[int]:
    return [i for i, ex in enumerate(env.examples) if ex.metadata.get("type") == "capital"][:n]


def _warm_start(model: Any, tok: Any, rollout: SearchQARollout, indices: list[int]) -> None:
    """Supervised steps on scripted demonstrations, so the random model emits the action format.

    Each demonstration is the real episode: prompt, the forced prefix, TURN_1, the env's own
    ``<result>`` block for that search, TURN_2; the loss is on TURN_1 and TURN_2 only.
    """
    env = SearchQAEnv(tokenizer=tok, **rollout.config.env_kwargs())
    rows: list[tuple[list[int], list[int]]] = []
    for index in indices:
        obs, _ = env.reset(options={"index": index})
        obs2, *_ = env.step(PREFIX + TURN_1)
        parts = [
            (obs["prompt"], 0),
            (PREFIX, 0),
            (TURN_1, 1),
            (obs2["observation"], 0),
            (TURN_2, 1),
        ]
        ids: list[int] = []
        target: list[int] = []
        for text, train in parts:
            piece = tok.encode(text, add_special_tokens=False)
            ids += piece
            target += [train] * len(piece)
        rows.append((ids, target))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.zeros((len(rows), width), dtype=torch.long)
    weight = torch.zeros((len(rows), width))
    for r, (ids, target) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        weight[r, : len(ids)] = torch.tensor(target, dtype=torch.float)
    # position t predicts token t+1; only target tokens carry loss
    labels, weight = input_ids[:, 1:], weight[:, 1:]
    keep = weight > 0
    optimizer = torch.optim.Adam(model.parameters(), lr=6e-3)
    model.train()
    for _ in range(150):  # ~70 steps reach the target loss
        hidden = model.model(input_ids=input_ids).last_hidden_state[:, :-1]
        logits = model.lm_head(hidden[keep])
        loss = torch.nn.functional.cross_entropy(logits, labels[keep])
        if loss.item() < 0.03:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1, "the warm start did not learn the demonstrations"


@pytest.fixture
def one_thread():  # type: ignore[no-untyped-def]
    """A 64-wide model gains nothing from threads, and on a busy machine they cost 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_grpo_trainer_optimises_the_env_reward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    tok = load_tokenizer("tiny")
    model = load_model("tiny")
    rollout = SearchQARollout(tok, _config())
    questions = _capital_questions(rollout.env, 2)
    _warm_start(model, tok, rollout, questions)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        report_to="none",
        max_steps=2,
        per_device_train_batch_size=4,  # one question x 4 episodes per step
        num_generations=4,
        max_completion_length=160,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        bf16=False,
        use_cpu=True,
        seed=0,
    )
    trainer = trl.GRPOTrainer(
        model=model,
        processing_class=tok,
        args=args,
        train_dataset=rollout.dataset(questions),
        reward_funcs=[searchqa_reward],
        rollout_func=rollout,
    )
    trainer.train()

    episodes = list(rollout.history)
    assert len(episodes) == 8 and [e.step for e in episodes] == [0] * 4 + [1] * 4
    # The env was stepped: episodes searched, and their results are in the completions (mask 0)
    searched = [e for e in episodes if e.searches]
    assert searched
    passages = 0
    for e in searched:
        observed = tok.decode([i for i, m in zip(e.completion_ids, e.env_mask) if m == 0])
        assert observed.count("<result>") == e.searches
        passages += "Doc 1 (Title:" in observed
        sampled = tok.decode([i for i, m in zip(e.completion_ids, e.env_mask) if m == 1])
        assert "<result>" not in sampled
    assert passages  # retrieved Factbook passages, not just "[no results]"

    # What TRL logged per step is the mean of the env's rewards of that step's episodes
    logged = [h for h in trainer.state.log_history if "rewards/searchqa_reward/mean" in h]
    assert len(logged) == 2
    for step, h in enumerate(logged):
        rewards = [e.reward for e in episodes if e.step == step]
        assert h["rewards/searchqa_reward/mean"] == pytest.approx(sum(rewards) / len(rewards))
        searches = [e.searches for e in episodes if e.step == step]
        assert h["env/searches_per_episode"] == pytest.approx(sum(searches) / len(searches))

    # The last batch, completion by completion: TRL's rewards, completions and advantages
    last = episodes[4:]
    trl_rewards = list(trainer._logs["rewards"]["searchqa_reward"])  # float32 on TRL's side
    assert trl_rewards == pytest.approx([e.reward for e in last], abs=1e-6)
    assert list(trainer._logs["completion"]) == [
        tok.decode(e.completion_ids, skip_special_tokens=True) for e in last
    ]
    r = torch.tensor([e.reward for e in last]).view(-1, 4)
    advantages = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).flatten()
    assert list(trainer._logs["advantages"]) == pytest.approx(advantages.tolist(), abs=1e-5)

    # A fresh env, sent the same actions, gives the same rewards and the same result blocks
    replay_env = SearchQAEnv(tokenizer=tok, **rollout.config.env_kwargs())
    for e in episodes:
        replay_env.reset(options={"index": e.index})
        completion = tok.decode(e.completion_ids)
        for action in e.actions:
            obs, reward, _, _, info = replay_env.step(action)
            assert obs["observation"] in completion
        assert (reward, info["num_searches"]) == (e.reward, e.searches)

    rewards_vary = any(len({e.reward for e in episodes[g : g + 4]}) > 1 for g in range(0, 8, 4))
    moved = any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    # some group had reward variance, so TRL's update moved the weights
    assert rewards_vary and moved


def test_prompt_lookup_and_clear_errors() -> None:
    tok = load_tokenizer("tiny")
    rollout = SearchQARollout(tok, _config())
    data = rollout.dataset(question_types=["capital"])
    first, second = data["question_index"][:2]
    assert {rollout.env.examples[i].metadata["type"] for i in data["question_index"]} == {"capital"}
    assert rollout.question_index(data["prompt"][0]) == first
    question = rollout.env.examples[first].question
    assert rollout.question_index(question) == first
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
    assert rollout.question_index(chat) == first
    # a prompt rendered by the env itself, not by dataset(), is found too
    env = SearchQAEnv(tokenizer=tok, **rollout.config.env_kwargs())
    prompt = env.reset(options={"index": second})[0]["prompt"]
    assert SearchQARollout(tok, _config()).question_index(prompt) == second
    with pytest.raises(ValueError, match=r"build train_dataset with SearchQARollout\.dataset"):
        rollout.question_index("What is love?")
    with pytest.raises(ValueError, match="no question left"):
        rollout.dataset(question_types=["no-such-type"])


def test_reward_function_contract() -> None:
    logged: dict[str, float] = {}
    rewards = searchqa_reward(
        ["a", "b"], env_reward=[1.0, 0.0], env_searches=[1, 2], log_metric=logged.__setitem__
    )
    assert rewards == [1.0, 0.0] and logged == {"env/searches_per_episode": 1.5}
    with pytest.raises(ValueError, match="needs the env_reward column"):
        searchqa_reward(["a"])
    with pytest.raises(ValueError, match="got 1 env rewards for 2 completions"):
        searchqa_reward(["a", "b"], env_reward=[1.0])
    with pytest.raises(ValueError, match="max_new_tokens: expected >= 1, got 0"):
        SearchQARolloutConfig(max_new_tokens=0)
