//! The query engine: one DataFusion setup shared by the server, the CLI and the pipeline.
//!
//! It owns the session template (federated catalog, `information_schema`, shared runtime), turns
//! SQL into plans under the [`guard`] limits (with the [`rewrites`] of valid SQL DataFusion
//! refuses), plans on the [`planner`] pool under a time budget,
//! guards the functions that build unbounded values ([`functions`]) and runs plans as streams
//! that turn a panic into an error ([`stream`]).

pub mod allocator;
mod constants;
mod dialect;
mod functions;
mod guard;
mod literals;
mod memory;
mod operators;
mod overview;
mod planner;
mod rewrites;
mod stream;
mod time_travel;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SessionState, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, execute_stream};
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::Statement as DfStatement;
use deltalake::delta_datafusion::planner::DeltaPlanner;

pub use guard::SqlLimits;
pub use overview::DatasetFacts;
pub use planner::Budget;

use crate::catalog::{MeshCatalog, SYSTEM_CATALOG, SystemCatalog, Visibility};
use crate::error::{Error, Result};
use crate::spec::{DatasetName, Mesh};

/// Catalog and schema of a job's step outputs (see [`Engine::session_with_locals`]).
const LOCAL_CATALOG: &str = "_job";
const LOCAL_SCHEMA: &str = "steps";

/// Stack size of planner threads: deep enough for any plan the guard lets through, in debug
/// builds too (`the_deepest_allowed_queries_fit_the_planner_stack` in tests/it/limits.rs plans the
/// deepest ones on it).
const PLANNER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Memory the process may hold beyond `server.memory_limit_mb` before new queries wait.
const UNPOOLED_MEMORY_MB: u64 = 1024;

/// Rows per batch in every session (DataFusion's default is 8,192).
const BATCH_ROWS: usize = 16 * 1024;

/// Decides whether a statement may name a dataset (see [`Engine::plan_within`]).
pub type Authorizer = Arc<dyn Fn(&DatasetName) -> Result<()> + Send + Sync>;

/// Where unqualified table names resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchPath {
    pub domain: String,
    pub layer: String,
}

/// Shared query machinery of one mesh.
#[derive(Debug)]
pub struct Engine {
    catalog: Arc<MeshCatalog>,
    template: SessionState,
    limits: SqlLimits,
    default_path: SearchPath,
    planner: Arc<planner::PlannerPool>,
    /// Longest planning (`server.planning_timeout_secs`).
    planning_limit: Option<Duration>,
}

impl Engine {
    /// Builds the engine for `mesh`.
    pub fn new(mesh: Arc<Mesh>) -> Result<Arc<Self>> {
        let mut runtime = RuntimeEnvBuilder::new();
        if mesh.server.memory_limit_mb > 0 {
            // One pool for every query; spilling operators share it fairly.
            let bytes = (mesh.server.memory_limit_mb as usize).saturating_mul(1024 * 1024);
            let pool = TrackConsumersPool::new(
                FairSpillPool::new(bytes),
                NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
            );
            runtime = runtime.with_memory_pool(Arc::new(pool));
        }
        let runtime: Arc<RuntimeEnv> = Arc::new(runtime.build()?);
        let staleness = Duration::from_secs(mesh.server.catalog_staleness_secs);
        let limits = SqlLimits {
            max_sql_bytes: mesh.server.max_sql_bytes,
            max_expr_depth: mesh.server.max_expr_depth,
        };
        // A mesh without domains (a folder whose jobs write only files) still has the system
        // catalog.
        let default_path = match mesh.domains.first() {
            Some(first) => SearchPath {
                domain: first.name.clone(),
                layer: first
                    .layers
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "raw".into()),
            },
            None => SearchPath {
                domain: SYSTEM_CATALOG.into(),
                layer: "catalog".into(),
            },
        };
        let config = Self::session_config(&default_path);
        let catalog = MeshCatalog::new(mesh, Arc::clone(&runtime), staleness, config.clone())?;
        let settings = &catalog.mesh().server;
        let template = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            // Delta writes plan through delta-rs's extension nodes.
            .with_query_planner(DeltaPlanner::new())
            .build();
        let values = value_limits(settings);
        let template = literals::approximate_comparisons(functions::guard(template, values)?);
        let template = operators::guarded(constants::checked(template, values));
        let template = planner::budgeted_rules(template);
        for (name, provider) in catalog.domain_catalogs() {
            template.catalog_list().register_catalog(name, provider);
        }
        template.catalog_list().register_catalog(
            SYSTEM_CATALOG.to_string(),
            Arc::new(SystemCatalog::new(Arc::clone(&catalog))),
        );
        let threads = match settings.planner_threads {
            0 => 2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        // Room in the queue for a planning per thread besides the queued ones, so a thread
        // between two plannings never looks like a full queue.
        // Beyond the pool, the process keeps room for what DataFusion does not account for
        // (arrays being built, results being encoded, planning).
        let memory_budget = (settings.memory_limit_mb > 0)
            .then(|| ((settings.memory_limit_mb + UNPOOLED_MEMORY_MB) as usize) << 20);
        let planner = Arc::new(planner::PlannerPool::new(
            threads,
            settings.max_queued_queries + threads,
            PLANNER_STACK_BYTES,
            memory_budget,
        )?);
        let planning_limit = [settings.planning_timeout_secs, settings.query_timeout_secs]
            .into_iter()
            .filter(|s| *s > 0)
            .min()
            .map(Duration::from_secs);
        Ok(Arc::new(Self {
            catalog,
            template,
            limits,
            default_path,
            planner,
            planning_limit,
        }))
    }

