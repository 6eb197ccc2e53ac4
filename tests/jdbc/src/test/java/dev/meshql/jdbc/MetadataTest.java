package dev.meshql.jdbc;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** DatabaseMetaData as DBeaver's navigator and Tableau's data source page read it. */
class MetadataTest {
  @RegisterExtension static final Mesh mesh = Mesh.plain();

  private static Connection analyst;
  private static Connection admin;

  @BeforeAll
  static void open() throws SQLException {
    analyst = mesh.connect("analyst");
    admin = mesh.connect("admin");
  }

  @AfterAll
  static void close() throws SQLException {
    analyst.close();
    admin.close();
  }

  private static List<String> pairs(ResultSet rs, String a, String b) throws SQLException {
    List<String> out = new ArrayList<>();
    for (List<String> row : Rows.strings(rs, a, b)) {
      out.add(row.get(0) + "." + row.get(1));
    }
    return out;
  }

  private static List<String> tables(ResultSet rs) throws SQLException {
    List<String> out = new ArrayList<>();
    for (List<String> row : Rows.strings(rs, "TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME")) {
      out.add(String.join(".", row));
    }
    return out;
  }

  @Test
  void catalogsAreTheDomainsAndTheSystemCatalog() throws SQLException {
    DatabaseMetaData md = analyst.getMetaData();
    assertEquals(
        List.of("finance", "marketing", "mesh", "sales"),
        Rows.column(md.getCatalogs(), "TABLE_CAT"));
    assertEquals("domain", md.getCatalogTerm());
    assertEquals("layer", md.getSchemaTerm());
    assertTrue(md.isCatalogAtStart());
  }

  @Test
  void schemasAreLayersAndAnalystSeesNoRawOrSilver() throws SQLException {
    List<String> seen = pairs(analyst.getMetaData().getSchemas(), "TABLE_CATALOG", "TABLE_SCHEM");
    assertEquals(
        List.of("finance.gold", "marketing.gold", "mesh.catalog", "mesh.lineage", "mesh.ops",
            "sales.gold"),
        seen);
    assertEquals(seen, pairs(analyst.getMetaData().getSchemas(null, null), "TABLE_CATALOG",
        "TABLE_SCHEM"));
  }

  @Test
  void adminSeesEveryLayer() throws SQLException {
    assertEquals(
        List.of(
            "finance.gold", "finance.raw", "finance.silver",
            "marketing.gold", "marketing.raw", "marketing.silver",
            "mesh.catalog", "mesh.lineage", "mesh.ops",
            "sales.gold", "sales.raw", "sales.silver"),
        pairs(admin.getMetaData().getSchemas(null, null), "TABLE_CATALOG", "TABLE_SCHEM"));
  }

  @Test
  void schemasWithCatalogAndPatterns() throws SQLException {
    DatabaseMetaData md = admin.getMetaData();
    assertEquals(
        List.of("sales.gold", "sales.raw", "sales.silver"),
        pairs(md.getSchemas("sales", null), "TABLE_CATALOG", "TABLE_SCHEM"));
    assertEquals(
        List.of("finance.silver", "marketing.silver", "sales.silver"),
        pairs(md.getSchemas(null, "s%"), "TABLE_CATALOG", "TABLE_SCHEM"));
    assertEquals(
        List.of("marketing.raw"),
        pairs(md.getSchemas("marketing", "r_w"), "TABLE_CATALOG", "TABLE_SCHEM"));
    assertEquals(List.of(), pairs(md.getSchemas("sales", "nothing%"), "TABLE_CATALOG",
        "TABLE_SCHEM"));
    assertEquals(List.of(), pairs(md.getSchemas("no_such_domain", null), "TABLE_CATALOG",
        "TABLE_SCHEM"));
  }

  @Test
  void tablesOfTheAnalystAreTheGoldProducts() throws SQLException {
    List<String> gold = tables(analyst.getMetaData().getTables(null, "gold", "%", null));
    assertEquals(
        List.of(
            "finance.gold.revenue_vs_target",
            "marketing.gold.campaign_performance",
            "marketing.gold.roas_by_region",
            "sales.gold.customer_value",
            "sales.gold.daily_revenue"),
        gold);
    // Governed listing: no raw table at all for the analyst, five for the admin.
    assertEquals(List.of(), tables(analyst.getMetaData().getTables(null, "raw", "%", null)));
    assertEquals(List.of(), tables(analyst.getMetaData().getTables("sales", "silver", null, null)));
    assertEquals(
        List.of(
            "finance.raw.revenue_targets",
            "marketing.raw.ad_spend",
            "marketing.raw.campaigns",
            "sales.raw.stores",
            "sales.raw.transactions"),
        tables(admin.getMetaData().getTables(null, "raw", "%", null)));
  }

