"""Tests of the embedded Factbook world (real data, real cache, no mocks)."""

from __future__ import annotations

import collections
import gzip
import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import research_env.data.factbook.world as world_mod
from research_env.cache import CACHE_ENV_VAR
from research_env.data.factbook import FactbookWorld, build_corpus, load_factbook_world
from research_env.data.factbook.facts import (
    parse_area,
    parse_borders,
    parse_capital,
    parse_currency,
    parse_highest_point,
)
from research_env.data.factbook.names import normalize_name
from research_env.data.factbook.qa import QUESTION_TYPES, SPLITS
from research_env.data.factbook.source import SourceEntry, clean_text, fold_ascii
from research_env.data.types import Passage, QAExample

EXPECTED_HOPS = {
    "capital": 1,
    "currency": 1,
    "highest_point": 1,
    "capital_reverse": 1,
    "bridge": 2,
    "comparison": 2,
    "three_hop": 3,
}
TAG_RE = re.compile(r"</?[a-zA-Z][^<>]*>")
ID_RE = re.compile(r"[a-z]{2}/[a-z0-9-]+/[a-z0-9-]+/\d+")


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("research-env-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV_VAR, str(root))
        world_mod.clear_memo()
        yield root
    world_mod.clear_memo()


@pytest.fixture(scope="module")
def world(cache_root: Path) -> FactbookWorld:
    start = time.perf_counter()
    built = load_factbook_world()
    print(f"\nbuilt Factbook world in {time.perf_counter() - start:.2f} s")
    return built


@pytest.fixture(scope="module")
def by_id(world: FactbookWorld) -> dict[str, Passage]:
    return {p.id: p for p in world.corpus}


def _fold(text: str) -> str:
    return fold_ascii(text).lower()


# ----------------------------------------------------------------------------- parsers


def test_clean_text_strips_tags_and_entities() -> None:
    raw = "Rep&uacute;blica <em>del</em>&nbsp; Per&uacute;<br><br><b>note:</b> x &amp;nbsp;y"
    assert clean_text(raw) == "República del Perú; note: x y"
    assert clean_text("Buddhist &lt;1%") == "Buddhist <1%"


def test_parse_capital_rejects_ambiguous_capitals() -> None:
    assert parse_capital("Lima") == ("Lima",)
    assert parse_capital("Bogotá") == ("Bogotá", "Bogota")
    assert parse_capital("Washington, D.C.") == ("Washington, D.C.", "Washington", "Washington DC")
    assert parse_capital("Kyiv (Kiev is the transliteration from Russian)") == ("Kyiv",)
    assert parse_capital("La Paz (administrative capital); Sucre (constitutional capital)") is None
    assert parse_capital("Gitega (political capital), Bujumbura (commercial capital)") is None
    assert parse_capital("Chisinau in Romanian (Kishinev in Russian)") is None
    assert parse_capital("no official capital; government offices in the Yaren District") is None


def test_parse_currency_and_highest_point() -> None:
    assert parse_currency("Swiss francs (CHF) per US dollar -") == (
        "Swiss francs",
        "Swiss franc",
        "CHF",
    )
    assert parse_currency("leke (ALL) per US dollar -") == ("leke", "lek")  # no "ALL" alias
    assert parse_currency("togrog/tugriks (MNT) per US dollar -") is None
    assert parse_highest_point("Nevado Huascaran 6,746 m") == ("Nevado Huascaran",)
    assert parse_highest_point("unnamed elevation 63 m; 3 km southeast of the town") is None


def test_parse_area_and_borders() -> None:
    assert parse_area("1,285,216 sq km") == 1285216.0
    assert parse_area("8 sq km ca.") is None
    index = {"russia": "rs", "china": "ch", "mongolia": "mg"}
    borders = parse_borders(
        "China (southeast) 4,133 km and China (south) 46 km; Mongolia 3,452 km, "
        "Atlantis 9 km (of which 2 km is water)",
        index,
    )
    assert borders is not None
    assert [(b.code, b.km) for b in borders] == [("ch", 4179.0), ("mg", 3452.0), (None, 9.0)]
    assert parse_borders("China 12 km; around 40 km of fences", index) is None


def test_build_corpus_on_a_tiny_entry() -> None:
    long_text = " ".join(f"Sentence number {i} is here." for i in range(60))
    entry = SourceEntry(
        code="zz",
        region="test",
        data={
            "Government": {
                "Country name": {"conventional short form": {"text": "Zedland"}},
                "Capital": {"name ": {"text": "Zed&eacute; City"}, "note": "<b>note:</b> hi"},
                "Empty": {"text": "  <br> "},
            },
            "Introduction": {"Background": {"text": long_text}},
        },
    )
    passages = build_corpus([entry])
    ids = [p.id for p in passages]
    assert ids[0] == "zz/government/country-name/0"
    assert passages[1].id == "zz/government/capital/0"
    assert passages[1].title == "Zedland — Government — Capital"
    assert passages[1].text == "name: Zedé City; note: hi"
    assert not any(i.startswith("zz/government/empty") for i in ids)
    chunks = [p for p in passages if p.id.startswith("zz/introduction/background/")]
    assert len(chunks) == 3  # 300 words -> three chunks of at most 100
    assert " ".join(c.text for c in chunks) == long_text
    assert all(len(c.text.split()) <= 100 for c in chunks)


# ----------------------------------------------------------------------------- corpus


def test_corpus_ids_unique_and_readable(world: FactbookWorld, by_id: dict[str, Passage]) -> None:
    assert len(world.corpus) > 20_000
    assert len(by_id) == len(world.corpus)
    assert all(ID_RE.fullmatch(p.id) for p in world.corpus)
    peru = by_id["pe/government/capital/0"]
    assert peru.title == "Peru — Government — Capital"
    assert peru.text.startswith("name: Lima; geographic coordinates: 12 03 S, 77 03 W")


def test_passages_short_and_clean(world: FactbookWorld) -> None:
    for p in world.corpus:
        assert p.text.strip(), p.id
        assert len(p.text.split()) <= 100, p.id
        for part in (p.title, p.text):
            assert not TAG_RE.search(part), p.id
            assert html.unescape(part) == part, p.id
        assert len(p.title.split(" — ")) == 3, p.id


def test_chunks_share_title_and_are_contiguous(world: FactbookWorld) -> None:
    fields: dict[str, list[Passage]] = collections.defaultdict(list)
    for p in world.corpus:
        fields[p.id.rsplit("/", 1)[0]].append(p)
    chunked = [ps for ps in fields.values() if len(ps) > 1]
    assert len(chunked) > 100
    for ps in fields.values():
        assert [int(p.id.rsplit("/", 1)[1]) for p in ps] == list(range(len(ps)))
        assert len({p.title for p in ps}) == 1


# ----------------------------------------------------------------------------- questions


def test_types_hops_and_counts(world: FactbookWorld) -> None:
    counts = collections.Counter((e.metadata["type"], e.metadata["split"]) for e in world.examples)
    print(f"\n{len(world.corpus)} passages, {len(world.examples)} questions")
    for qtype in QUESTION_TYPES:
        print(f"{qtype:16s}", *(f"{s}={counts[qtype, s]:4d}" for s in SPLITS))
    assert 1_000 <= len(world.examples) <= 3_000
    assert len({e.id for e in world.examples}) == len(world.examples)
    for e in world.examples:
        assert e.metadata["hops"] == EXPECTED_HOPS[e.metadata["type"]], e.id
        assert len(e.metadata["support"]) == e.metadata["hops"], e.id
        assert e.id.startswith(f"factbook/{e.metadata['type']}/"), e.id
        assert e.metadata["entities"], e.id


def test_every_answer_is_in_its_support_passage(
    world: FactbookWorld, by_id: dict[str, Passage]
) -> None:
    for e in world.examples:
        support = [by_id[i] for i in e.metadata["support"]]
        primary = _fold(e.golden_answers[0])
        assert any(primary in _fold(f"{p.title}\n{p.text}") for p in support), e.id


def test_entities_match_support_passages(world: FactbookWorld, by_id: dict[str, Passage]) -> None:
    for e in world.examples:
        titles = {by_id[i].title.split(" — ")[0] for i in e.metadata["support"]}
        assert titles == set(e.metadata["entities"]), e.id


def test_splits_disjoint_and_complete(world: FactbookWorld) -> None:
    splits = {name: world.split(name) for name in SPLITS}
    assert sum(len(s) for s in splits.values()) == len(world.examples)
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not {e.id for e in splits[a]} & {e.id for e in splits[b]}
                assert not {e.question for e in splits[a]} & {e.question for e in splits[b]}
    for name, examples in splits.items():
        types = collections.Counter(e.metadata["type"] for e in examples)
        assert set(types) == set(QUESTION_TYPES), (name, types)
        assert all(e.metadata["split"] == name for e in examples)
    total = len(world.examples)
    assert len(splits["train"]) > 0.6 * total
    assert len(splits["dev"]) > 0.04 * total and len(splits["test"]) > 0.04 * total


def test_split_follows_the_anchor_country(world: FactbookWorld) -> None:
    split_of_anchor: dict[str, set[str]] = collections.defaultdict(set)
    for e in world.examples:
        split_of_anchor[e.metadata["codes"][0]].add(e.metadata["split"])
    assert all(len(s) == 1 for s in split_of_anchor.values())


def test_split_rejects_unknown_name(world: FactbookWorld) -> None:
    with pytest.raises(ValueError, match="validation"):
        world.split("validation")


def _capital_name_segment(passage: Passage) -> str:
    """The "name: ..." part of a capital passage (up to the next sub-field)."""
    text = passage.text.removeprefix("name: ")
    return re.split(r"; (?:geographic coordinates|time difference|etymology):", text)[0]


def test_capital_bridge_keys_identify_exactly_one_entry(
    world: FactbookWorld, by_id: dict[str, Passage]
) -> None:
    capitals = [p for p in world.corpus if re.fullmatch(r"[a-z]{2}/government/capital/\d+", p.id)]
    checked = 0
    for e in world.examples:
        for key in e.metadata["bridge_keys"]:
            if key["relation"] != "capital":
                continue
            needle = f" {normalize_name(key['key'])} "
            owners = {
                p.id[:2]
                for p in capitals
                if needle in f" {normalize_name(_capital_name_segment(p))} "
            }
            assert owners == {e.metadata["codes"][0]}, (e.id, owners)
            checked += 1
    assert checked > 300


def _border_lengths(text: str) -> dict[str, float]:
    """Neighbour -> km from a "border countries: ..." passage, qualifiers merged."""
    listing = text.split("border countries: ", 1)[1]
    listing = re.split(r"; [^;:]+: ", listing)[0]  # stop at the next sub-field
    listing = re.sub(r"\s*\([^()]*\d[^()]*\)", "", listing)
    lengths: dict[str, float] = collections.defaultdict(float)
    for name, km in re.findall(r"([^;,\d]+?) ([\d,.]+) km", listing):
        name = re.sub(r"^and |\s*\([^()]*\)", "", name.strip())
        lengths[name] += float(km.replace(",", ""))
    return lengths


def test_border_bridge_keys_have_a_unique_longest_border(
    world: FactbookWorld, by_id: dict[str, Passage]
) -> None:
    checked = 0
    for e in world.examples:
        for key in e.metadata["bridge_keys"]:
            if key["relation"] != "longest_border":
                continue
            border = next(by_id[i] for i in e.metadata["support"] if "/land-boundaries/" in i)
            ranked = sorted(_border_lengths(border.text).items(), key=lambda kv: -kv[1])
            assert ranked[0][0] == key["neighbour_as_written"], (e.id, ranked)
            assert len(ranked) == 1 or ranked[0][1] > ranked[1][1], (e.id, ranked)
            checked += 1
    assert checked > 200


def test_comparisons_are_right_and_not_near_ties(
    world: FactbookWorld, by_id: dict[str, Passage]
) -> None:
    comparisons = [e for e in world.examples if e.metadata["type"] == "comparison"]
    assert len(comparisons) > 100
    for e in comparisons:
        areas = []
        for pid in e.metadata["support"]:
            m = re.search(r"total: ([\d,.]+)( million)? sq km", by_id[pid].text)
            assert m, pid
            areas.append(float(m.group(1).replace(",", "")) * (1e6 if m.group(2) else 1))
        assert max(areas) >= 1.1 * min(areas), e.id
        larger = "larger" in e.question
        winner = areas.index(max(areas) if larger else min(areas))
        assert e.golden_answers[0] == e.metadata["entities"][winner], e.id
        loser = normalize_name(e.metadata["entities"][1 - winner])
        assert loser not in {normalize_name(a) for a in e.golden_answers}, e.id


def test_country_aliases_are_tight(world: FactbookWorld) -> None:
    owner: dict[str, set[str]] = collections.defaultdict(set)
    for e in world.examples:
        if e.metadata["type"] in ("capital_reverse", "comparison"):
            for alias in e.golden_answers:
                owner[normalize_name(alias)].add(e.golden_answers[0])
    assert owner and all(len(o) == 1 for o in owner.values())
    peru = next(e for e in world.examples if e.id == "factbook/capital_reverse/pe")
    assert peru.question == "Lima is the capital of which country?"
    assert peru.golden_answers == ["Peru", "Republic of Peru"]


def test_known_examples(world: FactbookWorld) -> None:
    examples = {e.id: e for e in world.examples}
    assert examples["factbook/capital/pe"].golden_answers == ["Lima"]
    assert examples["factbook/currency/pe"].golden_answers == ["nuevo sol", "PEN"]
    bridge = examples["factbook/bridge/border-capital/pe/br"]
    assert bridge.question == (
        "What is the capital of the country that shares the longest land border with Peru?"
    )
    assert bridge.golden_answers == ["Brasília", "Brasilia"]
    assert bridge.metadata["support"] == [
        "pe/geography/land-boundaries/0",
        "br/government/capital/0",
    ]
    three = examples["factbook/three_hop/capital-border-currency/pe/br"]
    assert three.metadata["entities"] == ["Peru", "Brazil"]
    assert "reals" in three.golden_answers
    # multiple or annotated capitals are never used as keys
    assert "factbook/capital/bl" not in examples
    assert "factbook/capital_reverse/jm" not in examples  # Kingston is also Norfolk Island's


# ----------------------------------------------------------------------------- cache


def test_cache_files_written_and_reused(world: FactbookWorld, cache_root: Path) -> None:
    directory = cache_root / "factbook" / world.fingerprint
    files = sorted(directory.iterdir())
    assert [f.name for f in files] == ["corpus.jsonl.gz", "manifest.json", "qa.jsonl.gz"]
    assert load_factbook_world() is load_factbook_world()  # memoised
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    world_mod.clear_memo()
    start = time.perf_counter()
    loaded = load_factbook_world()
    elapsed = time.perf_counter() - start
    print(f"\nloaded cached Factbook world in {elapsed:.3f} s")
    assert loaded is not world
    assert elapsed < 2.0
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes
    assert loaded.corpus == world.corpus
    assert loaded.examples == world.examples


def test_build_is_deterministic(world: FactbookWorld) -> None:
    rebuilt = world_mod.build_world()
    assert rebuilt.corpus == world.corpus
    assert rebuilt.examples == world.examples
    assert rebuilt.fingerprint == world.fingerprint


def test_cache_invalidation_and_recovery(
    world: FactbookWorld, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world_mod, "BUILDER_VERSION", "test-only-version")
    world_mod.clear_memo()
    other = load_factbook_world()
    assert other.fingerprint != world.fingerprint
    other_dir = cache_root / "factbook" / other.fingerprint
    assert (other_dir / "manifest.json").exists()
    assert (cache_root / "factbook" / world.fingerprint / "manifest.json").exists()

    # a corrupt cache is rebuilt rather than trusted
    (other_dir / "qa.jsonl.gz").write_bytes(gzip.compress(b"{not json\n"))
    world_mod.clear_memo()
    recovered = load_factbook_world()
    assert recovered.examples == world.examples

    before = (other_dir / "corpus.jsonl.gz").stat().st_mtime_ns
    time.sleep(0.01)
    rebuilt = load_factbook_world(rebuild=True)
    assert rebuilt is not recovered
    assert (other_dir / "corpus.jsonl.gz").stat().st_mtime_ns != before
    world_mod.clear_memo()


def test_example_types_are_plain(world: FactbookWorld) -> None:
    assert all(isinstance(e, QAExample) for e in world.examples)
    assert all(isinstance(a, str) and a for e in world.examples for a in e.golden_answers)
