package dev.meshql.jdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Values of every common SQL type, exact after the round trip, with matching metadata. */
class TypesTest {
  @RegisterExtension static final Mesh mesh = Mesh.plain();

  private static Connection analyst;

  @BeforeAll
  static void open() throws SQLException {
    analyst = mesh.connect("analyst");
  }

  @AfterAll
  static void close() throws SQLException {
    analyst.close();
  }

  private static final String LITERALS =
      "SELECT CAST(9007199254740993 AS BIGINT) AS big_v, "
          + "CAST(-2147483648 AS INT) AS int_v, "
          + "CAST(0.1 AS DOUBLE) AS double_v, "
          + "CAST(12345678901234.56 AS DECIMAL(16,2)) AS dec_v, "
          + "'Zürich – 東京 – Ωμέγα – 🚀' AS text_v, "
          + "true AS bool_v, "
          + "DATE '2026-02-14' AS date_v, "
          + "TIMESTAMP '2026-02-14 13:45:30.123456' AS ts_v, "
          + "arrow_cast('2026-02-14T13:45:30.123456+01:00', "
          + "'Timestamp(Microsecond, Some(\"Europe/Berlin\"))') AS tstz_v, "
          + "CAST(NULL AS BIGINT) AS null_big, "
          + "CAST(NULL AS VARCHAR) AS null_text, "
          + "CAST(NULL AS DECIMAL(10,3)) AS null_dec, "
          + "CAST(NULL AS DATE) AS null_date, "
          + "CAST(NULL AS BOOLEAN) AS null_bool, "
          + "CAST(NULL AS TIMESTAMP) AS null_ts";

  @Test
  void literalValuesOfEveryTypeRoundTripExactly() throws SQLException {
    try (Statement st = analyst.createStatement();
        ResultSet rs = st.executeQuery(LITERALS)) {
      assertTrue(rs.next());
      assertEquals(9007199254740993L, rs.getLong("big_v")); // not representable as a double
      assertEquals(Long.valueOf(9007199254740993L), rs.getObject("big_v"));
      assertEquals(Integer.MIN_VALUE, rs.getInt("int_v"));
      assertEquals(Integer.valueOf(Integer.MIN_VALUE), rs.getObject("int_v"));
      assertEquals(0.1d, rs.getDouble("double_v"));
      assertEquals(new BigDecimal("12345678901234.56"), rs.getBigDecimal("dec_v"));
      assertEquals(new BigDecimal("12345678901234.56"), rs.getObject("dec_v"));
      assertEquals("Zürich – 東京 – Ωμέγα – 🚀", rs.getString("text_v"));
      assertTrue(rs.getBoolean("bool_v"));
      assertEquals(Boolean.TRUE, rs.getObject("bool_v"));
      assertEquals(LocalDate.of(2026, 2, 14), rs.getObject("date_v", LocalDate.class));
      assertEquals(java.sql.Date.valueOf("2026-02-14"), rs.getDate("date_v"));
      assertEquals(
          LocalDateTime.of(2026, 2, 14, 13, 45, 30, 123_456_000),
          rs.getObject("ts_v", LocalDateTime.class));
      assertEquals(
          java.sql.Timestamp.valueOf("2026-02-14 13:45:30.123456"), rs.getTimestamp("ts_v"));
      assertEquals(
          Instant.parse("2026-02-14T12:45:30.123456Z"), rs.getObject("tstz_v", Instant.class));
      assertEquals(
          OffsetDateTime.of(2026, 2, 14, 13, 45, 30, 123_456_000, ZoneOffset.ofHours(1)),
          rs.getObject("tstz_v", OffsetDateTime.class));

      for (String c : List.of("null_big", "null_text", "null_dec", "null_date", "null_bool",
          "null_ts")) {
        assertNull(rs.getObject(c), c);
        assertTrue(rs.wasNull(), c);
      }
      assertEquals(0L, rs.getLong("null_big"));
      assertTrue(rs.wasNull());
      assertFalse(rs.getBoolean("null_bool"));
      assertTrue(rs.wasNull());
      assertFalse(rs.next());
    }
  }

