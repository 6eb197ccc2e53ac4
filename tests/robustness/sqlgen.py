"""A seeded SQL generator for hostile-client testing: grammar-based statements over the mesh's real
tables and columns, and mutations of them.

`Generator(schema, seed).statement()` returns one SQL text. The same seed and schema give the same
statements, so a failure is reproduced by its seed and index. Statements are mostly valid (so they
reach planning and execution, where the engine's limits matter) and sometimes broken on purpose
(mutations: dropped or repeated tokens, extreme literals, deep nesting, oversized values).
"""

import random
from dataclasses import dataclass, field

# Types the generator reasons about; `schema` maps the engine's data types onto these.
INT, FLOAT, DEC, TEXT, DATE, TS, BOOL = "int", "float", "dec", "text", "date", "ts", "bool"
SCALAR_TYPES = [INT, FLOAT, DEC, TEXT, DATE, TS, BOOL]


def kind_of(data_type: str) -> str | None:
    """Maps an information_schema data type (DataFusion's spelling) onto a generator type."""
    t = data_type.lower()
    if t.startswith(("int", "uint")):
        return INT
    if t.startswith("float"):
        return FLOAT
    if t.startswith("decimal"):
        return DEC
    if "utf8" in t:
        return TEXT
    if t.startswith("date"):
        return DATE
    if t.startswith("timestamp"):
        return TS
    if t == "boolean":
        return BOOL
    return None


@dataclass
class Table:
    name: str  # domain.layer.dataset
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, generator type)

    def of(self, kind):
        return [c for c, k in self.columns if k == kind]


# Values that have broken engines before: limits of every type, empty and odd strings.
EXTREME_INTS = ["0", "-1", "1", "2147483647", "-2147483648", "9223372036854775807",
                "-9223372036854775808", "4294967296", "1000000000", "2000000000"]
EXTREME_FLOATS = ["0.0", "-0.0", "1e308", "-1e308", "1e-308", "'NaN'::double", "'inf'::double",
                  "3.4028235e38", "0.1", "552376.27"]
EXTREME_TEXT = ["''", "' '", "'%'", "'_'", "'\\'", "'['", "'('", "'a{1000}{1000}'", "'\\1'",
                "'(a+)+$'", "'ü€😀'", "'NULL'", "'2026-02-30'", "'9999999999999999999999'",
                "'1e5'", "'xx'", "'-5'", "'\x01'"]
DATE_PARTS = ["year", "month", "day", "hour", "minute", "second", "dow", "doy", "week",
              "quarter", "epoch", "millisecond", "microsecond", "nanosecond", "xx", "decade"]
INTERVALS = ["INTERVAL '1 day'", "INTERVAL '1 month'", "INTERVAL '2 hours'",
             "INTERVAL '10000000 years'", "INTERVAL '-1 day'", "INTERVAL '0 seconds'",
             "INTERVAL '1000000000 days'", "INTERVAL '1.5 seconds'"]
CAST_TYPES = ["BIGINT", "INT", "SMALLINT", "TINYINT", "DOUBLE", "REAL", "DECIMAL(10,2)",
              "DECIMAL(38,10)", "DECIMAL(5,0)", "VARCHAR", "DATE", "TIMESTAMP", "BOOLEAN",
              "BYTEA", "INT UNSIGNED", "DECIMAL(76,38)"]