    /// The DataFusion settings of every session of the mesh (queries, transforms, views).
    fn session_config(default_path: &SearchPath) -> SessionConfig {
        SessionConfig::new()
            // Hash-join IN-list pushdown can panic on dictionary join keys (delta-rs works around
            // it the same way).
            .set_usize("datafusion.optimizer.hash_join_inlist_pushdown_max_size", 0)
            .set_usize(
                "datafusion.optimizer.hash_join_inlist_pushdown_max_distinct_values",
                0,
            )
            // `revenue = 552376.27` against a DECIMAL column compares decimals, not floats that
            // miss the row (the SQL standard's and DuckDB's reading of such a literal).
            .set_bool("datafusion.sql_parser.parse_float_as_decimal", true)
            // Twice DataFusion's default: TPC-H SF 1 runs 4-6% faster in geomean on two cores
            // (benches/README.md), from fewer per-batch costs; memory per batch stays small.
            .with_batch_size(BATCH_ROWS)
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(&default_path.domain, &default_path.layer)
    }

    /// A planning budget within `server.planning_timeout_secs` (and `deadline`, if given).
    pub fn planning_budget(&self, deadline: Option<tokio::time::Instant>) -> Arc<Budget> {
        Budget::until(
            deadline.map(|d| d.into_std()),
            self.planning_limit,
            "server.planning_timeout_secs",
        )
    }

    pub fn catalog(&self) -> &Arc<MeshCatalog> {
        &self.catalog
    }

    pub fn mesh(&self) -> &Arc<Mesh> {
        self.catalog.mesh()
    }

    /// Where unqualified names resolve by default: the mesh's first domain and its first layer.
    pub fn default_path(&self) -> &SearchPath {
        &self.default_path
    }

    /// A fresh session resolving unqualified names against the mesh's first domain.
    pub fn session(&self) -> SessionState {
        self.session_in(&self.default_path)
    }

    /// A fresh session resolving unqualified names inside `path` (how transforms are planned).
    pub fn session_in(&self, path: &SearchPath) -> SessionState {
        let mut state = self.template.clone();
        let options = state.config_mut().options_mut();
        options.catalog.default_catalog = path.domain.clone();
        options.catalog.default_schema = path.layer.clone();
        state
    }

    /// A session for one principal: listings (information_schema) show the datasets `visible`
    /// accepts; every dataset still resolves, so governance can refuse it by name. Its queries
    /// run under the per-query memory cap when started with [`Engine::execute_query`].
    pub fn session_visible(&self, path: &SearchPath, visible: Visibility) -> SessionState {
        let list = MemoryCatalogProviderList::new();
        for (name, provider) in self.catalog.domain_catalogs_for(Some(visible)) {
            list.register_catalog(name, provider);
        }
        list.register_catalog(
            SYSTEM_CATALOG.to_string(),
            Arc::new(SystemCatalog::new(Arc::clone(&self.catalog))),
        );
        // A clone of the template shares its registries; building a session anew would
        // register every function again, a cost each query would pay.
        let mut state = self.session_in(path);
        state.register_catalog_list(Arc::new(list));
        if let Some(cap) = self.query_cap() {
            // Each partition of a sort holds this much back for merging its spills; the default
            // (10 MiB) would make a small cap refuse even a small ORDER BY.
            let options = state.config_mut().options_mut();
            let partitions = options.execution.target_partitions.max(1);
            let share = cap / (4 * partitions);
            options.execution.sort_spill_reservation_bytes = options
                .execution
                .sort_spill_reservation_bytes
                .min(share.max(64 << 10));
        }
        state
    }

