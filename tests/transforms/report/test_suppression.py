"""Small-cell and complementary suppression of the report's counts."""

from __future__ import annotations

from transforms.report.suppression import (NOT_APPLICABLE, SUPPRESSED, WITHHELD, Cells, count_cell,
                                           derived_cell, part_cell, protect)


def test_count_and_derived_cells():
    assert [count_cell(n) for n in (0, 1, 10, 11, 250)] == ["0", SUPPRESSED, SUPPRESSED, "11", "250"]
    assert derived_cell(0.5, (40, 20)) == "0.50"
    assert derived_cell(0.1, (40, 4)) == WITHHELD
    assert derived_cell(None, (0, 0)) == NOT_APPLICABLE
    # A part beside its whole: withheld when the remainder is a small cell.
    assert [part_cell(p, 40) for p in (0, 5, 29, 35, 40)] == [
        "0", SUPPRESSED, "29", WITHHELD, "40"]


def test_a_lone_suppressed_cell_gets_a_partner_in_its_row_and_column():
    # 3 | 40 | 12 || 55        The 3 is small; hiding the 12 as well (smallest other
    # 20| 30 | 25 || 75        non-zero cell of the row) leaves two unknowns in the row,
    # ---------------------    but the 12's and the 3's columns then each have one, so a
    # 23| 70 | 37 || 130       second row's cells go too.
    counts = {(0, 0): 3, (0, 1): 40, (0, 2): 12, (1, 0): 20, (1, 1): 30, (1, 2): 25}
    cells = Cells()
    cells.grid("t", [0, 1], [0, 1, 2], counts)
    hidden = cells.resolve()
    assert ("t", 0, 0) in hidden and ("t", 0, 2) in hidden
    assert ("t", 1, 0) in hidden and ("t", 1, 2) in hidden
    assert ("t", 0, 1) not in hidden and ("t", "Total", "Total") not in hidden
    assert [cells.show(("t", 0, c)) for c in (0, 1, 2)] == [SUPPRESSED, "40", WITHHELD]
    for members in cells.equations:
        assert sum(m in hidden for m in members) != 1
    # Nothing small, nothing hidden; two small cells in one row protect each other.
    assert protect({"a": 30, "b": 12, "t": 42}, [["a", "b", "t"]]) == set()
    assert protect({"a": 3, "b": 4, "c": 12, "t": 19}, [["a", "b", "c", "t"]]) == {"a", "b"}
