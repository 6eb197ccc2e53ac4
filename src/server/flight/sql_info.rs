//! GetSqlInfo and GetXdbcTypeInfo: what BI drivers ask about the server before anything else.
//!
//! The keys cover what the Arrow Flight SQL JDBC driver's `DatabaseMetaData` reads and what ADBC
//! reads (`adbc_get_info`, transaction and cancel support).

use std::collections::BTreeMap;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel,
    SqlSupportedCaseSensitivity, SqlSupportedTransaction, XdbcDataType, XdbcDatetimeSubcode,
};
use datafusion::execution::SessionState;

use crate::error::{Error, Result};

/// Builds the SQL info of this server; function lists come from the engine's registry.
pub fn sql_info(state: &SessionState, max_sql_bytes: usize, ingest: bool) -> Result<SqlInfoData> {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "meshql");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "58");
    // Reads only; data changes through pipelines and ingest.
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, ingest);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);

    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    let keywords: Vec<String> = datafusion::sql::sqlparser::keywords::ALL_KEYWORDS
        .iter()
        .map(|k| k.to_string())
        .collect();
    b.append(SqlInfo::SqlKeywords, keywords);
    let functions = functions_by_section(state);
    let list = |sections: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = sections
            .iter()
            .flat_map(|s| functions.get(*s).cloned().unwrap_or_default())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    b.append(SqlInfo::SqlNumericFunctions, list(&["Math Functions"]));
    b.append(
        SqlInfo::SqlStringFunctions,
        list(&[
            "String Functions",
            "Binary String Functions",
            "Regular Expression Functions",
        ]),
    );
    b.append(
        SqlInfo::SqlSystemFunctions,
        list(&["Other Functions", "Conditional Functions"]),
    );
    b.append(
        SqlInfo::SqlDatetimeFunctions,
        list(&["Time and Date Functions"]),
    );
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(
        SqlInfo::SqlSupportsConvert,
        BTreeMap::<i32, Vec<i32>>::new(),
    );
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    // Bitmask of SqlSupportedGroupBy: unrelated (0) and beyond select (1).
    b.append(SqlInfo::SqlSupportedGroupBy, 0b11i32);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    // Bitmask of SupportedSqlGrammar: minimum (0) and core (1).
    b.append(SqlInfo::SqlSupportedGrammar, 0b11i32);
    // Bitmask of SupportedAnsi92SqlGrammarLevel: entry (0) and intermediate (1).
    b.append(SqlInfo::SqlAnsi92SupportedLevel, 0b11i32);
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    // The protocol calls this an enum value, but the Flight SQL JDBC driver (18.3) reads it as a
    // bitmask of 1 << level, as Java's own SqlInfoBuilder writes it: limited (1) and full (2).
    b.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        (1i32 << SqlOuterJoinsSupportLevel::SqlLimitedOuterJoins as i32)
            | (1i32 << SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32),
    );
    // A catalog is a domain, a schema a layer.
    b.append(SqlInfo::SqlSchemaTerm, "layer");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "domain");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    b.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    // Bitmask of SqlSupportedSubqueries: comparisons, EXISTS, IN, quantified.
    b.append(SqlInfo::SqlSupportedSubqueries, 0b1111i32);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    // Bitmask of SqlSupportedUnions: UNION and UNION ALL.
    b.append(SqlInfo::SqlSupportedUnions, 0b11i32);
    for key in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
        SqlInfo::SqlMaxColumnNameLength,
    ] {
        // 0: no limit, or unknown.
        b.append(key, 0i64);
    }
    // Domain, layer and dataset names are at most 63 characters.
    b.append(SqlInfo::SqlDbSchemaNameLength, 63i64);
    b.append(SqlInfo::SqlMaxCatalogNameLength, 63i64);
    b.append(SqlInfo::SqlMaxTableNameLength, 63i64);
    b.append(SqlInfo::SqlMaxStatementLength, max_sql_bytes as i64);
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, false);
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0i32);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, false);
    // Bitmask of SqlSupportedResultSetType: forward only (1).
    b.append(SqlInfo::SqlSupportedResultSetTypes, 0b10i32);
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetUnspecified,
        0i32,
    );
    // Bitmask of SqlSupportedResultSetConcurrency: read only (1).
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetForwardOnly,
        0b10i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollSensitive,
        0i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollInsensitive,
        0i32,
    );
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    b.build()
        .map_err(|e| Error::internal(format!("building SQL info: {e}")))
}

