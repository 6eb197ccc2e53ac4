package dev.meshql.jdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Logging in as DBeaver and Tableau do: user and password, or a token; and failing clearly. */
class ConnectionTest {
  @RegisterExtension static final Mesh mesh = Mesh.plain();

  @Test
  void userAndPasswordInProperties() throws SQLException {
    try (Connection conn = mesh.connect("analyst")) {
      assertTrue(conn.isValid(5));
      assertEquals(360L, Rows.scalar(conn, "SELECT count(*) FROM sales.gold.daily_revenue"));
    }
  }

  @Test
  void userAndPasswordInTheUrl() throws SQLException {
    // The README's JDBC URL, as pasted into DBeaver.
    try (Connection conn =
        DriverManager.getConnection(mesh.url("user=analyst", "password=analyst"))) {
      assertEquals(
          4L, Rows.scalar(conn, "SELECT count(*) FROM marketing.gold.roas_by_region"));
    }
  }

  @Test
  void adminTokenProperty() throws SQLException {
    try (Connection conn = mesh.connectWithToken(MeshqlServer.ADMIN_TOKEN)) {
      // The token is the administrator's: raw layers are readable.
      assertEquals(6000L, Rows.scalar(conn, "SELECT count(*) FROM sales.raw.transactions"));
    }
  }

  @Test
  void tokenInTheUrl() throws SQLException {
    try (Connection conn =
        DriverManager.getConnection(mesh.url("token=" + MeshqlServer.ADMIN_TOKEN))) {
      assertEquals(24L, Rows.scalar(conn, "SELECT count(*) FROM sales.raw.stores"));
    }
  }

  @Test
  void wrongPasswordIsRefusedWithAMessageAUserCanActOn() {
    Properties props = new Properties();
    props.setProperty("user", "analyst");
    props.setProperty("password", "not-the-password");
    SQLException e =
        assertThrows(SQLException.class, () -> DriverManager.getConnection(mesh.url(), props));
    String said = Rows.messages(e);
    assertTrue(said.contains("UNAUTHENTICATED"), said);
    assertTrue(said.contains("invalid user name or password"), said);
    // Nothing says which of the two was wrong, and the password never appears.
    assertFalse(said.contains("not-the-password"), said);
  }

  @Test
  void unknownUserIsRefusedLikeAWrongPassword() {
    Properties props = new Properties();
    props.setProperty("user", "nobody");
    props.setProperty("password", "nobody");
    SQLException e =
        assertThrows(SQLException.class, () -> DriverManager.getConnection(mesh.url(), props));
    String said = Rows.messages(e);
    assertTrue(said.contains("UNAUTHENTICATED"), said);
    assertTrue(said.contains("invalid user name or password"), said);
  }

  @Test
  void wrongTokenIsRefused() {
    SQLException e =
        assertThrows(SQLException.class, () -> mesh.connectWithToken("not-a-token"));
    String said = Rows.messages(e);
    assertTrue(said.contains("UNAUTHENTICATED"), said);
    assertTrue(said.contains("invalid or expired token; log in again"), said);
  }

  @Test
  void noCredentialsAtAllIsRefusedAtTheFirstQuery() throws SQLException {
    // Without user or token the driver does no handshake; the first call must say what to do.
    try (Connection conn = DriverManager.getConnection(mesh.url());
        Statement st = conn.createStatement()) {
      SQLException e = assertThrows(SQLException.class, () -> st.executeQuery("SELECT 1"));
      String said = Rows.messages(e);
      assertEquals("UNAUTHENTICATED", Rows.flightCode(e), said);
      assertTrue(said.contains("authentication required"), said);
    }
  }
}
