package dev.meshql.jdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.Date;
import java.sql.ParameterMetaData;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.LocalDate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Prepared statements as a BI tool's filter panel sends them. Expected rows were computed from
 * catalog/sales/data/transactions.csv independently of meshql (silver keeps distinct rows with a
 * customer and a positive quantity) and are checked against the same query with literals too.
 */
class PreparedStatementTest {
  @RegisterExtension static final Mesh mesh = Mesh.plain();

  /** The sales team owns sales.silver. */
  private static Connection sales;

  @BeforeAll
  static void open() throws SQLException {
    sales = mesh.connect("sales");
  }

  @AfterAll
  static void close() throws SQLException {
    sales.close();
  }

  private static final String COLUMNS =
      "SELECT order_id, ordered_at, store_id, product_sku, quantity, unit_price, amount, status "
          + "FROM sales.silver.clean_transactions ";
  private static final String TWELVE =
      COLUMNS
          + "WHERE order_id BETWEEN ? AND ? "
          + "AND store_id IN (?, ?, ?) "
          + "AND status = ? "
          + "AND CAST(quantity AS INT) >= ? "
          + "AND unit_price >= ? "
          + "AND CAST(amount AS DOUBLE) < ? "
          + "AND order_date >= ? "
          + "AND order_date < ? "
          + "AND (product_sku LIKE 'SKU-001%') = ? "
          + "ORDER BY order_id";

  private static List<String> rows(ResultSet rs) throws SQLException {
    List<String> out = new ArrayList<>();
    try (rs) {
      while (rs.next()) {
        out.add(
            rs.getLong(1) + "|" + rs.getObject(2, Instant.class) + "|" + rs.getLong(3) + "|"
                + rs.getString(4) + "|" + rs.getLong(5) + "|" + rs.getBigDecimal(6) + "|"
                + rs.getBigDecimal(7) + "|" + rs.getString(8));
      }
    }
    return out;
  }

  private static List<String> literal(String where) throws SQLException {
    try (var st = sales.createStatement()) {
      return rows(st.executeQuery(COLUMNS + where + " ORDER BY order_id"));
    }
  }

  @Test
  void twelveParametersOfMixedTypesReExecutedWithNewValues() throws SQLException {
    try (PreparedStatement ps = sales.prepareStatement(TWELVE)) {
      ps.setLong(1, 100001L);
      ps.setLong(2, 103000L);
      ps.setLong(3, 2L);
      ps.setLong(4, 3L);
      ps.setLong(5, 5L);
      ps.setString(6, "completed");
      ps.setInt(7, 2);
      ps.setBigDecimal(8, new BigDecimal("50.00"));
      ps.setDouble(9, 1000.0d);
      ps.setDate(10, Date.valueOf("2026-01-15"));
      ps.setDate(11, Date.valueOf("2026-03-01"));
      ps.setBoolean(12, true);
      List<String> first = rows(ps.executeQuery());
      assertEquals(18, first.size(), first.toString());
      assertEquals(
          "100916|2026-01-15T00:25:52Z|2|SKU-0016|3|73.82|221.46|completed", first.get(0));
      assertEquals(
          "101028|2026-01-16T20:55:55Z|3|SKU-0010|4|218.56|874.24|completed", first.get(1));
      assertEquals(
          "102814|2026-02-11T16:16:59Z|5|SKU-0018|4|228.30|913.20|completed", first.get(17));
      assertEquals(
          literal(
              "WHERE order_id BETWEEN 100001 AND 103000 AND store_id IN (2, 3, 5) "
                  + "AND status = 'completed' AND CAST(quantity AS INT) >= 2 "
                  + "AND unit_price >= 50.00 AND CAST(amount AS DOUBLE) < 1000.0 "
                  + "AND order_date >= DATE '2026-01-15' AND order_date < DATE '2026-03-01' "
                  + "AND (product_sku LIKE 'SKU-001%') = true"),
          first);

      // The same statement again, every value changed.
      ps.setLong(1, 100000L);
      ps.setLong(2, 106000L);
      ps.setLong(3, 1L);
      ps.setLong(4, 9L);
      ps.setLong(5, 13L);
      ps.setString(6, "refunded");
      ps.setInt(7, 1);
      ps.setBigDecimal(8, new BigDecimal("0.00"));
      ps.setDouble(9, 100000.0d);
      ps.setDate(10, Date.valueOf("2026-01-01"));
      ps.setDate(11, Date.valueOf("2026-04-01"));
      ps.setBoolean(12, false);
      List<String> second = rows(ps.executeQuery());
      assertEquals(44, second.size(), second.toString());
      assertEquals(
          "100067|2026-01-02T04:28:20Z|1|SKU-0037|2|153.16|306.32|refunded", second.get(0));
      assertEquals(
          "105935|2026-03-31T03:46:18Z|13|SKU-0001|5|88.16|440.80|refunded", second.get(43));
    }
  }

