"""Protocol fingerprints: change with any component of the protocol, and only then."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from research_agents.eval.fingerprint import (
    dataset_fingerprint,
    git_commit,
    retriever_identity,
    scoring_fingerprint,
    stable_hash,
    template_fingerprint,
)
from research_agents.eval.harness import run_suite, suite_protocol
from research_agents.eval.leaderboard import protocol_differences
from research_agents.eval.suites import Entry, Suite, Task, get_suite

from research_env.data.types import Passage, QAExample
from research_env.retrieval.bm25 import BM25Config, BM25Retriever
from research_env.settings import TurnSettings
from research_env.templates import get_template


@pytest.fixture(scope="module")
def base() -> Suite:
    return get_suite("factbook", size=6)


@pytest.fixture(scope="module")
def base_protocol(base: Suite) -> tuple[dict, str]:  # type: ignore[type-arg]
    return suite_protocol(base)


def _variants(base: Suite) -> dict[str, Suite]:
    env, gen, task = base.env, base.generation, base.tasks[0]
    r = dataclasses.replace
    return {
        "top_k": r(base, env=r(env, top_k=env.top_k + 1)),
        "max_turns": r(base, env=r(env, max_turns=env.max_turns + 1)),
        "last_turn": r(base, env=r(env, last_turn="normal")),
        "invalid_action": r(base, env=r(env, invalid_action="correct")),
        "template": r(base, env=r(env, template="research_instruct")),
        "reward": r(base, env=r(env, reward="f1")),
        "max_new_tokens": r(base, generation=r(gen, max_new_tokens=gen.max_new_tokens + 1)),
        "temperature": r(base, generation=r(gen, temperature=0.7)),
        "response_prefix": r(base, generation=r(gen, response_prefix="")),
        "seed": r(base, seed=base.seed + 1),
        "size": r(base, tasks=(r(task, size=task.size + 1),)),
        "split": r(base, tasks=(r(task, split="dev"),)),
    }


def test_same_suite_same_hash(base: Suite, base_protocol: tuple[dict, str]) -> None:  # type: ignore[type-arg]
    again = get_suite("factbook", size=6)
    protocol, digest = suite_protocol(again)
    assert digest == base_protocol[1]
    assert protocol == base_protocol[0]
    # Entries and the name/description are not part of the protocol.
    renamed = dataclasses.replace(again, name="other", description="x", entries=())
    assert suite_protocol(renamed)[1] == digest


def test_every_component_changes_the_hash(
    base: Suite,
    base_protocol: tuple[dict, str],  # type: ignore[type-arg]
) -> None:
    digests = {base_protocol[1]}
    for name, suite in _variants(base).items():
        protocol, digest = suite_protocol(suite)
        assert digest != base_protocol[1], f"changing {name} kept the protocol hash"
        digests.add(digest)
        assert protocol_differences(base_protocol[0], protocol), name
    assert len(digests) == len(_variants(base)) + 1


def test_differences_name_the_field(base: Suite, base_protocol: tuple[dict, str]) -> None:  # type: ignore[type-arg]
    protocol, _ = suite_protocol(_variants(base)["top_k"])
    assert protocol_differences(base_protocol[0], protocol) == ["tasks.factbook.env.top_k"]
    protocol, _ = suite_protocol(_variants(base)["size"])
    diff = protocol_differences(base_protocol[0], protocol)
    assert "tasks.factbook.dataset.content_hash" in diff and "tasks.factbook.dataset.n" in diff


def test_agents_do_not_change_the_protocol(base: Suite) -> None:
    a = run_suite(base, Entry("scripted"), batch_size=3, progress=False)
    b = run_suite(base, Entry("naive-reader"), batch_size=2, progress=False)
    assert a.protocol_hash == b.protocol_hash == suite_protocol(base)[1]
    assert a.provenance["agent_kind"] != b.provenance["agent_kind"]
    assert a.provenance["batch_size"] != b.provenance["batch_size"]


# ------------------------------------------------------------------------------ parts
def _docs(texts: Sequence[str]) -> list[Passage]:
    return [Passage(f"d{i}", f"T{i}", t) for i, t in enumerate(texts)]


def test_retriever_identity_follows_corpus_and_settings() -> None:
    corpus = _docs(["capital Lima", "capital Santiago", "river Amazon"])
    one = retriever_identity(BM25Retriever(corpus, persist=False))
    assert one["source"] == "index" and one["kind"] == "BM25Retriever"
    assert retriever_identity(BM25Retriever(list(corpus), persist=False)) == one
    other_text = _docs(["capital Lima", "capital Santiago", "river Nile"])
    assert retriever_identity(BM25Retriever(other_text, persist=False)) != one
    k1 = BM25Retriever(corpus, BM25Config(k1=0.9), persist=False)
    assert retriever_identity(k1)["fingerprint"] != one["fingerprint"]
    # How fast it runs is not what it returns.
    threads = BM25Retriever(corpus, BM25Config(n_threads=2, accelerator="numpy"), persist=False)
    assert retriever_identity(threads) == one


class ListRetriever:
    """A retriever without a fingerprint: identified by what it returns for probe queries."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    def search(self, query: str, k: int) -> list[Passage]:
        return self.passages[:k]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        return [self.search(q, k) for q in queries]