    /// `server.query_memory_limit_mb` in bytes, if set.
    fn query_cap(&self) -> Option<usize> {
        let cap = self.mesh().server.query_memory_limit_mb;
        (cap > 0).then(|| (cap as usize).saturating_mul(1024 * 1024))
    }

    /// A session where bare table names are `locals` (the outputs of a job's earlier steps) and
    /// mesh tables are named in full (`domain.layer.dataset`).
    pub fn session_with_locals(
        &self,
        locals: Vec<(String, Arc<dyn TableProvider>)>,
    ) -> Result<SessionState> {
        let list = MemoryCatalogProviderList::new();
        let template = self.template.catalog_list();
        for name in template.catalog_names() {
            if let Some(c) = template.catalog(&name) {
                list.register_catalog(name, c);
            }
        }
        let schema = MemorySchemaProvider::new();
        for (name, table) in locals {
            schema.register_table(name, table)?;
        }
        let steps = MemoryCatalogProvider::new();
        steps.register_schema(LOCAL_SCHEMA, Arc::new(schema))?;
        list.register_catalog(LOCAL_CATALOG.to_string(), Arc::new(steps));
        let mut state = self.template.clone();
        state.register_catalog_list(Arc::new(list));
        let options = state.config_mut().options_mut();
        options.catalog.default_catalog = LOCAL_CATALOG.into();
        options.catalog.default_schema = LOCAL_SCHEMA.into();
        Ok(state)
    }

    /// Plans a read-only query. Parsing, checks and planning run on a planner thread within the
    /// default planning budget. Placeholders (`$1`, `?`) stay unbound; see
    /// [`LogicalPlan::with_param_values`].
    pub async fn plan(&self, sql: &str, state: &SessionState) -> Result<LogicalPlan> {
        self.plan_within(sql, state, self.planning_budget(None), None)
            .await
    }

    /// [`Engine::plan`] within `budget`; `authorize` sees every dataset the statement names
    /// before anything about it is looked up (a principal learns nothing of what it may not
    /// read, not even whether it was published).
    pub async fn plan_within(
        &self,
        sql: &str,
        state: &SessionState,
        budget: Arc<Budget>,
        authorize: Option<Authorizer>,
    ) -> Result<LogicalPlan> {
        let sql = sql.to_string();
        let state = state.clone();
        let limits = self.limits;
        let catalog = Arc::clone(&self.catalog);
        let handle = tokio::runtime::Handle::current();
        self.planner
            .run(budget, move || {
                handle.block_on(async move {
                    let statement = guard::parse(&sql, limits)?;
                    check_references(&catalog, &state, &statement, authorize.as_ref()).await?;
                    let state = match time_travel::prepare(&catalog, &state, &statement, limits).await? {
                        Some(versions) => versions.into_state(&state)?,
                        None => state,
                    };
                    let plan = match state.statement_to_plan(statement.clone()).await {
                        Err(e) if e.to_string().contains(rewrites::DUPLICATE_NAMES) => {
                            let mut statement = statement;
                            if !rewrites::alias_duplicate_names(&mut statement) {
                                return Err(e.into());
                            }
                            state.statement_to_plan(statement).await?
                        }
                        planned => planned?,
                    };
                    // A second line of defence behind the guard: no DDL, DML or statement plans.
                    SQLOptions::new()
                        .with_allow_ddl(false)
                        .with_allow_dml(false)
                        .with_allow_statements(false)
                        .verify_plan(&plan)
                        .map_err(|e| {
                            Error::permission(format!(
                                "{e}: meshql clients are read-only (data changes through pipelines and ingest)"
                            ))
                        })?;
                    Ok(plan)
                })
            })
            .await
    }

