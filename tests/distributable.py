"""The suite's guard on Citus co-location: every query any test runs is captured, and a join of two
distributed tables (apps/core/distribution.py) without an equality between their ``merchant_id`` columns fails
the run. Such a join would move rows between workers on Citus, or be refused.

Each process collects the distinct SQL it ran (on every connection, the live server's included) and checks it
at the end; under xdist the workers hand their findings to the controller, which fails the session.
"""

from __future__ import annotations

import functools
import itertools

import pytest
import sqlglot
from django.db import connections
from django.db.backends.signals import connection_created
from sqlglot import exp

from apps.core.distribution import DISTRIBUTION_COLUMN, distributed_tables

MERCHANT_TABLE = "merchants_merchant"
_seen: dict[str, str] = {}  # SQL -> the backend vendor it ran on
_OUTPUT_KEY = "cross_shard_joins"


def cross_shard_joins(sql: str, vendor: str = "postgresql") -> list[str]:
    """The joins of two or more distributed tables in ``sql`` that no ``merchant_id`` equality ties
    together, one description each."""
    tables = distributed_tables()
    if sum(sql.count(f'FROM "{table}"') + sql.count(f'JOIN "{table}"') for table in tables) < 2:
        return []
    dialect = "postgres" if vendor == "postgresql" else "sqlite"
    try:
        tree = sqlglot.parse_one(sql.replace("%s", "NULL"), dialect=dialect)
    except sqlglot.errors.ParseError:
        return [f"could not be parsed, so could not be checked: {sql[:200]}"]
    problems = []
    for select in tree.find_all(exp.Select):
        from_ = select.args.get("from_")
        sources = [from_ and from_.this, *(join.this for join in select.args.get("joins") or [])]
        aliases = [s.alias_or_name for s in sources if isinstance(s, exp.Table) and s.name in tables]
        if len(aliases) < 2:
            continue
        merchant_tables = {s.alias_or_name for s in sources if isinstance(s, exp.Table) and s.name == MERCHANT_TABLE}
        groups = _merchant_equalities(select, merchant_tables)
        if len({groups(alias) for alias in aliases}) > 1:
            problems.append(f"joins {', '.join(aliases)} without tying their merchant_id together: {sql}")
    return problems


def _merchant_equalities(select: exp.Select, merchant_tables: set[str]):
    """A function from a table alias to the representative of the aliases whose merchant_id the select's
    join conditions and WHERE (their AND-ed parts) hold equal — directly, or through the merchants table's
    id (a reference table, on every worker)."""
    parent: dict[str, str] = {}

    def find(alias: str) -> str:
        while parent.get(alias, alias) != alias:
            alias = parent[alias]
        return alias

    conditions = [join.args.get("on") for join in select.args.get("joins") or []]
    conditions.append(select.args.get("where") and select.args["where"].this)
    for condition in filter(None, conditions):
        for part in _conjuncts(condition):
            merchant_key = functools.partial(_is_merchant_key, merchant_tables=merchant_tables)
            if isinstance(part, exp.EQ) and merchant_key(part.left) and merchant_key(part.right):
                parent[find(part.left.unnest().table)] = find(part.right.unnest().table)
    return find


def _is_merchant_key(side: exp.Expression, merchant_tables: set[str]) -> bool:
    side = side.unnest()
    if not isinstance(side, exp.Column) or not side.table:
        return False
    return side.name == DISTRIBUTION_COLUMN or (side.name == "id" and side.table in merchant_tables)


def _conjuncts(condition: exp.Expression):
    if isinstance(condition, exp.And):
        yield from itertools.chain(_conjuncts(condition.left), _conjuncts(condition.right))
    elif isinstance(condition, exp.Paren):
        yield from _conjuncts(condition.this)
    else:
        yield condition


def _capture(execute, sql, params, many, context):
    if " JOIN " in sql:
        _seen.setdefault(sql, context["connection"].vendor)
    return execute(sql, params, many, context)


def _watch(connection, **_kwargs) -> None:
    if _capture not in connection.execute_wrappers:
        connection.execute_wrappers.append(_capture)


@functools.cache
def _problems_seen() -> tuple[str, ...]:
    return tuple(sorted({problem for sql, vendor in _seen.items() for problem in cross_shard_joins(sql, vendor)}))


# pytest hooks (the plugin is loaded by ``-p tests.distributable`` in pyproject.toml)


def pytest_configure(config):
    connection_created.connect(_watch, dispatch_uid="distributable")
    for connection in connections.all(initialized_only=True):
        _watch(connection)
    config._cross_shard_joins = set()


def pytest_sessionfinish(session):
    config = session.config
    if hasattr(config, "workerinput"):
        config.workeroutput[_OUTPUT_KEY] = list(_problems_seen())
        return
    config._cross_shard_joins.update(_problems_seen())
    if config._cross_shard_joins and session.exitstatus == 0:
        session.exitstatus = 1


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    node.config._cross_shard_joins.update(getattr(node, "workeroutput", {}).get(_OUTPUT_KEY, []))


def pytest_terminal_summary(terminalreporter, config):
    if problems := sorted(getattr(config, "_cross_shard_joins", ())):
        terminalreporter.section("joins Citus could not co-locate (apps/core/distribution.py)", red=True)
        for problem in problems:
            terminalreporter.write_line(problem)