class Generator:
    def __init__(self, tables: list[Table], seed: int, hostile: float = 0.25):
        self.tables = [t for t in tables if t.columns]
        self.rng = random.Random(seed)
        self.hostile = hostile  # chance of extreme values, deep nesting and mutations

    # ---- helpers ------------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, items):
        return self.rng.choice(items)

    def big(self) -> str:
        """A count that is sometimes huge: the argument of repeat, lpad, array_repeat, ..."""
        if self.chance(self.hostile):
            return self.pick(["2147483647", "1000000000", "2000000000", "100000000",
                              "9223372036854775807", "-1", "-9223372036854775808"])
        return str(self.rng.randint(0, 20))

    # ---- literals -----------------------------------------------------------------------

    def literal(self, kind: str) -> str:
        extreme = self.chance(self.hostile)
        r = self.rng
        if kind == INT:
            return self.pick(EXTREME_INTS) if extreme else str(r.randint(-1000, 1_000_000))
        if kind == FLOAT:
            return self.pick(EXTREME_FLOATS) if extreme else f"{r.uniform(-1e6, 1e6):.4f}::double"
        if kind == DEC:
            if extreme:
                return self.pick(["99999999999999999999999999999999999.99", "0.00",
                                  "-0.01", "552376.27", "1e5", "123456789012345678.123456789"])
            return f"{r.randint(0, 999999)}.{r.randint(0, 99):02d}"
        if kind == TEXT:
            if extreme:
                return self.pick(EXTREME_TEXT + [f"repeat('x', {self.big()})"])
            return "'" + self.pick(["east", "west", "north", "south", "paid", "refunded", "a", "sku-1",
                                    "2026-03-01", "Ab%", "x_y"]) + "'"
        if kind == DATE:
            if extreme:
                return self.pick(["DATE '0001-01-01'", "DATE '9999-12-31'", "DATE '1970-01-01'",
                                  "DATE '-262143-01-01'", "CAST('2026-02-30' AS DATE)"])
            return f"DATE '2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}'"
        if kind == TS:
            if extreme:
                return self.pick(["TIMESTAMP '1677-09-21 00:12:44'", "TIMESTAMP '2262-04-11 23:47:16'",
                                  "now()", "TIMESTAMP '0001-01-01 00:00:00'", "to_timestamp(9223372036854775807)"])
            return f"TIMESTAMP '2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} {r.randint(0, 23):02d}:00:00'"
        if kind == BOOL:
            return self.pick(["TRUE", "FALSE", "NULL"])
        return "NULL"

    # ---- expressions --------------------------------------------------------------------

    def column(self, scope: list[Table], kind: str) -> str | None:
        options = [(t, c) for t in scope for c in t.of(kind)]
        if not options:
            return None
        t, c = self.pick(options)
        return f'{t.alias}."{c}"' if getattr(t, "alias", None) else f'"{c}"'

    def expr(self, scope, kind: str, depth: int = 0) -> str:
        """An expression of `kind` over the columns of `scope`."""
        if depth > 4 or self.chance(0.35):
            col = self.column(scope, kind) if scope and self.chance(0.7) else None
            return col or self.literal(kind)
        builders = {
            INT: self.int_expr, FLOAT: self.float_expr, DEC: self.dec_expr, TEXT: self.text_expr,
            DATE: self.date_expr, TS: self.ts_expr, BOOL: self.bool_expr,
        }
        if self.chance(0.08):
            return self.case_expr(scope, kind, depth)
        if self.chance(0.05):
            return f"CAST({self.expr(scope, self.pick(SCALAR_TYPES), depth + 1)} AS {self.cast_type(kind)})"
        return builders[kind](scope, depth + 1)

    def cast_type(self, kind):
        if self.chance(self.hostile):
            return self.pick(CAST_TYPES)
        return {INT: "BIGINT", FLOAT: "DOUBLE", DEC: "DECIMAL(18,2)", TEXT: "VARCHAR",
                DATE: "DATE", TS: "TIMESTAMP", BOOL: "BOOLEAN"}[kind]

    def case_expr(self, scope, kind, depth):
        whens = " ".join(
            f"WHEN {self.bool_expr(scope, depth + 1)} THEN {self.expr(scope, kind, depth + 1)}"
            for _ in range(self.rng.randint(1, 3)))
        return f"CASE {whens} ELSE {self.expr(scope, kind, depth + 1)} END"

    def int_expr(self, scope, d):
        e = lambda k=INT: self.expr(scope, k, d)  # noqa: E731
        return self.pick([
            lambda: f"({e()} {self.pick(['+', '-', '*', '/', '%'])} {e()})",
            lambda: f"length({e(TEXT)})",
            lambda: f"abs({e()})",
            lambda: f"date_part('{self.pick(DATE_PARTS)}', {e(self.pick([DATE, TS]))})::bigint",
            lambda: f"extract({self.pick(['year', 'month', 'day', 'dow'])} FROM {e(DATE)})::bigint",
            lambda: f"strpos({e(TEXT)}, {e(TEXT)})",
            lambda: f"array_length(array_repeat({e()}, {self.big()}))",
            lambda: f"cardinality(range({e()}, {e()}, {self.pick(['1', '0', '-1', '1000', '3'])}))",
            lambda: f"coalesce({e()}, {e()})",
            lambda: f"nullif({e()}, {e()})",
            lambda: f"gcd({e()}, {e()})",
            lambda: f"factorial({self.pick(['5', '20', '21', '100', '-1'])})",
            lambda: f"levenshtein({e(TEXT)}, {e(TEXT)})",
            lambda: f"ascii({e(TEXT)})",
            lambda: f"bit_length({e(TEXT)})",
            lambda: f"({e()} << {self.pick(['1', '63', '64', '-1', '1000'])})",
            lambda: f"to_unixtime({e(TS)})",
            lambda: f"CAST({e(FLOAT)} AS BIGINT)",
            lambda: f"CAST({e(TEXT)} AS BIGINT)",
        ])()

    def float_expr(self, scope, d):
        e = lambda k=FLOAT: self.expr(scope, k, d)  # noqa: E731
        return self.pick([
            lambda: f"({e()} {self.pick(['+', '-', '*', '/'])} {e(self.pick([FLOAT, INT]))})",
            lambda: f"sqrt({e()})", lambda: f"ln({e()})", lambda: f"power({e()}, {e()})",
            lambda: f"round({e()}, {self.pick(['0', '2', '-2', '100', '-2147483648'])})",
            lambda: f"exp({e()})", lambda: f"atan2({e()}, {e()})",
            lambda: "random()", lambda: "pi()", lambda: f"cot({e()})",
            lambda: f"log({e()}, {e()})", lambda: f"trunc({e()}, {self.pick(['0', '3', '-100'])})",
            lambda: f"CAST({e(DEC)} AS DOUBLE)",
        ])()

    def dec_expr(self, scope, d):
        e = lambda k=DEC: self.expr(scope, k, d)  # noqa: E731
        return self.pick([
            lambda: f"({e()} {self.pick(['+', '-', '*', '/'])} {e(self.pick([DEC, INT]))})",
            lambda: f"round({e()}, {self.pick(['0', '1', '2'])})",
            lambda: f"abs({e()})",
            lambda: f"CAST({e(INT)} AS DECIMAL(20,2))",
            lambda: f"greatest({e()}, {e()})",
        ])()

    def text_expr(self, scope, d):
        e = lambda k=TEXT: self.expr(scope, k, d)  # noqa: E731
        return self.pick([
            lambda: f"({e()} || {e()})",
            lambda: f"upper({e()})", lambda: f"lower({e()})", lambda: f"trim({e()})",
            lambda: f"substr({e()}, {e(INT)}, {e(INT)})",
            lambda: f"substring({e()} FROM {e(INT)} FOR {e(INT)})",
            lambda: f"repeat({e()}, {self.big()})",
            lambda: f"lpad({e()}, {self.big()}, {e()})",
            lambda: f"rpad({e()}, {self.big()})",
            lambda: f"replace({e()}, {e()}, {e()})",
            lambda: f"regexp_replace({e()}, {self.pick(EXTREME_TEXT + ['a', '.', '(.)'])}, {e()}, 'g')",
            lambda: f"overlay({e()} PLACING {e()} FROM {e(INT)} FOR {e(INT)})",
            lambda: f"split_part({e()}, {e()}, {e(INT)})",
            lambda: f"concat_ws({e()}, {e()}, {e()})",
            lambda: f"to_char({e(self.pick([DATE, TS]))}, {self.pick(['%Y-%m', '%Q', '%%', '%Y' * 50])})",
            lambda: f"md5({e()})", lambda: f"sha256({e()})::varchar",
            lambda: f"translate({e()}, {e()}, {e()})",
            lambda: f"reverse({e()})", lambda: f"initcap({e()})",
            lambda: f"left({e()}, {e(INT)})", lambda: f"right({e()}, {e(INT)})",
            lambda: f"chr({e(INT)})", lambda: f"to_hex({e(INT)})",
            lambda: f"CAST({e(self.pick(SCALAR_TYPES))} AS VARCHAR)",
            lambda: f"encode(CAST({e()} AS BYTEA), {self.pick(['hex', 'base64', 'xx'])})",
            lambda: f"array_to_string(string_to_array({e()}, {e()}), {e()})",
        ])()

    def date_expr(self, scope, d):
        e = lambda k=DATE: self.expr(scope, k, d)  # noqa: E731
        return self.pick([
            lambda: f"({e()} + {self.pick(INTERVALS)})",
            lambda: f"({e()} - {self.pick(INTERVALS)})",
            lambda: f"date_trunc('{self.pick(DATE_PARTS)}', {e()})::date",
            lambda: f"make_date({e(INT)}, {e(INT)}, {e(INT)})",
            lambda: f"CAST({e(TS)} AS DATE)",
            lambda: f"to_date({e(TEXT)})",
            lambda: "current_date",
        ])()

    def ts_expr(self, scope, d):
        e = lambda k=TS: self.expr(scope, k, d)  # noqa: E731
        return self.pick([
            lambda: f"({e()} + {self.pick(INTERVALS)})",
            lambda: f"date_trunc('{self.pick(DATE_PARTS)}', {e()})",
            lambda: f"date_bin({self.pick(INTERVALS)}, {e()})",
            lambda: f"to_timestamp({e(INT)})",
            lambda: f"to_timestamp({e(TEXT)})",
            lambda: f"CAST({e(DATE)} AS TIMESTAMP)",
            lambda: "now()",
        ])()

    def bool_expr(self, scope, d=0):
        k = self.pick([INT, FLOAT, DEC, TEXT, DATE, TS])
        e = lambda kk=k: self.expr(scope, kk, d + 1)  # noqa: E731
        if d > 4:
            return f"{e()} = {e()}"
        return self.pick([
            lambda: f"{e()} {self.pick(['=', '<>', '<', '<=', '>', '>='])} {e()}",
            lambda: f"{e()} BETWEEN {e()} AND {e()}",
            lambda: f"{e()} IN ({', '.join(e() for _ in range(self.rng.randint(1, 5)))})",
            lambda: f"{e()} IS {self.pick(['', 'NOT '])}NULL",
            lambda: f"{self.expr(scope, TEXT, d + 1)} {self.pick(['LIKE', 'ILIKE', 'NOT LIKE'])} {self.pick(EXTREME_TEXT + [chr(39) + 'e%' + chr(39)])}",
            lambda: f"{self.expr(scope, TEXT, d + 1)} {self.pick(['~', '~*', '!~'])} {self.pick(EXTREME_TEXT)}",
            lambda: f"({self.bool_expr(scope, d + 1)} {self.pick(['AND', 'OR'])} {self.bool_expr(scope, d + 1)})",
            lambda: f"NOT ({self.bool_expr(scope, d + 1)})",
            lambda: f"starts_with({self.expr(scope, TEXT, d + 1)}, {self.expr(scope, TEXT, d + 1)})",
            lambda: f"regexp_like({self.expr(scope, TEXT, d + 1)}, {self.pick(EXTREME_TEXT)})",
        ])()

    # ---- queries ------------------------------------------------------------------------

    def from_clause(self):
        """Tables (aliased t0, t1, ...) and the FROM text joining them."""
        first = self.aliased(self.pick(self.tables), 0)
        scope, text = [first], f"{first.name} {first.alias}"
        for i in range(1, self.rng.choice([1, 1, 1, 2, 2, 3])):
            t = self.aliased(self.pick(self.tables), i)
            join = self.pick(["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN", "CROSS JOIN"])
            if join == "CROSS JOIN":
                text += f" CROSS JOIN {t.name} {t.alias}"
            else:
                scope.append(t)
                text += f" {join} {t.name} {t.alias} ON {self.join_condition(scope, t)}"
                continue
            scope.append(t)
        return scope, text

    def aliased(self, table: Table, i: int) -> Table:
        t = Table(table.name, table.columns)
        t.alias = f"t{i}"
        return t

    def join_condition(self, scope, right):
        shared = [(c, k) for c, k in right.columns for t in scope[:-1] if (c, k) in t.columns]
        if shared and self.chance(0.8):
            c, _ = self.pick(shared)
            left = self.pick([t for t in scope[:-1] if (c, _) in t.columns])
            return f'{left.alias}."{c}" = {right.alias}."{c}"'
        return self.bool_expr(scope)

    def select(self, depth=0) -> str:
        scope, from_text = self.from_clause()
        grouped = self.chance(0.35)
        items, group_keys = [], []
        for i in range(self.rng.randint(1, 4)):
            kind = self.pick(SCALAR_TYPES)
            e = self.expr(scope, kind)
            if grouped and self.chance(0.5):
                group_keys.append(e)
                items.append(f"{e} AS c{i}")
            elif grouped:
                agg = self.pick(["count", "sum", "min", "max", "avg"]) if kind in (INT, FLOAT, DEC) \
                    else self.pick(["count", "min", "max"])
                if kind == TEXT and self.chance(0.15):
                    items.append(f"string_agg({e}, {self.literal(TEXT)}) AS c{i}")
                elif self.chance(0.1):
                    items.append(f"array_agg({e}) AS c{i}")
                else:
                    items.append(f"{agg}({self.pick(['', 'DISTINCT '])}{e}) AS c{i}")
            elif self.chance(0.1):
                items.append(f"row_number() OVER (ORDER BY {self.expr(scope, kind)}) AS c{i}")
            elif self.chance(0.05):
                items.append(f"sum(1) OVER (PARTITION BY {self.expr(scope, TEXT)}) AS c{i}")
            else:
                items.append(f"{e} AS c{i}")
        if grouped and not group_keys and self.chance(0.5):
            group_keys.append(self.expr(scope, TEXT))
        sql = f"SELECT {self.pick(['', '', '', 'DISTINCT '])}{', '.join(items)} FROM {from_text}"
        if self.chance(0.6):
            sql += f" WHERE {self.where(scope, depth)}"
        if group_keys:
            sql += " GROUP BY " + ", ".join(group_keys)
            if self.chance(0.2):
                sql += f" HAVING count(*) {self.pick(['>', '<', '='])} {self.rng.randint(0, 10)}"
        if self.chance(0.5):
            sql += " ORDER BY " + ", ".join(str(i + 1) for i in range(len(items)))
        if self.chance(0.5):
            sql += f" LIMIT {self.pick(['0', '1', '10', '100', '9223372036854775807'])}"
            if self.chance(0.2):
                sql += f" OFFSET {self.pick(['0', '5', '1000000'])}"
        return sql

    def where(self, scope, depth):
        if depth < 2 and self.chance(0.15):
            t = self.pick(self.tables)
            cols = [(c, k) for c, k in t.columns]
            c, k = self.pick(cols)
            outer = self.expr(scope, k)
            return self.pick([
                f'{outer} IN (SELECT "{c}" FROM {t.name})',
                f'EXISTS (SELECT 1 FROM {t.name} s WHERE s."{c}" = {outer})',
                f'{outer} = (SELECT max("{c}") FROM {t.name})',
            ])
        return self.bool_expr(scope)

    def query(self) -> str:
        r = self.rng.random()
        if r < 0.55:
            return self.select()
        if r < 0.65:
            return self.set_operation()
        if r < 0.75:
            return self.with_query()
        if r < 0.82:
            return self.recursive()
        if r < 0.9:
            return self.hostile_shape()
        if r < 0.95:
            return self.pick(["EXPLAIN ", "EXPLAIN VERBOSE ", "EXPLAIN ANALYZE "]) + self.select()
        return f"SELECT {', '.join(self.expr([], self.pick(SCALAR_TYPES)) for _ in range(self.rng.randint(1, 3)))}"

    def set_operation(self):
        # Set operations need equal column counts and compatible types: one typed column each.
        kind = self.pick(SCALAR_TYPES)
        branches = []
        for _ in range(self.rng.randint(2, 4)):
            scope, from_text = self.from_clause()
            branches.append(f"SELECT {self.expr(scope, kind)} AS v FROM {from_text}")
        op = self.pick(["UNION ALL", "UNION", "INTERSECT", "EXCEPT"])
        return f" {op} ".join(branches) + (" ORDER BY 1" if self.chance(0.5) else "")

    def with_query(self):
        inner = self.select(depth=1)
        return f"WITH q AS ({inner}) SELECT count(*) FROM q" + \
            (" a JOIN q b ON true" if self.chance(0.2) else "")

    def recursive(self):
        step = self.pick(["n + 1", "n * 2", "n + n"])
        s_step = self.pick(["s", "s || 'x'", "s || s", "upper(s)"])
        bound = self.pick(["5", "20", "40", "100", "100000"])
        agg = self.pick(["max(length(s))", "count(*)", "max(n)", "sum(n)"])
        return (f"WITH RECURSIVE r AS (SELECT 1 AS n, 'x' AS s UNION ALL SELECT {step}, {s_step} "
                f"FROM r WHERE n < {bound}) SELECT {agg} FROM r")

    def hostile_shape(self):
        """Shapes that once took a server down: deep CASE, long CTE chains, giant IN lists,
        wide cross joins, huge values."""
        t = self.pick(self.tables)
        c, k = self.pick(t.columns)
        n = self.rng.choice([5, 15, 20, 25, 40, 200, 1000, 4000])
        shape = self.rng.randint(0, 9)
        if shape == 0:  # nested CASE: in conditions (linear text, exponential in DataFusion)...
            e = f'"{c}"'
            for i in range(min(n, 40)):
                e = self.pick([f"CASE WHEN ({e}) IS NULL THEN {i} ELSE {i + 1} END",
                               # ...and in ELSE branches (flattened by meshql)
                               f"CASE WHEN \"{c}\" IS NULL THEN {i} ELSE {e} END"])
            return f"SELECT {e} FROM {t.name}"
        if shape == 1:  # CTE chain
            ctes = ["c0 AS (SELECT 1 AS x)"] + [f"c{i} AS (SELECT x + 1 AS x FROM c{i - 1})" for i in range(1, n)]
            return f"WITH {', '.join(ctes)} SELECT x FROM c{n - 1}"
        if shape == 2:  # IN list
            return f"SELECT count(*) FROM {t.name} WHERE \"{c}\" IN ({', '.join(str(i) for i in range(n * 10))})"
        if shape == 3:  # cross joins
            m = self.rng.randint(3, 6)
            tabs = ", ".join(f"{t.name} x{i}" for i in range(m))
            return f"SELECT count(*) FROM {tabs}"
        if shape == 4:
            return self.pick([
                "SELECT repeat('x', 2147483647)",
                "SELECT lpad('a', 2000000000, 'bc')",
                "SELECT array_length(array_repeat(1, 1000000000))",
                "SELECT length(string_agg(repeat('x', 1000000), ',')) FROM generate_series(1, 100000)",
                "SELECT count(*) FROM generate_series(1, 9223372036854775807)",
                "SELECT sum(length(repeat('ab', 10000000))) FROM generate_series(1, 1000)",
                "SELECT array_length(range(1, 2000000000))",
                "SELECT length(replace(repeat('a', 100000), 'a', repeat('b', 100000)))",
                "SELECT max(array_length(array_agg(x))) FROM generate_series(1, 500000000) t(x)",
                "SELECT levenshtein(repeat('a', 300000), repeat('b', 300000))",
            ])
        if shape == 5:  # deep arithmetic / boolean chains
            op = self.pick([" + ", " OR ", " AND ", " || "])
            return f"SELECT 1 WHERE {op.join(['1 = 1'] * n)}" if op.strip() in ("OR", "AND") else \
                f"SELECT {op.join(['1'] * n)}"
        if shape == 6:  # VALUES
            rows = ", ".join(f"({i}, 'v{i}')" for i in range(n * 10))
            return f"SELECT count(*) FROM (VALUES {rows}) v(a, b)"
        if shape == 7:  # many UNIONs
            return " UNION ALL ".join([f"SELECT {i}" for i in range(n)])
        if shape == 8:  # deeply nested subqueries
            inner = "SELECT 1 AS x"
            for _ in range(min(n, 60)):
                inner = f"SELECT x FROM ({inner}) s"
            return inner
        return f"SELECT {self.expr([t], k)}, {', '.join(self.expr([t], self.pick(SCALAR_TYPES)) for _ in range(3))} FROM {t.name}"

    # ---- mutations ----------------------------------------------------------------------

    def mutate(self, sql: str) -> str:
        tokens = sql.split(" ")
        if len(tokens) < 2:
            return sql + " " + self.pick(["(", ")", "'", "--", ";", "SELECT"])
        i = self.rng.randrange(len(tokens))
        op = self.rng.randint(0, 6)
        if op == 0:
            del tokens[i]
        elif op == 1:
            tokens.insert(i, tokens[self.rng.randrange(len(tokens))])
        elif op == 2:
            j = self.rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == 3:
            tokens.insert(i, self.pick(["(", ")", "'", ",", "NULL", "SELECT", "FROM", "::", "[", "]",
                                        "STRUCT", "TIMESTAMP", "INTERVAL", "@>", "->", "$1", "?", "ALL", "*"]))
        elif op == 4:
            tokens[i] = self.pick(EXTREME_INTS + EXTREME_TEXT)
        elif op == 5:
            return sql[: self.rng.randrange(len(sql))]
        else:
            tokens.insert(i, self.pick(["INSERT INTO sales.raw.stores VALUES (1);", "DROP TABLE", "COPY",
                                        "SET", "CREATE TABLE x AS", "; SELECT 1"]))
        return " ".join(tokens)

    def statement(self) -> str:
        sql = self.query()
        if self.chance(self.hostile * 0.6):
            for _ in range(self.rng.randint(1, 3)):
                sql = self.mutate(sql)
        return sql


def load_schema(cursor) -> list[Table]:
    """The mesh's datasets and columns from information_schema, as generator tables."""
    cursor.execute(
        "SELECT table_catalog, table_schema, table_name, column_name, data_type "
        "FROM information_schema.columns WHERE table_catalog <> 'mesh' "
        "ORDER BY table_catalog, table_schema, table_name, ordinal_position")
    tables: dict[str, Table] = {}
    for catalog, schema, name, column, data_type in cursor.fetchall():
        full = f"{catalog}.{schema}.{name}"
        kind = kind_of(data_type)
        if kind:
            tables.setdefault(full, Table(full)).columns.append((column, kind))
    return list(tables.values())
