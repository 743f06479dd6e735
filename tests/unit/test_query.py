import pytest

from seglens.core.query import MAX_KEYWORDS, parse_query


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
