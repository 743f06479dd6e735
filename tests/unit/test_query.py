import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seglens.core.query import (
    KEYWORD_PRESENT_PATTERN,
    MAX_KEYWORD_CHARS,
    MAX_KEYWORDS,
    QUERY_PATTERN,
    parse_query,
)


def test_parse_query_splits_on_commas_and_semicolons():
    q = parse_query("cat, dog;bicycle ，  猫；狗")
    assert q.keywords == ("cat", "dog", "bicycle", "猫", "狗")
    assert q.exclusions == ()


def test_parse_query_reads_exclusions_and_collapses_whitespace():
    q = parse_query("  red   car , -green grass, - sky ")
    assert q.keywords == ("red car",)
    assert q.exclusions == ("green grass", "sky")


def test_parse_query_drops_case_insensitive_duplicates_keeping_order():
    assert parse_query("Dog, cat, dog, CAT").keywords == ("Dog", "cat")


@pytest.mark.parametrize("text", ["", " , ; ", "-grass", "-a, -b"])
def test_parse_query_without_keywords_raises(text):
    with pytest.raises(ValueError, match="no keywords"):
        parse_query(text)


def test_parse_query_with_too_many_keywords_raises():
    with pytest.raises(ValueError, match="at most"):
        parse_query(", ".join(f"k{i}" for i in range(MAX_KEYWORDS + 1)))


def test_parse_query_with_overlong_keyword_raises():
    with pytest.raises(ValueError, match="longer than"):
        parse_query("x" * 200)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x0b", "\x1f", "\x7f", "\x85", "\ud800"])
def test_parse_query_with_a_control_character_raises(char):
    with pytest.raises(ValueError, match=f"(control character|unpaired surrogate) U\\+{ord(char):04X}"):
        parse_query(f"cat, d{char}og")


def test_parse_query_reads_tabs_and_line_breaks_as_whitespace_and_separators():
    assert parse_query("cat\tblack\r\ndog\n-grass").keywords == ("cat black", "dog")


def test_parse_query_keeps_a_term_given_both_ways_as_a_keyword():
    q = parse_query("-cat, cat, dog, -dog, -grass")
    assert q.keywords == ("cat", "dog") and q.exclusions == ("grass",)


def test_parse_query_counts_terms_as_written_and_measures_them_without_the_dash():
    with pytest.raises(ValueError, match="at most"):
        parse_query(", ".join(["cat"] * (MAX_KEYWORDS + 1)))
    assert parse_query(f"cat, - {'x' * MAX_KEYWORD_CHARS}").exclusions == ("x" * MAX_KEYWORD_CHARS,)


_PIECES = [",", ";", "，", "、", "\n", " ", "  ", "\t", "\r", "\u3000", "-", "−", "- ", "cat", "Cat", "a b",
           "x" * 39, "y" * 40, "\x00", "\x85", "\x0b", "猫", "é"]  # fmt: skip


def _accepted_by_patterns(text: str) -> bool:
    return bool(re.search(QUERY_PATTERN, text) and re.search(KEYWORD_PRESENT_PATTERN, text))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.lists(st.sampled_from(_PIECES), max_size=90).map("".join), st.text(max_size=120)))
def test_query_patterns_accept_exactly_what_parse_query_accepts(text):
    """The API's schema states the parser's rules (docs/api.md): a text matches both
    patterns if and only if `parse_query` accepts it."""
    try:
        parse_query(text)
        accepted = True
    except ValueError:
        accepted = False
    assert _accepted_by_patterns(text) == accepted, repr(text)
