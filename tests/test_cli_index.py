"""``searchqa index`` end to end, through research_env.cli.main, on a tiny corpus."""

import gzip
import json
import pickle
import textwrap

import pytest

from research_env.cli import main
from research_env.commands import index as index_command
from research_env.data.types import Passage
from research_env.retrieval.bm25 import BACKENDS
from research_env.retrieval.dense import INDEX_TYPES

CORPUS = [
    Passage("pe", "Peru — Government — Capital", "Lima is the capital of Peru."),
    Passage("fr", "France — Government — Capital", "Paris is the capital of France."),
    Passage(
        "volcano", "Volcanoes", "A volcano is an opening in the crust through which lava erupts."
    ),
    *(
        Passage(f"x{i}", f"Record {i}", f"office hours, fees and forms number {i}")
        for i in range(20)
    ),
]


@pytest.fixture
def corpus_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_ENV_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "corpus.jsonl"
    f.write_text("".join(json.dumps({"id": p.id, "contents": p.contents}) + "\n" for p in CORPUS))
    return f


def _use_snippet(stdout):
    """The Python lines printed after "Use it:", minus the gym.make line (no QA file here)."""
    code = textwrap.dedent(stdout.split("Use it:", 1)[1])
    return "\n".join(line for line in code.splitlines() if "gym.make" not in line)


def test_index_bm25_end_to_end(corpus_file, tmp_path, capsys):
    out = tmp_path / "bm25"
    argv = ["index", "--corpus", str(corpus_file), "--kind", "bm25", "--out", str(out)]
    assert main([*argv, "--title-weight", "2"]) == 0
    captured = capsys.readouterr()
    assert "bm25 index of 23 passages built and saved in" in captured.out
    assert str(out) in captured.out
    assert "23 passages in" in captured.err and "reading passages" in captured.err
    assert (out / "COMPLETE").exists()
    namespace: dict = {}
    exec(_use_snippet(captured.out), namespace)  # the printed lines load the saved index
    retriever = namespace["retriever"]
    assert retriever.load_seconds > 0 and retriever.build_seconds == 0
    assert retriever.search("capital of Peru", 1)[0].id == "pe"
    # Again with the same settings: loaded, not rebuilt.
    assert main([*argv, "--title-weight", "2"]) == 0
    assert "already built; loaded" in capsys.readouterr().out
    # Other settings into the same directory: refused, with the reason.
    assert main([*argv, "--k1", "1.5"]) == 2
    assert "holds a BM25 index of another corpus or configuration" in capsys.readouterr().err


class _Payload:
    """Unpickling this creates ``path`` (the stand-in for code a hostile pickle would run)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("fingerprint", ["stale", "matching"])
def test_index_never_unpickles_what_is_in_out(corpus_file, tmp_path, capsys, fingerprint):
    """A hostile rank_bm25.pkl in --out is not loaded, whatever its COMPLETE marker says."""
    from research_env.data.corpus import load_corpus
    from research_env.retrieval.bm25 import BM25Config, BM25Retriever

    out, ran = tmp_path / "bm25", tmp_path / "payload-ran"
    out.mkdir()
    (out / "rank_bm25.pkl").write_bytes(pickle.dumps(_Payload(ran)))
    config = BM25Config(backend="rank_bm25")
    right = BM25Retriever(load_corpus(corpus_file), config, persist=False).fingerprint
    (out / "COMPLETE").write_text(right if fingerprint == "matching" else "0123456789abcdef")
    argv = ["index", "--corpus", str(corpus_file), "--kind", "bm25", "--out", str(out)]
    code = main([*argv, "--bm25-backend", "rank_bm25"])
    captured = capsys.readouterr()
    assert not ran.exists()
    if fingerprint == "stale":
        assert code == 2
        assert "holds a BM25 index of another corpus or configuration" in captured.err
        assert "'0123456789abcdef'" in captured.err and "choose another --out" in captured.err
    else:
        assert code == 0 and "built and saved" in captured.out
        assert (out / "rank_bm25.json").exists()


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_index_dense_end_to_end(corpus_file, tmp_path, capsys, index_type):
    out = tmp_path / "dense"
    argv = ["index", "--corpus", str(corpus_file), "--kind", "dense", "--out", str(out)]
    argv += ["--index-type", index_type, "--batch-size", "8"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "dense index of 23 passages built and saved" in captured.out
    assert "embedding" in captured.err  # the progress bar
    assert (out / "embeddings.npy").exists() and list(out.glob(f"index-{index_type}-*.faiss"))
    namespace: dict = {}
    exec(_use_snippet(captured.out), namespace)
    retriever = namespace["retriever"]
    assert retriever.embedded_passages == 0 and retriever.config.index_type == index_type
    assert retriever.search("Which city hosts the Peruvian government?", 1)[0].id == "pe"
    assert retriever.search("mountain that spews molten rock", 1)[0].id == "volcano"


def test_index_gzip_corpus_is_loaded_into_memory(corpus_file, tmp_path, capsys):
    gz = tmp_path / "corpus.jsonl.gz"
    gz.write_bytes(gzip.compress(corpus_file.read_bytes()))
    out = tmp_path / "bm25gz"
    assert main(["index", "--corpus", str(gz), "--kind", "bm25", "--out", str(out)]) == 0
    assert "load_corpus(" in capsys.readouterr().out


def test_index_errors_are_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RESEARCH_ENV_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "contents": "\\"T\\"\\nx"}\n{"id": "b"}\n')
    out = str(tmp_path / "o")
    assert main(["index", "--corpus", str(bad), "--kind", "bm25", "--out", out]) == 2
    assert "bad.jsonl:2: missing field 'contents'" in capsys.readouterr().err
    missing = str(tmp_path / "missing.jsonl")
    assert main(["index", "--corpus", missing, "--kind", "bm25", "--out", out]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
    ok = tmp_path / "ok.jsonl"
    ok.write_text('{"id": "a", "text": "x"}\n')
    argv = ["index", "--corpus", str(ok), "--kind", "dense", "--out", out]
    assert main([*argv, "--encoder", "e5", "--encoder-model", str(tmp_path / "no-e5")]) == 2
    assert "encoder model folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse rejects an unknown kind
        main(["index", "--corpus", str(ok), "--kind", "splade", "--out", out])


def test_choices_match_the_library():
    assert index_command.INDEX_TYPES == INDEX_TYPES
    assert index_command.BM25_BACKENDS == BACKENDS
