"""Our action parser (``research_env.actions``): segment text to Search / Answer / Invalid.

Hand-written cases for each rule and invalid reason, property tests (hypothesis) that no text
crashes the parser, and 10 MB segments that must parse in well under a second. One file past
~400 lines: the parser's whole contract (docs/actions.md) is checked here, rule by rule.
"""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research_env.actions import (
    INVALID_REASONS,
    STOP_STRINGS,
    Answer,
    Invalid,
    Search,
    extract_boxed,
    parse_action,
    truncate_at_action,
)
from research_env.format_check import FORMAT_REASONS, check_research_format, check_searchr1_format

# --------------------------------------------------------------------------- well-formed actions


def test_research_search_with_think():
    a = parse_action("<think>I need Peru's capital.</think>\n<search>capital of Peru</search>")
    assert a == Search(query="capital of Peru", think="I need Peru's capital.", truncated=False)


def test_research_boxed_answer():
    a = parse_action("<think>It is Lima.</think><answer>The answer is \\boxed{Lima}.</answer>")
    assert isinstance(a, Answer)
    assert (a.text, a.boxed, a.think) == ("Lima", True, "It is Lima.")
    assert a.raw == "The answer is \\boxed{Lima}."
    assert a.truncated is False


def test_searchr1_style_whitespace_and_newlines_inside_tags():
    a = parse_action("<think>\nhmm\n</think>\n<search>\n  capital\n\tof   Peru \n</search>")
    assert a == Search(query="capital of Peru", think="hmm")
    b = parse_action("<answer> Lima </answer>")
    assert b == Answer(text="Lima", raw=" Lima ", boxed=False, think=None)


def test_tag_names_are_case_insensitive_and_allow_space_before_gt():
    assert parse_action("<SEARCH>Peru</Search >") == Search(query="Peru")
    assert parse_action("<Answer >\\boxed{Lima}</ANSWER>") == Answer("Lima", "\\boxed{Lima}", True)


def test_case_folding_is_ascii_only():
    # With Unicode case folding the long s "ſ" would match "s": it must not be a tag.
    assert parse_action("<ſearch>x</ſearch>").reason == "no_action_tag"
    # The Kelvin sign folds to "k" under Unicode rules; no tag contains a k, but be explicit.
    assert parse_action("<search>\u212a</search>") == Search(query="\u212a")


def test_unicode_query_and_answer_survive():
    q = "Bogotá 波哥大 Москва 🇨🇴 مرحبا"
    assert parse_action(f"<search>{q}</search>") == Search(query=q)
    a = parse_action("<answer>\\boxed{São Tomé}</answer>")
    assert isinstance(a, Answer) and a.text == "São Tomé"


def test_tags_inside_words_are_not_tags():
    assert parse_action("<searching>x</searching>").reason == "no_action_tag"
    assert parse_action("<search-query>x</search-query>").reason == "no_action_tag"


# --------------------------------------------------------------------------- \boxed{}


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("\\boxed{\\text{Lima}}", "Lima"),
        ("\\boxed{\\textbf{Lima}}", "Lima"),
        ("\\boxed{ \\mathrm{Lima} }", "Lima"),
        ("$\\boxed{1{,}285{,}216}$", "1{,}285{,}216"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\text{San} \\text{José}}", "\\text{San} \\text{José}"),  # not one wrapper
        ("first \\boxed{Cusco}, finally \\boxed{Lima}", "Lima"),  # the last one
        ("\\boxed {Lima}", "Lima"),
        ("\\boxed{a \\} b}", "a \\} b"),  # escaped brace is literal
        ("\\boxed{Lima} and a broken \\boxed{Cusco", "Lima"),  # unbalanced last: earlier one
    ],
)
def test_boxed_extraction(content, text):
    a = parse_action(f"<answer>{content}</answer>")
    assert isinstance(a, Answer)
    assert a.boxed is True
    assert a.text == text


def test_unbalanced_boxed_falls_back_to_whole_content():
    a = parse_action("<answer>\\boxed{Lima</answer>")
    assert a == Answer(text="\\boxed{Lima", raw="\\boxed{Lima", boxed=False)


def test_extract_boxed_none_without_boxed():
    assert extract_boxed("Lima") is None
    assert extract_boxed("\\boxed Lima") is None
    assert extract_boxed("\\boxed{}") == ""


