"""The data dictionary: every published table and column described, from contracts and models."""

from __future__ import annotations

import duckdb

from leadhub.core.contracts import load_contracts
from transforms.dictionary import (PART2_NOTICE, PART2_TABLES, UNDESCRIBED, describe,
                                  sql_table_descriptions, undescribed)
from transforms.publish import SNAPSHOT_INFO_COLUMNS, published_columns, published_dir, snapshot_path


def snapshot_columns(settings) -> dict[tuple[str, str], list[str]]:
    with duckdb.connect(str(snapshot_path(settings)), read_only=True) as con:
        tables = published_columns(con)
    return tables


def test_every_published_table_and_column_is_described(demo_hub):
    tables = snapshot_columns(demo_hub)
    assert ("ops", "snapshot_info") in tables and len(tables) > 20
    assert undescribed(tables, describe(tables)) == []
    # The same descriptions are stored in the snapshot, for tools that list columns.
    with duckdb.connect(str(snapshot_path(demo_hub)), read_only=True) as con:
        blank = con.execute("""SELECT schema_name || '.' || table_name || '.' || column_name
            FROM duckdb_columns() WHERE database_name = current_database()
              AND coalesce(comment, '') = ''""").fetchall()
        blank_tables = con.execute("""SELECT schema_name || '.' || table_name FROM duckdb_tables()
            WHERE database_name = current_database() AND coalesce(comment, '') = ''""").fetchall()
    assert blank == [] and blank_tables == []


def test_dictionary_files_list_every_column(demo_hub):
    tables = snapshot_columns(demo_hub)
    markdown = (published_dir(demo_hub) / "data_dictionary.md").read_text()
    page = (published_dir(demo_hub) / "data_dictionary.html").read_text()
    assert UNDESCRIBED not in markdown and UNDESCRIBED not in page
    for (schema, table), columns in tables.items():
        assert f"## `{schema}.{table}`" in markdown
        assert f'id="{schema}.{table}"' in page
        for column in columns:
            assert f"| `{column}` |" in markdown
    assert list(tables[("ops", "snapshot_info")]) == list(SNAPSHOT_INFO_COLUMNS)
    # The snapshot holds treatment records: the Part 2 notice ships with it and on those tables.
    assert PART2_NOTICE in markdown and PART2_NOTICE in page
    assert (published_dir(demo_hub) / "PART2_NOTICE.txt").read_text().strip() == PART2_NOTICE
    described = describe(tables)
    for table in PART2_TABLES:
        assert PART2_NOTICE in described[table][""], table
    for external in ("http://", "https://", "<script"):
        assert external not in page


def test_descriptions_come_from_contracts_and_model_comments():
    contract = load_contracts()["police_referrals"]
    described = describe({("core", "referral"): ["referral_date", "person_key"],
                          ("marts", "outcomes"): ["jail_days_after", "felony_charges_before"],
                          ("marts", "outcomes_summary"): ["arrests_after_mean"]})
    assert described[("core", "referral")]["referral_date"].startswith(
        contract.column("referral_date").description)
    assert "police referrals extract" in described[("core", "referral")][""]
    assert "10_core_referral.sql" in described[("core", "referral")][""]
    assert "felony charges" in described[("marts", "outcomes")]["felony_charges_before"]
    assert described[("marts", "outcomes_summary")]["arrests_after_mean"].startswith("Mean per person")
    # Every table a model file builds has a comment block above it.
    from_sql = sql_table_descriptions()
    assert {("core", "referral"), ("marts", "cohort"), ("marts", "jc_jail"), ("marts", "equity")} <= set(from_sql)
    assert all(len(text) > 40 for text in from_sql.values())


def test_dictionary_has_linked_contents_and_each_columns_disclosure(demo_hub):
    import re

    tables = snapshot_columns(demo_hub)
    markdown = (published_dir(demo_hub) / "data_dictionary.md").read_text()
    page = (published_dir(demo_hub) / "data_dictionary.html").read_text()
    contents = markdown.index("## Contents")
    assert contents < markdown.index("## `")  # before the first table
    for schema, table in tables:
        name = f"{schema}.{table}"
        # every table is listed once in the contents, linked to its own anchor
        assert markdown.count(f"[`{name}`](#{name})") == 1 and f'<a id="{name}"></a>' in markdown
        assert page.count(f'<a href="#{name}">') == 1 and f'id="{name}"' in page
    linked = set(re.findall(r'<a href="#([^"]+)">', page))
    anchors = set(re.findall(r'id="([^"]+)"', page))
    assert linked <= anchors and len(linked) == len(tables) + 1  # and "Contents" back links
    # Each column's level, as the snapshot applies it.
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \|", markdown, re.M)}
    assert rows["booking_ts"] == "quasi-identifier: to the year, first day shown"
    assert rows["officer_id"] == "quasi-identifier: keyed pseudonym (snapshot key)"
    assert rows["charge_count"] == "plain"
    assert "<td>quasi-identifier: keyed pseudonym (snapshot key)</td>" in page
    # ... and in the snapshot's own column comments.
    with duckdb.connect(str(snapshot_path(demo_hub)), read_only=True) as con:
        comment = con.execute("""SELECT comment FROM duckdb_columns() WHERE schema_name = 'core'
            AND table_name = 'arrest' AND column_name = 'arrest_id'""").fetchone()[0]
    assert comment.endswith("Disclosure: quasi-identifier: keyed pseudonym (snapshot key).")
