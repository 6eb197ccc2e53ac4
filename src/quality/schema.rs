//! Does a dataset's schema match its contract? Names, logical types (ODCS: string, date,
//! timestamp, time, number, integer, boolean, object, array) and physical types.

use datafusion::arrow::datatypes::{DataType, Schema};

use crate::spec::contract::{Contract, ContractColumn};

/// Whether `t` is of ODCS logical type `logical`.
fn logical_matches(logical: &str, t: &DataType) -> bool {
    use DataType::*;
    match logical {
        "string" => matches!(t, Utf8 | LargeUtf8 | Utf8View),
        "date" => matches!(t, Date32 | Date64),
        "timestamp" => matches!(t, Timestamp(..)),
        "time" => matches!(t, Time32(_) | Time64(_)),
        "integer" => t.is_integer(),
        "number" => t.is_numeric(),
        "boolean" => matches!(t, Boolean),
        "object" => matches!(t, Struct(_) | Map(..)),
        "array" => matches!(
            t,
            List(_) | LargeList(_) | FixedSizeList(..) | ListView(_) | LargeListView(_)
        ),
        _ => false,
    }
}

/// Whether `t` is the SQL type `physical` (`bigint`, `decimal(24,2)`, `varchar`, `date`, ...).
/// A type without parameters (`decimal`, `timestamp`) matches any parameters.
fn physical_matches(physical: &str, t: &DataType) -> bool {
    use DataType::*;
    let p: String = physical
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let (base, params) = match p.split_once('(') {
        Some((b, rest)) => (b.to_string(), Some(rest.trim_end_matches(')').to_string())),
        None => (p.clone(), None),
    };
    match (base.as_str(), t) {
        ("string" | "varchar" | "text" | "char" | "utf8", Utf8 | LargeUtf8 | Utf8View) => true,
        ("tinyint" | "byte" | "int8", Int8) => true,
        ("smallint" | "short" | "int16", Int16) => true,
        ("int" | "integer" | "int32", Int32) => true,
        ("bigint" | "long" | "int64", Int64) => true,
        ("float" | "real" | "float32", Float32) => true,
        ("double" | "float64", Float64) => true,
        ("boolean" | "bool", Boolean) => true,
        ("date", Date32 | Date64) => true,
        ("timestamp" | "timestamp_ntz" | "timestamp_ltz", Timestamp(..)) => true,
        ("decimal" | "numeric", Decimal128(precision, scale) | Decimal256(precision, scale)) => {
            match params {
                None => true,
                Some(ps) => {
                    let mut it = ps.split(',');
                    let want_p: Option<u8> = it.next().and_then(|x| x.parse().ok());
                    let want_s: i8 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                    want_p == Some(*precision) && want_s == *scale
                }
            }
        }
        _ => false,
    }
}

/// Why `t` does not match `col`'s declared types, if it does not.
pub fn type_matches(col: &ContractColumn, t: &DataType) -> Option<String> {
    if let Some(l) = &col.logical_type
        && !logical_matches(l, t)
    {
        return Some(format!("the contract says {l}, the data is {t}"));
    }
    if let Some(p) = &col.physical_type
        && !physical_matches(p, t)
    {
        return Some(format!("the contract says {p}, the data is {t}"));
    }
    None
}

/// The differences between the contract's columns and `schema`, one line each:
/// `- col` documented but missing, `+ col` present but undocumented, `~ col` of another type.
pub fn schema_diff(contract: &Contract, schema: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for col in &contract.columns {
        match schema.field_with_name(&col.name) {
            Err(_) => out.push(format!(
                "- {}: in the contract, missing from the data",
                col.name
            )),
            Ok(f) => {
                if let Some(why) = type_matches(col, f.data_type()) {
                    out.push(format!("~ {}: {why}", col.name));
                }
            }
        }
    }
    for f in schema.fields() {
        if !contract.columns.iter().any(|c| c.name == *f.name()) {
            out.push(format!(
                "+ {}: in the data ({}), missing from the contract",
                f.name(),
                f.data_type()
            ));
        }
    }
    out
}
