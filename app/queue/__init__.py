"""The annotation queue: an annotator's next assignment in a batch, their submit and skip.

Callers use app/queue/front.py only; it picks the backend. SQLite runs the ORM implementation
(orm.py); PostgreSQL runs the functions whose canonical source is sql/*.sql (postgres.py calls
them). Refusals are written once, in messages.py, as codes the SQL returns and texts Python
gives them. docs/contributors/queue.md is the contributor's guide (changing a function:
edit its .sql file, add a migration with a frozen copy; a test compares the installed
functions with the files).

Excluded annotations (exclusion.py, an admin's or a reviewer's decision) give their slot
back: `taken` and `submitted` count only counted annotations, so the item is served again
until it holds k of them. An excluded member is never served (next and submit refuse them).

Promises: an annotator never gets the same item twice in a batch; an item never has more than
`overlap` live-or-submitted assignments; an unexpired lease is handed back to its holder;
expired leases are reclaimed; an acknowledged annotation is never lost or doubled.

The order of work (sqlite: orm._claim_statement; PostgreSQL: sql/claim.sql): breadth-first,
items closest to k first (highest `taken` first, k = the batch's overlap), and among equals a
per-annotator rotation of the batch's random `shuffle_key` order: each annotator starts at their
own point of the shuffled ring (order.rotation_start, safepref_rotation), so people spread
over the batch instead of colliding on the same rows. Gold items are outside that order: while
ordinary work is left for the caller, each claim is, with probability `batch.gold_rate`,
swapped for a gold item the caller has not seen, whatever its `taken`.

How the promises hold on one PostgreSQL shared by several processes (READ COMMITTED):
- `batch_items.taken` counts live leases plus submitted assignments. It only changes under the
  row lock of that batch item, and a claim only picks rows with `taken < overlap`, locked with
  `FOR NO KEY UPDATE SKIP LOCKED`: two claimers never wait on, nor both take, the last slot.
- The caller's `batch_members` row is locked first: one queue operation per (batch, annotator)
  at a time, so two tabs of one person cannot both claim, and the unique (batch, item,
  annotator) constraint is never raced.

Lock order, everywhere (both implementations; this is the one place it is written):
  1. the caller's membership row (batch_members), the per-annotator lock;
  2. assignments;
  3. batch_items, several in ascending item id.
Sweeps take leased assignments with SKIP LOCKED and never wait on anyone. One step looks like
an exception and is not: a claim locks the batch item it picks (3) and then writes an
assignment of the caller's own (a new row, or their expired lease of that item revived). No
one else can hold that row: assignments are only locked by their annotator's operations, which
hold the membership lock (1) that the claim holds, or by sweeps, which take only leased rows.
On SQLite `BEGIN IMMEDIATE` (app/db.py) serialises writers and the row locks are no-ops.
"""
