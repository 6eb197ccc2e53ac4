"""Differential testing: generated valid queries answered by meshql (over Flight SQL) and by DuckDB
over the same Delta tables (read with the `deltalake` package) must agree, decimals included.

    python tests/robustness/differential.py --queries 10000 --seed 1   # the long form
    python tests/robustness/differential.py --queries 300              # what CI runs

Queries stay inside the SQL both engines define alike: comparisons (with decimal literals against
decimal columns, as BI tools send them), BETWEEN, IN, LIKE, IS NULL, CASE, COALESCE, arithmetic
without integer division, string functions, aggregates, joins on keys, DISTINCT, UNION ALL, IN and
EXISTS subqueries. Results are compared as multisets of rows with numbers compared by value.
"""

import datetime
import decimal
import math
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Server, connect, demo_mesh, finish, suite_arguments  # noqa: E402
from sqlgen import DATE, DEC, FLOAT, INT, TEXT, load_schema  # noqa: E402


class Queries:
    """A seeded generator of queries with one meaning in meshql and DuckDB."""

    def __init__(self, tables, seed):
        self.tables = [t for t in tables if t.columns]
        self.rng = random.Random(seed)

    def pick(self, xs):
        return self.rng.choice(xs)

    def chance(self, p):
        return self.rng.random() < p

    def literal(self, kind, column_values=None):
        r = self.rng
        if column_values and self.chance(0.6):
            # A value that is really in the table: equality finds rows (the decimal-literal bug).
            v = self.pick(column_values)
            if v is not None:
                return self.render(kind, v)
        if kind == INT:
            return str(r.randint(-5, 6000))
        if kind == DEC:
            return f"{r.randint(0, 600000)}.{r.randint(0, 99):02d}"
        if kind == FLOAT:
            return f"{r.uniform(0, 100):.3f}"
        if kind == TEXT:
            return "'" + self.pick(["east", "west", "north", "south", "completed", "refunded", "a", ""]) + "'"
        if kind == DATE:
            return f"DATE '2026-{r.randint(1, 4):02d}-{r.randint(1, 28):02d}'"
        return "NULL"

    @staticmethod
    def render(kind, v):
        if kind == TEXT:
            return "'" + str(v).replace("'", "''") + "'"
        if kind == DATE:
            return f"DATE '{v.isoformat()}'"
        if kind == DEC:
            return format(v, "f")
        return repr(v) if kind == FLOAT else str(v)

    def column(self, t, kinds):
        cols = [(c, k) for c, k in t.columns if k in kinds]
        if not cols:
            return None
        c, k = self.pick(cols)
        return f'{t.alias}."{c}"', k, c

    def predicate(self, t, samples):
        picked = self.column(t, [INT, DEC, FLOAT, TEXT, DATE])
        if not picked:
            return "TRUE"
        col, kind, name = picked
        values = samples.get((t.name, name))
        lit = lambda: self.literal(kind, values)  # noqa: E731
        if kind == FLOAT:
            # Floats are compared by range only: equality of binary fractions is not portable.
            return f"{col} {self.pick(['<', '>'])} {lit()}"
        ops = [
            lambda: f"{col} {self.pick(['=', '<>', '<', '<=', '>', '>='])} {lit()}",
            lambda: f"{col} BETWEEN {lit()} AND {lit()}",
            lambda: f"{col} IN ({', '.join(lit() for _ in range(self.rng.randint(1, 4)))})",
            lambda: f"{col} IS {self.pick(['', 'NOT '])}NULL",
        ]
        if kind == TEXT:
            ops.append(lambda: f"{col} LIKE '{self.pick(['e%', '%th', '_est', '%', 'n_rth'])}'")
        return self.pick(ops)()

    def where(self, t, samples):
        terms = [self.predicate(t, samples) for _ in range(self.rng.randint(1, 3))]
        return f" {self.pick(['AND', 'OR'])} ".join(f"({x})" for x in terms)

    def expr(self, t):
        picked = self.column(t, [INT, DEC, TEXT, DATE])
        if not picked:
            return "1", INT
        col, kind, _ = picked
        if kind in (INT, DEC) and self.chance(0.5):
            other = self.column(t, [INT, DEC])
            op = self.pick(["+", "-", "*"])
            return (f"({col} {op} {other[0]})" if other else f"({col} {op} 2)"), DEC
        if kind == TEXT and self.chance(0.5):
            if self.chance(0.2):
                return f"length({col})", INT
            return self.pick([f"upper({col})", f"lower({col})",
                              f"substr({col}, 2, 3)", f"coalesce({col}, 'none')",
                              f"CASE WHEN {col} LIKE 'e%' THEN 'e' ELSE {col} END"]), TEXT
        return col, kind

    def aliased(self, t, alias):
        import copy
        t = copy.copy(t)
        t.alias = alias
        return t

    def query(self, samples):
        t = self.aliased(self.pick(self.tables), "a")
        shape = self.rng.randint(0, 6)
        if shape <= 1:  # filter + projection
            items = [self.expr(t)[0] for _ in range(self.rng.randint(1, 3))]
            cols = ", ".join(f"{e} AS c{i}" for i, e in enumerate(items))
            return f"SELECT {self.pick(['', 'DISTINCT '])}{cols} FROM {t.name} a WHERE {self.where(t, samples)}"
        if shape == 2:  # aggregate
            key = self.column(t, [TEXT, DATE, INT])
            num = self.column(t, [INT, DEC])
            aggs = ["count(*) AS n"]
            if num:
                # avg of a decimal is a decimal in meshql (scale + 4, truncated) and a double in
                # DuckDB: both are compared as doubles.
                aggs += [f"sum({num[0]}) AS s", f"min({num[0]}) AS lo", f"max({num[0]}) AS hi",
                         f"avg(CAST({num[0]} AS DOUBLE)) AS mean"]
            if key:
                return (f"SELECT {key[0]} AS k, {', '.join(aggs)} FROM {t.name} a "
                        f"WHERE {self.where(t, samples)} GROUP BY {key[0]}")
            return f"SELECT {', '.join(aggs)} FROM {t.name} a WHERE {self.where(t, samples)}"
        if shape == 3:  # join on a shared column
            joins = [(u, c) for u in self.tables for c, k in u.columns
                     if (c, k) in t.columns and k in (INT, TEXT, DATE) and u.name != t.name]
            if not joins:
                return f"SELECT count(*) AS n FROM {t.name} a WHERE {self.where(t, samples)}"
            u, c = self.pick(joins)
            b = self.aliased(u, "b")
            kind = self.pick(["JOIN", "LEFT JOIN"])
            other = self.expr(b)[0]
            return (f"SELECT a.\"{c}\" AS k, {other} AS v FROM {t.name} a {kind} {u.name} b "
                    f"ON a.\"{c}\" = b.\"{c}\" WHERE {self.where(t, samples)}")
        if shape == 4:  # IN / EXISTS subquery
            col = self.column(t, [TEXT, INT])
            if not col:
                return f"SELECT count(*) AS n FROM {t.name} a"
            subs = [(u, c) for u in self.tables for c, k in u.columns if k == col[1]]
            u, c = self.pick(subs)
            b = self.aliased(u, "b")
            neg = self.pick(["", "NOT "])
            sub = self.pick([
                f"{col[0]} {neg}IN (SELECT b.\"{c}\" FROM {u.name} b WHERE b.\"{c}\" IS NOT NULL AND {self.where(b, samples)})",
                f"{neg}EXISTS (SELECT 1 FROM {u.name} b WHERE b.\"{c}\" = {col[0]})",
            ])
            return f"SELECT count(*) AS n FROM {t.name} a WHERE {sub}"
        if shape == 5:  # UNION ALL of one typed column
            e, kind = self.expr(t)
            u = self.aliased(self.pick(self.tables), "a")
            same = [c for c, k in u.columns if k == kind]
            if not same:
                return f"SELECT {e} AS v FROM {t.name} a WHERE {self.where(t, samples)}"
            return (f"SELECT {e} AS v FROM {t.name} a WHERE {self.where(t, samples)} "
                    f"UNION ALL SELECT a.\"{self.pick(same)}\" AS v FROM {u.name} a")
        # top-N by every output column: ties have equal values, so the multiset is defined
        e, _ = self.expr(t)
        return (f"SELECT {e} AS v, count(*) AS n FROM {t.name} a GROUP BY {e} "
                f"ORDER BY 2 DESC, 1 ASC NULLS LAST LIMIT {self.rng.randint(1, 20)}")


