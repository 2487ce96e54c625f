"""Emptying a session table fast, without stalling the requests that read and save sessions.

- PostgreSQL: TRUNCATE, which swaps the table's files in a few milliseconds. It needs a lock
  that waits for every open transaction that read the table, and while it waits it queues every
  new reader behind it, so each attempt gives up after LOCK_TIMEOUT_MS and is retried.
- MariaDB: TRUNCATE ... NOWAIT likewise. It commits by itself (it is DDL), so it runs before the
  transaction that records the logout.
- When the table stays busy, or cannot be truncated, batches of BATCH_ROWS rows by key order,
  each committed on its own, skipping rows another transaction has locked rather than waiting
  for them. Where foreign keys point at the table, batches from the start, of
  BATCH_ROWS_WITH_DEPENDENTS rows, each with what refers to its rows.
- SQLite, and anything else: one DELETE, which SQLite does quickly.

What the final transaction then finds (sessions saved meanwhile) goes in `remove_remaining()`.

Foreign keys to the session table (`Dependents`) follow Django's `on_delete`, in bulk SQL and
never `QuerySet.delete()`: before anything is removed, rows that PROTECT or RESTRICT, or that a
DO_NOTHING constraint would refuse, stop the release with a message naming the field; then,
with each batch of sessions and in its transaction, CASCADE deletes the rows that refer to them
(and, the same way, what cascades from those), SET_NULL, SET_DEFAULT and SET() update them;
DB_CASCADE and the like are the database's. The table is then never truncated: TRUNCATE would
refuse, or would skip the rules. Only DO_NOTHING without a constraint keeps the TRUNCATE.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, IntegrityError, connections, models, transaction
from django.db.models import Model, deletion

from release.exceptions import ReleaseError
from release.text import counted, one_line

BATCH_ROWS = 5_000
# With rows that refer to the sessions, each session costs about four times as much to remove
# (the rules, and the database's own checks of its foreign keys at COMMIT): smaller batches hold
# their sessions locked about as briefly.
BATCH_ROWS_WITH_DEPENDENTS = 1_000
LOCK_TIMEOUT_MS = 50
# Attempts at TRUNCATE, a short random pause apart: live requests hold the table only for the
# moment of a statement, so one of the first few attempts finds it free; a long transaction
# keeps it busy through all of them (about 4 s), and the rows go in batches instead.
TRUNCATE_ATTEMPTS = 40
TRUNCATE_PAUSE_S = (0.02, 0.08)
# Above this many rows (by PostgreSQL's own estimate) the summary reports the estimate instead
# of counting: an exact count of millions of rows costs more than the TRUNCATE.
EXACT_COUNT_UP_TO = 200_000
# A remaining row another transaction holds is waited for at most this long per attempt.
ROW_LOCK_TIMEOUT_S = 1
ROW_LOCK_ATTEMPTS = 5
# A batch that deadlocks with a live request (which locked a row that refers to a session, then
# the session) is rolled back by the database and tried again this many times.
DEADLOCK_ATTEMPTS = 5

# Called with the number of sessions removed so far and, where known, how many there were.
Progress = Callable[[int, int | None], None]


def no_progress(removed: int, total: int | None) -> None:
    """A Progress for callers that do not report it."""


@dataclass
class Removal:
    removed: int
    notes: list[str] = field(default_factory=list)


def _quoted(alias: str, model: type[Model]) -> tuple[str, str]:
    ops = connections[alias].ops
    key = model._meta.pk.column
    assert key is not None
    return ops.quote_name(model._meta.db_table), ops.quote_name(key)


def _error_code(error: DatabaseError) -> tuple[str | None, object]:
    cause = error.__cause__
    args: tuple[object, ...] = getattr(cause, "args", ())
    return getattr(cause, "sqlstate", None), args[0] if args else None


def is_lock_timeout(error: DatabaseError) -> bool:
    sqlstate, code = _error_code(error)
    return sqlstate == "55P03" or code == 1205  # lock_not_available; MariaDB lock wait timeout


def _is_deadlock(error: DatabaseError) -> bool:
    sqlstate, code = _error_code(error)
    return sqlstate == "40P01" or code == 1213


# The foreign keys that point at the session table ---------------------------------------------

Keys = list[Any] | None  # one batch of session keys, or None: every session
# Rows deleted or updated, by ("deleted" or "set", model or field, on_delete rule).
Done = Counter[tuple[str, str, str]]


@dataclass(frozen=True)
class Relation:
    """A foreign key `field` of `model` to `target`: the session model, or a model whose rows go
    with the sessions."""

    field: models.ForeignObject[Any, Any]
    model: type[Model]
    target: type[Model]

    @property
    def name(self) -> str:
        return f"{self.model._meta.label}.{self.field.name}"

    @property
    def rule(self) -> str:
        """`CASCADE`, `SET(gone)`: the on_delete as the model says it."""
        on_delete = self.field.remote_field.on_delete
        deconstruct = getattr(on_delete, "deconstruct", None)
        if deconstruct is not None and deconstruct()[0] == "django.db.models.SET":
            value = deconstruct()[1][0]
            return f"SET({getattr(value, '__name__', repr(value))})"
        return str(getattr(on_delete, "__name__", on_delete))

    @property
    def constrained(self) -> bool:
        return bool(getattr(self.field, "db_constraint", False))


# Why rows stop a release. Those in EXEMPT do not where the rows go too, by CASCADE from the
# sessions (Django's RESTRICT; a constraint is satisfied by rows deleted with what they refer to).
PROTECTED, RESTRICTED, CONSTRAINED, RECURSIVE, INHERITED, UNSUPPORTED = (
    "protected",
    "restricted",
    "constrained",
    "recursive",
    "inherited",
    "unsupported",
)
EXEMPT = {RESTRICTED, CONSTRAINED}


@dataclass(frozen=True)
class Check:
    relation: Relation
    why: str


@dataclass
class Dependents:
    """What `on_delete` asks of the rows that refer, directly or by cascade, to `model`'s rows.

    `cascades` holds each model whose rows go with the sessions, children before parents (the
    order they are deleted in), with the foreign keys it cascades by; `early`, the foreign keys
    by which such rows refer to rows that go although their own cascade comes in a later batch
    (RESTRICT, or DO_NOTHING with a constraint): they go with the first batch that needs it.
    """

    model: type[Model]
    cascades: dict[type[Model], list[Relation]] = field(default_factory=dict)
    updates: list[tuple[Relation, Callable[[], object]]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    early: dict[type[Model], list[Relation]] = field(default_factory=dict)
    # Left to the database: DB_CASCADE, DB_SET_NULL, DB_SET_DEFAULT, DO_NOTHING.
    database: list[Relation] = field(default_factory=list)
    direct: list[Relation] = field(default_factory=list)

    @property
    def acts(self) -> bool:
        """Whether the table must go in batches with its dependents: anything refers to it but
        DO_NOTHING without a constraint (which TRUNCATE leaves, as Django does)."""
        return any(
            relation.constrained or relation.rule != "DO_NOTHING" for relation in self.direct
        )

    @property
    def batch_rows(self) -> int:
        return BATCH_ROWS_WITH_DEPENDENTS if self.acts else BATCH_ROWS

    def describe(self) -> str:
        names = [f"{r.name}: {r.rule}" for r in self.direct]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return f"Foreign keys point at the table ({shown})"


def _relations_to(model: type[Model]) -> Iterator[Relation]:
    """The foreign keys and one-to-one fields that point at `model`'s own table, from any app,
    hidden ones and many-to-many through tables included (as Django's Collector finds them)."""
    concrete = model._meta.concrete_model
    assert concrete is not None
    for rel in model._meta.get_fields(include_hidden=True):
        if not (rel.auto_created and not rel.concrete and (rel.one_to_one or rel.one_to_many)):
            continue
        fk = rel.field  # type: ignore[union-attr]
        target = fk.related_model
        if target._meta.concrete_model is not concrete:  # to a parent's table (inheritance)
            continue
        dependent = fk.model._meta.concrete_model
        assert dependent is not None
        yield Relation(fk, dependent, concrete)


def _set_value(relation: Relation) -> Callable[[], object] | None:
    """What SET_NULL, SET_DEFAULT or SET(...) writes, or None for another rule."""
    on_delete = relation.field.remote_field.on_delete
    fk = relation.field
    if on_delete is models.SET_NULL:
        return lambda: None
    if on_delete is models.SET_DEFAULT:
        return fk.get_default
    deconstruct = getattr(on_delete, "deconstruct", None)
    if deconstruct is None or deconstruct()[0] != "django.db.models.SET":
        return None
    value = deconstruct()[1][0]
    return value if callable(value) else lambda: value


def _by_the_database(on_delete: object) -> bool:
    """Django 6.1's `db_on_delete` (DB_CASCADE, DB_SET_NULL...): the database's own action."""
    database_on_delete = getattr(deletion, "DatabaseOnDelete", None)  # absent before 6.1
    return database_on_delete is not None and isinstance(on_delete, database_on_delete)


def dependents(model: type[Model]) -> Dependents:
    """Every rule that applies when `model`'s rows go, found once from the models."""
    found = Dependents(model)
    state: dict[type[Model], str] = {}

    def visit(node: type[Model]) -> None:
        state[node] = "visiting"
        for relation in _relations_to(node):
            if node is model:
                found.direct.append(relation)
            on_delete = relation.field.remote_field.on_delete
            if on_delete is models.DO_NOTHING and not relation.constrained:
                continue  # left as it is, as Django leaves it (GenericRelation's too)
            if _by_the_database(on_delete):
                found.database.append(relation)
                continue
            if len(relation.field.local_related_fields) != 1:
                raise ReleaseError(
                    f"{relation.name} refers to {node._meta.label} by more than one column, "
                    "which the release cannot follow in bulk. Nobody was logged out."
                )
            if on_delete is models.CASCADE:
                child = relation.model
                if state.get(child) == "visiting":  # back to a model on the way here
                    found.checks.append(Check(relation, RECURSIVE))
                    continue
                found.cascades.setdefault(child, []).append(relation)
                if child not in state:
                    visit(child)
            elif (setter := _set_value(relation)) is not None:
                found.updates.append((relation, setter))
            elif on_delete is models.PROTECT:
                found.checks.append(Check(relation, PROTECTED))
            elif on_delete is models.RESTRICT:
                found.checks.append(Check(relation, RESTRICTED))
            elif on_delete is models.DO_NOTHING:
                found.checks.append(Check(relation, CONSTRAINED))
            else:
                found.checks.append(Check(relation, UNSUPPORTED))
        state[node] = "done"
        if node is not model:
            # Children first: every model that cascades from `node` is in already.
            found.cascades[node] = found.cascades.pop(node)

    visit(model)
    for node, relations in found.cascades.items():
        # Rows of a model with concrete parents go with their parents' rows only where they go
        # because those do (a child of the session model): Django would delete the parents'.
        parents = node._meta.parents
        for relation in relations:
            if parents and (relation.field not in parents.values() or len(parents) > 1):
                found.checks.append(Check(relation, INHERITED))
    for check in found.checks:
        if check.why in EXEMPT and check.relation.model in found.cascades:
            found.early.setdefault(check.relation.model, []).append(check.relation)
    return found


class _Sql:
    """Conditions on the rows that go with one batch of sessions (`keys`), or with all."""

    def __init__(self, alias: str, found: Dependents, keys: Keys) -> None:
        self.alias = alias
        self.found = found
        self.keys = keys
        self.quote = connections[alias].ops.quote_name
        self.within: set[type[Model]] = set()

    def table(self, model: type[Model]) -> str:
        return self.quote(model._meta.db_table)

    def column(self, model_field: models.Field[Any, Any]) -> str:
        column = model_field.column
        assert column is not None
        return column

    def among_keys(self, column: str) -> tuple[str, list[Any]]:
        assert self.keys is not None
        return _among(self.alias, column, self.keys)

    def refers(self, relation: Relation) -> tuple[str, list[Any]]:
        """The rows of `relation.model` whose `relation.field` refers to rows that go."""
        column = self.quote(self.column(relation.field.local_related_fields[0]))
        target_column = self.column(relation.field.foreign_related_fields[0])
        if relation.target is self.found.model:
            if self.keys is not None and target_column == self.found.model._meta.pk.column:
                return self.among_keys(column)
            if self.keys is None and relation.constrained:
                return f"{column} IS NOT NULL", []
        where, params = self.going(relation.target)
        return (
            f"{column} IN (SELECT {self.quote(target_column)} FROM "
            f"{self.table(relation.target)} WHERE {where})",
            params,
        )

    def going(self, model: type[Model]) -> tuple[str, list[Any]]:
        """The rows of `model` that go: sessions, or rows that cascade from rows that go."""
        if model is self.found.model:
            if self.keys is None:
                return "1 = 1", []
            return self.among_keys(self.quote(self.column(model._meta.pk)))
        if model in self.within:  # a loop through `early`: those rows wait for their own batch
            return "1 = 0", []
        self.within.add(model)
        relations = self.found.cascades[model]
        if self.keys is not None:
            relations = [*relations, *self.found.early.get(model, [])]
        parts = [self.refers(relation) for relation in relations]
        self.within.discard(model)
        return " OR ".join(f"({sql})" for sql, _ in parts), [p for _, ps in parts for p in ps]

    def stopping(self, check: Check) -> tuple[str, list[Any]]:
        """SELECT COUNT(*) of the rows that stop the release by `check`."""
        relation = check.relation
        where, params = self.refers(relation)
        gone = relation.model is self.found.model or relation.model in self.found.cascades
        if check.why in EXEMPT and gone:
            # Exempt where the rows go with the whole table, whichever batch that comes in.
            also, more = _Sql(self.alias, self.found, None).going(relation.model)
            where, params = f"({where}) AND ({also}) IS NOT TRUE", [*params, *more]
        return f"SELECT COUNT(*) FROM {self.table(relation.model)} WHERE {where}", params


def _stoppers(alias: str, found: Dependents, keys: Keys) -> list[tuple[Check, int]]:
    sql = _Sql(alias, found, keys)
    stoppers = []
    with connections[alias].cursor() as cursor:
        for check in found.checks:
            cursor.execute(*sql.stopping(check))
            row = cursor.fetchone()
            if row and row[0]:
                stoppers.append((check, int(row[0])))
    return stoppers


def _because(check: Check, count: int, found: Dependents) -> str:
    """`2 rows of app.Login refer to the sessions through app.Login.session (on_delete=PROTECT)`"""
    relation = check.relation
    rows = f"{counted(count, 'row')} of {relation.model._meta.label}"
    if check.why == INHERITED:
        parents = ", ".join(p._meta.label for p in relation.model._meta.parents)
        return (
            f"{rows} would go by CASCADE through {relation.name}, but "
            f"{relation.model._meta.label} inherits from {parents}, whose rows the release does "
            "not remove in bulk"
        )
    rule = {
        PROTECTED: "on_delete=PROTECT",
        RESTRICTED: "on_delete=RESTRICT",
        CONSTRAINED: "on_delete=DO_NOTHING, and the database's foreign key refuses it",
        UNSUPPORTED: f"on_delete={relation.rule}, which the release cannot apply in bulk",
        RECURSIVE: f"on_delete=CASCADE back to {relation.target._meta.label}, a loop the "
        "release does not follow",
    }[check.why]
    verb = "refers" if count == 1 else "refer"
    if relation.target is found.model:
        return f"{rows} {verb} to the sessions through {relation.name} ({rule})"
    return (
        f"{rows} {verb}, through {relation.name} ({rule}), to {relation.target._meta.label} "
        "rows that go with the sessions by CASCADE"
    )


def _refusal(table: str, found: Dependents, stoppers: list[tuple[Check, int]]) -> ReleaseError:
    because = "; ".join(_because(check, count, found) for check, count in stoppers)
    return ReleaseError(
        f"Sessions in table {table} cannot be removed: {because}. Delete or re-point those rows, "
        "or change that on_delete (CASCADE, SET_NULL or SET_DEFAULT are applied in bulk), then run "
        "the release again."
    )


def _stop_if_refused(alias: str, found: Dependents, keys: Keys) -> None:
    stoppers = _stoppers(alias, found, keys)
    if stoppers:
        raise _refusal(found.model._meta.db_table, found, stoppers)


@contextmanager
def _explaining_refusals(alias: str, found: Dependents, keys: Keys) -> Iterator[None]:
    """A foreign key the database enforces and the rules did not satisfy (one the models do not
    declare, or rows added meanwhile): the one-line message instead of an IntegrityError. The
    block must run in a transaction of its own (or savepoint), rolled back by then."""
    try:
        yield
    except IntegrityError as error:
        stoppers = _stoppers(alias, found, keys)
        table = found.model._meta.db_table
        if stoppers:
            raise _refusal(table, found, stoppers) from error
        raise ReleaseError(
            f"The database refused to remove sessions from table {table} ({one_line(error)}): a "
            "foreign key that no installed model declares, or one whose on_delete the release "
            "cannot follow, points at it. Remove that constraint or the rows that refer to "
            "sessions, then run the release again."
        ) from error


def _apply(alias: str, found: Dependents, keys: Keys, done: Done) -> None:
    """SET_* updates, then CASCADE deletes, children first, for the sessions that go; counted
    in `done` by what was done to which model."""
    sql = _Sql(alias, found, keys)
    connection = connections[alias]
    with connection.cursor() as cursor:
        for relation, value in found.updates:
            where, params = sql.refers(relation)
            column = sql.quote(sql.column(relation.field.local_related_fields[0]))
            stored = relation.field.get_db_prep_save(_as_key(relation, value()), connection)
            cursor.execute(
                f"UPDATE {sql.table(relation.model)} SET {column} = %s WHERE {where}",
                [stored, *params],
            )
            done[("set", relation.name, relation.rule)] += max(cursor.rowcount, 0)
        for model in found.cascades:
            where, params = sql.going(model)
            cursor.execute(f"DELETE FROM {sql.table(model)} WHERE {where}", params)
            done[("deleted", model._meta.label, "CASCADE")] += max(cursor.rowcount, 0)


def _as_key(relation: Relation, value: object) -> object:
    if isinstance(value, Model):
        return getattr(value, relation.field.foreign_related_fields[0].attname)
    return value


def _effects(done: Done) -> list[str]:
    """`With the sessions, by on_delete: deleted 120 rows of app.Login (CASCADE); set
    app.Visit.session in 30 rows (SET_NULL).`"""
    parts = [
        f"deleted {counted(rows, 'row')} of {name} ({rule})"
        if verb == "deleted"
        else f"set {name} in {counted(rows, 'row')} ({rule})"
        for (verb, name, rule), rows in sorted(done.items(), key=lambda item: item[0][0])
        if rows
    ]
    return [f"With the sessions, by on_delete: {'; '.join(parts)}."] if parts else []


def _remove_locked(alias: str, found: Dependents, keys: list[Any], done: Done) -> int:
    """Inside a transaction that holds `keys` locked: what refers to them, then them."""
    table, key = _quoted(alias, found.model)
    if found.acts:
        with _by_index(alias):
            _stop_if_refused(alias, found, keys)
            _apply(alias, found, keys, done)
    return _delete_keys(alias, table, key, keys)


@contextmanager
def _by_index(alias: str) -> Iterator[None]:
    """On PostgreSQL, the statements that find the rows referring to a batch of keys look each
    key up in the foreign key's index. For a batch of 1,000 keys the planner expects 1,000 rows
    in each such table, and would rather read a table of 100,000 login records whole, at every
    batch: ten times slower. Only for those statements, in this transaction: not for the
    database's own foreign key checks, which may have no index to use."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_seqscan'), set_config('enable_seqscan', 'off', true)"
        )
        row = cursor.fetchone()
    yield  # on an error the transaction or savepoint rolls back, and the setting with it
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('enable_seqscan', %s, true)", [row[0] if row else "on"])


# Removing the sessions -------------------------------------------------------------------------


def remove_all(alias: str, model: type[Model], progress: Progress) -> Removal:
    connection = connections[alias]
    table, _ = _quoted(alias, model)
    found = dependents(model)
    if found.acts:
        _stop_if_refused(alias, found, None)
    if connection.vendor not in {"postgresql", "mysql"} or connection.in_atomic_block:
        return _remove_at_once(alias, found)
    total, estimated = _row_count(alias, model)
    if found.acts:
        removal = _delete_in_batches(alias, found, lambda removed: progress(removed, total))
        removal.notes.insert(
            0,
            f"{found.describe()}, so rows were deleted in batches of {found.batch_rows:,}, "
            "each with what refers to it.",
        )
        return removal
    problem = _truncate(alias, table)
    if problem is None:
        progress(total, total)
        rows = counted(total, "row")
        how_many = f"about {rows}, PostgreSQL's estimate" if estimated else rows
        return Removal(total, [f"Emptied the table with TRUNCATE ({how_many})."])
    removal = _delete_in_batches(alias, found, lambda removed: progress(removed, total))
    removal.notes.insert(0, f"{problem}, so rows were deleted in batches of {BATCH_ROWS:,}.")
    return removal


def _remove_at_once(alias: str, found: Dependents) -> Removal:
    """In the caller's transaction: SQLite's one DELETE, after what refers to the rows (by
    `fk IS NOT NULL` where a constraint holds); elsewhere every row locked first, so that no
    session saved meanwhile goes without what refers to it."""
    connection = connections[alias]
    table, _ = _quoted(alias, found.model)
    done: Done = Counter()
    with _explaining_refusals(alias, found, None), transaction.atomic(using=alias):
        if connection.vendor in {"postgresql", "mysql"} and found.acts:
            removed = _delete_all_locked(alias, found, done)
        else:
            if found.acts:
                _apply(alias, found, None, done)
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {table}")
                removed = max(cursor.rowcount, 0)
    return Removal(removed, _effects(done))


def _delete_all_locked(alias: str, found: Dependents, done: Done) -> int:
    table, key = _quoted(alias, found.model)
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT {key} FROM {table} ORDER BY {key} FOR UPDATE")
        keys = [row[0] for row in cursor.fetchall()]
    return sum(
        _remove_locked(alias, found, keys[start : start + found.batch_rows], done)
        for start in range(0, len(keys), found.batch_rows)
    )


def _row_count(alias: str, model: type[Model]) -> tuple[int, bool]:
    """How many rows the table has, and whether that is an estimate."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(model._meta.db_table)],
            )
            row = cursor.fetchone()
        if row is not None and row[0] > EXACT_COUNT_UP_TO:
            return int(row[0]), True
    return model._base_manager.using(alias).count(), False


