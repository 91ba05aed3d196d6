import gzip
import json
from pathlib import Path

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
            r"dev.jsonl:2: duplicate id '1' \(first seen at .*dev.jsonl:1\)",
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


# ------------------------------------------------------------- one validation path for every loader
# Each loader reads the same kind of broken file and must say the same thing about it.

BOM = "\ufeff".encode()


def _qa(record_id):
    return {"id": record_id, "question": "Capital of Peru?", "golden_answers": ["Lima"]}


def _passage(record_id):
    return {"id": record_id, "contents": '"Peru"\nLima is the capital.'}


def _qa_jsonl(path):
    return [e.id for e in load_qa_jsonl(path)]


def _flashrag(path):
    from research_env.data.datasets import load_dataset

    return [e.id for e in load_dataset("nq", path, "test")]


def _corpus(path):
    from research_env.data.corpus import load_corpus

    return [p.id for p in load_corpus(path)]


def _corpus_gz(path):
    from research_env.data.corpus import load_corpus

    gz = path.with_name(path.name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes()))
    return [p.id for p in load_corpus(gz)]


def _offsets(path):
    from research_env.data.corpus import JsonlCorpus

    return [p.id for p in JsonlCorpus(path, cache=False)]


QA_LOADERS = {"qa_jsonl": _qa_jsonl, "flashrag": _flashrag}
CORPUS_LOADERS = {"corpus": _corpus, "corpus_gz": _corpus_gz, "jsonl_corpus": _offsets}
LOADERS = [(n, f, _qa) for n, f in QA_LOADERS.items()] + [
    (n, f, _passage) for n, f in CORPUS_LOADERS.items()
]


def _lines(path, lines):
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


@pytest.fixture(params=LOADERS, ids=[n for n, _, _ in LOADERS])
def loader(request):
    return request.param


@pytest.mark.parametrize("bad", [None, {"a": 1}, 1.5, True, [1], "", "  "])
def test_bad_ids_are_rejected_alike(tmp_path, loader, bad):
    _, load, record = loader
    f = _lines(tmp_path / "f.jsonl", [json.dumps(record("a")), json.dumps(record(bad))])
    with pytest.raises(
        DataFormatError, match=r"f\.jsonl(?:\.gz)?:2: field 'id' must be a .*string or an"
    ):
        load(f)


def test_int_ids_become_strings_alike(tmp_path, loader):
    _, load, record = loader
    f = _lines(tmp_path / "f.jsonl", [json.dumps(record(7)), json.dumps(record("x"))])
    assert load(f) == ["7", "x"]


def test_a_leading_bom_is_accepted_alike_and_a_later_one_is_not(tmp_path, loader):
    _, load, record = loader
    f = _lines(
        tmp_path / "f.jsonl", [BOM + json.dumps(record("a")).encode(), json.dumps(record("b"))]
    )
    assert load(f) == ["a", "b"]
    f = _lines(
        tmp_path / "f.jsonl", [json.dumps(record("a")), BOM + json.dumps(record("b")).encode()]
    )
    with pytest.raises(DataFormatError, match=r"f\.jsonl(?:\.gz)?:2: invalid JSON"):
        load(f)


def test_non_utf8_names_file_and_line_alike(tmp_path, loader):
    _, load, record = loader
    latin1 = json.dumps(record("b"), ensure_ascii=False).replace("Lima", "Líma").encode("latin-1")
    f = _lines(tmp_path / "f.jsonl", [json.dumps(record("a")), latin1])
    with pytest.raises(
        DataFormatError, match=r"f\.jsonl(?:\.gz)?:2: not UTF-8 \(invalid continuation"
    ):
        load(f)


def test_duplicate_ids_are_rejected_alike(tmp_path, loader):
    _, load, record = loader
    rows = [json.dumps(record("a")), json.dumps(record("b")), "", json.dumps(record("a"))]
    f = _lines(tmp_path / "f.jsonl", rows)
    with pytest.raises(
        DataFormatError,
        match=r"f\.jsonl(?:\.gz)?:4: duplicate id 'a' \(first seen at .*f\.jsonl(?:\.gz)?:1\)",
    ):
        load(f)


def test_json_nested_too_deeply_is_an_error_not_a_recursion_error(tmp_path, loader):
    _, load, record = loader
    deep = "[" * 200_000 + "]" * 200_000
    f = _lines(tmp_path / "f.jsonl", [json.dumps(record("a")), deep])
    with pytest.raises(
        DataFormatError, match=r"f\.jsonl(?:\.gz)?:2: invalid JSON \(nested too deeply\)"
    ):
        load(f)