def normalise(v):
    if isinstance(v, decimal.Decimal):
        return ("num", float(v))
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float)):
        return ("num", float(v))
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return ("ts", v.isoformat())
    if isinstance(v, datetime.date):
        return ("date", v.isoformat())
    return ("v", v)


def close(a, b):
    if a[0] == b[0] == "num":
        x, y = a[1], b[1]
        if math.isnan(x) and math.isnan(y):
            return True
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def same_rows(left, right):
    if len(left) != len(right):
        return False
    key = lambda row: tuple((k, round(v, 6) if k == "num" else v) for k, v in row)  # noqa: E731
    lc, rc = Counter(key(r) for r in left), Counter(key(r) for r in right)
    if lc == rc:
        return True
    # Rounding can split equal floats across a boundary: compare sorted rows value by value.
    ls, rs = sorted(left, key=lambda r: str(key(r))), sorted(right, key=lambda r: str(key(r)))
    return all(len(a) == len(b) and all(close(x, y) for x, y in zip(a, b)) for a, b in zip(ls, rs))


def duckdb_over(mesh: Path, tables):
    """DuckDB with every dataset of the mesh as `domain.layer.dataset`, read with deltalake."""
    import duckdb
    from deltalake import DeltaTable

    con = duckdb.connect()
    for t in tables:
        domain, layer, name = t.name.split(".")
        path = mesh / "warehouse" / domain / layer / name
        if not (path / "_delta_log").is_dir():
            continue
        con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {domain}")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {domain}.{layer}")
        arrow = DeltaTable(str(path)).to_pyarrow_table()
        con.register("incoming", arrow)
        con.execute(f"CREATE TABLE {domain}.{layer}.{name} AS SELECT * FROM incoming")
        con.unregister("incoming")
    return con