def test_retriever_without_fingerprint_is_probed() -> None:
    a = retriever_identity(ListRetriever(_docs(["x", "y"])))
    assert a["source"] == "probe"
    assert retriever_identity(ListRetriever(_docs(["x", "y"]))) == a
    assert retriever_identity(ListRetriever(_docs(["x", "z"]))) != a


def test_dataset_scoring_and_template_fingerprints() -> None:
    q = [QAExample("1", "Capital of Peru?", ["Lima"], {"type": "capital"})]
    assert dataset_fingerprint(q) == dataset_fingerprint(list(q))
    assert dataset_fingerprint(q) != dataset_fingerprint(
        [QAExample("1", "Capital of Peru?", ["Lima", "Lima, Peru"], {"type": "capital"})]
    )
    em, f1 = scoring_fingerprint("em"), scoring_fingerprint("f1")
    assert em == scoring_fingerprint("em")
    assert em["reward_hash"] != f1["reward_hash"]
    assert em["normaliser_hash"] == f1["normaliser_hash"]
    research = template_fingerprint(get_template("research_instruct"))
    compact = template_fingerprint(get_template("research_compact"))
    assert research["hash"] != compact["hash"]
    assert research == template_fingerprint(get_template("research_instruct"))


def test_a_later_template_field_at_its_off_value_keeps_the_old_hash() -> None:
    """Adding ``titles_line`` must not change the hash of templates that leave it off."""
    hops = get_template("research_hops")
    before = {k: v for k, v in dataclasses.asdict(hops).items() if k != "titles_line"}
    assert template_fingerprint(hops)["hash"] == stable_hash(before)
    titled = dataclasses.replace(hops, titles_line="Results about: ")
    assert template_fingerprint(titled)["hash"] != template_fingerprint(hops)["hash"]


def test_stable_hash_ignores_key_order_and_container_type() -> None:
    assert stable_hash({"a": [1, 2], "b": {"c": None}}) == stable_hash(
        {"b": {"c": None}, "a": (1, 2)}
    )
    assert stable_hash(TurnSettings()) == stable_hash(dataclasses.asdict(TurnSettings()))
    assert stable_hash({"a": 1.0}) != stable_hash({"a": 1.5})


def test_git_commit_reads_head(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    git = root / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    assert git_commit(root) is None
    (git / "packed-refs").write_text("# pack-refs\n" + "a" * 40 + " refs/heads/main\n")
    assert git_commit(root / "sub") == "a" * 40
    (git / "refs" / "heads" / "main").write_text("b" * 40 + "\n")
    assert git_commit(root) == "b" * 40
    (git / "HEAD").write_text("c" * 40 + "\n")  # detached
    assert git_commit(root) == "c" * 40


def test_task_of_a_file_is_fingerprinted_by_content(tmp_path: pytest.TempPathFactory) -> None:
    import json
    from pathlib import Path

    path = Path(str(tmp_path)) / "qa.jsonl"
    rows = [{"id": "a", "question": "Capital of Peru?", "golden_answers": ["Lima"]}]
    path.write_text(json.dumps(rows[0]) + "\n")
    suite = Suite("file", "file", (Task("qa", str(path), "dev"),))
    first = suite_protocol(suite)[1]
    moved = Path(str(tmp_path)) / "copy.jsonl"
    moved.write_text(path.read_text())
    assert suite_protocol(Suite("file", "file", (Task("qa", str(moved), "dev"),)))[1] == first
    rows[0]["golden_answers"] = ["Lima", "Ciudad de los Reyes"]
    path.write_text(json.dumps(rows[0]) + "\n")
    assert suite_protocol(suite)[1] != first
