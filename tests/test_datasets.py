"""Dataset loaders on hand-made fixtures written in each dataset's real file layout.

tests/fixtures/flashrag/{name}/{split}.jsonl are FlashRAG records (the Hub's columnar metadata
for HotpotQA and 2Wiki); tests/fixtures/flashrag/original/ holds the same HotpotQA, 2Wiki and
MuSiQue questions in the original releases' layouts, and PopQA's TSV. One file past ~400
lines: the same checks run over every dataset's layouts, so the layouts stay side by side.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from research_env.data.datasets import (
    DATASETS,
    DatasetUnavailableError,
    get_spec,
    load_dataset,
)
from research_env.data.loaders import DataFormatError
from research_env.env import SearchQAEnv
from research_env.retrieval.closed import context_passages

FIXTURES = Path(__file__).parent / "fixtures" / "flashrag"
ORIGINAL = FIXTURES / "original"

SEARCH = "<think>look</think><search>{}</search>"


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------- the registry


def test_registry_covers_the_benchmarks_with_flashrag_splits():
    expected = {
        "hotpotqa": ("train", "dev"),
        "2wikimultihopqa": ("train", "dev"),
        "musique": ("train", "dev"),
        "bamboogle": ("test",),
        "nq": ("train", "dev", "test"),
        "triviaqa": ("train", "dev", "test"),
        "popqa": ("test",),
    }
    assert {name: spec.splits for name, spec in DATASETS.items()} == expected
    assert DATASETS["bamboogle"].default_split == "test"
    assert DATASETS["hotpotqa"].default_split == "dev"


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("2WikiMultiHopQA", "2wikimultihopqa"),
        ("2wiki", "2wikimultihopqa"),
        ("HotpotQA", "hotpotqa"),
        ("hotpot_qa", "hotpotqa"),
        ("MuSiQue", "musique"),
        ("natural-questions", "nq"),
        ("Trivia QA", "triviaqa"),
        ("PopQA", "popqa"),
    ],
)
def test_names_and_aliases_resolve(alias, name):
    assert get_spec(alias).name == name


def test_unknown_name_and_split_are_rejected():
    with pytest.raises(ValueError, match=r"unknown dataset 'hotpot-qa-v2'; expected one of"):
        load_dataset("hotpot-qa-v2", FIXTURES)
    with pytest.raises(ValueError, match=r"PopQA has split\(s\) \('test',\).*got 'dev'"):
        load_dataset("popqa", FIXTURES, "dev")
    with pytest.raises(ValueError, match=r"expected limit >= 1 or None, got 0"):
        load_dataset("nq", FIXTURES, "test", limit=0)


# ------------------------------------------------------------------- FlashRAG layout, per set


def test_hotpotqa_flashrag_layout():
    examples = load_dataset("hotpotqa", FIXTURES, "dev")
    assert [e.metadata["type"] for e in examples] == [
        "bridge",
        "comparison",
        "bridge",
        "comparison",
    ]
    assert [e.metadata["level"] for e in examples] == ["medium", "easy", "hard", "medium"]
    first = examples[0]
    assert first.id == "5a7a0f1b554299042af8f7a1"
    assert first.golden_answers == ["Lake Tana"]
    # The Hub's columnar metadata becomes HotpotQA's own [[title, ...], ...] layout.
    assert first.metadata["supporting_facts"] == [["Blue Nile", 0], ["Blue Nile", 1]]
    assert first.metadata["context"][0] == [
        "Blue Nile",
        [
            "The Blue Nile is a river originating at Lake Tana in Ethiopia.",
            " It meets the White Nile at Khartoum.",
        ],
    ]
    assert len(first.metadata["context"]) == 3


def test_2wiki_flashrag_layout():
    examples = load_dataset("2wiki", FIXTURES, "dev")
    assert [e.metadata["type"] for e in examples] == [
        "compositional",
        "comparison",
        "inference",
        "bridge_comparison",
    ]
    first = examples[0]
    assert first.golden_answers == ["Ines Vieira"]
    assert first.metadata["evidences"] == [
        ["Sunrise Over Lisbon", "director", "Marta Vieira"],
        ["Marta Vieira", "mother", "Ines Vieira"],
    ]
    # 2Wiki's Hub layout names the sentences "content"; they land in the common layout.
    assert first.metadata["context"][1][0] == "Marta Vieira"
    assert first.metadata["context"][1][1][1] == " Her mother was the painter Ines Vieira."
    assert first.metadata["supporting_facts"] == [["Sunrise Over Lisbon", 0], ["Marta Vieira", 1]]


def test_musique_flashrag_layout_types_are_hop_counts():
    examples = load_dataset("musique", FIXTURES, "dev")
    assert [e.metadata["type"] for e in examples] == ["2hop", "3hop", "4hop"]
    assert [e.metadata["hops"] for e in examples] == [2, 3, 4]
    assert examples[1].golden_answers == ["Edward Buncombe", "Colonel Edward Buncombe"]
    assert all(e.metadata["answerable"] is True for e in examples)
    steps = examples[2].metadata["question_decomposition"]
    assert [s["answer"] for s in steps] == ["Ilse Hartmann", "Graz", "Styria", "Mur"]
    assert "context" not in examples[0].metadata  # FlashRAG's MuSiQue carries no paragraph list


@pytest.mark.parametrize(
    ("name", "n", "answers"),
    [
        ("bamboogle", 3, ["0", "zero"]),
        ("nq", 4, ["Nile", "the Nile"]),
        ("triviaqa", 3, ["Au"]),
        ("popqa", 3, ["Porto", "Oporto"]),
    ],
)
def test_single_hop_sets_have_no_types(name, n, answers):
    examples = load_dataset(name, FIXTURES, "test")
    assert len(examples) == n
    assert [e.id for e in examples] == [f"test_{i}" for i in range(n)]
    assert answers in [e.golden_answers for e in examples]
    assert all("type" not in e.metadata for e in examples)


def test_default_split_is_dev_or_the_only_split():
    assert len(load_dataset("bamboogle", FIXTURES)) == 3  # test-only: default "test"
    assert len(load_dataset("hotpotqa", FIXTURES)) == 4  # default "dev"


def test_limit_reads_only_the_first_examples():
    two = load_dataset("hotpotqa", FIXTURES, "dev", limit=2)
    assert [e.id for e in two] == [e.id for e in load_dataset("hotpotqa", FIXTURES, "dev")[:2]]
    assert len(load_dataset("hotpotqa", FIXTURES, "dev", limit=100)) == 4
    assert len(load_dataset("hotpotqa", ORIGINAL, "dev", limit=1)) == 1  # JSON list too


def test_limit_stops_before_a_later_bad_line(tmp_path):
    rows = _rows(FIXTURES / "nq" / "test.jsonl")[:2]
    f = tmp_path / "nq" / "test.jsonl"
    _write_jsonl(f, rows)
    f.write_text(f.read_text() + "{broken\n")
    assert len(load_dataset("nq", tmp_path, "test", limit=2)) == 2
    with pytest.raises(DataFormatError, match=r"test.jsonl:3: invalid JSON"):
        load_dataset("nq", tmp_path, "test")


# ---------------------------------------------------------------------- original layouts


@pytest.mark.parametrize("name", ["hotpotqa", "2wikimultihopqa"])
def test_original_layout_gives_the_same_examples_as_flashrag(name):
    original = load_dataset(name, ORIGINAL, "dev")
    flashrag = load_dataset(name, FIXTURES, "dev")
    assert original == flashrag


def test_musique_original_layout():
    original = load_dataset("musique", ORIGINAL, "dev")
    flashrag = load_dataset("musique", FIXTURES, "dev")
    for o, f in zip(original, flashrag, strict=True):
        assert (o.id, o.question, o.golden_answers) == (f.id, f.question, f.golden_answers)
        assert (o.metadata["type"], o.metadata["hops"]) == (f.metadata["type"], f.metadata["hops"])
    # answer + answer_aliases, in order
    assert original[2].golden_answers == ["Mur", "Mur River", "Mura"]
    # The paragraphs become the question's closed corpus.
    context = original[0].metadata["context"]
    assert [p["title"] for p in context] == ["Harbor Gazette", "Coastline Media", "Inland Post"]
    assert [p["is_supporting"] for p in context] == [True, True, False]


def test_popqa_original_tsv():
    examples = load_dataset("popqa", ORIGINAL, "test")
    assert [e.id for e in examples] == ["4222362", "1530713", "2901844"]
    assert [e.metadata["type"] for e in examples] == ["occupation", "country", "place of birth"]
    assert examples[1].golden_answers == ["Austria", "Republic of Austria", "AT"]
    assert examples[1].metadata["s_pop"] == 48517
    assert examples[1].metadata["o_pop"] == 301266
    assert examples[0].metadata["subj"] == "Ilse Hartmann"


def test_root_may_be_a_single_file():
    f = ORIGINAL / "hotpot_dev_distractor_v1.json"
    assert len(load_dataset("hotpotqa", f, "dev")) == 4


def test_flashrag_file_is_preferred_over_the_original(tmp_path):
    shutil.copy(ORIGINAL / "hotpot_dev_distractor_v1.json", tmp_path)
    _write_jsonl(
        tmp_path / "hotpotqa" / "dev.jsonl", _rows(FIXTURES / "hotpotqa" / "dev.jsonl")[:1]
    )
    assert len(load_dataset("hotpotqa", tmp_path, "dev")) == 1
    (tmp_path / "hotpotqa" / "dev.jsonl").unlink()
    assert len(load_dataset("hotpotqa", tmp_path, "dev")) == 4


def test_missing_files_list_every_path_tried(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("musique", tmp_path, "train")
    message = str(info.value)
    assert str(tmp_path / "musique" / "train.jsonl") in message
    assert str(tmp_path / "musique_ans_v1.0_train.jsonl") in message
    assert "huggingface.co/datasets/RUC-NLPIR/FlashRAG_datasets/tree/main/musique" in message


# ------------------------------------------------------------- the examples work in the env


@pytest.mark.parametrize(
    ("name", "root"),
    [("hotpotqa", FIXTURES), ("2wikimultihopqa", FIXTURES), ("musique", ORIGINAL)],
)
def test_contexts_are_readable_as_closed_corpora(name, root):
    for example in load_dataset(name, root, "dev"):
        passages = context_passages(example)
        assert len(passages) == len(example.metadata["context"]) >= 2


def test_closed_corpus_env_on_loaded_hotpotqa():
    examples = load_dataset("hotpotqa", FIXTURES, "dev")
    env = SearchQAEnv(dataset=examples, retriever="closed", top_k=1)
    obs, info = env.reset(seed=0, options={"index": 2})
    assert info["question_type"] == "bridge"
    obs, reward, terminated, _, info = env.step(SEARCH.format("year tower completed"))
    assert (reward, terminated) == (0.0, False)
    assert info["retrieved_titles"] == ["Eiffel Tower"]
    assert "1889" in obs["observation"]


# ------------------------------------------------------------------------ malformed input


def _hotpot_rows():
    return _rows(FIXTURES / "hotpotqa" / "dev.jsonl")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("golden_answers"), r"dev.jsonl:2: missing field 'golden_answers'"),
        (
            lambda r: r["metadata"].update(type="compositional"),
            r"dev.jsonl:2: field 'metadata.type' must be one of \('bridge', 'comparison'\) "
            r"for hotpotqa, got 'compositional' \(is this file from another dataset\?\)",
        ),
        (
            lambda r: r["metadata"].update(level="trivial"),
            r"dev.jsonl:2: field 'metadata.level' must be one of",
        ),
        (
            lambda r: r["metadata"]["context"]["sentences"].pop(),
            r"dev.jsonl:2: field 'metadata.context' must be columns of equal length, "
            r"got \{'title': 2, 'sentences': 1\}",
        ),
        (
            lambda r: r["metadata"]["supporting_facts"].update(sent_id=[0, "one"]),
            r"dev.jsonl:2: field 'metadata.supporting_facts\[1\]' must be "
            r"\[title \(str\), sentence index \(int\)\]",
        ),
        (
            lambda r: r["metadata"]["context"].update(sentences=[["ok"], "not a list"]),
            r"dev.jsonl:2: field 'metadata.context\[1\] sentences' must be a list of strings",
        ),
    ],
)
def test_bad_flashrag_records_name_file_line_and_field(tmp_path, mutate, message):
    rows = _hotpot_rows()
    mutate(rows[1])
    _write_jsonl(tmp_path / "hotpotqa" / "dev.jsonl", rows)
    with pytest.raises(DataFormatError, match=message):
        load_dataset("hotpotqa", tmp_path, "dev")


def test_bad_original_json_records_name_line_and_record(tmp_path):
    records = json.loads((ORIGINAL / "hotpot_dev_distractor_v1.json").read_text())
    del records[2]["answer"]
    f = tmp_path / "hotpot_dev_distractor_v1.json"
    f.write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")
    with pytest.raises(
        DataFormatError,
        match=r"hotpot_dev_distractor_v1.json:4 \(record 2\): missing field 'answer' "
        r"\(HotpotQA original layout",
    ):
        load_dataset("hotpotqa", tmp_path, "dev")

    f.write_text('[\n{"_id": "a", "question": "Q?", "answer": "A"},\n{"_id": "b",, }\n]')
    with pytest.raises(DataFormatError, match=r"hotpot_dev_distractor_v1.json:3: invalid JSON"):
        load_dataset("hotpotqa", tmp_path, "dev")

    f.write_text('{"data": []}')
    with pytest.raises(DataFormatError, match=r"json:1: expected a JSON list of records"):
        load_dataset("hotpotqa", tmp_path, "dev")

    f.write_text('[{"_id": "a", "question": "Q?", "answer": "A"} {"_id": "b"}]')
    with pytest.raises(DataFormatError, match=r"json:1: invalid JSON \(expected ',' or ']'"):
        load_dataset("hotpotqa", tmp_path, "dev")


def test_wrong_dataset_types_are_caught(tmp_path):
    # A 2Wiki file handed to the HotpotQA loader.
    shutil.copy(FIXTURES / "2wikimultihopqa" / "dev.jsonl", tmp_path / "dev.jsonl")
    with pytest.raises(DataFormatError, match=r"dev.jsonl:1: field 'metadata.type'.*hotpotqa"):
        load_dataset("hotpotqa", tmp_path / "dev.jsonl", "dev")


def test_bad_2wiki_evidences(tmp_path):
    rows = _rows(FIXTURES / "2wikimultihopqa" / "dev.jsonl")
    rows[3]["metadata"]["evidences"]["entity"][0] = 1920
    _write_jsonl(tmp_path / "2wikimultihopqa" / "dev.jsonl", rows)
    with pytest.raises(
        DataFormatError,
        match=r"dev.jsonl:4: field 'metadata.evidences\[0\]' must be \[subject, relation, "
        r"object\] strings, got \['Red Meadow', 'director', 1920\]",
    ):
        load_dataset("2wikimultihopqa", tmp_path, "dev")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: r.update(question_decomposition="two hops"),
            r"musique_ans_v1.0_dev.jsonl:2: field 'question_decomposition' must be a non-empty "
            r"list of objects, got 'two hops'",
        ),
        (
            lambda r: r.update(answer_aliases="Colonel"),
            r"musique_ans_v1.0_dev.jsonl:2: field 'answer_aliases' must be a list of strings",
        ),
        (
            lambda r: r.update(answer=""),
            r"musique_ans_v1.0_dev.jsonl:2: field 'answer' must be a non-empty string",
        ),
        (
            lambda r: r.update(answerable="yes"),
            r"musique_ans_v1.0_dev.jsonl:2: field 'answerable' must be true or false",
        ),
        (
            lambda r: r["paragraphs"][1].pop("paragraph_text"),
            r"musique_ans_v1.0_dev.jsonl:2: field 'paragraphs' must be a list of "
            r"\{title, paragraph_text\} objects",
        ),
    ],
)
def test_bad_musique_records(tmp_path, mutate, message):
    rows = _rows(ORIGINAL / "musique_ans_v1.0_dev.jsonl")
    mutate(rows[1])
    _write_jsonl(tmp_path / "musique_ans_v1.0_dev.jsonl", rows)
    with pytest.raises(DataFormatError, match=message):
        load_dataset("musique", tmp_path, "dev")


def test_bad_popqa_answers_name_the_tsv_line(tmp_path):
    lines = (ORIGINAL / "popQA.tsv").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\t[Austria, AT"
    (tmp_path / "popQA.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(
        DataFormatError,
        match=r"popQA.tsv:3: field 'possible_answers' must be a list of strings \(JSON\)",
    ):
        load_dataset("popqa", tmp_path, "test")


def test_duplicate_ids_and_empty_files(tmp_path):
    rows = _rows(FIXTURES / "triviaqa" / "test.jsonl")
    rows[2]["id"] = rows[0]["id"]
    _write_jsonl(tmp_path / "triviaqa" / "test.jsonl", rows)
    with pytest.raises(
        DataFormatError,
        match=r"test.jsonl:3: duplicate id 'test_0' \(first seen at .*test.jsonl:1\)",
    ):
        load_dataset("triviaqa", tmp_path, "test")
    (tmp_path / "triviaqa" / "test.jsonl").write_text("\n\n")
    with pytest.raises(DataFormatError, match=r"test.jsonl: no examples found"):
        load_dataset("triviaqa", tmp_path, "test")


# --------------------------------------------------------------------------------- the Hub


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_no_root_offline_says_to_pass_a_local_root(monkeypatch, var):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(var, "1")
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("musique", split="dev")
    message = str(info.value)
    assert "dataset 'musique': no root given and the Hugging Face Hub is offline" in message
    assert "https://huggingface.co/datasets/RUC-NLPIR/FlashRAG_datasets" in message
    assert "root=" in message and "musique/dev.jsonl" in message


def test_module_imports_without_torch():
    code = (
        "import sys; import research_env.data.datasets as d; "
        "d.load_dataset('nq', sys.argv[1], 'test'); "
        "assert 'torch' not in sys.modules and 'datasets' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code, str(FIXTURES)], check=True)