def _truncate(alias: str, table: str) -> str | None:
    """TRUNCATE the table; None when done, else why it could not be."""
    connection = connections[alias]
    for _ in range(TRUNCATE_ATTEMPTS):
        try:
            with transaction.atomic(using=alias), connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
                    cursor.execute(f"TRUNCATE {table}")
                else:
                    cursor.execute(f"TRUNCATE TABLE {table} NOWAIT")
            return None
        except DatabaseError as error:
            if not is_lock_timeout(error):
                return f"TRUNCATE was refused ({one_line(error)})"
        time.sleep(random.uniform(*TRUNCATE_PAUSE_S))
    return (
        f"Other transactions kept the table busy through {TRUNCATE_ATTEMPTS} attempts "
        "to TRUNCATE it"
    )


def _lock_next_batch(cursor: Any, table: str, key: str, last: Any, rows: int) -> list[Any]:
    """The next `rows` keys after `last`, locked, skipping rows another transaction holds."""
    cursor.execute(
        f"SELECT {key} FROM {table} WHERE {key} > %s ORDER BY {key} "
        f"LIMIT {rows} FOR UPDATE SKIP LOCKED",
        [last],
    )
    return [row[0] for row in cursor.fetchall()]


def _delete_in_batches(alias: str, found: Dependents, progress: Callable[[int], None]) -> Removal:
    connection = connections[alias]
    table, key = _quoted(alias, found.model)
    removed = 0
    last = ""
    done: Done = Counter()
    deadlocks = 0
    while True:
        keys: list[Any] = []
        batch: Done = Counter()
        try:
            with (
                _explaining_refusals(alias, found, keys),
                transaction.atomic(using=alias),
                connection.cursor() as cursor,
            ):
                keys.extend(_lock_next_batch(cursor, table, key, last, found.batch_rows))
                if not keys:
                    break
                count = _remove_locked(alias, found, keys, batch)
        except DatabaseError as error:
            deadlocks += 1
            if not _is_deadlock(error) or deadlocks >= DEADLOCK_ATTEMPTS:
                raise
            continue
        deadlocks = 0
        removed += count
        done.update(batch)
        last = keys[-1]
        progress(removed)
    return Removal(removed, _effects(done))


