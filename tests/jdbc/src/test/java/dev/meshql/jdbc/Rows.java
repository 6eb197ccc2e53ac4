package dev.meshql.jdbc;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Small helpers turning result sets into plain lists, so assertions compare whole answers. */
final class Rows {
  private Rows() {}

  /** Every row of {@code rs} (closed afterwards), the named columns only, as strings. */
  static List<List<String>> strings(ResultSet rs, String... columns) throws SQLException {
    try (rs) {
      List<List<String>> out = new ArrayList<>();
      while (rs.next()) {
        List<String> row = new ArrayList<>();
        for (String c : columns) {
          row.add(rs.getString(c));
        }
        out.add(row);
      }
      return out;
    }
  }

  /** The one named column of every row of {@code rs}, as strings. */
  static List<String> column(ResultSet rs, String column) throws SQLException {
    List<String> out = new ArrayList<>();
    for (List<String> row : strings(rs, column)) {
      out.add(row.get(0));
    }
    return out;
  }

  /** The column labels of {@code rs}. */
  static List<String> labels(ResultSet rs) throws SQLException {
    ResultSetMetaData md = rs.getMetaData();
    List<String> out = new ArrayList<>();
    for (int i = 1; i <= md.getColumnCount(); i++) {
      out.add(md.getColumnLabel(i));
    }
    return out;
  }

  /** Every row of {@code sql}, every column, as objects (getObject). */
  static List<List<Object>> query(Connection conn, String sql) throws SQLException {
    try (Statement st = conn.createStatement();
        ResultSet rs = st.executeQuery(sql)) {
      return objects(rs);
    }
  }

  static List<List<Object>> objects(ResultSet rs) throws SQLException {
    int n = rs.getMetaData().getColumnCount();
    List<List<Object>> out = new ArrayList<>();
    while (rs.next()) {
      Object[] row = new Object[n];
      for (int i = 1; i <= n; i++) {
        row[i - 1] = rs.getObject(i);
      }
      out.add(Arrays.asList(row));
    }
    return out;
  }

  /** The single value of a one-row, one-column query. */
  static Object scalar(Connection conn, String sql) throws SQLException {
    List<List<Object>> rows = query(conn, sql);
    if (rows.size() != 1 || rows.get(0).size() != 1) {
      throw new AssertionError("expected one value from `" + sql + "`, got " + rows);
    }
    return rows.get(0).get(0);
  }

  /**
   * The gRPC status code (e.g. PERMISSION_DENIED) of the Flight error under {@code e}, as the
   * driver received it from meshql; null when there is none. (The driver's FlightRuntimeException
   * is relocated inside its jar, hence reflection.)
   */
  static String flightCode(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t.getClass().getName().endsWith(".FlightRuntimeException")) {
        try {
          Object status = t.getClass().getMethod("status").invoke(t);
          Object code = status.getClass().getMethod("code").invoke(status);
          return code.toString();
        } catch (ReflectiveOperationException reflection) {
          throw new AssertionError("cannot read the status of " + t, reflection);
        }
      }
      if (t.getCause() == t) {
        break;
      }
    }
    return null;
  }

  /** The messages of {@code e} and all its causes, one per line (what a user sees). */
  static String messages(Throwable e) {
    StringBuilder out = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      out.append(t.getClass().getName()).append(": ").append(t.getMessage()).append('\n');
      if (t.getCause() == t) {
        break;
      }
    }
    return out.toString();
  }
}