  @Test
  void resultSetMetaDataOfTheLiterals() throws SQLException {
    try (Statement st = analyst.createStatement();
        ResultSet rs = st.executeQuery(LITERALS)) {
      ResultSetMetaData md = rs.getMetaData();
      assertEquals(15, md.getColumnCount());
      int[] types = {
        Types.BIGINT, Types.INTEGER, Types.DOUBLE, Types.DECIMAL, Types.VARCHAR, Types.BOOLEAN,
        Types.DATE, Types.TIMESTAMP, Types.TIMESTAMP_WITH_TIMEZONE, Types.BIGINT, Types.VARCHAR,
        Types.DECIMAL, Types.DATE, Types.BOOLEAN, Types.TIMESTAMP
      };
      for (int i = 1; i <= types.length; i++) {
        assertEquals(types[i - 1], md.getColumnType(i), md.getColumnLabel(i));
      }
      assertEquals("big_v", md.getColumnLabel(1));
      assertEquals("tstz_v", md.getColumnName(9));
      // DECIMAL(16,2) and DECIMAL(10,3): a BI tool formats numbers by these.
      assertEquals(16, md.getPrecision(4), "precision of DECIMAL(16,2)");
      assertEquals(2, md.getScale(4), "scale of DECIMAL(16,2)");
      assertEquals(10, md.getPrecision(12), "precision of DECIMAL(10,3)");
      assertEquals(3, md.getScale(12), "scale of DECIMAL(10,3)");
      // (getColumnClassName is null for every column: the 18.3.0 driver never sets it.)
    }
  }

  @Test
  void aGoldProductRowWithItsTypes() throws SQLException {
    try (Statement st = analyst.createStatement();
        ResultSet rs =
            st.executeQuery(
                "SELECT order_date, region, orders, units, revenue FROM sales.gold.daily_revenue "
                    + "WHERE order_date = DATE '2026-02-14' AND region = 'north'")) {
      ResultSetMetaData md = rs.getMetaData();
      assertEquals(Types.DATE, md.getColumnType(1));
      assertEquals(Types.VARCHAR, md.getColumnType(2));
      assertEquals(Types.BIGINT, md.getColumnType(3));
      assertEquals(Types.BIGINT, md.getColumnType(4));
      assertEquals(Types.DECIMAL, md.getColumnType(5));
      assertTrue(rs.next());
      assertEquals(LocalDate.of(2026, 2, 14), rs.getObject(1, LocalDate.class));
      assertEquals("north", rs.getString(2));
      assertEquals(15L, rs.getLong(3));
      assertEquals(39L, rs.getLong(4));
      assertEquals(new BigDecimal("5842.56"), rs.getBigDecimal(5));
      assertFalse(rs.next());
      // What a BI tool formats the column by (meshql.catalog.columns says Decimal128(24, 2)).
      assertEquals(24, md.getPrecision(5), "precision of revenue, a DECIMAL(24,2)");
      assertEquals(2, md.getScale(5), "scale of revenue, a DECIMAL(24,2)");
    }
  }

  @Test
  void decimalAggregatesAreExact() throws SQLException {
    List<List<Object>> rows =
        Rows.query(
            analyst,
            "SELECT region, sum(revenue) AS revenue, sum(orders) AS orders "
                + "FROM sales.gold.daily_revenue GROUP BY region ORDER BY region");
    assertEquals(
        List.of(
            List.of("east", new BigDecimal("520204.74"), 1271L),
            List.of("north", new BigDecimal("532535.72"), 1271L),
            List.of("south", new BigDecimal("528127.64"), 1274L),
            List.of("west", new BigDecimal("552376.27"), 1319L)),
        rows);
    assertEquals(
        new BigDecimal("2133244.37"),
        Rows.scalar(analyst, "SELECT sum(revenue) FROM sales.gold.daily_revenue"));
  }