def _among(alias: str, column: str, keys: list[Any]) -> tuple[str, list[Any]]:
    """`column` is one of `keys`: on PostgreSQL one array parameter, which psycopg sends
    without parsing a query of thousands of placeholders."""
    if connections[alias].vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(keys)]
    return f"{column} IN ({', '.join(['%s'] * len(keys))})", list(keys)


def _delete_keys(alias: str, table: str, key: str, keys: list[str]) -> int:
    """Delete rows this transaction has locked, by key, without waiting for any other row.

    MariaDB may scan the table for a short IN list and then wait for rows other transactions
    hold; there the statement gives up at once, and the rows go one key at a time.
    """
    connection = connections[alias]
    among, params = _among(alias, key, keys)
    in_list = f"DELETE FROM {table} WHERE {among}"
    with connection.cursor() as cursor:
        if connection.vendor != "mysql":
            cursor.execute(in_list, params)
            return int(max(cursor.rowcount, 0))
        try:
            with transaction.atomic(using=alias):
                cursor.execute(f"SET STATEMENT innodb_lock_wait_timeout = 0 FOR {in_list}", params)
                return int(max(cursor.rowcount, 0))
        except DatabaseError as error:
            if not is_lock_timeout(error):
                raise
        removed = 0
        for one in keys:
            cursor.execute(f"DELETE FROM {table} WHERE {key} = %s", [one])
            removed += max(cursor.rowcount, 0)
        return removed


