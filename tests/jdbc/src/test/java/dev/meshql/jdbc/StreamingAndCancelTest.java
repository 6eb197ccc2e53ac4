package dev.meshql.jdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.SQLTimeoutException;
import java.sql.Statement;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Big results streamed with a small fetch size; cancelling and timing out long queries. */
class StreamingAndCancelTest {
  @RegisterExtension static final Mesh mesh = Mesh.plain();

  /** Some 10^11 rows: never finishes within a test. */
  private static final String ENDLESS_ROWS = "SELECT value FROM generate_series(1, 100000000000)";
  /** One row, after scanning some 10^11 values: the first row never comes within a test. */
  private static final String ENDLESS_AGGREGATE =
      "SELECT max(value % 7) FROM generate_series(1, 100000000000)";

  private static final ExecutorService threads =
      Executors.newCachedThreadPool(
          r -> {
            Thread t = new Thread(r, "jdbc-reader");
            t.setDaemon(true);
            return t;
          });

  private static java.util.List<Throwable> causes(Throwable e) {
    java.util.List<Throwable> out = new java.util.ArrayList<>();
    for (Throwable t = e; t != null && !out.contains(t); t = t.getCause()) {
      out.add(t);
    }
    return out;
  }

  @AfterAll
  static void stopThreads() {
    threads.shutdownNow();
  }

  @Test
  void aMillionRowsStreamedWithASmallFetchSize() throws SQLException {
    try (Connection conn = mesh.connect("analyst");
        Statement st = conn.createStatement()) {
      st.setFetchSize(500);
      long rows = 0;
      long sum = 0;
      long sumOfSquares = 0;
      long twiceSum = 0;
      try (ResultSet rs =
          st.executeQuery(
              "SELECT value, value * 2 AS twice, CAST(value AS VARCHAR) AS text "
                  + "FROM generate_series(0, 999999)")) {
        while (rs.next()) {
          long v = rs.getLong(1);
          rows++;
          sum += v;
          sumOfSquares += v * v;
          twiceSum += rs.getLong(2);
          if (!Long.toString(v).equals(rs.getString(3))) {
            throw new AssertionError("row " + rows + ": " + v + " vs " + rs.getString(3));
          }
        }
      }
      assertEquals(1_000_000L, rows);
      assertEquals(499_999_500_000L, sum);
      assertEquals(333_332_833_333_500_000L, sumOfSquares); // every value exactly once
      assertEquals(999_999_000_000L, twiceSum);
    }
  }

  @Test
  void cancelWhileRowsAreStreaming() throws Exception {
    try (Connection conn = mesh.connect("analyst")) {
      Statement st = conn.createStatement();
      st.setFetchSize(100);
      CountDownLatch reading = new CountDownLatch(1);
      CountDownLatch cancelled = new CountDownLatch(1);
      Future<Object> reader =
          threads.submit(
              () -> {
                long n = 0;
                try (ResultSet rs = st.executeQuery(ENDLESS_ROWS)) {
                  while (rs.next()) {
                    if (++n == 10_000) {
                      reading.countDown();
                      // The 18.3.0 driver's cancel() frees the batch in hand, and a next() that
                      // moves to the following batch at the same moment frees it again ("RefCnt
                      // has gone negative"): the reader holds still while the cancel is sent,
                      // the server's stream still open, then reads on.
                      cancelled.await(60, TimeUnit.SECONDS);
                    }
                  }
                  return "the result ended after " + n + " rows";
                } catch (SQLException e) {
                  return e;
                }
              });
      assertTrue(reading.await(60, TimeUnit.SECONDS), "no rows within 60 s");
      long started = System.nanoTime();
      st.cancel();
      cancelled.countDown();
      Object outcome = reader.get(10, TimeUnit.SECONDS);
      long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
      assertTrue(tookMs < 5000, "cancel took " + tookMs + " ms: " + outcome);
      st.close();

      // The connection goes on: a new statement answers at once.
      assertEquals(360L, Rows.scalar(conn, "SELECT count(*) FROM sales.gold.daily_revenue"));
      assertTrue(mesh.server().awaitIdle(15), "the server still works on the cancelled query");
    }
  }

  @Test
  void cancelBeforeTheFirstRow() throws Exception {
    try (Connection conn = mesh.connect("analyst")) {
      Statement st = conn.createStatement();
      CountDownLatch executing = new CountDownLatch(1);
      Future<Object> reader =
          threads.submit(
              () -> {
                executing.countDown();
                try (ResultSet rs = st.executeQuery(ENDLESS_AGGREGATE)) {
                  return rs.next() ? "a row: " + rs.getObject(1) : "no row";
                } catch (SQLException e) {
                  return e;
                }
              });
      assertTrue(executing.await(10, TimeUnit.SECONDS));
      // Let the query get going on the server (the statement is planned, the scan running).
      Thread.sleep(2000);
      long started = System.nanoTime();
      st.cancel();
      Object outcome;
      try {
        outcome = reader.get(10, TimeUnit.SECONDS);
      } catch (TimeoutException e) {
        throw new AssertionError("executeQuery still blocked 10 s after Statement.cancel()");
      }
      long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
      assertInstanceOf(SQLException.class, outcome, String.valueOf(outcome));
      assertTrue(tookMs < 5000, "cancel took " + tookMs + " ms");

      try (Statement next = conn.createStatement();
          ResultSet rs = next.executeQuery("SELECT count(*) FROM marketing.gold.roas_by_region")) {
        rs.next();
        assertEquals(4L, rs.getLong(1));
      }
      assertTrue(mesh.server().awaitIdle(15), "the server still works on the cancelled query");
    }
  }

  @Test
  void queryTimeout() throws Exception {
    try (Connection conn = mesh.connect("analyst")) {
      try (Statement st = conn.createStatement()) {
        st.setQueryTimeout(2);
        assertEquals(2, st.getQueryTimeout());
        long started = System.nanoTime();
        Future<Object> run =
            threads.submit(
                () -> {
                  try (ResultSet rs = st.executeQuery(ENDLESS_AGGREGATE)) {
                    return rs.next() ? "a row: " + rs.getObject(1) : "no row";
                  } catch (SQLException e) {
                    return e;
                  }
                });
        Object outcome;
        try {
          outcome = run.get(30, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
          throw new AssertionError("setQueryTimeout(2) did not fire within 30 s");
        }
        long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
        // The driver (Avatica) wraps the SQLTimeoutException it throws in a plain SQLException.
        assertInstanceOf(SQLException.class, outcome, String.valueOf(outcome));
        assertTrue(
            causes((Throwable) outcome).stream().anyMatch(c -> c instanceof SQLTimeoutException),
            Rows.messages((Throwable) outcome));
        assertTrue(tookMs < 8000, "the 2 s timeout fired after " + tookMs + " ms");
      }
      // A following query on a new statement works.
      assertEquals(360L, Rows.scalar(conn, "SELECT count(*) FROM sales.gold.daily_revenue"));
    }
    // The client gave up (and closed): the server must not keep scanning until its own deadline.
    assertTrue(mesh.server().awaitIdle(15), "the server still works on the timed-out query");
  }
}