@pytest.mark.parametrize("load", list(QA_LOADERS.values()), ids=list(QA_LOADERS))
@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ([""], r"golden_answers\[0\]"),
        (["  "], r"golden_answers\[0\]"),
        ("", "golden_answers"),
        (["Lima", " \t"], r"golden_answers\[1\]"),
        ([None], r"golden_answers\[0\]"),
    ],
)
def test_blank_golden_answers_are_rejected(tmp_path, load, answers, field):
    rows = [json.dumps(_qa("a")), json.dumps({**_qa("b"), "golden_answers": answers})]
    f = _lines(tmp_path / "f.jsonl", rows)
    with pytest.raises(
        DataFormatError, match=rf"f\.jsonl(?:\.gz)?:2: field '{field}' must be a non-empty"
    ):
        load(f)


def test_a_blank_answer_no_longer_pays_for_an_empty_prediction(tmp_path):
    from research_env.data.types import QAExample

    with pytest.raises(ValueError, match="golden answers must be non-blank strings"):
        QAExample("q", "Capital of Peru?", ["  "])


@pytest.mark.parametrize("load", list(CORPUS_LOADERS.values()), ids=list(CORPUS_LOADERS))
def test_a_passage_with_both_text_and_contents_must_agree(tmp_path, load):
    agree = {"id": "b", "title": "Peru", "text": "Lima.", "contents": '"Peru"\nLima.'}
    differ = {"id": "c", "title": "Peru", "text": "Lima.", "contents": '"Chile"\nSantiago.'}
    f = _lines(tmp_path / "f.jsonl", [json.dumps(_passage("a")), json.dumps(agree)])
    assert load(f) == ["a", "b"]
    f = _lines(tmp_path / "f.jsonl", [json.dumps(_passage("a")), json.dumps(differ)])
    with pytest.raises(
        DataFormatError, match=r"f\.jsonl(?:\.gz)?:2: ambiguous passage: both 'contents'"
    ):
        load(f)


# ------------------------------------------------------------- the benchmark files' other layouts

ORIGINAL = Path(__file__).parent / "fixtures" / "flashrag" / "original"


def test_hotpotqa_json_list_bom_non_utf8_and_blank_answer(tmp_path):
    from research_env.data.datasets import load_dataset

    raw = (ORIGINAL / "hotpot_dev_distractor_v1.json").read_bytes()
    f = tmp_path / "hotpot_dev_distractor_v1.json"
    f.write_bytes(BOM + raw)
    assert len(load_dataset("hotpotqa", f, "dev")) == len(load_dataset("hotpotqa", ORIGINAL, "dev"))
    records = json.loads(raw)
    records[1]["answer"] = "  "
    f.write_text(json.dumps(records, indent=1))
    with pytest.raises(DataFormatError, match=r"\.json:\d+ \(record 1\): field 'answer' must be"):
        load_dataset("hotpotqa", f, "dev")
    records[1]["answer"], records[1]["_id"] = "yes", None
    f.write_text(json.dumps(records, indent=1))
    with pytest.raises(DataFormatError, match=r"\(record 1\): field '_id' must be a string or"):
        load_dataset("hotpotqa", f, "dev")
    f.write_bytes(raw.replace(b"[", b"[\xff", 1))
    with pytest.raises(DataFormatError, match=r"\.json:1: not UTF-8"):
        load_dataset("hotpotqa", f, "dev")


def _popqa(tmp_path, cell):
    lines = (ORIGINAL / "popQA.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    row = lines[2].split("\t")
    row[header.index("possible_answers")] = cell
    f = tmp_path / "popQA.tsv"
    f.write_text("\n".join([lines[0], lines[1], "\t".join(row)]) + "\n", encoding="utf-8")
    return f


def test_popqa_cells_deep_blank_bom_and_non_utf8(tmp_path):
    from research_env.data.datasets import load_dataset

    f = _popqa(tmp_path, "[" * 50_000 + "]" * 50_000)
    with pytest.raises(DataFormatError, match=r"popQA\.tsv:3: field 'possible_answers' must be"):
        load_dataset("popqa", f)
    f = _popqa(tmp_path, '"[""Austria"", "" ""]"')
    with pytest.raises(
        DataFormatError, match=r"popQA\.tsv:3: field 'possible_answers\[1\]' must be a non-empty"
    ):
        load_dataset("popqa", f)
    f = _popqa(tmp_path, '"[""Austria""]"')
    assert load_dataset("popqa", f)[1].golden_answers == ["Austria"]
    f.write_bytes(BOM + f.read_bytes())
    assert load_dataset("popqa", f)[0].id == "4222362"  # the header's first column is "id"
    f.write_bytes(f.read_bytes().replace(b"Graz", b"Gr\xe4z"))
    with pytest.raises(DataFormatError, match=r"popQA\.tsv:3: not UTF-8"):
        load_dataset("popqa", f)
    f = _popqa(tmp_path, "x" * 200_000)  # past the csv module's field limit
    with pytest.raises(DataFormatError, match=r"popQA\.tsv:3: invalid TSV \(field larger"):
        load_dataset("popqa", f)
