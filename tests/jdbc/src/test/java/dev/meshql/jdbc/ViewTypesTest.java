package dev.meshql.jdbc;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A server with {@code server.view_types: true}, which sends Utf8View/BinaryView columns as they
 * are, read through the JDBC driver.
 *
 * <p>The 18.3.0 driver has no JDBC type for either view type: {@code
 * SqlTypes.getSqlTypeIdFromArrowType} throws {@code IllegalArgumentException: Unsupported
 * ArrowType Utf8View} (or {@code BinaryView}) for any result schema holding one, before a row is
 * read — apache/arrow-java#807 and #110, implemented upstream by apache/arrow-java#905, which
 * 18.3.0 predates. Table string columns are Utf8View in meshql, so in this mode a 18.3.0 client
 * cannot query them, prepare a query of them, or list them with getColumns. The tests pin that
 * behaviour down (when the driver is upgraded they fail: then assert the values instead), and
 * check that everything without a view column still reads correctly on such a server.
 */
class ViewTypesTest {
  @RegisterExtension static final Mesh mesh = Mesh.viewTypes();

  private static Connection analyst;

  @BeforeAll
  static void open() throws SQLException {
    analyst = mesh.connect("analyst");
  }

  @AfterAll
  static void close() throws SQLException {
    analyst.close();
  }

  /** The driver's refusal of a view type, somewhere under {@code e}. */
  private static void assertUnsupported(String arrowType, SQLException e) {
    String messages = Rows.messages(e);
    assertTrue(
        messages.contains("java.lang.IllegalArgumentException: Unsupported ArrowType " + arrowType),
        messages);
  }

  private static final String REGION_MONTH =
      "SELECT region, month FROM finance.gold.revenue_vs_target ORDER BY region, month LIMIT 5";

  @Test
  void tableStringColumnsAreRefusedByTheDriver() throws SQLException {
    try (Statement st = analyst.createStatement()) {
      SQLException e = assertThrows(SQLException.class, () -> st.executeQuery(REGION_MONTH));
      assertEquals(
          "Error while executing SQL \"" + REGION_MONTH + "\": Unsupported ArrowType Utf8View",
          e.getMessage());
      assertUnsupported("Utf8View", e);
    }
  }

  @Test
  void tableStringColumnsCastToUtf8ReadBack() throws SQLException {
    try (Statement st = analyst.createStatement();
        ResultSet rs =
            st.executeQuery(
                "SELECT arrow_cast(region, 'Utf8') AS region, arrow_cast(month, 'Utf8') AS month "
                    + "FROM finance.gold.revenue_vs_target ORDER BY region, month LIMIT 5")) {
      ResultSetMetaData md = rs.getMetaData();
      // Utf8 is what the driver maps: VARCHAR (java.sql.Types 12), type name "VARCHAR".
      for (int i = 1; i <= 2; i++) {
        assertEquals(Types.VARCHAR, md.getColumnType(i), md.getColumnLabel(i));
        assertEquals("VARCHAR", md.getColumnTypeName(i), md.getColumnLabel(i));
      }
      assertEquals(List.of("region", "month"), Rows.labels(rs));
      String[][] expected = {
        {"east", "2026-01"}, {"east", "2026-02"}, {"east", "2026-03"},
        {"north", "2026-01"}, {"north", "2026-02"}
      };
      for (String[] row : expected) {
        assertTrue(rs.next());
        assertEquals(row[0], rs.getString("region"));
        assertEquals(row[0], rs.getObject("region"));
        assertEquals(row[1], rs.getString(2));
        assertEquals(row[1], rs.getObject(2));
      }
      assertFalse(rs.next());
    }
  }

  @Test
  void viewLiteralsAreRefusedByTheDriver() throws SQLException {
    try (Statement st = analyst.createStatement()) {
      assertUnsupported(
          "Utf8View",
          assertThrows(
              SQLException.class,
              () -> st.executeQuery("SELECT arrow_cast('héllo', 'Utf8View') AS s")));
      assertUnsupported(
          "BinaryView",
          assertThrows(
              SQLException.class,
              () -> st.executeQuery("SELECT arrow_cast(X'DEADBEEF', 'BinaryView') AS b")));
    }
  }

