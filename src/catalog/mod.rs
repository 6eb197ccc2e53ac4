//! The federated catalog: each domain is a DataFusion catalog, each layer a schema, each dataset a
//! table backed by its [`TableStore`].
//!
//! Opened tables are cached (moka). A publish by this process invalidates its entry at once; a
//! version written by another process becomes visible within the configured staleness bound.
//! Reopening a table whose version has not changed answers the snapshot opened before, so the
//! plans and answers kept for it stay valid; datasets named by `server.accelerate` are served
//! from memory ([`Accelerator`]).

mod accelerated;
mod held;
mod providers;
mod records;
mod system;
mod versions;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProviderList};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{ViewTable, source_as_provider};
use datafusion::execution::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionConfig;
use moka::future::Cache;

use crate::error::{Error, Result};
use crate::spec::policy::Pattern;
use crate::spec::{DatasetKind, DatasetName, Materialization, Mesh, TableFormatName};
use crate::storage::{
    AsOf, CommitMetadata, Published, TableSnapshot, TableStore, VersionInfo, Warehouse, WriteMode,
};

pub use accelerated::{Acceleration, Accelerator};
pub use providers::{DomainCatalog, LayerSchema, Visibility};
pub use system::{SYSTEM_CATALOG, SystemCatalog, system_schema, system_tables};

/// Every dataset of the mesh with its store, and a cache of opened versions.
pub struct MeshCatalog {
    mesh: Arc<Mesh>,
    warehouse: Warehouse,
    /// Declared datasets, then tables found in (or ingested into) the warehouse.
    stores: RwLock<BTreeMap<DatasetName, Arc<dyn TableStore>>>,
    cache: Cache<DatasetName, Option<Arc<TableSnapshot>>>,
    /// Past versions opened by number (`VERSION AS OF`): their contents never change, so
    /// repeated time-travel queries skip reading the log again.
    past: Cache<(DatasetName, i64), Arc<TableSnapshot>>,
    /// The last snapshot opened of each dataset, past the staleness bound: a reopening that
    /// finds the same version answers it again.
    last: moka::sync::Cache<DatasetName, Arc<TableSnapshot>>,
    /// Schemas of published datasets, kept past the snapshot cache's staleness bound so that
    /// listings (GetTables, information_schema) do not reopen every table's storage.
    schemas: RwLock<HashMap<DatasetName, SchemaRef>>,
    /// Locks of tables being created (see [`MeshCatalog::creation_lock`]).
    creating: moka::sync::Cache<DatasetName, Arc<tokio::sync::Mutex<()>>>,
    /// System tables this process found in today's columns (or rewrote), so that appends to
    /// them do not open the table to look again (see `records.rs`).
    current_system_tables: std::sync::Mutex<std::collections::HashSet<DatasetName>>,
    /// Session used to open tables (schema inference of sources); shares the engine's runtime.
    open_state: SessionState,
    /// Datasets held in memory (`server.accelerate`).
    accelerator: Arc<Accelerator>,
    /// This catalog, for planning views over it.
    me: Weak<MeshCatalog>,
}

impl std::fmt::Debug for MeshCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCatalog")
            .field("mesh", &self.mesh.name)
            .field("datasets", &self.dataset_names().len())
            .finish()
    }
}

