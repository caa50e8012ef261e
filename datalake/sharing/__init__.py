"""Open sharing: whole tables to pandas, Spark and BI tools over the Delta Sharing protocol.

How the lake maps onto the protocol (docs/SHARING.md):

- one share, `lake`; its schemas are the resource kinds, `tables` (PostgreSQL tables)
  and `files` (raw folders, `raw_<source>`); the tables of a schema are the resources
  of that kind the recipient (the token's user) may `read`;
- a versioned table's Delta version is the portal's version; unversioned tables and
  raw folders are shared at their current state only (409 `versioning_disabled` for
  time travel and the change feed);
- what a recipient reads is what its `read` grant allows, as in the rows API: hidden
  columns are not in the schema nor in the files, rows outside its row filter are not
  in the files, masked columns hold the rows API's pseudonyms.

The modules: `schema` (Arrow and Spark types of a resource as a recipient sees it),
`snapshots` (the Parquet files of a table version per restriction, written once and
shared by every recipient with that restriction), `changes` (the change feed's
files), `links` (pre-signed, expiring file URLs), `shares` (the share/schema/table
mapping and version resolution). `api/` is the HTTP protocol.
"""