  @Test
  void doublesOfACrossDomainJoin() throws SQLException {
    List<List<Object>> rows =
        Rows.query(
            analyst,
            "SELECT t.region, t.month, t.revenue, r.roas FROM finance.gold.revenue_vs_target t "
                + "JOIN marketing.gold.roas_by_region r ON r.region = t.region "
                + "WHERE t.month = '2026-03' ORDER BY t.region");
    assertEquals(
        List.of(
            List.of("east", "2026-03", new BigDecimal("175894.62"), 13.9283d),
            List.of("north", "2026-03", new BigDecimal("190842.19"), 5.8339d),
            List.of("south", "2026-03", new BigDecimal("188573.02"), 17.3029d),
            List.of("west", "2026-03", new BigDecimal("189605.62"), 6.6654d)),
        rows);
  }

  /** The raw layer as ingested from transactions.csv: Int32 ids, UTC timestamps, doubles. */
  @Test
  void rawTimestampsDoublesAndNullsAsTheAdminSeesThem() throws SQLException {
    try (Connection admin = mesh.connect("admin");
        Statement st = admin.createStatement();
        ResultSet rs =
            st.executeQuery(
                "SELECT order_id, ordered_at, store_id, customer_id, product_sku, quantity, "
                    + "unit_price, status FROM sales.raw.transactions "
                    + "WHERE order_id IN (100001, 100002) ORDER BY order_id")) {
      ResultSetMetaData md = rs.getMetaData();
      assertEquals(Types.INTEGER, md.getColumnType(1));
      assertEquals(Types.TIMESTAMP_WITH_TIMEZONE, md.getColumnType(2));
      assertEquals(Types.INTEGER, md.getColumnType(4));
      assertEquals(Types.DOUBLE, md.getColumnType(7));
      assertTrue(rs.next());
      assertEquals(Integer.valueOf(100001), rs.getObject(1));
      assertEquals(Instant.parse("2026-01-01T00:06:21Z"), rs.getObject(2, Instant.class));
      assertEquals(
          java.sql.Timestamp.from(Instant.parse("2026-01-01T00:06:21Z")), rs.getTimestamp(2));
      assertEquals(8, rs.getInt(3));
      assertEquals(477, rs.getInt(4));
      assertEquals("SKU-0030", rs.getString(5));
      assertEquals(5, rs.getInt(6));
      assertEquals(194.57d, rs.getDouble(7));
      assertEquals("completed", rs.getString(8));
      assertTrue(rs.next());
      assertEquals(100002, rs.getInt(1));
      assertEquals(Instant.parse("2026-01-01T00:43:49Z"), rs.getObject(2, Instant.class));
      assertNull(rs.getObject(4), "order 100002 has no customer in transactions.csv");
      assertTrue(rs.wasNull());
      assertEquals(0, rs.getInt(4));
      assertTrue(rs.wasNull());
      assertEquals(103.78d, rs.getDouble(7));
      assertFalse(rs.next());
    }
  }

  @Test
  void maskedPiiIsAHashForTheAnalystAndRawForSales() throws SQLException {
    String sql =
        "SELECT customer_id FROM sales.gold.customer_value ORDER BY orders DESC, revenue DESC "
            + "LIMIT 1";
    Object hashed = Rows.scalar(analyst, sql);
    assertTrue(
        hashed instanceof String && ((String) hashed).matches("[0-9a-f]{64}"),
        "analyst sees a sha256 hex digest, got " + hashed);
    try (Connection sales = mesh.connect("sales")) {
      Object raw = Rows.scalar(sales, sql);
      assertEquals(Integer.valueOf(24), raw, "sales sees the customer id");
      assertEquals(
          hashed, Rows.scalar(analyst, "SELECT encode(sha256(CAST(" + raw + " AS VARCHAR)), 'hex')"));
    }
  }
}
