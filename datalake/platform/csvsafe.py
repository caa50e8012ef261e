"""Cells of CSV exports that a spreadsheet would run as a formula, made inert.

A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula
(or becomes one) in Excel, LibreOffice and Google Sheets: `=HYPERLINK(...)` in a
product name would run on the reader's machine. Such a cell gets a leading `'`
(OWASP's advice), which spreadsheets show as text. Numbers are left as they are: a
negative amount is data, not a formula.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """`value`, with a `'` in front when it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(values) -> list:
    return [safe_cell(v) for v in values]


def safe_column(column):
    """`safe_cell` over a pyarrow text column, vectorised (exports stream millions)."""
    import pyarrow.compute as pc

    pattern = "^[" + "".join("\\" + c if c in "-\\]^" else c for c in FORMULA_STARTS) + "]"
    formulas = pc.match_substring_regex(column, pattern)
    if not pc.any(formulas).as_py():  # the usual case: nothing to copy
        return column
    return pc.if_else(formulas, pc.binary_join_element_wise("'", column, ""), column)
