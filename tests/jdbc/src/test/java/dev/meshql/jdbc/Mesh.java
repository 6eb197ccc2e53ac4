package dev.meshql.jdbc;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.List;
import java.util.Properties;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * JUnit extension giving a test class a running meshql server and JDBC connections to it.
 *
 * <p>{@code @RegisterExtension static final Mesh mesh = Mesh.plain();} shares one server among
 * every class of the run (kept in the root store, stopped when the run ends); {@link #tls()} is a
 * second one, served over TLS, and {@link #viewTypes()} a third, with `server.view_types: true`.
 * After each class the server must still be alive.
 */
public final class Mesh implements BeforeAllCallback, AfterAllCallback {
  /** Starts the server of a {@link Mesh}. */
  @FunctionalInterface
  private interface Start {
    MeshqlServer start() throws IOException;
  }

  private final String key;
  private final boolean tls;
  private final Start start;
  private MeshqlServer server;

  private Mesh(String key, boolean tls, Start start) {
    this.key = key;
    this.tls = tls;
    this.start = start;
  }

  public static Mesh plain() {
    return new Mesh("meshql-plain", false, MeshqlServer::plain);
  }

  public static Mesh tls() {
    return new Mesh("meshql-tls", true, MeshqlServer::tls);
  }

  /** The demo mesh with `server.view_types: true` (see {@link MeshqlServer#viewTypes()}). */
  public static Mesh viewTypes() {
    return new Mesh("meshql-view-types", false, MeshqlServer::viewTypes);
  }

  @Override
  public void beforeAll(ExtensionContext context) {
    server =
        context
            .getRoot()
            .getStore(ExtensionContext.Namespace.GLOBAL)
            .getOrComputeIfAbsent(
                key,
                k -> {
                  try {
                    return start.start();
                  } catch (IOException e) {
                    throw new UncheckedIOException(e);
                  }
                },
                MeshqlServer.class);
  }

  @Override
  public void afterAll(ExtensionContext context) {
    if (server != null && !server.isAlive()) {
      List<String> out = server.output();
      throw new AssertionError(
          server
              + " died during "
              + context.getDisplayName()
              + "; its last output:\n"
              + String.join("\n", out.subList(Math.max(0, out.size() - 40), out.size())));
    }
  }

  public MeshqlServer server() {
    return server;
  }

  /** jdbc:arrow-flight-sql://127.0.0.1:PORT?useEncryption=false plus {@code extra} parameters. */
  public String url(String... extra) {
    StringBuilder url =
        new StringBuilder("jdbc:arrow-flight-sql://127.0.0.1:")
            .append(server.port())
            .append("?useEncryption=")
            .append(tls);
    for (String e : extra) {
      url.append('&').append(e);
    }
    return url.toString();
  }

  /** A connection as a demo principal (each password is the user name), as DBeaver opens it. */
  public Connection connect(String user, String... extra) throws SQLException {
    Properties props = new Properties();
    props.setProperty("user", user);
    props.setProperty("password", user);
    return DriverManager.getConnection(url(extra), props);
  }

  /** A connection with the long-lived admin token (MESHQL_ADMIN_TOKEN). */
  public Connection connectWithToken(String token, String... extra) throws SQLException {
    Properties props = new Properties();
    props.setProperty("token", token);
    return DriverManager.getConnection(url(extra), props);
  }
}
