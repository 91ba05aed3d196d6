import json

import pytest

from research_env.data.loaders import DataFormatError, load_qa_jsonl


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_flashrag_layout_loads(tmp_path):
    f = _write(
        tmp_path / "dev.jsonl",
        [
            json.dumps({"id": "1", "question": "Who?", "golden_answers": ["A", "B"]}),
            "",
            json.dumps({"id": 2, "question": "What?", "golden_answers": "C", "metadata": {"t": 1}}),
        ],
    )
    examples = load_qa_jsonl(f)
    assert [e.id for e in examples] == ["1", "2"]
    assert examples[1].golden_answers == ["C"] and examples[1].metadata == {"t": 1}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"dev.jsonl:2: invalid JSON"),
        (json.dumps({"id": "x", "question": "Q?"}), r"dev.jsonl:2: missing field 'golden_answers'"),
        (
            json.dumps({"id": "x", "question": "Q?", "golden_answers": []}),
            r"dev.jsonl:2: field 'golden_answers'",
        ),
        (
            json.dumps({"id": "x", "question": " ", "golden_answers": ["a"]}),
            r"dev.jsonl:2: field 'question'",
        ),
        (
            json.dumps({"id": "1", "question": "Q?", "golden_answers": ["a"]}),
            r"dev.jsonl:2: duplicate id '1' \(first seen on line 1\)",
        ),
        (json.dumps([1, 2]), r"dev.jsonl:2: expected a JSON object, got list"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    ok = json.dumps({"id": "1", "question": "Who?", "golden_answers": ["A"]})
    f = _write(tmp_path / "dev.jsonl", [ok, line])
    with pytest.raises(DataFormatError, match=message):
        load_qa_jsonl(f)


def test_env_accepts_a_jsonl_dataset(tmp_path):
    import gymnasium as gym

    import research_env  # noqa: F401

    f = _write(
        tmp_path / "mine.jsonl",
        [
            json.dumps(
                {"id": "p", "question": "What is the capital of Peru?", "golden_answers": ["Lima"]}
            )
        ],
    )
    # A file of your own questions does not silently search the Factbook corpus: name it.
    with pytest.raises(ValueError, match=r"mine\.jsonl' needs retriever=: the default BM25"):
        gym.make("SearchQA-v0", dataset=str(f))
    env = gym.make("SearchQA-v0", dataset=str(f), retriever="bm25")
    obs, info = env.reset(seed=0)
    assert info["question_id"] == "p" and obs["question"] == "What is the capital of Peru?"
    with pytest.raises(ValueError, match=r"mine\.jsonl' is one file, with no 'dev' split"):
        gym.make("SearchQA-v0", dataset=str(f), split="dev", retriever="bm25")
    with pytest.raises(ValueError, match=r"a registered name \(hotpotqa, .*got 'hotpot\.csv'"):
        gym.make("SearchQA-v0", dataset="hotpot.csv")