def samples_of(cursor, tables):
    """Values really in each column, so generated equality predicates find rows."""
    out = {}
    for t in tables:
        for c, _ in t.columns:
            cursor.execute(f'SELECT DISTINCT "{c}" FROM {t.name} LIMIT 50')
            out[(t.name, c)] = [r[0] for r in cursor.fetchall()]
    return out


def differential(queries=300, seed=1, workdir=None, log=print):
    workdir = Path(workdir or tempfile.mkdtemp(prefix="meshql-diff-"))
    mesh = demo_mesh(workdir / "mesh")
    mismatches, errors, compared = [], Counter(), 0
    with Server(mesh, log=workdir / "serve.log") as server, connect(server.uri) as conn:
        with conn.cursor() as cur:
            tables = [t for t in load_schema(cur) if t.name.split(".")[0] != "mesh"]
            samples = samples_of(cur, tables)
        duck = duckdb_over(mesh, tables)
        gen = Queries(tables, seed)
        for i in range(queries):
            sql = gen.query(samples)
            try:
                expected = [tuple(normalise(v) for v in row) for row in duck.execute(sql).fetchall()]
            except Exception:  # DuckDB refused it: not a query both define
                errors["duckdb refused"] += 1
                continue
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    got = [tuple(normalise(v) for v in row) for row in cur.fetchall()]
            except Exception as e:
                mismatches.append({"index": i, "sql": sql, "meshql_error": str(e)[:500],
                                   "duckdb_rows": len(expected)})
                continue
            compared += 1
            if not same_rows(got, expected):
                mismatches.append({"index": i, "sql": sql, "meshql": [list(map(str, r)) for r in got[:5]],
                                   "duckdb": [list(map(str, r)) for r in expected[:5]],
                                   "rows": [len(got), len(expected)]})
            if (i + 1) % 1000 == 0:
                log(f"  {i + 1} queries, {len(mismatches)} mismatches")
    return {"queries": queries, "compared": compared, "skipped": dict(errors),
            "mismatches": len(mismatches), "examples": mismatches[:20], "ok": not mismatches}


def main():
    args = suite_arguments(__doc__, queries=300, seed=1)
    return finish(differential(args.queries, args.seed), args.out)


if __name__ == "__main__":
    sys.exit(main())
