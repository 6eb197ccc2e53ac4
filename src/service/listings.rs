//! What a principal may see of the mesh: domains (catalogs), layers (schemas), datasets (tables)
//! with their schemas, and the primary keys their contracts declare. Every listing shows only what
//! the principal may read, plus the `mesh` system catalog; each is audited.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use futures::{StreamExt, TryStreamExt};

use super::api::QueryService;
use super::audit::AuditRecord;
use super::operation::Call;
use crate::catalog::{MeshCatalog, SYSTEM_CATALOG, system_schema, system_tables};
use crate::error::Result;
use crate::spec::{Action, DatasetName, Mesh};

/// Which tables a listing asks for (Flight SQL's GetTables filters).
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    /// Exact domain, when given.
    pub catalog: Option<String>,
    /// `LIKE` patterns (`%`, `_`, `\` escapes) on the layer and the dataset.
    pub schema_pattern: Option<String>,
    pub table_pattern: Option<String>,
}

/// The column metadata key under which listed schemas carry a column's description from the
/// product's contract; each front end shows it in its own words (Flight SQL's remarks).
pub const DESCRIPTION: &str = "description";

/// One listed table: its name and, when asked for, the schema its columns have.
#[derive(Debug, Clone)]
pub struct ListedTable {
    pub name: DatasetName,
    pub schema: Option<SchemaRef>,
}

/// A primary-key column of a product's contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    pub table: DatasetName,
    pub column: String,
    /// 1-based position in the key.
    pub sequence: i32,
}

impl QueryService {
    /// The datasets the principal may read.
    fn readable(&self, call: &Call) -> Vec<DatasetName> {
        let access = self.access(&call.principal);
        self.engine
            .catalog()
            .dataset_names()
            .into_iter()
            .filter(|n| access.can(Action::Read, n))
            .collect()
    }

    fn audited<T>(&self, call: &Call, result: Result<T>) -> Result<T> {
        self.audit.record(AuditRecord::of(call).outcome(&result));
        result
    }

    /// `(domain, layer)` pairs of the mesh with something the principal may read.
    fn readable_layers(&self, call: &Call) -> BTreeSet<(String, String)> {
        let readable = self.readable(call);
        let mesh = self.engine.mesh();
        let mut pairs = BTreeSet::new();
        for name in readable {
            let declared = mesh
                .domain(&name.domain)
                .is_some_and(|d| d.layers.contains(&name.layer));
            if declared {
                pairs.insert((name.domain, name.layer));
            }
        }
        pairs
    }

    /// Domains with something the principal may read, and the system catalog; sorted.
    pub fn catalogs(&self, call: &Call) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .readable_layers(call)
            .into_iter()
            .map(|(domain, _)| domain)
            .collect();
        names.push(SYSTEM_CATALOG.to_string());
        names.sort_unstable();
        names.dedup();
        self.audited(call, Ok(names))
    }

    /// `(domain, layer)` pairs with something the principal may read, and the system catalog's
    /// schemas; sorted.
    pub fn schemas(&self, call: &Call) -> Result<Vec<(String, String)>> {
        let mut pairs: Vec<(String, String)> = self.readable_layers(call).into_iter().collect();
        pairs.extend(system_tables().map(|n| (n.domain, n.layer)));
        pairs.sort_unstable();
        pairs.dedup();
        self.audited(call, Ok(pairs))
    }

    /// Listed datasets ([`crate::catalog::MeshCatalog::is_listed`]) the principal may read that
    /// match `filter`, sorted, with their schemas if `with_schemas` (from the catalog's schema
    /// cache: a listing opens a table's storage once). Without schemas, views are not planned
    /// nor sources read.
    pub async fn tables(
        &self,
        call: &Call,
        filter: &TableFilter,
        with_schemas: bool,
    ) -> Result<Vec<ListedTable>> {
        let result = self.list_tables(call, filter, with_schemas).await;
        self.audited(call, result)
    }

    async fn list_tables(
        &self,
        call: &Call,
        filter: &TableFilter,
        with_schemas: bool,
    ) -> Result<Vec<ListedTable>> {
        let catalog = self.engine.catalog();
        let names = self.readable(call).into_iter().filter(|name| {
            filter.catalog.as_deref().is_none_or(|c| c == name.domain)
                && filter
                    .schema_pattern
                    .as_deref()
                    .is_none_or(|p| like(p, &name.layer))
                && filter
                    .table_pattern
                    .as_deref()
                    .is_none_or(|p| like(p, &name.dataset))
        });
        if !with_schemas {
            // Answered from what the catalog knows: one after the other is quickest.
            let mut out = Vec::new();
            for name in names {
                out.extend(listed_table(catalog, name, false).await?);
            }
            return Ok(out);
        }
        // A schema seen the first time waits on storage (or plans a view): several at once,
        // listed in name order.
        let listed: Vec<Option<ListedTable>> = futures::stream::iter(names)
            .map(|name| listed_table(catalog, name, true))
            .buffered(LISTED_AT_ONCE)
            .try_collect()
            .await?;
        let mesh = self.engine.mesh();
        Ok(listed
            .into_iter()
            .flatten()
            .map(|table| ListedTable {
                schema: table.schema.map(|s| described(mesh, &table.name, s)),
                ..table
            })
            .collect())
    }

    /// The primary-key columns of `table` (in a domain and layer, when given) that the
    /// principal may read: the contract's `primaryKey` properties in `primaryKeyPosition`
    /// order (declaration order without positions).
    pub fn primary_keys(
        &self,
        call: &Call,
        catalog: Option<&str>,
        schema: Option<&str>,
        table: &str,
    ) -> Result<Vec<KeyColumn>> {
        let access = self.access(&call.principal);
        let matches = |d: &crate::spec::Dataset| {
            d.name.dataset == table
                && catalog.is_none_or(|c| c == d.name.domain)
                && schema.is_none_or(|s| s == d.name.layer)
        };
        let mut rows = Vec::new();
        for (ds, contract) in self
            .engine
            .mesh()
            .products()
            .filter(|(d, _)| matches(d) && access.can(Action::Read, &d.name))
        {
            let mut keys: Vec<(i64, usize, &str)> = contract
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.primary_key)
                .map(|(i, c)| {
                    let position = c.primary_key_position.filter(|p| *p > 0);
                    (position.unwrap_or(i64::MAX), i, c.name.as_str())
                })
                .collect();
            keys.sort();
            for (seq, (_, _, column)) in keys.into_iter().enumerate() {
                rows.push(KeyColumn {
                    table: ds.name.clone(),
                    column: column.to_string(),
                    sequence: seq as i32 + 1,
                });
            }
        }
        self.audited(call, Ok(rows))
    }
}

