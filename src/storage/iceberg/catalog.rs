//! The catalog the warehouse's Iceberg tables are registered in, namespaces `<domain>.<layer>`:
//!
//! - by default the embedded one, a SQLite file, `<warehouse>/_mesh/iceberg.db`, in the layout of
//!   the Iceberg SQL catalog (the `iceberg_tables` and `iceberg_namespace_properties` tables
//!   PyIceberg's `SqlCatalog` and Java's JDBC catalog use), under the catalog name
//!   [`CATALOG_NAME`]. Tables are created and loaded through iceberg-rust's `SqlCatalog`; a
//!   commit writes the next metadata file and swaps the table's pointer to it with one
//!   compare-and-swap `UPDATE` on a pool of our own (the crate commits only appends);
//! - or an Iceberg REST catalog ([`RestCatalog`]), which writes the metadata itself from the
//!   commit's updates when its requirements hold.
//!
//! Either way a writer that lost the race to another commit learns it, and tries again on the
//! new metadata.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use iceberg::MetadataLocation;
use iceberg::io::{FileIO, LocalFsStorageFactory};
use iceberg::spec::{
    MAIN_BRANCH, Schema, Snapshot, SnapshotReference, SnapshotRetention, TableMetadata,
};
use iceberg::table::{StaticTable, Table};
use iceberg::{
    Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent, TableRequirement,
    TableUpdate,
};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::sync::OnceCell;

use super::rest::RestCatalog;
use crate::error::{Error, Result};
use crate::spec::{IcebergCatalogKind, IcebergCatalogSettings};

pub use crate::spec::settings::ICEBERG_CATALOG_NAME as CATALOG_NAME;

/// How long a commit waits for another writer's lock on the catalog file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The Iceberg catalog of one warehouse.
#[derive(Debug)]
pub struct IcebergCatalog {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Embedded(Embedded),
    Rest(RestCatalog),
    Foreign(Foreign),
}

/// The warehouse's own SQL catalog on a SQLite file, opened by the first Iceberg table that
/// needs it.
#[derive(Debug)]
struct Embedded {
    /// `<warehouse>/_mesh/iceberg.db`, when the warehouse is on the local file system.
    file: Option<PathBuf>,
    warehouse: String,
    opened: OnceCell<Opened>,
}

/// Another engine's SQL catalog, which a source's table is looked up in (read only): its row in
/// `iceberg_tables` names the table's current metadata file. Read with a query of our own, as
/// PyIceberg's and Java's layouts differ in the columns iceberg-rust's `SqlCatalog` expects.
#[derive(Debug)]
struct Foreign {
    file: PathBuf,
    /// The catalog name its tables are registered under.
    name: String,
    pool: OnceCell<SqlitePool>,
}

#[derive(Debug)]
struct Opened {
    catalog: Arc<SqlCatalog>,
    /// For the compare-and-swap of commits.
    pool: SqlitePool,
}

impl IcebergCatalog {
    /// The embedded catalog of the warehouse at `root` (a URL).
    pub fn new(root: &str) -> Self {
        let file = root
            .strip_prefix("file://")
            .map(|path| PathBuf::from(path).join("_mesh").join("iceberg.db"));
        Self {
            backend: Backend::Embedded(Embedded {
                file,
                warehouse: root.to_string(),
                opened: OnceCell::new(),
            }),
        }
    }

    /// The catalog a source's table is registered in (read only): a SQL catalog's SQLite file
    /// (`uri`, already a path) under its `name`, or a REST catalog.
    pub fn of_source(settings: &IcebergCatalogSettings) -> Result<Self> {
        match settings.kind {
            IcebergCatalogKind::Rest => Self::for_settings("", settings),
            IcebergCatalogKind::Sql => Ok(Self {
                backend: Backend::Foreign(Foreign {
                    file: PathBuf::from(settings.uri.clone().unwrap_or_default()),
                    name: settings.name.clone().unwrap_or_else(|| "default".into()),
                    pool: OnceCell::new(),
                }),
            }),
        }
    }