def test_deeply_nested_wrappers_stop_after_a_few_unwraps():
    content = "\\text{" * 10 + "x" + "}" * 10
    out = extract_boxed("\\boxed{" + content + "}")
    assert out is not None and out.endswith("x" + "}" * 6) and out.startswith("\\text{")


# --------------------------------------------------------------------------- precedence


def test_first_closing_tag_wins_search_then_answer():
    assert parse_action("<search>q</search><answer>a</answer>") == Search(query="q")


def test_first_closing_tag_wins_answer_then_search():
    a = parse_action("<answer>a</answer><search>q</search>")
    assert isinstance(a, Answer) and a.text == "a"


def test_trailing_hallucinated_result_is_ignored():
    seg = "<search>q</search><result>made up</result><answer>a</answer>"
    assert parse_action(seg) == Search(query="q")
    assert truncate_at_action(seg) == "<search>q</search>"


def test_stuttered_opener_uses_last_opener_like_research():
    assert parse_action("<search>first <search>second</search>") == Search(query="second")


def test_two_complete_searches_first_wins():
    assert parse_action("<search>one</search> <search>two</search>") == Search(query="one")


def test_think_is_the_last_think_block_before_the_action():
    seg = "<think>a</think> text <think>b</think><search>q</search>"
    assert parse_action(seg) == Search(query="q", think="b")


def test_unclosed_think_runs_up_to_the_action():
    assert parse_action("<think>plan <search>q</search>") == Search(query="q", think="plan")


def test_prefilled_think_opener():
    # The prompt ended with "<think>": the segment starts inside the think block.
    assert parse_action("reasoning</think><search>q</search>") == Search(
        query="q", think="reasoning"
    )


def test_no_think_is_none_and_empty_think_is_empty():
    assert parse_action("<search>q</search>").think is None
    assert parse_action("<think></think><search>q</search>").think == ""


def test_answer_tag_inside_think_still_answers():
    # No escaping: a closing action tag anywhere is where generation would have stopped.
    a = parse_action("<think>maybe <answer>Lima</answer>")
    assert isinstance(a, Answer) and a.text == "Lima" and a.think == "maybe"


# --------------------------------------------------------------------------- invalid


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        ("", "no_action_tag"),
        ("just thinking", "no_action_tag"),
        ("<think>only thoughts</think>", "no_action_tag"),
        ("<search>foo", "unclosed_tag"),
        ("<answer>Lima", "unclosed_tag"),
        ("<think>x</think><search>capital of", "unclosed_tag"),
        ("foo</search>", "unopened_tag"),
        ("<search>q</answer>", "unopened_tag"),
        ("<search><answer>x</answer></search>", "nested_tags"),
        ("<answer><search>x</search></answer>", "nested_tags"),
        ("<answer>x <search>q</search>", "nested_tags"),
        ("<search><result>x</result></search>", "nested_tags"),
        ("<search>a <think>b</think> c</search>", "nested_tags"),
        ("<answer><information>x</answer>", "nested_tags"),
        ("<search></search>", "empty_query"),
        ("<search> \n\t </search>", "empty_query"),
        ("<search>\x00\x01\x7f</search>", "empty_query"),
        ("<answer></answer>", "empty_answer"),
        ("<answer>   </answer>", "empty_answer"),
        ("<answer>\\boxed{}</answer>", "empty_answer"),
        ("<answer>\\boxed{ \\text{ } }</answer>", "empty_answer"),
    ],
)
def test_invalid_reasons(segment, reason):
    a = parse_action(segment)
    assert isinstance(a, Invalid)
    assert a.reason == reason
    assert a.reason in INVALID_REASONS
    assert a.detail


def test_unclosed_detail_gives_position():
    a = parse_action("<think>x</think><search>foo")
    assert a == Invalid("unclosed_tag", "<search> opened at char 16 but never closed")


def test_non_str_input_is_invalid_not_an_exception():
    assert parse_action(None).reason == "not_text"  # type: ignore[arg-type]
    assert parse_action(b"<search>q</search>").reason == "not_text"  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_bad_caps_raise(bad):
    with pytest.raises(ValueError, match="max_query_chars"):
        parse_action("<search>q</search>", max_query_chars=bad)
    with pytest.raises(ValueError, match="max_answer_chars"):
        parse_action("<search>q</search>", max_answer_chars=bad)


# --------------------------------------------------------------------------- cleaning and caps