    /// The schema `plan` produces once analysed (type coercion decides a `UNION`'s column types,
    /// for example): what a client is told before the stream starts. Runs on a planner thread.
    pub async fn result_schema(
        &self,
        plan: &LogicalPlan,
        state: &SessionState,
    ) -> Result<SchemaRef> {
        let plan = plan.clone();
        let state = state.clone();
        self.planner
            .run(self.planning_budget(None), move || {
                let analyzed = state.analyzer().execute_and_check(
                    plan.clone(),
                    state.config_options(),
                    |_, _| {},
                );
                match analyzed {
                    Ok(p) => Ok(Arc::new(p.schema().as_arrow().clone())),
                    // Unbound parameters can leave types the analyzer cannot settle yet; the
                    // unanalysed schema is the best answer before they are bound.
                    Err(_) if !plan.get_parameter_types().unwrap_or_default().is_empty() => {
                        Ok(Arc::new(plan.schema().as_arrow().clone()))
                    }
                    Err(e) => Err(Error::from(e)),
                }
            })
            .await
    }

    /// Starts a planned query; batches are produced as the stream is polled. Optimisation and
    /// physical planning run on a planner thread within the default planning budget. The schema
    /// answered is the stream's (that of the optimised plan).
    pub async fn execute_plan(
        &self,
        plan: LogicalPlan,
        state: &SessionState,
    ) -> Result<(SchemaRef, SendableRecordBatchStream)> {
        let state = Arc::new(state.clone());
        self.run(plan, state, self.planning_budget(None), None)
            .await
    }

    /// A client's query: [`Engine::execute_plan`] with physical planning within `budget`, and
    /// the query's memory in a pool of its own, capped at `server.query_memory_limit_mb` inside
    /// the shared one (so that one state can run any number of times, each run with its cap).
    pub async fn execute_query(
        &self,
        plan: LogicalPlan,
        state: Arc<SessionState>,
        budget: Arc<Budget>,
    ) -> Result<(SchemaRef, SendableRecordBatchStream)> {
        self.run(plan, state, budget, self.query_cap()).await
    }

    /// Plans `plan` physically and starts it, with `cap` bytes of memory at most.
    ///
    /// DataFusion's hash joins cannot spill: one whose build side outgrows the memory left
    /// fails while it builds, before the query emits anything. Such a query is planned again
    /// with sort-merge joins, which spill, and runs once more (TPC-H Q18 at SF 10 needs 1.8 GiB
    /// that way, more than 4 GiB with hash joins).
    async fn run(
        &self,
        plan: LogicalPlan,
        state: Arc<SessionState>,
        budget: Arc<Budget>,
        cap: Option<usize>,
    ) -> Result<(SchemaRef, SendableRecordBatchStream)> {
        let physical = physical_plan(
            &self.planner,
            plan.clone(),
            Arc::clone(&state),
            Arc::clone(&budget),
        )
        .await?;
        let schema = physical.schema();
        let joins_by_hash = state.config().options().optimizer.prefer_hash_join
            && uses_hash_join(physical.as_ref());
        let stream = stream::catch_panics(execute_stream(physical, task_context(&state, cap))?);
        if !joins_by_hash {
            return Ok((schema, stream));
        }
        let planner = Arc::clone(&self.planner);
        let mut merging = (*state).clone();
        merging
            .config_mut()
            .options_mut()
            .optimizer
            .prefer_hash_join = false;
        let merging = Arc::new(merging);
        Ok((
            Arc::clone(&schema),
            stream::retry_first(stream, move |error| {
                if !hash_join_out_of_memory(error) {
                    return None;
                }
                tracing::info!(
                    "a hash join ran out of memory; running the query with sort-merge joins"
                );
                Some(Box::pin(async move {
                    let physical =
                        physical_plan(&planner, plan, Arc::clone(&merging), budget).await?;
                    Ok(stream::catch_panics(execute_stream(
                        physical,
                        task_context(&merging, cap),
                    )?))
                }))
            }),
        ))
    }

    /// Plans and starts a read-only query.
    pub async fn execute(
        &self,
        sql: &str,
        state: &SessionState,
    ) -> Result<(SchemaRef, SendableRecordBatchStream)> {
        let plan = self.plan(sql, state).await?;
        self.execute_plan(plan, state).await
    }
}