def remove_remaining(alias: str, model: type[Model], *, skip_locked: bool) -> Removal:
    """Inside the final transaction: the rows saved since `remove_all()`, with what refers to
    them.

    With `skip_locked` (the session guard refuses what stays) rows another transaction holds
    are left; without it they are waited for, a bounded time, and the release fails if they
    stay locked.
    """
    connection = connections[alias]
    table, key = _quoted(alias, model)
    found = dependents(model)
    if connection.vendor not in {"postgresql", "mysql"}:
        if found.acts:
            _stop_if_refused(alias, found, None)
        return _remove_at_once(alias, found)
    removed = 0
    done: Done = Counter()
    if not skip_locked:
        removed = _delete_waiting(alias, found, done)
        return Removal(removed, _effects(done))
    # Passes in key order, by the primary key's index, until one finds nothing to remove: the
    # rows that a batch clear deleted are still in the table's pages until VACUUM, and a scan
    # of the table would read them all again for each batch.
    passing = True
    with connection.cursor() as cursor:
        while passing:
            passing, last = False, ""
            while True:
                keys: list[Any] = []
                with (
                    _explaining_refusals(alias, found, keys),
                    transaction.atomic(using=alias),
                ):
                    keys.extend(_lock_next_batch(cursor, table, key, last, found.batch_rows))
                    if not keys:
                        break
                    count = _remove_locked(alias, found, keys, done)
                    if found.acts and connection.vendor == "postgresql":
                        _check_now(alias)
                removed += count
                passing = passing or count > 0
                last = keys[-1]
        left = model._base_manager.using(alias).count()
    notes = _effects(done)
    if left:
        notes.append(
            f"{counted(left, 'session')} locked by other transactions "
            f"{'was' if left == 1 else 'were'} left; the session guard refuses "
            f"{'it' if left == 1 else 'them'} at the next request."
        )
    return Removal(removed, notes)


def _check_now(alias: str) -> None:
    """PostgreSQL checks Django's (deferred) foreign keys at COMMIT, which is the caller's:
    check them now, where a refusal can still be explained."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _delete_waiting(alias: str, found: Dependents, done: Done) -> int:
    connection = connections[alias]
    table, _ = _quoted(alias, found.model)
    for attempt in range(ROW_LOCK_ATTEMPTS):
        try:
            with (
                _explaining_refusals(alias, found, None),
                transaction.atomic(using=alias),
                connection.cursor() as cursor,
            ):
                if connection.vendor == "postgresql":
                    cursor.execute(f"SET LOCAL lock_timeout = '{ROW_LOCK_TIMEOUT_S}s'")
                else:
                    cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {ROW_LOCK_TIMEOUT_S}")
                if found.acts:
                    batch: Done = Counter()
                    removed = _delete_all_locked(alias, found, batch)
                    if connection.vendor == "postgresql":
                        _check_now(alias)
                    done.update(batch)
                    return removed
                cursor.execute(f"DELETE FROM {table}")
                return int(max(cursor.rowcount, 0))
        except DatabaseError as error:
            if not is_lock_timeout(error) or attempt == ROW_LOCK_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
