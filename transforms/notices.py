"""Notices the hub carries on what it publishes, defined once for every output."""

# 42 CFR 2.32(a)(2), the short form allowed on every disclosure of Part 2 records: on the
# report, its CSVs drawn from treatment records, the data dictionary and PART2_NOTICE.txt.
PART2_NOTICE = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