    /// Where the catalog is, for messages: its file or URL.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Embedded(e) => match &e.file {
                Some(file) => format!("sqlite://{}", file.display()),
                None => e.warehouse.clone(),
            },
            Backend::Rest(r) => r.base().to_string(),
            Backend::Foreign(f) => format!("sqlite://{}", f.file.display()),
        }
    }

    /// The catalog `settings` choose for the warehouse at `root`.
    pub fn for_settings(root: &str, settings: &IcebergCatalogSettings) -> Result<Self> {
        match settings.kind {
            IcebergCatalogKind::Sql => Ok(Self::new(root)),
            IcebergCatalogKind::Rest => Ok(Self {
                backend: Backend::Rest(RestCatalog::new(settings)?),
            }),
        }
    }

    /// The table `ident` as its catalog has it now; `None` if it was never created.
    pub async fn load(&self, ident: &TableIdent) -> Result<Option<Table>> {
        match &self.backend {
            Backend::Embedded(e) => e.load(ident).await,
            Backend::Rest(r) => r.load(ident).await,
            Backend::Foreign(f) => f.load(ident).await,
        }
    }

    /// Creates `ident` with `schema` and no snapshot at `location` (its namespace too, if new).
    /// Another writer creating it first is no error: its table is returned.
    pub async fn create(
        &self,
        ident: &TableIdent,
        schema: iceberg::spec::Schema,
        location: &str,
    ) -> Result<Table> {
        match &self.backend {
            Backend::Embedded(e) => e.create(ident, schema, location).await,
            Backend::Rest(r) => r.create(ident, &schema, location).await,
            Backend::Foreign(_) => Err(self.read_only()),
        }
    }

    /// Registers the existing table `ident` at its metadata file `metadata` (its namespace too,
    /// if new). Another writer registering it first is no error: its table is returned.
    pub async fn register(&self, ident: &TableIdent, metadata: &str) -> Result<Table> {
        match &self.backend {
            Backend::Embedded(e) => e.register(ident, metadata).await,
            Backend::Rest(r) => r.register(ident, metadata).await,
            Backend::Foreign(_) => Err(self.read_only()),
        }
    }

    /// Commits `next` on top of `table` (as loaded); `false` when another commit moved the
    /// table first.
    pub async fn commit(&self, ident: &TableIdent, table: &Table, next: &Next) -> Result<bool> {
        match &self.backend {
            Backend::Embedded(e) => {
                let current = table.metadata_location_result()?.to_string();
                next.metadata
                    .write_to(table.file_io(), &next.location)
                    .await?;
                e.swap(ident, &current, &next.location.to_string()).await
            }
            Backend::Rest(r) => {
                let mut updates = Vec::new();
                if let Some(schema) = &next.schema {
                    updates.push(TableUpdate::AddSchema {
                        schema: schema.clone(),
                    });
                    updates.push(TableUpdate::SetCurrentSchema { schema_id: -1 });
                }
                updates.push(TableUpdate::AddSnapshot {
                    snapshot: next.snapshot.clone(),
                });
                updates.push(TableUpdate::SetSnapshotRef {
                    ref_name: MAIN_BRANCH.to_string(),
                    reference: SnapshotReference::new(
                        next.snapshot.snapshot_id(),
                        SnapshotRetention::branch(None, None, None),
                    ),
                });
                let requirements = [
                    TableRequirement::UuidMatch {
                        uuid: table.metadata().uuid(),
                    },
                    TableRequirement::RefSnapshotIdMatch {
                        r#ref: MAIN_BRANCH.to_string(),
                        snapshot_id: table.metadata().current_snapshot_id(),
                    },
                ];
                r.commit(ident, &requirements, &updates).await
            }
            Backend::Foreign(_) => Err(self.read_only()),
        }
    }

    fn read_only(&self) -> Error {
        Error::permission(format!(
            "the Iceberg catalog `{}` is read for sources only; meshql writes nothing to it",
            self.describe()
        ))
    }
}

impl Foreign {
    async fn load(&self, ident: &TableIdent) -> Result<Option<Table>> {
        let pool = self.pool.get_or_try_init(|| self.open()).await?;
        let namespace = ident.namespace().join(".");
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT metadata_location FROM iceberg_tables \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
        )
        .bind(&self.name)
        .bind(&namespace)
        .bind(ident.name())
        .fetch_optional(pool)
        .await
        .map_err(|e| {
            Error::unavailable(format!(
                "cannot read the Iceberg catalog `{}`: {e}",
                self.file.display()
            ))
        })?;
        let Some((Some(location),)) = row else {
            return Ok(None);
        };
        let table =
            StaticTable::from_metadata_file(&location, ident.clone(), FileIO::new_with_fs())
                .await
                .map_err(|e| Error::from(e).with_context("metadata", &location))?
                .into_table();
        Ok(Some(table))
    }

    async fn open(&self) -> Result<SqlitePool> {
        if !self.file.is_file() {
            return Err(Error::not_found(format!(
                "Iceberg catalog `{}` not found",
                self.file.display()
            )));
        }
        let unavailable = |e: &dyn std::fmt::Display| {
            Error::unavailable(format!("Iceberg catalog `{}`: {e}", self.file.display()))
        };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", self.file.display()))
            .map_err(|e| unavailable(&e))?
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT);
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| unavailable(&e))
    }
}

