"""Tables in notebooks: strings as plain text, not polars' quoted reprs."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from eventlog.notebook import frame_html, plain_tables


def test_strings_show_without_quotes_and_are_escaped() -> None:
    frame = pl.DataFrame({"item": ['Cloak of "Whispers"', "<b>Salt; Pepper & Ash</b>"], "quantity": [1, 2]})
    page = frame_html(frame)
    assert "<td>Cloak of &quot;Whispers&quot;</td>" in page
    assert "<td>&lt;b&gt;Salt; Pepper &amp; Ash&lt;/b&gt;</td>" in page
    assert "<td class='num'>2</td>" in page
    assert "&quot;Cloak" not in page  # polars' own HTML would open the cell with a quote


def test_nulls_lists_and_times_read_as_values() -> None:
    frame = pl.DataFrame({"origins": [["cave", "tower"], None],
                          "at": [dt.datetime(2024, 3, 1, 12, tzinfo=dt.timezone.utc), None]})
    page = frame_html(frame)
    assert "<td>[cave, tower]</td>" in page and "<td>2024-03-01 12:00:00 UTC</td>" in page
    assert page.count("<td class='null'>null</td>") == 2
    assert "datetime[μs, UTC]" in page


def test_a_long_frame_is_cut_in_the_middle_with_its_full_shape() -> None:
    page = frame_html(pl.DataFrame({"n": list(range(100))}), max_rows=4)
    assert "shape: (100, 1)" in page
    assert page.count("<tr>") == 1 + 4 + 1  # header, 4 rows, the cut
    assert "<td class='num'>99</td>" in page and "<td class='num'>50</td>" not in page


def test_plain_tables_needs_a_notebook() -> None:
    with pytest.raises(RuntimeError, match="in a notebook"):
        plain_tables()
