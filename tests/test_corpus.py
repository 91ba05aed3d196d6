import gzip
import json
import pickle

import pytest

from research_env.data.corpus import JsonlCorpus, iter_corpus_jsonl, load_corpus, split_contents
from research_env.data.loaders import DataFormatError
from research_env.data.types import Passage

PASSAGES = [
    Passage("0", "Aaron", "Aaron is a prophet, high priest, and the brother of Moses."),
    Passage("1", "Lima", "Lima is the capital and largest city of Peru."),
    Passage("2", 'The "Quoted" Title', "Text with a\nsecond line and unicode: Perú, Zürich."),
]


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _flashrag_lines(passages):
    # Exactly FlashRAG's / Search-R1's wiki-18 layout: contents = '"Title"\ntext'.
    return [json.dumps({"id": p.id, "contents": p.contents}) for p in passages]


def test_flashrag_contents_layout_round_trips(tmp_path):
    f = _write(tmp_path / "wiki.jsonl", _flashrag_lines(PASSAGES))
    assert list(iter_corpus_jsonl(f)) == PASSAGES
    assert load_corpus(f) == PASSAGES
    assert json.loads(f.read_text().splitlines()[0])["contents"].startswith('"Aaron"\nAaron')


def test_title_text_layout_int_ids_blank_lines_and_gzip(tmp_path):
    lines = [
        json.dumps({"id": 7, "title": "Peru", "text": "capital: Lima"}),
        "",
        "   ",
        json.dumps({"id": "x", "text": "no title"}),
    ]
    expected = [Passage("7", "Peru", "capital: Lima"), Passage("x", "", "no title")]
    f = _write(tmp_path / "c.jsonl", lines)
    assert load_corpus(f) == expected
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress(f.read_bytes()))
    assert load_corpus(gz) == expected
    corpus = JsonlCorpus(f, cache=False)
    assert len(corpus) == 2 and list(corpus) == expected and corpus[1] == expected[1]


def test_split_contents_edge_cases():
    assert split_contents('"Title"\ntext') == ("Title", "text")
    assert split_contents("Title\ntext") == ("Title", "text")
    assert split_contents('""\ntext') == ("", "text")
    assert split_contents('"\ntext') == ('"', "text")
    assert split_contents("just text") == ("", "just text")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"c\.jsonl:2: invalid JSON"),
        ("[1, 2]", r"c\.jsonl:2: expected a JSON object, got list"),
        (json.dumps({"contents": "x"}), r"c\.jsonl:2: missing field 'id'"),
        (
            json.dumps({"id": "a"}),
            r"c\.jsonl:2: missing field 'contents' \(or",
        ),
        (json.dumps({"id": "a", "contents": 3}), r"c\.jsonl:2: field 'contents' must be a string"),
        (json.dumps({"id": "a", "text": None}), r"c\.jsonl:2: field 'text' must be a string"),
        (json.dumps({"id": "a", "title": 1, "text": "t"}), r"c\.jsonl:2: field 'title'"),
        (json.dumps({"id": True, "text": "t"}), r"c\.jsonl:2: field 'id'"),
        (
            json.dumps({"id": "0", "text": "dup"}),
            r"c\.jsonl:2: duplicate id '0' \(first seen at .*c\.jsonl:1\)",
        ),
    ],
)
def test_malformed_lines_name_file_line_and_field(tmp_path, line, message):
    f = _write(tmp_path / "c.jsonl", [json.dumps({"id": "0", "contents": '"T"\nx'}), line])
    with pytest.raises(DataFormatError, match=message):
        load_corpus(f)


def test_empty_and_missing_files(tmp_path):
    f = _write(tmp_path / "empty.jsonl", [""])
    with pytest.raises(DataFormatError, match="no passages found"):
        load_corpus(f)
    with pytest.raises(DataFormatError, match="no passages found"):
        JsonlCorpus(f, cache=False)
    with pytest.raises(FileNotFoundError):
        JsonlCorpus(tmp_path / "missing.jsonl")
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress(b"{}\n"))
    with pytest.raises(ValueError, match="gzip-compressed corpus cannot be read by offset"):
        JsonlCorpus(gz)


def test_jsonl_corpus_reads_by_offset_and_caches_offsets(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_ENV_CACHE", str(tmp_path / "cache"))
    many = [Passage(str(i), f"Title {i}", f"text number {i} " * (i % 7 + 1)) for i in range(500)]
    f = _write(tmp_path / "wiki.jsonl", _flashrag_lines(many))
    first = JsonlCorpus(f)
    assert first.scan_seconds > 0
    second = JsonlCorpus(f)
    assert second.scan_seconds == 0  # offsets loaded from the cache
    assert second.fingerprint == first.fingerprint
    assert len(second) == 500
    assert second[0] == many[0] and second[499] == many[499] and second[-1] == many[-1]
    assert second[10:13] == many[10:13]
    assert list(second) == many
    with pytest.raises(IndexError, match="passage index 500 out of range for a corpus of 500"):
        second[500]
    # Picklable (for worker processes): the file is reopened on the other side.
    clone = pickle.loads(pickle.dumps(second))
    assert clone[123] == many[123]
    with JsonlCorpus(f) as c:
        assert c[5] == many[5]
    # A changed file gets fresh offsets (and a fresh fingerprint).
    _write(f, _flashrag_lines(many[:10]))
    assert len(JsonlCorpus(f)) == 10


def test_jsonl_corpus_checks_every_line_when_it_scans(tmp_path):
    f = _write(tmp_path / "c.jsonl", [json.dumps({"id": "0", "text": "ok"}), "", '{"id": "1"}'])
    with pytest.raises(DataFormatError, match=r"c\.jsonl:3: missing field 'contents'"):
        JsonlCorpus(f, cache=False)


def test_jsonl_corpus_error_on_access_names_the_line(tmp_path):
    f = _write(
        tmp_path / "c.jsonl",
        [json.dumps({"id": "0", "text": "ok"}), "", '{"id": "1", "text": "x"}'],
    )
    corpus = JsonlCorpus(f, cache=False)
    assert corpus[0].text == "ok"
    # the file changes under the corpus (which it must not): the error still names the line
    data = f.read_bytes().replace(b'"text": "x"', b'"txet": "x"')
    f.write_bytes(data)
    with pytest.raises(DataFormatError, match=r"c\.jsonl:3: missing field 'contents'"):
        corpus[1]
