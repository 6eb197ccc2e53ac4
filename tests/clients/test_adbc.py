"""The demo mesh through ADBC's Flight SQL driver, as pandas, Superset and notebooks use it."""

import datetime
import decimal

import adbc_driver_flightsql
import adbc_driver_manager
import pyarrow.compute as pc
import pytest
from adbc_driver_manager import AdbcStatusCode

from conftest import ADMIN_TOKEN


def test_gold_product_and_cross_domain_join(connect):
    conn = connect("analyst")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT region, CAST(sum(revenue) AS VARCHAR) AS revenue, sum(orders) AS orders "
            "FROM sales.gold.daily_revenue GROUP BY region ORDER BY region"
        )
        table = cur.fetch_arrow_table()
    # Old drivers need classic string columns: Utf8View is sent as Utf8.
    assert str(table.schema.field("region").type) == "string"
    assert table.to_pylist() == [
        {"region": "east", "revenue": "520204.74", "orders": 1271},
        {"region": "north", "revenue": "532535.72", "orders": 1271},
        {"region": "south", "revenue": "528127.64", "orders": 1274},
        {"region": "west", "revenue": "552376.27", "orders": 1319},
    ]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT t.region, t.month, r.roas FROM finance.gold.revenue_vs_target t "
            "JOIN marketing.gold.roas_by_region r ON r.region = t.region "
            "WHERE t.month = '2026-01' ORDER BY t.region"
        )
        rows = cur.fetchall()
    assert rows == [
        ("east", "2026-01", 13.9283),
        ("north", "2026-01", 5.8339),
        ("south", "2026-01", 17.3029),
        ("west", "2026-01", 6.6654),
    ]