  @Test
  void tablesWithTypeFiltersAndPatterns() throws SQLException {
    DatabaseMetaData md = analyst.getMetaData();
    try (ResultSet rs = md.getTables("marketing", "gold", "%roas%", new String[] {"TABLE"})) {
      assertEquals(
          List.of("TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE", "REMARKS", "TYPE_CAT",
              "TYPE_SCHEM", "TYPE_NAME", "SELF_REFERENCING_COL_NAME", "REF_GENERATION"),
          Rows.labels(rs));
      assertEquals(
          List.of(List.of("marketing", "gold", "roas_by_region", "TABLE")),
          Rows.strings(rs, "TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE"));
    }
    assertEquals(
        List.of("sales.gold.customer_value", "sales.gold.daily_revenue"),
        tables(md.getTables("sales", null, "%", new String[] {"TABLE", "VIEW"})));
    assertEquals(
        List.of("sales.gold.daily_revenue"),
        tables(md.getTables(null, "g%", "daily\\_revenue", null)));
    assertEquals(
        List.of("marketing.gold.campaign_performance", "marketing.gold.roas_by_region"),
        tables(md.getTables("marketing", "%", "%_%", null)));
    // Only TABLE exists (getTableTypes says so): asking for views alone lists nothing.
    assertEquals(List.of(), tables(md.getTables(null, null, "%", new String[] {"VIEW"})));
  }

  @Test
  void tableTypes() throws SQLException {
    assertEquals(
        List.of("TABLE"), Rows.column(analyst.getMetaData().getTableTypes(), "TABLE_TYPE"));
  }

  @Test
  void columnsOfDailyRevenue() throws SQLException {
    try (ResultSet rs =
        analyst.getMetaData().getColumns("sales", "gold", "daily_revenue", null)) {
      List<List<String>> got =
          Rows.strings(
              rs,
              "TABLE_CAT",
              "TABLE_SCHEM",
              "TABLE_NAME",
              "COLUMN_NAME",
              "DATA_TYPE",
              "TYPE_NAME",
              "COLUMN_SIZE",
              "DECIMAL_DIGITS",
              "ORDINAL_POSITION");
      assertEquals(
          List.of(
              List.of("sales", "gold", "daily_revenue", "order_date", "" + Types.DATE, "DATE",
                  "10", "0", "1"),
              Arrays.asList("sales", "gold", "daily_revenue", "region", "" + Types.VARCHAR,
                  "VARCHAR", "65536", null, "2"),
              List.of("sales", "gold", "daily_revenue", "orders", "" + Types.BIGINT, "BIGINT",
                  "19", "0", "3"),
              List.of("sales", "gold", "daily_revenue", "units", "" + Types.BIGINT, "BIGINT",
                  "19", "0", "4"),
              List.of("sales", "gold", "daily_revenue", "revenue", "" + Types.DECIMAL, "DECIMAL",
                  "24", "2", "5")),
          got);
    }
  }

  /**
   * NULLABLE/IS_NULLABLE and REMARKS agree with what the mesh itself says of the columns
   * (mesh.catalog.columns, from the published schema and the product's contract).
   */
  @Test
  void columnNullabilityAndRemarksMatchTheContract() throws SQLException {
    Map<String, List<String>> described = new HashMap<>();
    try (var st = analyst.createStatement();
        ResultSet rs =
            st.executeQuery(
                "SELECT column_name, CAST(is_nullable AS VARCHAR), description "
                    + "FROM mesh.catalog.columns WHERE domain = 'sales' AND layer = 'gold' "
                    + "AND dataset = 'daily_revenue' ORDER BY ordinal")) {
      while (rs.next()) {
        described.put(rs.getString(1), Arrays.asList(rs.getString(2), rs.getString(3)));
      }
    }
    assertEquals(5, described.size(), described.toString());
    // The contract's descriptions, as the system catalog shows them.
    assertEquals("Revenue in EUR.", described.get("revenue").get(1));
    assertEquals("Day the orders were placed (UTC).", described.get("order_date").get(1));

    try (ResultSet rs =
        analyst.getMetaData().getColumns("sales", "gold", "daily_revenue", "%")) {
      int n = 0;
      while (rs.next()) {
        n++;
        String column = rs.getString("COLUMN_NAME");
        List<String> expected = described.get(column);
        boolean nullable = Boolean.parseBoolean(expected.get(0));
        assertEquals(
            nullable ? DatabaseMetaData.columnNullable : DatabaseMetaData.columnNoNulls,
            rs.getInt("NULLABLE"),
            column + " NULLABLE");
        assertEquals(nullable ? "YES" : "NO", rs.getString("IS_NULLABLE"), column);
        assertEquals(expected.get(1), rs.getString("REMARKS"), column + " REMARKS");
      }
      assertEquals(5, n);
    }
  }