impl MeshCatalog {
    /// Builds the catalog of `mesh`; `staleness` bounds how long a version written by another
    /// process may stay unseen; `config` holds the mesh's SQL settings (views are planned with
    /// them).
    pub fn new(
        mesh: Arc<Mesh>,
        runtime: Arc<RuntimeEnv>,
        staleness: Duration,
        config: SessionConfig,
    ) -> Result<Arc<Self>> {
        let warehouse = Warehouse::for_mesh(&mesh)?;
        let mut stores = BTreeMap::new();
        for dataset in mesh.datasets() {
            stores.insert(
                dataset.name.clone(),
                warehouse.store_for(dataset, mesh.format_of(dataset))?,
            );
        }
        // Tables in the warehouse that no file declares (ingested raw tables) are served too,
        // in the domains and layers the mesh declares.
        for name in system_tables() {
            stores.insert(name.clone(), warehouse.system_store(&name)?);
        }
        for (name, format) in warehouse.discover() {
            let declared_layer = mesh
                .domain(&name.domain)
                .is_some_and(|d| d.layers.contains(&name.layer));
            if declared_layer && !stores.contains_key(&name) {
                stores.insert(name.clone(), warehouse.table_store(&name, format)?);
            }
        }
        let patterns = mesh.server.accelerate.iter();
        let accelerator = Accelerator::new(
            patterns.filter_map(|p| Pattern::dataset(p)).collect(),
            mesh.server.acceleration_mb,
        );
        let cache = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(staleness)
            .build();
        let open_state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        Ok(Arc::new_cyclic(|me| Self {
            mesh,
            warehouse,
            stores: RwLock::new(stores),
            cache,
            past: Cache::builder()
                .max_capacity(256)
                .time_to_live(staleness.max(Duration::from_secs(60)))
                .build(),
            last: moka::sync::Cache::new(100_000),
            schemas: RwLock::default(),
            creating: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            current_system_tables: std::sync::Mutex::default(),
            open_state,
            accelerator: Arc::new(accelerator),
            me: me.clone(),
        }))
    }

    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// The datasets held in memory.
    pub fn accelerator(&self) -> &Accelerator {
        &self.accelerator
    }

    /// Starts holding the datasets of `server.accelerate` in memory, and loads them now, one
    /// after another: whatever was opened before is opened again.
    pub async fn accelerate(&self) {
        self.accelerator.enable();
        for name in self.dataset_names() {
            if !self.accelerator.configured(&name) || self.is_view(&name) {
                continue;
            }
            self.invalidate(&name).await;
            if let Err(e) = self.snapshot(&name).await {
                tracing::warn!("`{name}` could not be held in memory: {e}");
            }
        }
    }

    /// The store of a dataset.
    pub fn store(&self, name: &DatasetName) -> Option<Arc<dyn TableStore>> {
        self.stores.read().ok()?.get(name).cloned()
    }