  /** Literals are Utf8 and Binary, not views: the driver reads them as on any server. */
  @Test
  void stringAndBinaryLiteralsReadBack() throws SQLException {
    try (Statement st = analyst.createStatement();
        ResultSet rs =
            st.executeQuery(
                "SELECT 'héllo' AS s, X'DEADBEEF' AS b, CAST('ab' AS BYTEA) AS ab, "
                    + "arrow_typeof('héllo') AS s_type, arrow_typeof(X'DEADBEEF') AS b_type")) {
      ResultSetMetaData md = rs.getMetaData();
      assertEquals(Types.VARCHAR, md.getColumnType(1));
      assertEquals(Types.VARBINARY, md.getColumnType(2));
      assertEquals(Types.VARBINARY, md.getColumnType(3));
      assertTrue(rs.next());
      assertEquals("héllo", rs.getString("s"));
      assertEquals("héllo", rs.getObject("s"));
      byte[] deadbeef = {(byte) 0xDE, (byte) 0xAD, (byte) 0xBE, (byte) 0xEF};
      assertArrayEquals(deadbeef, rs.getBytes("b"));
      assertArrayEquals(deadbeef, (byte[]) rs.getObject("b"));
      assertArrayEquals(new byte[] {'a', 'b'}, rs.getBytes("ab"));
      assertEquals("ab", rs.getString("ab"));
      assertEquals("Utf8", rs.getString("s_type"));
      assertEquals("Binary", rs.getString("b_type"));
      assertFalse(rs.next());
    }
  }

  @Test
  void aStringParameterReadsBack() throws SQLException {
    try (PreparedStatement ps = analyst.prepareStatement("SELECT ? AS s")) {
      ps.setString(1, "héllo");
      try (ResultSet rs = ps.executeQuery()) {
        assertEquals(Types.VARCHAR, rs.getMetaData().getColumnType(1));
        assertTrue(rs.next());
        assertEquals("héllo", rs.getString(1));
        assertEquals("héllo", rs.getObject("s"));
        assertFalse(rs.next());
      }
    }
  }

  @Test
  void preparingAQueryOfTableStringColumnsIsRefusedByTheDriver() {
    String sql =
        "SELECT region, month FROM finance.gold.revenue_vs_target WHERE region = ? "
            + "ORDER BY month";
    SQLException e = assertThrows(SQLException.class, () -> analyst.prepareStatement(sql));
    assertEquals("while preparing SQL: " + sql, e.getMessage());
    assertUnsupported("Utf8View", e);
  }

  @Test
  void aStringParameterFiltersATableWhoseColumnsAreCastToUtf8() throws SQLException {
    try (PreparedStatement ps =
        analyst.prepareStatement(
            "SELECT arrow_cast(region, 'Utf8') AS region, arrow_cast(month, 'Utf8') AS month "
                + "FROM finance.gold.revenue_vs_target WHERE region = ? ORDER BY month")) {
      ps.setString(1, "north");
      assertEquals(
          List.of(
              List.of("north", "2026-01"), List.of("north", "2026-02"),
              List.of("north", "2026-03")),
          Rows.strings(ps.executeQuery(), "region", "month"));
      ps.setString(1, "west");
      assertEquals(
          List.of("2026-01", "2026-02", "2026-03"), Rows.column(ps.executeQuery(), "month"));
      ps.setString(1, "nowhere");
      assertEquals(List.of(), Rows.column(ps.executeQuery(), "month"));
    }
  }

  /**
   * getTables (without schemas) still lists the table; getColumns reads the table's schema, whose
   * string columns are Utf8View, and fails. The driver then does not release the stream it failed
   * to transform, so this test uses a connection of its own.
   */
  @Test
  void getColumnsOfATableWithStringColumnsIsRefusedByTheDriver() throws SQLException {
    assertEquals(
        List.of("revenue_vs_target"),
        Rows.column(analyst.getMetaData().getTables("finance", "gold", null, null), "TABLE_NAME"));

    Connection conn = mesh.connect("analyst");
    SQLException e =
        assertThrows(
            SQLException.class,
            () -> conn.getMetaData().getColumns("finance", "gold", "revenue_vs_target", null));
    assertEquals("Failed to transform VectorSchemaRoot.", e.getMessage());
    assertUnsupported("Utf8View", e);

    // The driver keeps the stream it failed to transform; its close reports that as a leak of
    // its own allocator, which is no concern of the server's.
    try {
      conn.close();
    } catch (SQLException driverCleanup) {
      // "Failed to clean up client resources." (the driver's, after the refusal above)
    }
  }
}
