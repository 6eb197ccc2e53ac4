package dev.meshql.jdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Clients are read-only: writes through JDBC are refused clearly and change nothing. */
class ReadOnlyTest {
  @RegisterExtension static final Mesh mesh = Mesh.plain();

  private static void assertReadOnlyRefusal(SQLException e) {
    String said = Rows.messages(e);
    assertTrue(said.contains("read-only"), said);
    // gRPC PERMISSION_DENIED, which Arrow Flight for Java names UNAUTHORIZED.
    assertEquals("UNAUTHORIZED", Rows.flightCode(e), said);
  }

  @Test
  void executeUpdateInsertIsRefusedAndWritesNothing() throws SQLException {
    // Even the administrator may not write through a client.
    try (Connection admin = mesh.connect("admin");
        Statement st = admin.createStatement()) {
      assertEquals(24L, Rows.scalar(admin, "SELECT count(*) FROM sales.raw.stores"));
      SQLException e =
          assertThrows(
              SQLException.class,
              () ->
                  st.executeUpdate(
                      "INSERT INTO sales.raw.stores VALUES (99, 'Store 99 Nowhere', 'north', "
                          + "DATE '2026-01-01')"));
      assertReadOnlyRefusal(e);
      assertEquals(24L, Rows.scalar(admin, "SELECT count(*) FROM sales.raw.stores"));
      assertEquals(
          0L, Rows.scalar(admin, "SELECT count(*) FROM sales.raw.stores WHERE store_id = 99"));
    }
  }

  @Test
  void otherWritesAreRefusedToo() throws SQLException {
    try (Connection sales = mesh.connect("sales");
        Statement st = sales.createStatement()) {
      for (String sql :
          new String[] {
            "DELETE FROM sales.raw.stores",
            "UPDATE sales.raw.stores SET region = 'west'",
            "DROP TABLE sales.gold.daily_revenue",
            "CREATE TABLE sales.raw.t AS SELECT 1 AS x",
          }) {
        SQLException e = assertThrows(SQLException.class, () -> st.execute(sql), sql);
        assertReadOnlyRefusal(e);
      }
      assertEquals(24L, Rows.scalar(sales, "SELECT count(*) FROM sales.raw.stores"));
      assertEquals(360L, Rows.scalar(sales, "SELECT count(*) FROM sales.gold.daily_revenue"));
    }
  }

  @Test
  void preparedInsertIsRefused() throws SQLException {
    try (Connection admin = mesh.connect("admin")) {
      SQLException e =
          assertThrows(
              SQLException.class,
              () -> {
                try (PreparedStatement ps =
                    admin.prepareStatement(
                        "INSERT INTO marketing.raw.campaigns (campaign_id) VALUES (?)")) {
                  ps.setString(1, "CMP-999");
                  ps.executeUpdate();
                }
              });
      assertReadOnlyRefusal(e);
      assertEquals(12L, Rows.scalar(admin, "SELECT count(*) FROM marketing.raw.campaigns"));
    }
  }
}
