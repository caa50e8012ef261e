"""The retail API over the UK online-retail tables: customers, invoices, items, stock codes.

Reads go through `selectors`, writes through `services` (each a new version of its
table, made by the merge every ingestion uses), the HTTP layer is `views`.
"""