/// Optimises `plan` and plans it physically on a planner thread within `budget`.
async fn physical_plan(
    planner: &planner::PlannerPool,
    plan: LogicalPlan,
    state: Arc<SessionState>,
    budget: Arc<Budget>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let handle = tokio::runtime::Handle::current();
    planner
        .run(budget, move || {
            handle
                .block_on(async move { state.create_physical_plan(&plan).await })
                .map_err(Error::from)
        })
        .await
}

/// What one run of a plan of `state` executes in: with `cap`, its memory comes from a pool of
/// its own inside the shared one.
fn task_context(state: &SessionState, cap: Option<usize>) -> Arc<TaskContext> {
    let context = TaskContext::from(state);
    let Some(cap) = cap else {
        return Arc::new(context);
    };
    let shared = state.runtime_env();
    let pool = memory::QueryPool::new(Arc::clone(&shared.memory_pool), cap);
    match RuntimeEnvBuilder::from_runtime_env(shared)
        .with_memory_pool(Arc::new(pool))
        .build_arc()
    {
        Ok(runtime) => Arc::new(context.with_runtime(runtime)),
        Err(e) => {
            tracing::warn!("the query runs without its own memory cap: {e}");
            Arc::new(context)
        }
    }
}

/// Whether `plan` has a hash join anywhere.
fn uses_hash_join(plan: &dyn ExecutionPlan) -> bool {
    plan.as_any().is::<HashJoinExec>() || plan.children().iter().any(|c| uses_hash_join(c.as_ref()))
}

/// Whether `error` is the memory pool refusing a hash join's build side.
fn hash_join_out_of_memory(error: &DataFusionError) -> bool {
    matches!(error.find_root(), DataFusionError::ResourcesExhausted(m) if m.contains("HashJoinInput"))
}

/// What one call of a function may build: a quarter of the per-query memory cap (or of the
/// shared pool without a cap; 1 GiB when memory is unlimited).
fn value_limits(settings: &crate::spec::ServerSettings) -> functions::ValueLimits {
    const MIB: usize = 1024 * 1024;
    let (mb, setting) = match (settings.query_memory_limit_mb, settings.memory_limit_mb) {
        (0, 0) => (4096, "1 GiB, as memory is unlimited"),
        (0, pool) => (pool, "a quarter of server.memory_limit_mb"),
        (cap, pool) if pool > 0 && pool < cap => (pool, "a quarter of server.memory_limit_mb"),
        (cap, _) => (cap, "a quarter of server.query_memory_limit_mb"),
    };
    functions::ValueLimits {
        max_bytes: (mb as usize).saturating_mul(MIB) / 4,
        setting,
    }
}

/// Turns every table the statement reads into a mesh dataset, or a NotFound error with a hint.
async fn check_references(
    catalog: &MeshCatalog,
    state: &SessionState,
    statement: &DfStatement,
    authorize: Option<&Authorizer>,
) -> Result<()> {
    let options = state.config().options();
    let (domain, layer) = (
        options.catalog.default_catalog.clone(),
        options.catalog.default_schema.clone(),
    );
    for reference in state.resolve_table_references(statement)? {
        if reference.schema() == Some("information_schema")
            || (reference.schema().is_none() && layer == "information_schema")
        {
            continue;
        }
        // Table functions (`generate_series(1, 10)`, `range(5)`) are not datasets.
        if matches!(reference, TableReference::Bare { .. })
            && state.table_functions().contains_key(reference.table())
        {
            continue;
        }
        let name = DatasetName::resolve(&reference, &domain, &layer);
        // A job's step outputs, and the system catalog (whose tables read empty until written).
        if name.domain == LOCAL_CATALOG
            || (name.domain == SYSTEM_CATALOG && catalog.store(&name).is_some())
        {
            continue;
        }
        if let Some(authorize) = authorize
            && catalog.store(&name).is_some()
        {
            authorize(&name)?;
        }
        if catalog.store(&name).is_none() {
            return Err(catalog.not_found(&name));
        }
        if catalog.snapshot(&name).await?.is_none() {
            return Err(Error::not_found(format!(
                "table `{name}` is declared but has no published version yet; build it with `meshql run --select {name}`"
            )));
        }
    }
    Ok(())
}
