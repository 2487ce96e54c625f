"""The rows of other models that refer to the sessions, and what their foreign keys'
`on_delete` asks when the sessions go, applied in bulk SQL, never `QuerySet.delete()`.

Before anything is removed, rows that PROTECT or RESTRICT, or that a DO_NOTHING constraint would
refuse, stop the release with a message naming the field; then, with each batch of sessions and
in its transaction, CASCADE deletes the rows that refer to them (and, the same way, what cascades
from those), SET_NULL, SET_DEFAULT and SET() update them; DB_CASCADE and the like are the
database's. Only DO_NOTHING without a constraint lets the table be truncated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connections, models
from django.db.models import Model, deletion

from release.exceptions import ReleaseError
from release.text import counted, one_line
from release.vendors import database

BATCH_ROWS = 5_000
# With rows that refer to the sessions, each session costs far more to remove (the rules, and the
# database's own checks of its foreign keys at COMMIT), and a live save of a session in a batch
# waits for the batch's COMMIT. A million sessions with 200,000 login records on PostgreSQL: a
# live save waited at most 100.5 ms with batches of 1,000, 46.5 ms with 250, for a clear 15 %
# longer (64.0 s and 73.8 s).
BATCH_ROWS_WITH_DEPENDENTS = 250

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
        return database(self.alias).among(column, self.keys)

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


def stop_if_refused(alias: str, found: Dependents, keys: Keys) -> None:
    stoppers = _stoppers(alias, found, keys)
    if stoppers:
        raise _refusal(found.model._meta.db_table, found, stoppers)


@contextmanager
def explaining_refusals(alias: str, found: Dependents, keys: Keys) -> Iterator[None]:
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


def apply_rules(alias: str, found: Dependents, keys: Keys, done: Done) -> None:
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


def effects(done: Done) -> tuple[str, ...]:
    """`With the sessions, by on_delete: deleted 120 rows of app.Login (CASCADE); set
    app.Visit.session in 30 rows (SET_NULL).`"""
    parts = [
        f"deleted {counted(rows, 'row')} of {name} ({rule})"
        if verb == "deleted"
        else f"set {name} in {counted(rows, 'row')} ({rule})"
        for (verb, name, rule), rows in sorted(done.items(), key=lambda item: item[0][0])
        if rows
    ]
    return (f"With the sessions, by on_delete: {'; '.join(parts)}.",) if parts else ()
