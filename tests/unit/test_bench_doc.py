"""`make bench` regenerates docs/benchmarks.md; the hand-written blocks it marks as kept
(measurements made by hand, choices and their history) survive the regeneration."""

from __future__ import annotations

from benchmarks.run import KEPT_END, KEPT_START, merge_kept

OLD = f"""# Benchmarks

old generated intro

## Stages

| old table |

## Backend

| old backend table |

{KEPT_START}

### Fifth pass

by hand, 2.31x

{KEPT_END}

## Gone

{KEPT_START}
a note whose section the new doc lacks
{KEPT_END}
"""

NEW = """# Benchmarks

new generated intro

## Stages

| new table |

## Backend

| new backend table |

## Ray

| ray |
"""


def test_generated_parts_are_replaced_and_kept_blocks_stay_in_their_sections():
    merged = merge_kept(OLD, NEW)
    assert "old generated intro" not in merged and "old table" not in merged
    assert "old backend table" not in merged
    sections = merged.split("\n## ")
    backend = next(s for s in sections if s.startswith("Backend"))
    assert backend.index("new backend table") < backend.index("### Fifth pass") < backend.index(KEPT_END)
    assert "by hand, 2.31x" in backend
    assert "| ray |" in next(s for s in sections if s.startswith("Ray"))
    # A block whose section is gone is not lost: it comes last, under its old heading.
    assert sections[-1].startswith("Gone") and "a note whose section the new doc lacks" in sections[-1]


def test_merging_twice_changes_nothing_more():
    once = merge_kept(OLD, NEW)
    assert merge_kept(once, NEW) == once
    assert merge_kept(NEW, NEW) == NEW  # nothing kept: the generated doc as it is