/// Tables whose storage a listing opens at once (see [`QueryService::tables`]).
const LISTED_AT_ONCE: usize = 8;

/// `name` as a listing shows it, with its schema if `with_schemas`; `None` when it is not a
/// table a client can query.
async fn listed_table(
    catalog: &MeshCatalog,
    name: DatasetName,
    with_schemas: bool,
) -> Result<Option<ListedTable>> {
    // System tables are listed before their first write, empty.
    if name.domain == SYSTEM_CATALOG {
        let schema = match catalog.schema(&name).await? {
            Some(schema) => Some(schema),
            None => system_schema(&name.layer, &name.dataset),
        };
        return Ok(schema.map(|schema| ListedTable {
            name,
            schema: with_schemas.then_some(schema),
        }));
    }
    // Only published datasets are tables a client can query; one whose storage cannot be
    // opened is left out, not the whole listing.
    match catalog.is_listed(&name).await {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) => {
            tracing::warn!(dataset = %name, error = %e, "cannot list a dataset");
            return Ok(None);
        }
    }
    let schema = match with_schemas {
        false => None,
        true => match catalog.schema(&name).await {
            Ok(Some(schema)) => Some(schema),
            Ok(None) => return Ok(None),
            // A view whose inputs changed under it, a source whose files went away: listed
            // without columns, the others are still listed.
            Err(e) => {
                tracing::warn!(dataset = %name, error = %e, "cannot list the columns of a dataset");
                Some(Arc::new(Schema::empty()))
            }
        },
    };
    Ok(Some(ListedTable { name, schema }))
}

/// `schema` with each column the dataset's contract documents described under [`DESCRIPTION`].
fn described(mesh: &Mesh, name: &DatasetName, schema: SchemaRef) -> SchemaRef {
    let Some(contract) = mesh.dataset(name).and_then(|d| d.contract.as_ref()) else {
        return schema;
    };
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|field| {
            let documented = contract.columns.iter().find(|c| c.name == *field.name());
            match documented.and_then(|c| c.description.clone()) {
                Some(text) => {
                    let mut metadata = field.metadata().clone();
                    metadata.insert(DESCRIPTION.to_string(), text);
                    Arc::new(field.as_ref().clone().with_metadata(metadata))
                }
                None => Arc::clone(field),
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// SQL `LIKE` matching with `%`, `_` and `\` as escape, as Flight SQL filter patterns use. Runs in
/// time linear in the pattern times the value (a pattern of many `%` must not take exponential
/// time: it comes from a client).
pub fn like(pattern: &str, value: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Any,
        One,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => match chars.next() {
                Some(escaped) => Token::Char(escaped),
                None => Token::Char('\\'),
            },
            other => Token::Char(other),
        });
    }
    let value: Vec<char> = value.chars().collect();
    // Greedy matching with one backtrack point: the last `%` seen.
    let (mut p, mut v) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match tokens.get(p) {
            Some(Token::Any) => {
                star = Some((p, v));
                p += 1;
            }
            Some(Token::One) => {
                p += 1;
                v += 1;
            }
            Some(Token::Char(c)) if *c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    p = sp + 1;
                    v = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == Token::Any)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("%", "gold"));
        assert!(like("go%", "gold"));
        assert!(like("g_ld", "gold"));
        assert!(!like("g_ld", "gld"));
        assert!(like("daily\\_%", "daily_revenue"));
        assert!(!like("daily\\_%", "dailyXrevenue"));
        assert!(!like("silver", "gold"));
        assert!(like("%rev%e", "daily_revenue"));
        assert!(!like("%rev%x", "daily_revenue"));
        assert!(like("", ""));
        assert!(!like("", "a"));
        assert!(like("%%", ""));
    }

    #[test]
    fn hostile_patterns_finish() {
        // With backtracking into every `%`, this would take 5000^40 steps.
        let pattern = format!("{}b", "%a".repeat(40));
        assert!(!like(&pattern, &"a".repeat(5_000)));
    }
}
