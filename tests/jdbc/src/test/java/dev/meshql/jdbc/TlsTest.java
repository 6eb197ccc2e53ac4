package dev.meshql.jdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.sql.Connection;
import java.sql.SQLException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * meshql with `server.tls` set to the test certificates of tests/fixtures/tls (a CA, and a server
 * certificate for localhost and 127.0.0.1 that it signed); JDBC with useEncryption=true.
 */
class TlsTest {
  @RegisterExtension static final Mesh mesh = Mesh.tls();

  private static Path caPem() {
    return mesh.server().meshDir().resolve("tls/ca.pem");
  }

  @Test
  void serverAnnouncesTls() {
    assertTrue(mesh.server().uri().startsWith("grpc+tls://"), mesh.server().uri());
  }

  @Test
  void verifiedAgainstTheFixtureCaWithTlsRootCerts() throws SQLException {
    try (Connection conn = mesh.connect("analyst", "tlsRootCerts=" + caPem())) {
      assertEquals(360L, Rows.scalar(conn, "SELECT count(*) FROM sales.gold.daily_revenue"));
    }
  }

  @Test
  void verifiedAgainstATrustStoreHoldingTheFixtureCa(@TempDir Path dir) throws Exception {
    // What a DBeaver user does: import the CA into a trust store and point the driver at it.
    Path store = dir.resolve("truststore.p12");
    KeyStore ks = KeyStore.getInstance("PKCS12");
    ks.load(null, null);
    try (InputStream in = Files.newInputStream(caPem())) {
      Certificate ca = CertificateFactory.getInstance("X.509").generateCertificate(in);
      ks.setCertificateEntry("meshql-test-ca", ca);
    }
    try (OutputStream out = Files.newOutputStream(store)) {
      ks.store(out, "changeit".toCharArray());
    }
    try (Connection conn =
        mesh.connect(
            "finance",
            "useSystemTrustStore=false",
            "trustStore=" + store,
            "trustStorePassword=changeit")) {
      assertEquals(12L, Rows.scalar(conn, "SELECT count(*) FROM finance.raw.revenue_targets"));
    }
  }

  @Test
  void disableCertificateVerification() throws SQLException {
    try (Connection conn = mesh.connect("analyst", "disableCertificateVerification=true")) {
      assertEquals(
          4L, Rows.scalar(conn, "SELECT count(*) FROM marketing.gold.roas_by_region"));
    }
  }

  @Test
  void aCertificateNobodyTrustsIsRefused() {
    // Neither the fixture CA nor verification switched off: the handshake must fail.
    SQLException e =
        assertThrows(
            SQLException.class, () -> mesh.connect("analyst", "useSystemTrustStore=false"));
    String said = Rows.messages(e);
    assertTrue(
        said.contains("PKIX") || said.contains("certificate") || said.contains("SSL"), said);
  }

  @Test
  void wrongPasswordOverTlsIsStillUnauthenticated() {
    java.util.Properties props = new java.util.Properties();
    props.setProperty("user", "analyst");
    props.setProperty("password", "nope");
    SQLException e =
        assertThrows(
            SQLException.class,
            () ->
                java.sql.DriverManager.getConnection(
                    mesh.url("tlsRootCerts=" + caPem()), props));
    String said = Rows.messages(e);
    assertTrue(said.contains("invalid user name or password"), said);
  }
}