def test_token_authentication(connect):
    conn = connect(None, **{adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {ADMIN_TOKEN}"})
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM sales.gold.daily_revenue")
        assert cur.fetchone() == (360,)


def test_wrong_password_and_missing_token_are_unauthenticated(connect):
    with pytest.raises(adbc_driver_manager.Error) as wrong:
        conn = connect("analyst", "not-the-password")
        conn.cursor().execute("SELECT 1")
    assert wrong.value.status_code == AdbcStatusCode.UNAUTHENTICATED
    with pytest.raises(adbc_driver_manager.Error) as missing:
        conn = connect(None)
        conn.cursor().execute("SELECT 1")
    assert missing.value.status_code == AdbcStatusCode.UNAUTHENTICATED


def _names(objects, catalog):
    entry = next(o for o in objects if o["catalog_name"] == catalog)
    return entry


@pytest.mark.parametrize("depth", ["catalogs", "db_schemas", "tables", "columns", "all"])
def test_get_objects_at_every_depth(connect, depth):
    # The sales team sees its whole domain; an analyst only the active gold products.
    conn = connect("sales")
    objects = conn.adbc_get_objects(depth=depth).read_all().to_pylist()
    assert sorted(o["catalog_name"] for o in objects) == ["finance", "marketing", "mesh", "sales"]
    sales = _names(objects, "sales")
    if depth == "catalogs":
        assert not sales["catalog_db_schemas"]
        return
    layers = {s["db_schema_name"]: s for s in sales["catalog_db_schemas"]}
    assert sorted(layers) == ["gold", "raw", "silver"]
    analyst = connect("analyst").adbc_get_objects(depth=depth).read_all().to_pylist()
    assert [s["db_schema_name"] for s in _names(analyst, "sales")["catalog_db_schemas"]] == ["gold"]
    if depth == "db_schemas":
        return
    tables = {t["table_name"]: t for t in layers["gold"]["db_schema_tables"]}
    assert sorted(tables) == ["customer_value", "daily_revenue"]
    assert sorted(t["table_name"] for t in layers["silver"]["db_schema_tables"]) == ["clean_transactions", "stores"]
    if depth == "tables":
        return
    columns = [c["column_name"] for c in tables["daily_revenue"]["table_columns"]]
    assert columns == ["order_date", "region", "orders", "units", "revenue"]


def test_get_objects_with_filters(connect):
    conn = connect("analyst")
    objects = conn.adbc_get_objects(depth="tables", catalog_filter="marketing", table_name_filter="%roas%").read_all().to_pylist()
    assert [o["catalog_name"] for o in objects] == ["marketing"]
    tables = [
        (s["db_schema_name"], t["table_name"])
        for s in objects[0]["catalog_db_schemas"]
        for t in (s["db_schema_tables"] or [])
    ]
    assert tables == [("gold", "roas_by_region")]
    schema = conn.adbc_get_table_schema("daily_revenue", catalog_filter="sales", db_schema_filter="gold")
    assert schema.names == ["order_date", "region", "orders", "units", "revenue"]


def test_get_info(connect):
    info = connect("analyst").adbc_get_info()
    assert info["vendor_name"] == "meshql"
    assert info["vendor_version"]
    assert info["vendor_arrow_version"] == "58"


def test_parameters_twelve_of_mixed_types(connect):
    conn = connect("analyst")
    values = (
        1,
        "two",
        3.5,
        True,
        datetime.date(2026, 2, 14),
        -6,
        "seven",
        8.25,
        False,
        datetime.date(2026, 3, 31),
        11,
        "twelve",
    )
    with conn.cursor() as cur:
        cur.execute("SELECT " + ", ".join(f"? AS p{i}" for i in range(1, 13)), parameters=values)
        assert cur.fetchone() == values
        cur.execute(
            "SELECT count(*) FROM sales.gold.daily_revenue WHERE region = ? AND order_date = ?",
            parameters=("north", datetime.date(2026, 2, 14)),
        )
        assert cur.fetchone() == (1,)


def test_executemany_is_refused_clearly(connect):
    conn = connect("analyst")
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as refused:
            cur.executemany("SELECT ? AS x", [(1,), (2,)])
    assert "read-only" in str(refused.value)


def test_a_million_rows(connect):
    conn = connect("analyst")
    with conn.cursor() as cur:
        cur.execute("SELECT value, value * 2 AS twice FROM generate_series(1, 1000000)")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 1_000_000
    assert pc.max(table.column("value")).as_py() == 1_000_000
    assert pc.sum(table.column("twice")).as_py() == 1_000_001_000_000


def test_error_codes(connect):
    conn = connect("analyst")
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as bad_sql:
            cur.execute("SELECT * FROM sales.gold.daily_revenue WHERE")
        assert bad_sql.value.status_code == AdbcStatusCode.INVALID_ARGUMENT
        assert "SQL syntax error" in str(bad_sql.value)
        with pytest.raises(adbc_driver_manager.Error) as missing:
            cur.execute("SELECT * FROM sales.gold.daily_revenu")
        assert missing.value.status_code == AdbcStatusCode.NOT_FOUND
        assert "did you mean `sales.gold.daily_revenue`" in str(missing.value)
        with pytest.raises(adbc_driver_manager.Error) as write:
            cur.execute("DROP TABLE sales.gold.daily_revenue")
        assert write.value.status_code == AdbcStatusCode.UNAUTHORIZED
        assert "read-only" in str(write.value)


def test_decimals_and_dates_arrive_typed(connect):
    conn = connect("analyst")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT order_date, revenue FROM sales.gold.daily_revenue "
            "WHERE order_date = DATE '2026-02-14' AND region = 'north'"
        )
        assert cur.fetchall() == [(datetime.date(2026, 2, 14), decimal.Decimal("5842.56"))]


def test_current_catalog_and_schema_through_session_options(connect):
    conn = connect("analyst", **{"adbc.flight.sql.rpc.with_cookie_middleware": "true"})
    conn.adbc_connection.set_options(**{"adbc.connection.catalog": "sales", "adbc.connection.db_schema": "gold"})
    assert (conn.adbc_current_catalog, conn.adbc_current_db_schema) == ("sales", "gold")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM daily_revenue")
        assert cur.fetchone() == (360,)
    with pytest.raises(adbc_driver_manager.Error):
        conn.adbc_connection.set_options(**{"adbc.connection.catalog": "no_such_domain"})


def test_current_catalog_reads_the_defaults_without_a_session(connect):
    # Without the cookie middleware (the ADBC driver's default) no session survives a call; the
    # current catalog and schema read back are where unqualified names resolve: the defaults.
    conn = connect("analyst")
    assert (conn.adbc_current_catalog, conn.adbc_current_db_schema) == ("sales", "raw")


def test_ingest_create_append_replace(connect):
    import pyarrow as pa

    admin = connect("admin")
    n = 200_000
    # One batch of about 8 MB: more than tonic's 4 MiB default message size.
    big = pa.table({"id": pa.array(range(n), pa.int64()), "note": pa.array([f"note number {i:08d} " * 2 for i in range(n)])})
    assert big.nbytes > 8_000_000
    with admin.cursor() as cur:
        assert cur.adbc_ingest("notes", big, mode="create", catalog_name="marketing", db_schema_name="raw") == n
        assert cur.adbc_ingest("notes", big.slice(0, 10), mode="append", catalog_name="marketing", db_schema_name="raw") == 10
        cur.execute("SELECT count(*), count(DISTINCT id) FROM marketing.raw.notes")
        assert cur.fetchone() == (n + 10, n)
        assert cur.adbc_ingest("notes", big.slice(0, 5), mode="replace", catalog_name="marketing", db_schema_name="raw") == 5
        cur.execute("SELECT count(*) FROM marketing.raw.notes")
        assert cur.fetchone() == (5,)
        with pytest.raises(adbc_driver_manager.Error) as exists:
            cur.adbc_ingest("notes", big.slice(0, 1), mode="create", catalog_name="marketing", db_schema_name="raw")
        assert "already exists" in str(exists.value)

    analyst = connect("analyst")
    with analyst.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as denied:
            cur.adbc_ingest("notes", big.slice(0, 1), mode="append", catalog_name="marketing", db_schema_name="raw")
        assert denied.value.status_code == AdbcStatusCode.UNAUTHORIZED
