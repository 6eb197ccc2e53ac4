//! The warehouse's embedded Iceberg catalog: a SQLite file, `<warehouse>/_mesh/iceberg.db`, in
//! the layout of the Iceberg SQL catalog (the `iceberg_tables` and
//! `iceberg_namespace_properties` tables PyIceberg's `SqlCatalog` and Java's JDBC catalog use),
//! under the catalog name [`CATALOG_NAME`]. Namespaces are `<domain>.<layer>`.
//!
//! Tables are created and loaded through iceberg-rust's `SqlCatalog`. Commits swap the table's
//! metadata pointer with one compare-and-swap `UPDATE` on a pool of our own (the crate commits
//! only appends): a writer that lost the race to another commit sees no row updated, and tries
//! again on the new metadata.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use iceberg::io::LocalFsStorageFactory;
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// The catalog name the warehouse's tables are registered under (PyIceberg:
/// `SqlCatalog("meshql", uri="sqlite:///<warehouse>/_mesh/iceberg.db", warehouse=...)`).
pub const CATALOG_NAME: &str = "meshql";

/// How long a commit waits for another writer's lock on the catalog file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The embedded catalog of one warehouse, opened by the first Iceberg table that needs it.
#[derive(Debug)]
pub struct IcebergCatalog {
    /// `<warehouse>/_mesh/iceberg.db`, when the warehouse is on the local file system.
    file: Option<PathBuf>,
    warehouse: String,
    opened: OnceCell<Opened>,
}

#[derive(Debug)]
struct Opened {
    catalog: Arc<SqlCatalog>,
    /// For the compare-and-swap of commits.
    pool: SqlitePool,
}

impl IcebergCatalog {
    /// The catalog of the warehouse at `root` (a URL).
    pub fn new(root: &str) -> Self {
        let file = root
            .strip_prefix("file://")
            .map(|path| PathBuf::from(path).join("_mesh").join("iceberg.db"));
        Self {
            file,
            warehouse: root.to_string(),
            opened: OnceCell::new(),
        }
    }

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

    /// The table `ident` as its catalog row has it now; `None` if it was never created.
    pub async fn load(&self, ident: &TableIdent) -> Result<Option<Table>> {
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

    /// Creates `ident` with `schema` and no snapshot at `location` (its namespace too, if new).
    /// Another writer creating it first is no error: its table is returned.
    pub async fn create(
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

    /// Registers the existing table `ident` at its metadata file `metadata` (its namespace too,
    /// if new). Another writer registering it first is no error: its table is returned.
    pub async fn register(&self, ident: &TableIdent, metadata: &str) -> Result<Table> {
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
    pub async fn swap(&self, ident: &TableIdent, old: &str, new: &str) -> Result<bool> {
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