    /// Names of all datasets, sorted.
    pub fn dataset_names(&self) -> Vec<DatasetName> {
        self.stores
            .read()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Names of the datasets of one layer of a domain, sorted (a range of the sorted index: a
    /// listing of every layer of a large mesh stays linear in its size).
    pub fn datasets_in(&self, domain: &str, layer: &str) -> Vec<DatasetName> {
        let Ok(stores) = self.stores.read() else {
            return Vec::new();
        };
        stores
            .range(DatasetName::new(domain, layer, "")..)
            .map(|(name, _)| name)
            .take_while(|n| n.domain == domain && n.layer == layer)
            .cloned()
            .collect()
    }

    /// The store of `name`, creating a warehouse store of `format` for a new table (an ingested
    /// one, a job's table outside a mesh: see [`Mesh::format_in`]). Only layers the mesh declares
    /// can hold one.
    pub fn store_or_create(
        &self,
        name: &DatasetName,
        format: TableFormatName,
    ) -> Result<Arc<dyn TableStore>> {
        if let Some(store) = self.store(name) {
            return Ok(store);
        }
        let declared = self
            .mesh
            .domain(&name.domain)
            .is_some_and(|d| d.layers.contains(&name.layer));
        if !declared {
            return Err(self.not_found(name));
        }
        let store = self.warehouse.table_store(name, format)?;
        let mut stores = self
            .stores
            .write()
            .map_err(|_| Error::internal("the catalog lock is poisoned"))?;
        Ok(Arc::clone(stores.entry(name.clone()).or_insert(store)))
    }

    /// Whether `name` is a view (planned into each query, never stored).
    pub fn is_view(&self, name: &DatasetName) -> bool {
        self.view_sql(name).is_some()
    }

    fn view_sql(&self, name: &DatasetName) -> Option<&str> {
        match &self.mesh.dataset(name)?.kind {
            DatasetKind::Transform(t) if t.options.materialized == Materialization::View => {
                Some(&t.sql)
            }
            _ => None,
        }
    }

    /// Plans a view over the current versions of what it reads.
    async fn plan_view(&self, name: &DatasetName, sql: &str) -> Result<TableSnapshot> {
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| Error::internal("the catalog is gone"))?;
        let list = MemoryCatalogProviderList::new();
        for (domain, provider) in me.domain_catalogs() {
            list.register_catalog(domain, provider);
        }
        list.register_catalog(
            SYSTEM_CATALOG.to_string(),
            Arc::new(SystemCatalog::new(Arc::clone(&me))),
        );
        // No default catalog: it would shadow the domain of the same name.
        let mut config = self
            .open_state
            .config()
            .clone()
            .with_create_default_catalog_and_schema(false);
        let options = config.options_mut();
        options.catalog.default_catalog = name.domain.clone();
        options.catalog.default_schema = name.layer.clone();
        let state = SessionStateBuilder::new_from_existing(self.open_state.clone())
            .with_config(config)
            .with_catalog_list(Arc::new(list))
            .build();
        let plan = state
            .create_logical_plan(sql)
            .await
            .map_err(|e| Error::from(e).with_context("view", name.to_string()))?;
        Ok(TableSnapshot {
            provider: Arc::new(ViewTable::new(plan, Some(sql.to_string()))),
            version: None,
            last_modified: None,
            identity: None,
        })
    }

    /// The latest committed version of a dataset (cached); `None` if never published. A view
    /// is planned afresh each time, over the versions current now.
    pub async fn snapshot(&self, name: &DatasetName) -> Result<Option<Arc<TableSnapshot>>> {
        if let Some(sql) = self.view_sql(name) {
            let view = self.plan_view(name, sql).await?;
            self.remember_schema(name, view.provider.schema());
            return Ok(Some(Arc::new(view)));
        }
        let Some(store) = self.store(name) else {
            return Err(self.not_found(name));
        };
        if let Some(opened) = self.cache.get(name).await {
            return Ok(opened);
        }
        let state = self.open_state.clone();
        let accelerator = Arc::clone(&self.accelerator);
        let last = self.last.clone();
        let dataset = name.clone();
        let opened = self
            .cache
            .try_get_with(name.clone(), async move {
                let Some(opened) = store.open(&state).await? else {
                    return Ok(None);
                };
                // Reopened at the version it had: the snapshot it had, so that plans made over
                // it (and answers kept for them) stay current.
                if let Some(kept) = last.get(&dataset)
                    && opened.identity.is_some()
                    && kept.identity == opened.identity
                {
                    return Ok(Some(kept));
                }
                let served = Arc::new(accelerator.serve(&dataset, opened, &state).await);
                last.insert(dataset, Arc::clone(&served));
                Ok(Some(served))
            })
            .await
            .map_err(|e: Arc<Error>| Error::new(e.kind(), e.to_string()))?;
        if let Some(opened) = &opened {
            self.remember_schema(name, opened.provider.schema());
        }
        Ok(opened)
    }

    /// The version `as_of` names of a dataset (time travel), read like its latest version. Views
    /// and file sources keep no versions; a version that does not exist is a NotFound error
    /// naming those that do.
    pub async fn snapshot_as_of(
        &self,
        name: &DatasetName,
        as_of: &AsOf,
    ) -> Result<Arc<TableSnapshot>> {
        let store = self.versioned_store(name)?;
        let state = self.open_state.clone();
        let dataset = name.clone();
        let wanted = *as_of;
        let open = async move {
            match store.open_as_of(&state, &wanted).await {
                Ok(Some(snapshot)) => Ok(Arc::new(snapshot)),
                Ok(None) => {
                    let versions = store.versions().await?;
                    let table = dataset.to_string();
                    Err(crate::storage::missing_version(&table, &versions, &wanted))
                }
                Err(e) => Err(e.with_context("dataset", &dataset)),
            }
        };
        match as_of {
            AsOf::Version(v) => self
                .past
                .try_get_with((name.clone(), *v), open)
                .await
                .map_err(|e: Arc<Error>| Error::new(e.kind(), e.to_string())),
            // The version current at a time can change until that time has passed.
            AsOf::Timestamp(_) => open.await,
        }
    }

    /// The committed versions of a dataset that can still be read, oldest first.
    pub async fn versions(&self, name: &DatasetName) -> Result<Vec<VersionInfo>> {
        self.versioned_store(name)?.versions().await
    }

    /// The store of `name` if it keeps versions (a Delta or Iceberg table); views and file
    /// sources do not.
    pub fn versioned_store(&self, name: &DatasetName) -> Result<Arc<dyn TableStore>> {
        let store = self.store(name).ok_or_else(|| self.not_found(name))?;
        let what = match store.format() {
            _ if self.is_view(name) => "a view".to_string(),
            "delta" | "iceberg" => return Ok(store),
            other => format!("a {other} source"),
        };
        Err(crate::storage::no_versions(&name.to_string(), &what))
    }

    /// Keeps `schema` as the one listings show for `name`: whatever opens a dataset (a query,
    /// the system catalog's description) spares the next listing with columns from opening it
    /// again. Takes the write lock only when the schema is new.
    fn remember_schema(&self, name: &DatasetName, schema: SchemaRef) {
        let known = self.schemas.read().is_ok_and(|s| {
            s.get(name)
                .is_some_and(|k| Arc::ptr_eq(k, &schema) || **k == *schema)
        });
        if !known && let Ok(mut schemas) = self.schemas.write() {
            schemas.insert(name.clone(), schema);
        }
    }

    /// Whether listings show `name` (a table a client can query): views and declared sources
    /// always — without planning the one or reading the other's files —, other datasets once
    /// published.
    pub async fn is_listed(&self, name: &DatasetName) -> Result<bool> {
        let declared_source = self
            .mesh
            .dataset(name)
            .is_some_and(|d| matches!(d.kind, DatasetKind::Source(_)));
        if declared_source || self.is_view(name) {
            return Ok(self.store(name).is_some());
        }
        if self.schemas.read().is_ok_and(|s| s.contains_key(name)) {
            return Ok(true);
        }
        self.has_version(name).await
    }

    /// What identifies the contents of every dataset `plan` (planned with `domain.layer` as its
    /// search path) scans — a Delta version with its commit time, a source's file names, sizes
    /// and modification times — in name order, or `None` unless each scan reads a mesh dataset
    /// as it is now: not a view planned afresh, the system catalog or a table function, nor a
    /// snapshot that a publish or a change of a source's files has replaced since. What the
    /// plan and result caches check before they answer for a plan.
    pub async fn contents_read(
        &self,
        plan: &LogicalPlan,
        domain: &str,
        layer: &str,
    ) -> Result<Option<Vec<(String, u64)>>> {
        let mut scans = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                scans.push((scan.table_name.clone(), Arc::clone(&scan.source)));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let mut contents = Vec::with_capacity(scans.len());
        for (table, source) in scans {
            let name = DatasetName::resolve(&table, domain, layer);
            if name.domain == SYSTEM_CATALOG || self.store(&name).is_none() {
                return Ok(None);
            }
            let Some(snapshot) = self.snapshot(&name).await? else {
                return Ok(None);
            };
            let Some(identity) = snapshot.identity else {
                return Ok(None);
            };
            // The contents are the ones the plan reads only if it holds that very snapshot.
            let planned = source_as_provider(&source)?;
            if !Arc::ptr_eq(&planned, &snapshot.provider) {
                return Ok(None);
            }
            contents.push((name.to_string(), identity));
        }
        contents.sort();
        contents.dedup();
        Ok(Some(contents))
    }

    /// Whether `name` has a published version.
    pub async fn has_version(&self, name: &DatasetName) -> Result<bool> {
        match self.store(name) {
            Some(_) => Ok(self.snapshot(name).await?.is_some()),
            None => Ok(false),
        }
    }

    /// Held while a table is created, so concurrent first writes of one table in this process
    /// take turns.
    pub async fn creation_lock(&self, name: &DatasetName) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .creating
            .get_with(name.clone(), || Arc::new(tokio::sync::Mutex::new(())));
        lock.lock_owned().await
    }

