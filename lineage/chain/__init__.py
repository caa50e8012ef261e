"""The audit chain: the stored requests sealed in a hash chain, signed checkpoints of it
kept outside the database, and the verification that finds what was changed or lost.

- `encoding`: the canonical encoding of a stored request and the links of the chain;
- `keys`: the Ed25519 key that signs checkpoints (from the environment, never stored in
  the database) and the public keys that verify them;
- `checkpoints`: the signed checkpoint files, one per sealing round, never rewritten;
- `sealer`: a round (beat: `audit.seal`), one at a time under an advisory lock;
- `verify`: the chain recomputed from a trusted start, against the seals and checkpoints;
- `retention`, `export`, `redaction`: the three documented ways the chain is cut,
  copied and a body removed without the verification failing.

docs/AUDIT.md says what is proven and what is not.
"""