def test_control_characters_and_lone_surrogates_are_stripped_from_query():
    a = parse_action("<search>cap\x00ital\x07 of\ud800 Peru\x1b</search>")
    assert a == Search(query="capital of Peru")
    a.query.encode("utf-8")  # always encodable


def test_query_is_capped_and_truncation_recorded():
    a = parse_action("<search>" + "abc " * 1000 + "</search>", max_query_chars=10)
    assert a == Search(query="abc abc ab", truncated=True)
    b = parse_action("<search>abcdefghij</search>", max_query_chars=10)
    assert b == Search(query="abcdefghij", truncated=False)


def test_query_cap_counts_cleaned_characters():
    # 20 NULs then 5 letters: the NULs do not count against the cap.
    a = parse_action("<search>" + "\x00" * 20 + "hello</search>", max_query_chars=5)
    assert a == Search(query="hello", truncated=False)
    # Trailing whitespace beyond the cap is not a truncation.
    b = parse_action("<search>hello" + " " * 5000 + "</search>", max_query_chars=5)
    assert b == Search(query="hello", truncated=False)


def test_query_cap_with_sparse_content_matches_uncapped_cleaning():
    raw = ("\x00" * 3000 + "ab ") * 400
    a = parse_action(f"<search>{raw}</search>", max_query_chars=100)
    full = " ".join(raw.replace("\x00", "").split())
    assert a == Search(query=full[:100].rstrip(), truncated=True)


def test_answer_is_capped():
    a = parse_action("<answer>" + "x" * 50 + "</answer>", max_answer_chars=8)
    assert isinstance(a, Answer) and a.text == "x" * 8 and a.truncated and a.raw == "x" * 50


# --------------------------------------------------------------------------- robustness


@settings(max_examples=500)
@given(st.text())
def test_parse_action_never_raises_on_any_text(s):
    a = parse_action(s)
    assert isinstance(a, (Search, Answer, Invalid))
    if isinstance(a, Invalid):
        assert a.reason in INVALID_REASONS


_PIECES = st.sampled_from(
    [
        "<search>",
        "</search>",
        "<answer>",
        "</answer>",
        "<think>",
        "</think>",
        "<result>",
        "</result>",
        "<SEARCH >",
        "\\boxed{",
        "}",
        "{",
        "\\text{",
        "\x00",
        " ",
        "\n",
        "Lima",
        "é",
        "\ud800",
    ]
)


@settings(max_examples=1000)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=30).map("".join))
def test_parse_action_invariants_on_tag_soup(s):
    a = parse_action(s, max_query_chars=16)
    if isinstance(a, Search):
        assert a.query and a.query == a.query.strip() and len(a.query) <= 16
        assert "\x00" not in a.query and "\n" not in a.query
        a.query.encode("utf-8")
    elif isinstance(a, Answer):
        assert a.text and a.text == a.text.strip()
        assert a.raw in s
    else:
        assert a.reason in INVALID_REASONS
    # Only the part up to the first closing action tag matters.
    assert parse_action(truncate_at_action(s), max_query_chars=16) == a


def _timed(segment: str) -> float:
    t0 = time.perf_counter()
    parse_action(segment)
    return time.perf_counter() - t0


@pytest.mark.parametrize(
    "segment",
    [
        pytest.param("a" * 10_000_000, id="plain"),
        pytest.param("<" * 10_000_000, id="angle-brackets"),
        pytest.param("<search>" * 1_250_000 + "</search>", id="many-openers"),
        pytest.param("<search>" + "word " * 2_000_000 + "</search>", id="huge-query"),
        pytest.param(
            "<think>" + "é漢 " * 3_000_000 + "</think><answer>x</answer>", id="huge-think"
        ),
        pytest.param("<answer>\\boxed{" + "{" * 10_000_000 + "</answer>", id="brace-bomb"),
        pytest.param("<answer>" + "\\boxed{" * 1_400_000 + "</answer>", id="boxed-bomb"),
        pytest.param("<answer>" + "é漢😀 " * 2_000_000 + "</answer>", id="huge-unicode-answer"),
    ],
)
def test_10mb_segments_parse_well_under_a_second(segment):
    assert len(segment) >= 7_000_000
    assert min(_timed(segment) for _ in range(2)) < 1.0


def test_huge_query_is_truncated_prefix():
    a = parse_action("<search>" + "word " * 2_000_000 + "</search>")
    assert a == Search(query=("word " * 103)[:512].rstrip(), truncated=True)