  @Test
  void parameterMetaDataOfTheTwelve() throws SQLException {
    try (PreparedStatement ps = sales.prepareStatement(TWELVE)) {
      ParameterMetaData md = ps.getParameterMetaData();
      assertEquals(12, md.getParameterCount());
      int[] expected = {
        Types.INTEGER, Types.INTEGER, Types.INTEGER, Types.INTEGER, Types.INTEGER, Types.VARCHAR,
        Types.INTEGER, Types.DECIMAL, Types.DOUBLE, Types.DATE, Types.DATE, Types.BOOLEAN
      };
      List<Integer> got = new ArrayList<>();
      List<Integer> want = new ArrayList<>();
      for (int i = 1; i <= 12; i++) {
        got.add(md.getParameterType(i));
        want.add(expected[i - 1]);
      }
      assertEquals(want, got);
      assertEquals(ParameterMetaData.parameterModeIn, md.getParameterMode(1));
      // The result's columns are known before execution, as DBeaver shows them.
      assertEquals(8, ps.getMetaData().getColumnCount());
      assertEquals("order_id", ps.getMetaData().getColumnName(1));
    }
  }

  @Test
  void parametersInWhereAndLimit() throws SQLException {
    try (Connection analyst = mesh.connect("analyst");
        PreparedStatement ps =
            analyst.prepareStatement(
                "SELECT DISTINCT order_date FROM sales.gold.daily_revenue "
                    + "WHERE order_date >= ? ORDER BY order_date LIMIT ?")) {
      ps.setDate(1, Date.valueOf("2026-02-27"));
      ps.setLong(2, 3L);
      List<String> got = new ArrayList<>();
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          got.add(rs.getObject(1, LocalDate.class).toString());
        }
      }
      assertEquals(List.of("2026-02-27", "2026-02-28", "2026-03-01"), got);

      ps.setDate(1, Date.valueOf("2026-03-31"));
      ps.setLong(2, 10L);
      try (ResultSet rs = ps.executeQuery()) {
        assertTrue(rs.next());
        assertEquals(LocalDate.of(2026, 3, 31), rs.getObject(1, LocalDate.class));
        assertFalse(rs.next());
      }
    }
  }

  @Test
  void aDateParameterFindsTheKnownRow() throws SQLException {
    try (Connection analyst = mesh.connect("analyst");
        PreparedStatement ps =
            analyst.prepareStatement(
                "SELECT orders, units, revenue FROM sales.gold.daily_revenue "
                    + "WHERE region = ? AND order_date = ?")) {
      ps.setString(1, "north");
      ps.setDate(2, Date.valueOf("2026-02-14"));
      try (ResultSet rs = ps.executeQuery()) {
        assertTrue(rs.next());
        assertEquals(15L, rs.getLong(1));
        assertEquals(39L, rs.getLong(2));
        assertEquals(new BigDecimal("5842.56"), rs.getBigDecimal(3));
        assertFalse(rs.next());
      }
      // A value no row has: an empty answer, not an error.
      ps.setString(1, "Zürich");
      try (ResultSet rs = ps.executeQuery()) {
        assertFalse(rs.next());
      }
    }
  }

  @Test
  void timestampParameters() throws SQLException {
    try (PreparedStatement ps =
        sales.prepareStatement(
            "SELECT count(*), min(order_id) FROM sales.silver.clean_transactions "
                + "WHERE ordered_at >= ? AND ordered_at < ?")) {
      // 2026-02-14 12:00 to 18:00: 18 orders, the first 102995 at 12:23:58.
      ps.setTimestamp(1, Timestamp.valueOf("2026-02-14 12:00:00"));
      ps.setTimestamp(2, Timestamp.valueOf("2026-02-14 18:00:00"));
      try (ResultSet rs = ps.executeQuery()) {
        assertTrue(rs.next());
        assertEquals(18L, rs.getLong(1));
        assertEquals(102995L, rs.getLong(2));
      }
      // Before 2026-01-02: the 54 orders of the first day.
      ps.setTimestamp(1, Timestamp.valueOf("2025-12-31 00:00:00"));
      ps.setTimestamp(2, Timestamp.valueOf("2026-01-02 00:00:00"));
      try (ResultSet rs = ps.executeQuery()) {
        assertTrue(rs.next());
        assertEquals(54L, rs.getLong(1));
      }
    }
  }

  @Test
  void aPreparedStatementWithoutParametersRunsTwice() throws SQLException {
    try (PreparedStatement ps =
        sales.prepareStatement("SELECT count(*) FROM sales.silver.clean_transactions")) {
      for (int i = 0; i < 2; i++) {
        try (ResultSet rs = ps.executeQuery()) {
          assertTrue(rs.next());
          assertEquals(5860L, rs.getLong(1));
        }
      }
    }
  }
}
