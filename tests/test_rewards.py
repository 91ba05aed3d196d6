import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research_env.rewards import (
    REWARD_PRESETS,
    RewardComponents,
    exact_match,
    f1_score,
    get_reward_fn,
    normalize_answer,
    score_answer,
    sub_em,
)

# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The Lima", "lima"),
        ("  LIMA  ", "lima"),
        ("Lima.", "lima"),
        ("U.S.A.", "usa"),  # punctuation deleted, not replaced by a space (SQuAD)
        ("Jean-Luc", "jeanluc"),
        ("rock & roll", "rock roll"),
        ("a cat an owl the dog", "cat owl dog"),
        ("theatre anthem", "theatre anthem"),  # articles only as whole tokens
        ("Bogotá", "bogotá"),  # accents kept
        ("BOGOTÁ", "bogotá"),
        ("Ｌｉｍａ", "lima"),  # full-width, NFKC
        ("ﬁnal", "final"),  # ligature, NFKC
        ("¿Qué?", "qué"),  # Unicode punctuation
        ("«Sí»", "sí"),
        ("1990–2000", "19902000"),  # en dash is punctuation
        ("“quoted”", "quoted"),
        ("Lima\u200b", "lima"),  # zero-width space (format character)
        ("e\u0301", "é"),  # composed
        ("Lima\n\tPeru", "lima peru"),
        ("", ""),
        ("...", ""),
        ("The", ""),
        ("$100", "100"),  # ASCII symbols in string.punctuation go, as in SQuAD
        ("€100", "€100"),  # other symbols stay
    ],
)
def test_normalize_answer(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_accents_are_not_folded():
    assert normalize_answer("Bogotá") != normalize_answer("Bogota")
    assert exact_match("Bogota", "Bogotá") == 0.0
    assert exact_match("Bogota", ["Bogotá", "Bogota"]) == 1.0  # datasets list folded aliases


@settings(max_examples=2000)
@given(st.text())
def test_normalize_answer_is_idempotent(s):
    once = normalize_answer(s)
    assert normalize_answer(once) == once


@settings(max_examples=500)
@given(st.text())
def test_normalised_text_has_no_articles_or_extra_space(s):
    out = normalize_answer(s)
    assert out == out.strip()
    assert "  " not in out
    assert not {"a", "an", "the"} & set(out.split())
    assert out == out.lower()


# --------------------------------------------------------------------------- exact match


@pytest.mark.parametrize(
    ("prediction", "golds", "expected"),
    [
        ("The Lima", "lima", 1.0),
        ("lima!", ["Lima"], 1.0),
        ("LIMA", ("Cusco", "lima"), 1.0),  # max over golds, any sequence
        ("Lima, Peru", "Lima", 0.0),
        ("Ｌｉｍａ", "Lima", 1.0),
        ("", "", 1.0),  # both empty
        ("the", "", 1.0),  # both normalise to empty
        ("", "Lima", 0.0),
        ("Lima", "", 0.0),
        ("Lima", [], 0.0),
    ],
)
def test_exact_match(prediction, golds, expected):
    assert exact_match(prediction, golds) == expected


def test_single_str_gold_is_not_split_into_characters():
    assert exact_match("l", "Lima") == 0.0
    assert f1_score("l", "Lima") == 0.0
    assert sub_em("l", "Lima") == 0.0


# --------------------------------------------------------------------------- F1


def test_f1_partial_credit_by_hand():
    # pred tokens [capital, city, lima], gold tokens [lima, peru]: 1 common token.
    # precision 1/3, recall 1/2, F1 = 2 * (1/3 * 1/2) / (1/3 + 1/2) = (1/3) / (5/6) = 0.4
    assert f1_score("the capital city, Lima", "Lima (Peru)") == pytest.approx(0.4)


def test_f1_counts_multiplicity():
    # pred [lima, lima], gold [lima]: common = min(2, 1) = 1; P = 1/2, R = 1 -> F1 = 2/3.
    assert f1_score("Lima Lima", "Lima") == pytest.approx(2 / 3)
    # pred [new, york, new], gold [new, york, city]: common = 2; P = R = 2/3 -> F1 = 2/3.
    assert f1_score("New York New", "New York City") == pytest.approx(2 / 3)


def test_f1_max_over_golds():
    # vs "Peru": 0. vs "Lima Peru": P = 1, R = 1/2 -> 2/3. vs "the Lima": exact -> 1.
    assert f1_score("Lima", ["Peru", "Lima Peru"]) == pytest.approx(2 / 3)
    assert f1_score("Lima", ["Peru", "Lima Peru", "the Lima"]) == 1.0


@pytest.mark.parametrize(
    ("prediction", "golds", "expected"),
    [
        ("", "", 1.0),  # SQuAD v2: both empty
        ("a the", "", 1.0),
        ("", "Lima", 0.0),
        ("Lima", "", 0.0),
        ("Lima", [], 0.0),
        ("Cusco", "Lima", 0.0),
        ("no", "no way", 0.0),  # HotpotQA: yes/no/noanswer need an exact match
        ("yes it is", "yes", 0.0),
        ("no", "No.", 1.0),
        ("Bogota", "Bogotá", 0.0),
    ],
)
def test_f1_conventions(prediction, golds, expected):
    assert f1_score(prediction, golds) == pytest.approx(expected)


@settings(max_examples=300)
@given(st.text(max_size=30), st.lists(st.text(max_size=30), min_size=1, max_size=3))
def test_score_ordering_properties(pred, golds):
    em, f1, sem = exact_match(pred, golds), f1_score(pred, golds), sub_em(pred, golds)
    assert 0.0 <= f1 <= 1.0
    assert em in (0.0, 1.0) and sem in (0.0, 1.0)
    if em == 1.0:
        assert f1 == 1.0 and sem == 1.0


# --------------------------------------------------------------------------- substring EM


@pytest.mark.parametrize(
    ("prediction", "golds", "expected"),
    [
        ("It is Lima, of course.", "lima", 1.0),
        ("Lima", "Lima", 1.0),
        ("Limassol", "Lima", 0.0),  # token boundaries
        ("Santa Lima Peru", "lima peru", 1.0),
        ("the Lima", ["Cusco", "The LIMA"], 1.0),
        ("Lima", "Lima Peru", 0.0),  # gold must be inside the prediction
        ("anything", "", 0.0),  # empty gold matches only an empty prediction
        ("", "", 1.0),
        ("Lima", [], 0.0),
    ],
)
def test_sub_em(prediction, golds, expected):
    assert sub_em(prediction, golds) == expected


# --------------------------------------------------------------------------- components


def test_score_answer():
    c = score_answer("the capital city, Lima", ["Lima (Peru)"], format_ok=True)
    assert c.em == 0.0 and c.f1 == pytest.approx(0.4) and c.sub_em == 0.0 and c.format_ok


def test_score_answer_none_is_all_zero():
    assert score_answer(None, ["Lima"], format_ok=True) == RewardComponents(0.0, 0.0, 0.0, False)


# --------------------------------------------------------------------------- presets

CORRECT_OK = RewardComponents(em=1.0, f1=1.0, sub_em=1.0, format_ok=True)
CORRECT_BAD = RewardComponents(em=1.0, f1=1.0, sub_em=1.0, format_ok=False)
PARTIAL_OK = RewardComponents(em=0.0, f1=0.4, sub_em=1.0, format_ok=True)
PARTIAL_BAD = RewardComponents(em=0.0, f1=0.4, sub_em=1.0, format_ok=False)
WRONG_OK = RewardComponents(em=0.0, f1=0.0, sub_em=0.0, format_ok=True)
WRONG_BAD = RewardComponents(em=0.0, f1=0.0, sub_em=0.0, format_ok=False)
CASES = [CORRECT_OK, CORRECT_BAD, PARTIAL_OK, PARTIAL_BAD, WRONG_OK, WRONG_BAD]

TABLE = {
    "em": [1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
    "f1": [1.0, 1.0, 0.4, 0.4, 0.0, 0.0],
    "sub_em": [1.0, 1.0, 1.0, 1.0, 0.0, 0.0],
    "research": [1.0, 0.0, 0.4, 0.0, 0.1, 0.0],
    "searchr1_format": [1.0, 0.8, 0.2, 0.0, 0.2, 0.0],
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_preset_value_table(name):
    fn = get_reward_fn(name)
    assert [fn(c) for c in CASES] == pytest.approx(TABLE[name])
    assert all(isinstance(fn(c), float) for c in CASES)


def test_table_covers_every_preset():
    assert set(TABLE) == set(REWARD_PRESETS)


def test_default_em_preset_end_to_end():
    fn = get_reward_fn("em")
    assert fn(score_answer("The Lima", ["lima"], format_ok=False)) == 1.0
    assert fn(score_answer("Cusco", ["lima"], format_ok=True)) == 0.0


def test_get_reward_fn_passes_callables_through():
    def custom(c: RewardComponents) -> float:
        return 2 * c.f1

    assert get_reward_fn(custom) is custom


def test_get_reward_fn_unknown_name():
    with pytest.raises(ValueError) as e:
        get_reward_fn("x")
    assert str(e.value) == (
        "unknown reward preset 'x'; expected one of: em, f1, sub_em, research, searchr1_format"
    )


def test_get_reward_fn_wrong_type():
    with pytest.raises(TypeError):
        get_reward_fn(3)  # type: ignore[arg-type]