/// Scalar function names grouped by their documentation section.
fn functions_by_section(state: &SessionState) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, udf) in state.scalar_functions() {
        if let Some(doc) = udf.documentation() {
            out.entry(doc.doc_section.label.to_string())
                .or_default()
                .push(name.clone());
        }
    }
    out
}

/// The SQL types meshql returns, as GetXdbcTypeInfo describes them.
pub fn xdbc_type_info() -> Result<XdbcTypeInfoData> {
    let mut b = XdbcTypeInfoDataBuilder::new();
    let base = |name: &str, t: XdbcDataType| XdbcTypeInfo {
        type_name: name.to_string(),
        data_type: t,
        nullable: Nullable::NullabilityNullable,
        searchable: Searchable::Full,
        local_type_name: Some(name.to_string()),
        sql_data_type: t,
        ..Default::default()
    };
    let numeric = |name: &str, t: XdbcDataType, size: i32, unsigned: bool| XdbcTypeInfo {
        column_size: Some(size),
        unsigned_attribute: Some(unsigned),
        auto_increment: Some(false),
        num_prec_radix: Some(10),
        ..base(name, t)
    };
    let quoted = |name: &str, t: XdbcDataType, sub: Option<XdbcDatetimeSubcode>| XdbcTypeInfo {
        literal_prefix: Some("'".into()),
        literal_suffix: Some("'".into()),
        datetime_subcode: sub,
        ..base(name, t)
    };
    b.append(XdbcTypeInfo {
        case_sensitive: true,
        ..quoted("VARCHAR", XdbcDataType::XdbcVarchar, None)
    });
    b.append(XdbcTypeInfo {
        case_sensitive: true,
        ..quoted("CHAR", XdbcDataType::XdbcChar, None)
    });
    b.append(numeric("BOOLEAN", XdbcDataType::XdbcBit, 1, false));
    b.append(numeric("TINYINT", XdbcDataType::XdbcTinyint, 3, false));
    b.append(numeric("SMALLINT", XdbcDataType::XdbcSmallint, 5, false));
    b.append(numeric("INTEGER", XdbcDataType::XdbcInteger, 10, false));
    b.append(numeric("BIGINT", XdbcDataType::XdbcBigint, 19, false));
    b.append(numeric("REAL", XdbcDataType::XdbcReal, 7, false));
    b.append(numeric("DOUBLE", XdbcDataType::XdbcDouble, 15, false));
    b.append(XdbcTypeInfo {
        create_params: Some(vec!["precision".into(), "scale".into()]),
        fixed_prec_scale: true,
        minimum_scale: Some(0),
        maximum_scale: Some(38),
        ..numeric("DECIMAL", XdbcDataType::XdbcDecimal, 38, false)
    });
    // XDBC_SUBCODE_DATE is an alias of XDBC_SUBCODE_YEAR (1) in the protocol.
    b.append(quoted(
        "DATE",
        XdbcDataType::XdbcDate,
        Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
    ));
    b.append(quoted(
        "TIME",
        XdbcDataType::XdbcTime,
        Some(XdbcDatetimeSubcode::XdbcSubcodeTime),
    ));
    b.append(quoted(
        "TIMESTAMP",
        XdbcDataType::XdbcTimestamp,
        Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
    ));
    b.append(quoted("INTERVAL", XdbcDataType::XdbcInterval, None));
    b.append(base("BINARY", XdbcDataType::XdbcBinary));
    b.append(base("VARBINARY", XdbcDataType::XdbcVarbinary));
    b.build()
        .map_err(|e| Error::internal(format!("building type info: {e}")))
}
