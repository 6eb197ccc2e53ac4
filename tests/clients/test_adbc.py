"""The demo mesh through ADBC's Flight SQL driver, as pandas, Superset and notebooks use it."""

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pytest


@pytest.fixture()
def conn(server):
    with flightsql.connect(server, autocommit=True) as c:
        yield c


def test_gold_product_and_cross_domain_join(conn):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT region, CAST(sum(revenue) AS VARCHAR) AS revenue, sum(orders) AS orders "
            "FROM sales.gold.daily_revenue GROUP BY region ORDER BY region"
        )
        table = cur.fetch_arrow_table()
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


def test_get_objects_without_a_catalog_lists_every_domain(conn):
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    catalogs = sorted(o["catalog_name"] for o in objects)
    assert catalogs == ["finance", "marketing", "sales"]
    sales = next(o for o in objects if o["catalog_name"] == "sales")
    layers = {s["db_schema_name"]: sorted(t["table_name"] for t in s["db_schema_tables"]) for s in sales["catalog_db_schemas"]}
    assert layers["gold"] == ["daily_revenue"]
    assert layers["silver"] == ["clean_transactions", "stores"]
    assert layers["raw"] == ["stores", "transactions"]


def test_errors_carry_codes_and_messages(conn):
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.ProgrammingError) as bad_sql:
            cur.execute("SELECT * FROM sales.gold.daily_revenue WHERE")
        assert "SQL syntax error" in str(bad_sql.value)
        with pytest.raises(adbc_driver_manager.Error) as missing:
            cur.execute("SELECT * FROM sales.gold.daily_revenu")
        assert "did you mean `sales.gold.daily_revenue`" in str(missing.value)
        with pytest.raises(adbc_driver_manager.Error) as write:
            cur.execute("DROP TABLE sales.gold.daily_revenue")
        assert "read-only" in str(write.value)