  @Test
  void columnsWithAColumnPattern() throws SQLException {
    assertEquals(
        List.of("revenue", "revenue_target"),
        Rows.column(
            analyst.getMetaData().getColumns("finance", "gold", "revenue_vs_target", "revenue%"),
            "COLUMN_NAME"));
    // Governed: the analyst gets no column of a raw table, the admin all of them.
    assertEquals(
        List.of(),
        Rows.column(
            analyst.getMetaData().getColumns("sales", "raw", "stores", null), "COLUMN_NAME"));
    assertEquals(
        List.of("store_id", "store_name", "region", "opened_on"),
        Rows.column(
            admin.getMetaData().getColumns("sales", "raw", "stores", null), "COLUMN_NAME"));
  }

  @Test
  void primaryKeysFromTheContract() throws SQLException {
    assertEquals(
        List.of(
            List.of("sales", "gold", "daily_revenue", "order_date", "1"),
            List.of("sales", "gold", "daily_revenue", "region", "2")),
        Rows.strings(
            analyst.getMetaData().getPrimaryKeys("sales", "gold", "daily_revenue"),
            "TABLE_CAT",
            "TABLE_SCHEM",
            "TABLE_NAME",
            "COLUMN_NAME",
            "KEY_SEQ"));
    assertEquals(
        List.of(List.of("roas_by_region", "region", "1")),
        Rows.strings(
            analyst.getMetaData().getPrimaryKeys("marketing", "gold", "roas_by_region"),
            "TABLE_NAME",
            "COLUMN_NAME",
            "KEY_SEQ"));
    // A table without a contract has no key.
    assertEquals(
        List.of(),
        Rows.column(admin.getMetaData().getPrimaryKeys("sales", "raw", "stores"), "COLUMN_NAME"));
  }

  /**
   * meshql declares no foreign keys: empty answers, not errors. (The column labels of an empty
   * metadata result cannot be checked: driver 18.3.0 skips streams without rows, so its result set
   * has no columns whatever the server sends.)
   */
  @Test
  void importedAndExportedKeysAreEmpty() throws SQLException {
    DatabaseMetaData md = analyst.getMetaData();
    for (ResultSet rs :
        List.of(
            md.getImportedKeys("finance", "gold", "revenue_vs_target"),
            md.getExportedKeys("sales", "gold", "daily_revenue"),
            md.getCrossReference("sales", "gold", "daily_revenue", "finance", "gold",
                "revenue_vs_target"))) {
      try (rs) {
        assertFalse(rs.next());
      }
    }
  }

  @Test
  void driverAnswersTypeInfoWithoutAskingTheServer() throws SQLException {
    // The 18.3.0 driver does not implement getTypeInfo() (meshql answers GetXdbcTypeInfo, which
    // ADBC reads): an empty result. A driver that starts asking fails here; then list the types.
    try (ResultSet rs = analyst.getMetaData().getTypeInfo()) {
      assertFalse(rs.next());
    }
  }

  @Test
  void sqlInfo() throws SQLException, IOException {
    DatabaseMetaData md = analyst.getMetaData();
    String version = cargoVersion();
    List<String> keywords = Arrays.asList(md.getSQLKeywords().split(",\\s*"));
    assertAll(
        () -> assertEquals("meshql", md.getDatabaseProductName()),
        () -> assertEquals(version, md.getDatabaseProductVersion()),
        () -> assertEquals("\"", md.getIdentifierQuoteString()),
        () -> assertTrue(md.isReadOnly(), "isReadOnly()"),
        () -> assertFalse(md.supportsTransactions(), "supportsTransactions()"),
        () -> assertTrue(keywords.contains("EXPLAIN"), md.getSQLKeywords()),
        () -> assertTrue(keywords.contains("QUALIFY"), md.getSQLKeywords()),
        () ->
            assertTrue(
                Arrays.asList(md.getStringFunctions().split(",\\s*")).contains("lower"),
                md.getStringFunctions()),
        () ->
            assertTrue(
                Arrays.asList(md.getNumericFunctions().split(",\\s*")).contains("round"),
                md.getNumericFunctions()),
        () -> assertEquals("\\", md.getSearchStringEscape()),
        () -> assertTrue(md.supportsUnionAll(), "supportsUnionAll()"),
        () -> assertTrue(md.supportsOuterJoins(), "supportsOuterJoins()"),
        // DataFusion runs FULL OUTER JOIN; SQL_OUTER_JOINS_SUPPORT_LEVEL must say so.
        () -> assertTrue(md.supportsFullOuterJoins(), "supportsFullOuterJoins()"));
  }

  private static String cargoVersion() throws IOException {
    String toml =
        Files.readString(Paths.get(System.getProperty("meshql.repo", "../..")).resolve(
            "Cargo.toml"));
    Matcher m = Pattern.compile("(?m)^version\\s*=\\s*\"([^\"]+)\"").matcher(toml);
    assertTrue(m.find(), "no version in Cargo.toml");
    return m.group(1);
  }
}