# --------------------------------------------------------------------------- format check

RESULT = " <result>\nDoc 1 (Title: Peru) Lima is the capital.\n</result>"
GOOD = (
    "<think>I should search.</think>\n<search>capital of Peru</search>"
    + RESULT
    + "<think>Lima.</think>\n<answer>The answer is \\boxed{Lima}</answer>"
)


def test_format_ok():
    assert check_research_format(GOOD) == (True, "ok")


def test_format_ok_without_search():
    assert check_research_format("<think>I know.</think><answer>\\boxed{Lima}</answer>") == (
        True,
        "ok",
    )


def test_format_ok_with_prefilled_think():
    assert check_research_format(GOOD.removeprefix("<think>"))[0] is True


def test_format_ignores_tags_inside_results():
    resp = GOOD.replace("Lima is the capital.", "odd text <answer> </think> <search>")
    assert check_research_format(resp) == (True, "ok")


@pytest.mark.parametrize(
    ("response", "code"),
    [
        ("<answer>\\boxed{Lima}</answer>", "no_think"),
        ("<think>a</think>", "no_answer"),
        ("<think>a<answer>\\boxed{Lima}</answer>", "nested_tags"),
        ("<think>a</think></think><answer>\\boxed{Lima}</answer>", "unopened_tag"),
        ("<think>a</think><think>b<answer>\\boxed{L}</answer>", "nested_tags"),
        ("<think>a</think><answer>Lima</answer>", "no_boxed"),
        ("<think>a</think><answer>\\boxed{Lima</answer>", "no_boxed"),
        (
            "<think>a</think><answer>\\boxed{L}</answer><answer>\\boxed{L}</answer>",
            "multiple_answers",
        ),
        ("<think>a</think><answer>\\boxed{L}</answer><search>q</search>", "tag_after_answer"),
        ("<think>a</think><search>q</search><answer>\\boxed{L}</answer>", "search_without_result"),
        ("<think>a</think><search>q</search><search>r</search>" + RESULT, "search_without_result"),
        ("<think>a</think><search>q</search>", "search_without_result"),
        ("<think>a</think>" + RESULT + "<answer>\\boxed{L}</answer>", "result_without_search"),
        (
            "<think>a</think><search>q</search>" + RESULT + RESULT + "<answer>\\boxed{L}</answer>",
            "result_without_search",
        ),
        ("<think>a</think><search>q", "unclosed_tag"),
        ("<think>a</think><search>q</search> <result>\nx", "unclosed_tag"),
        ("<think>a <search>q</search></think><answer>\\boxed{L}</answer>", "nested_tags"),
    ],
)
def test_format_failures(response, code):
    ok, reason = check_research_format(response)
    assert ok is False
    assert reason.split(":")[0] == code
    assert code in FORMAT_REASONS


def test_format_case_insensitive():
    assert check_research_format(GOOD.upper().replace("\\BOXED", "\\boxed"))[0] is True


def test_searchr1_format_uses_information_and_no_boxed():
    resp = (
        "<think>a</think><search>q</search>\n\n<information>Doc 1 (Title: P) x\n</information>\n\n"
        "<think>b</think><answer> Lima </answer>"
    )
    assert check_searchr1_format(resp) == (True, "ok")
    # The ReSearch check sees no <result> after the search, and no \boxed.
    assert check_research_format(resp)[1].startswith("search_without_result")


def test_format_check_rejects_bad_observation_tag():
    with pytest.raises(ValueError):
        check_research_format(GOOD, observation_tag="search")
    with pytest.raises(ValueError):
        check_research_format(GOOD, observation_tag="<result>")


def test_format_check_non_str():
    assert check_research_format(None)[0] is False  # type: ignore[arg-type]


@settings(max_examples=500)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=30).map("".join))
def test_format_check_never_raises(s):
    ok, reason = check_research_format(s)
    assert reason.split(":")[0] in FORMAT_REASONS
    assert ok == (reason == "ok")


def test_format_check_10mb_is_fast():
    t0 = time.perf_counter()
    check_research_format("<" * 10_000_000)
    check_research_format("<think>" + "x" * 10_000_000 + "</think><answer>\\boxed{a}</answer>")
    assert time.perf_counter() - t0 < 2.0


def test_stop_strings():
    assert STOP_STRINGS == ("</search>", "</answer>")