    /// Writes the rows of `plan` into `name` in one commit (creating the table if needed) and
    /// makes the new version visible to the next query of this process: the one way tables are
    /// published.
    pub async fn publish(
        &self,
        name: &DatasetName,
        plan: datafusion::logical_expr::LogicalPlan,
        state: &SessionState,
        mode: &WriteMode,
        metadata: CommitMetadata,
    ) -> Result<Published> {
        // A table new to the catalog here is an ingested one: its layer's format.
        let store = self.store_or_create(name, self.mesh.format_in(name))?;
        let published = store.write(plan, state, mode, metadata).await;
        // Forgotten even when the write failed: a conflict means another writer moved it.
        self.invalidate(name).await;
        published
    }

    /// Forgets the cached version of `name`, so the next query sees the latest commit.
    pub async fn invalidate(&self, name: &DatasetName) {
        self.cache.invalidate(name).await;
        self.last.invalidate(name);
        if let Ok(mut schemas) = self.schemas.write() {
            schemas.remove(name);
        }
    }

    /// The schema of a published dataset (`None` if never published), opening its storage only
    /// the first time: what listings use.
    pub async fn schema(&self, name: &DatasetName) -> Result<Option<SchemaRef>> {
        let known = self.schemas.read().ok().and_then(|s| s.get(name).cloned());
        if let Some(schema) = known {
            return Ok(Some(schema));
        }
        let Some(snapshot) = self.snapshot(name).await? else {
            return Ok(None);
        };
        let schema = snapshot.provider.schema();
        if let Ok(mut schemas) = self.schemas.write() {
            schemas.insert(name.clone(), Arc::clone(&schema));
        }
        Ok(Some(schema))
    }