/// A commit built on a loaded table: its next metadata (what the embedded catalog writes), where
/// that goes, and the new snapshot and schema (what a REST catalog is sent).
pub struct Next {
    pub metadata: TableMetadata,
    pub location: MetadataLocation,
    pub snapshot: Snapshot,
    /// The table's new schema, when the commit changes it.
    pub schema: Option<Schema>,
}

impl Embedded {
    async fn opened(&self) -> Result<&Opened> {
        self.opened.get_or_try_init(|| self.open()).await
    }

    async fn open(&self) -> Result<Opened> {
        let Some(file) = &self.file else {
            return Err(Error::user(format!(
                "Iceberg tables need a warehouse on the local file system in this release; `{}` is not",
                self.warehouse
            )));
        };
        let unavailable = |e: &dyn std::fmt::Display| {
            Error::unavailable(format!("Iceberg catalog `{}`: {e}", file.display()))
        };
        if let Some(folder) = file.parent() {
            std::fs::create_dir_all(folder).map_err(|e| unavailable(&e))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
            .map_err(|e| unavailable(&e))?
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| unavailable(&e))?;
        let catalog = SqlCatalogBuilder::default()
            .uri(format!("sqlite://{}", file.display()))
            .warehouse_location(self.warehouse.clone())
            .sql_bind_style(SqlBindStyle::QMark)
            .with_storage_factory(Arc::new(LocalFsStorageFactory))
            .load(CATALOG_NAME, HashMap::new())
            .await
            .map_err(|e| Error::from(e).with_context("catalog", file.display()))?;
        Ok(Opened {
            catalog: Arc::new(catalog),
            pool,
        })
    }

    async fn load(&self, ident: &TableIdent) -> Result<Option<Table>> {
        let opened = self.opened().await?;
        match opened.catalog.load_table(ident).await {
            Ok(table) => Ok(Some(table)),
            Err(e)
                if matches!(
                    e.kind(),
                    iceberg::ErrorKind::TableNotFound | iceberg::ErrorKind::NamespaceNotFound
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::from(e).with_context("table", ident)),
        }
    }

    async fn create(
        &self,
        ident: &TableIdent,
        schema: iceberg::spec::Schema,
        location: &str,
    ) -> Result<Table> {
        let opened = self.opened().await?;
        let namespace = ident.namespace();
        self.ensure_namespace(namespace).await?;
        let creation = TableCreation::builder()
            .name(ident.name().to_string())
            .schema(schema)
            .location(location.to_string())
            .build();
        match opened.catalog.create_table(namespace, creation).await {
            Ok(table) => Ok(table),
            Err(e) if e.kind() == iceberg::ErrorKind::TableAlreadyExists => {
                Ok(opened.catalog.load_table(ident).await?)
            }
            Err(e) => Err(Error::from(e).with_context("table", ident)),
        }
    }

    async fn register(&self, ident: &TableIdent, metadata: &str) -> Result<Table> {
        let opened = self.opened().await?;
        self.ensure_namespace(ident.namespace()).await?;
        match opened
            .catalog
            .register_table(ident, metadata.to_string())
            .await
        {
            Ok(table) => Ok(table),
            Err(e) if e.kind() == iceberg::ErrorKind::TableAlreadyExists => {
                Ok(opened.catalog.load_table(ident).await?)
            }
            Err(e) => Err(Error::from(e).with_context("metadata", metadata)),
        }
    }

    async fn ensure_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        let opened = self.opened().await?;
        if opened.catalog.namespace_exists(namespace).await? {
            return Ok(());
        }
        match opened
            .catalog
            .create_namespace(namespace, HashMap::new())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == iceberg::ErrorKind::NamespaceAlreadyExists => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Points `ident` at `new` if it still points at `old`; `false` when another commit moved it
    /// first.
    async fn swap(&self, ident: &TableIdent, old: &str, new: &str) -> Result<bool> {
        let opened = self.opened().await?;
        let namespace = ident.namespace().join(".");
        let done = sqlx::query(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? \
             AND metadata_location = ?",
        )
        .bind(new)
        .bind(old)
        .bind(CATALOG_NAME)
        .bind(&namespace)
        .bind(ident.name())
        .bind(old)
        .execute(&opened.pool)
        .await
        .map_err(|e| {
            Error::unavailable(format!("cannot commit to the Iceberg catalog: {e}"))
                .with_context("table", ident)
        })?;
        Ok(done.rows_affected() == 1)
    }
}

/// `domain.layer.dataset` as an Iceberg identifier: namespace `domain.layer`.
pub fn table_ident(name: &crate::spec::DatasetName) -> Result<TableIdent> {
    let namespace = NamespaceIdent::from_strs([name.domain.as_str(), name.layer.as_str()])?;
    Ok(TableIdent::new(namespace, name.dataset.clone()))
}