    /// One DataFusion catalog per domain, to register in a session.
    pub fn domain_catalogs(self: &Arc<Self>) -> Vec<(String, Arc<dyn CatalogProvider>)> {
        self.domain_catalogs_for(None)
    }

    /// The domain catalogs, listing only what `visible` accepts (when given).
    pub fn domain_catalogs_for(
        self: &Arc<Self>,
        visible: Option<Visibility>,
    ) -> Vec<(String, Arc<dyn CatalogProvider>)> {
        self.mesh
            .domains
            .iter()
            .map(|d| {
                let mut domain = DomainCatalog::new(Arc::clone(self), &d.name);
                if let Some(v) = &visible {
                    domain = domain.with_visibility(Arc::clone(v));
                }
                let provider: Arc<dyn CatalogProvider> = Arc::new(domain);
                (d.name.clone(), provider)
            })
            .collect()
    }

    /// A "not found" error for `name` with the closest existing dataset as a hint.
    pub fn not_found(&self, name: &DatasetName) -> Error {
        let wanted = name.to_string();
        let mut msg = match self.mesh.domain(&name.domain) {
            None => format!(
                "table `{wanted}` not found: there is no domain `{}`",
                name.domain
            ),
            Some(d) if !d.layers.contains(&name.layer) => format!(
                "table `{wanted}` not found: domain `{}` has no layer `{}` (layers: {})",
                d.name,
                name.layer,
                d.layers.join(", ")
            ),
            Some(_) => format!("table `{wanted}` not found"),
        };
        if let Some(s) = self.mesh.suggest(&wanted) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        Error::not_found(msg)
    }
}
