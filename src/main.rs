//! The `meshql` command line.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use meshql::engine::Engine;
use meshql::output::{self, Format};
use meshql::pipeline::{JobRun, Run, RunPlan, RunReport, Selector};
use meshql::progress::{RunDisplay, format_line};
use meshql::server::Server;
use meshql::spec::Mesh;
use meshql::{Error, Result};

/// meshql: a company's data domains as one governed, queryable data mesh, served over Arrow
/// Flight SQL.
///
/// Exit codes: 0 success; 1 a pipeline node failed; 2 bad input (SQL, mesh files, arguments);
/// 3 not found; 4 permission denied; 5 conflict; 6 resource or storage unavailable; 70 internal
/// error (a bug).
#[derive(Debug, Parser)]
#[command(name = "meshql", version, about, long_about)]
struct Cli {
    /// The mesh folder: holds catalog/mesh.yaml, catalog/<domain>/ and sql/<domain>/.
    #[arg(long, global = true, default_value = ".", env = "MESHQL_MESH")]
    mesh: PathBuf,

    #[command(subcommand)]
    command: Command,
}

/// How to authenticate against a server (`--server`).
#[derive(Debug, Clone, clap::Args)]
struct Auth {
    /// User name for the server's handshake.
    #[arg(long, env = "MESHQL_USER")]
    user: Option<String>,
    /// Password for `--user` (prefer the environment variable).
    #[arg(long, env = "MESHQL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A bearer token instead of a user name and password.
    #[arg(long, env = "MESHQL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) to trust for `grpc+tls://` servers.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require one (mTLS).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Auth {
    async fn connect(&self, url: &str) -> Result<meshql::client::Client> {
        let tls = meshql::client::ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        };
        let mut client = meshql::client::Client::connect_with(url, &tls).await?;
        match (&self.user, &self.token) {
            (Some(user), _) => {
                let password = self.password.clone().unwrap_or_default();
                client.login(user, &password).await?;
            }
            (None, Some(token)) => client.set_token(token),
            (None, None) => {}
        }
        Ok(client)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the mesh over Arrow Flight SQL (builds the warehouse first if it is empty).
    Serve {
        /// Address to listen on; overrides server.addr of mesh.yaml (default 127.0.0.1:50051).
        #[arg(long)]
        addr: Option<SocketAddr>,
        /// Do not build missing tables before serving.
        #[arg(long)]
        no_build: bool,
    },
    /// Run pipelines: every transform and job, or those selected, in dependency order. Nodes
    /// whose definition and inputs are unchanged since their last publish are skipped.
    Run {
        /// `domain`, `domain.layer` or `domain.layer.dataset`; a trailing `+` adds everything
        /// downstream. Repeatable.
        #[arg(long, short)]
        select: Vec<String>,
        /// How many nodes may run at once (default: the number of cores).
        #[arg(long)]
        parallelism: Option<usize>,
        /// Run nodes even when they are up to date.
        #[arg(long)]
        force: bool,
        /// Run on a server (e.g. grpc://127.0.0.1:50051) instead of in this process.
        #[arg(long)]
        server: Option<String>,
        #[command(flatten)]
        auth: Auth,
    },
    /// Validate the mesh folder and report every problem with file:line:column.
    Check,
    /// mu-pipelines job files.
    #[command(subcommand)]
    Job(JobCommand),
    /// Policies: what a principal may see.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run one SQL query, embedded or against a running server.
    Query {
        /// The SQL query.
        sql: String,
        /// A server to query (e.g. grpc://127.0.0.1:50051) instead of the local mesh.
        #[arg(long)]
        server: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        auth: Auth,
    },
    /// Show lineage: which tables feed which (and, with --columns, which columns), for the
    /// whole mesh or around one dataset.
    Lineage {
        /// A dataset (`domain.layer.dataset`): show its upstream and downstream only.
        dataset: Option<String>,
        #[arg(long, value_enum, default_value_t = LineageFormat::Table)]
        format: LineageFormat,
        /// Column-level lineage (table format only).
        #[arg(long)]
        columns: bool,
    },
    /// List domains, layers and datasets with row counts, versions and last update.
    Catalog {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Hash a password (read from standard input) for `password_hash` in mesh.yaml.
    HashPassword,
    /// Make a long-lived bearer token: prints the token (give it to the client) and its hash
    /// (list it under `token_hashes` in mesh.yaml).
    Token,
    /// Write the JSON Schemas of mesh.yaml and domain.yaml (for editors) into a folder.
    Schema {
        /// Target folder.
        #[arg(long, default_value = "schemas")]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LineageFormat {
    /// One row per edge.
    Table,
    /// A Mermaid flowchart.
    Mermaid,
    /// A Graphviz digraph.
    Dot,
    /// OpenLineage RunEvents, one JSON object per line.
    Openlineage,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Show the rules that apply to a query of a principal, and the governed plan it runs.
    Explain {
        /// A principal of mesh.yaml.
        #[arg(long)]
        principal: String,
        /// The SQL query.
        sql: String,
    },
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Run the job items of a mu-pipelines job file, in order. Inside a mesh folder the tables
    /// it writes must belong to the mesh's domains; elsewhere they are created under
    /// ./warehouse (serve them with `meshql serve` in the same folder).
    Run {
        /// The job file: a JSON array of `{"execution": [...], "destination": [...]}` items.
        job: PathBuf,
        /// mu-pipelines global properties (`{"library": "spark"}`); accepted for compatibility.
        #[arg(long)]
        global_properties: Option<PathBuf>,
        /// mu-pipelines connection properties (`{"connections": [...]}`); accepted for
        /// compatibility.
        #[arg(long)]
        connection_properties: Option<PathBuf>,
        /// Run items even when they are up to date.
        #[arg(long)]
        force: bool,
    },
}

/// mimalloc returns freed memory to the system promptly; the counter lets the server refuse new
/// queries while the process is above its memory budget.
#[global_allocator]
static ALLOCATOR: meshql::engine::allocator::CountingAllocator<mimalloc::MiMalloc> =
    meshql::engine::allocator::CountingAllocator(mimalloc::MiMalloc);

/// Warnings and errors, without delta-kernel's report of every not-yet-created table.
const DEFAULT_LOG_FILTER: &str = "warn,buoyant_kernel=off";

fn main() -> ExitCode {
    ALLOCATOR.enable();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve { .. }) {
        // SAFETY: restoring the default disposition of a signal before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Query execution recurses over expressions; give workers room beyond the 2 MiB default.
        .thread_stack_size(16 * 1024 * 1024)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.kind().exit_code() as u8)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check => check(&cli.mesh).await,
        Command::Schema { out } => write_schemas(&out),
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| Error::user(format!("cannot read the password: {e}")))?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(Error::user("the password is empty"));
            }
            println!("{}", meshql::governance::hash_password(password)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Token => {
            let (token, hash) = meshql::governance::new_token();
            println!("token: {token}");
            println!("hash:  {hash}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            sql,
            server: Some(url),
            format,
            auth,
        } => {
            let mut client = auth.connect(&url).await?;
            let (schema, batches) = client.query(&sql).await?;
            print(format, &schema, &batches)
        }
        Command::Run {
            select,
            server: Some(url),
            auth,
            force,
            ..
        } => {
            let mut client = auth.connect(&url).await?;
            let result = client.run_pipeline(&select, force).await?;
            for n in &result.nodes {
                println!(
                    "{}",
                    format_line(
                        &n.status,
                        &n.dataset,
                        n.rows,
                        n.duration_seconds,
                        n.version,
                        &n.message,
                    )
                );
            }
            Ok(if result.succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Job(JobCommand::Run {
            job,
            global_properties,
            connection_properties,
            force,
        }) => {
            run_job_file(
                &cli.mesh,
                &job,
                global_properties,
                connection_properties,
                force,
            )
            .await
        }
        Command::Serve { addr, no_build } if !has_mesh_file(&cli.mesh) => {
            let mesh = standalone(&cli.mesh, &[], true)?;
            serve(Engine::new(Arc::new(mesh))?, addr, no_build).await
        }
        command => {
            let engine = Engine::new(Arc::new(load(&cli.mesh)?))?;
            match command {
                Command::Serve { addr, no_build } => serve(engine, addr, no_build).await,
                Command::Run {
                    select,
                    parallelism,
                    force,
                    ..
                } => run(engine, &select, parallelism, force).await,
                Command::Query { sql, format, .. } => {
                    let state = engine.session();
                    let (schema, stream) = engine.execute(&sql, &state).await?;
                    let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await?;
                    print(format, &schema, &batches)
                }
                Command::Lineage {
                    dataset,
                    format,
                    columns,
                } => lineage(&engine, dataset.as_deref(), format, columns).await,
                Command::Catalog { format } => {
                    let batch = engine.overview().await?;
                    print(format, &batch.schema(), &[batch])
                }
                Command::Policy(PolicyCommand::Explain { principal, sql }) => {
                    policy_explain(&engine, &principal, &sql).await
                }
                Command::Check
                | Command::Job(_)
                | Command::Schema { .. }
                | Command::HashPassword
                | Command::Token => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

fn load(dir: &Path) -> Result<Mesh> {
    Mesh::load(dir).map_err(|diags| {
        eprintln!("{diags}");
        Error::user(format!("the mesh in {} is invalid", dir.display()))
    })
}

async fn check(dir: &Path) -> Result<ExitCode> {
    let mesh = load(dir)?;
    let transforms = mesh.transforms().count();
    let jobs = mesh
        .datasets()
        .filter(|d| matches!(d.kind, meshql::spec::DatasetKind::Job(_)))
        .count();
    let products = mesh.products().count();
    let datasets = mesh.datasets().count();
    let summary = format!(
        "mesh `{}`: {} domains, {datasets} datasets ({transforms} transforms, {jobs} written by jobs, {products} products)",
        mesh.name,
        mesh.domains.len()
    );
    // Contracts against what their products were last published under.
    let engine = Engine::new(Arc::new(mesh))?;
    let problems = meshql::quality::semver::guard(&engine).await?;
    if !problems.is_empty() {
        eprintln!("{}", meshql::spec::Diagnostics(problems));
        return Err(Error::user(format!(
            "the mesh in {} breaks the versioning of its contracts",
            dir.display()
        )));
    }
    println!("{summary}; no problems found");
    Ok(ExitCode::SUCCESS)
}

fn write_schemas(out: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(out)
        .map_err(|e| Error::user(format!("cannot create {}: {e}", out.display())))?;
    for (name, text) in meshql::spec::json_schemas() {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Error::user(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print(
    format: Format,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[datafusion::arrow::record_batch::RecordBatch],
) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    output::write(&mut out, format, schema, batches)?;
    out.flush().ok();
    Ok(ExitCode::SUCCESS)
}

async fn execute_run(
    engine: Arc<Engine>,
    plan: RunPlan,
    parallelism: Option<usize>,
    force: bool,
) -> RunReport {
    println!("running {} node(s)", plan.nodes.len());
    let display = RunDisplay::new();
    let mut run = Run::new(engine, plan)
        .with_force(force)
        .with_progress(move |e| display.event(e));
    if let Some(n) = parallelism {
        run = run.with_parallelism(n);
    }
    let report = run.await;
    summary(&report);
    report
}

fn summary(report: &RunReport) {
    println!(
        "done in {:.2}s: {} ok, {} up to date, {} failed, {} skipped (run {})",
        report.duration.as_secs_f64(),
        report.count("ok"),
        report.count("up_to_date"),
        report.count("failed"),
        report.count("skipped"),
        report.run_id
    );
    for e in &report.history_errors {
        eprintln!("warning: the run history was not fully recorded: {e}");
    }
}

async fn run(
    engine: Arc<Engine>,
    select: &[String],
    parallelism: Option<usize>,
    force: bool,
) -> Result<ExitCode> {
    let selectors: Vec<Selector> = select.iter().map(|s| s.parse()).collect::<Result<_>>()?;
    let plan = RunPlan::new(engine.mesh(), &selectors)?;
    let report = execute_run(engine, plan, parallelism, force).await;
    Ok(ExitCode::from(report.exit_code()))
}

async fn policy_explain(engine: &Arc<Engine>, principal: &str, sql: &str) -> Result<ExitCode> {
    let mesh = engine.mesh();
    let Some(p) = mesh.principals.iter().find(|p| p.name == principal) else {
        let names: Vec<&str> = mesh.principals.iter().map(|p| p.name.as_str()).collect();
        return Err(Error::not_found(format!(
            "no principal `{principal}` in mesh.yaml (principals: {})",
            names.join(", ")
        )));
    };
    let who = meshql::governance::Principal {
        name: p.name.clone(),
        groups: p.groups.clone(),
        attributes: p.attributes.clone(),
    };
    let access = meshql::governance::Access::new(Arc::clone(mesh), who, false);
    println!(
        "principal: {} (groups: {})",
        p.name,
        if p.groups.is_empty() {
            "none".to_string()
        } else {
            p.groups.join(", ")
        }
    );
    let path = engine.default_path().clone();
    let (governed, _) = meshql::governance::plan_as(engine, &access, &path, sql).await?;
    println!("rules:");
    for r in &governed.rules {
        println!("  {r}");
    }
    if governed.rules.is_empty() {
        println!("  (none: the query reads no dataset)");
    }
    println!("governed plan:");
    for line in governed.plan.display_indent().to_string().lines() {
        println!("  {line}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn lineage(
    engine: &Engine,
    dataset: Option<&str>,
    format: LineageFormat,
    columns: bool,
) -> Result<ExitCode> {
    use meshql::pipeline::lineage;
    let mesh = engine.mesh();
    let mut edges = lineage::edges(mesh);
    if let Some(d) = dataset {
        let name = meshql::spec::DatasetName::parse(d)
            .ok_or_else(|| Error::user(format!("`{d}` is not domain.layer.dataset")))?;
        if mesh.dataset(&name).is_none() {
            return Err(engine.catalog().not_found(&name));
        }
        edges = lineage::around(&edges, d);
    }
    let in_scope =
        |n: &str| dataset.is_none() || edges.iter().any(|e| e.upstream == n || e.downstream == n);
    match format {
        LineageFormat::Mermaid => print!("{}", lineage::mermaid(&edges)),
        LineageFormat::Dot => print!("{}", lineage::dot(&edges)),
        LineageFormat::Openlineage => {
            let cols = lineage::column_edges(engine).await?;
            for event in lineage::openlineage(mesh, &edges, &cols) {
                println!("{event}");
            }
        }
        LineageFormat::Table if columns => {
            let cols = lineage::column_edges(engine).await?;
            println!(
                "{:<40} {:<20} {:<40} upstream column",
                "downstream", "column", "upstream"
            );
            for c in cols.iter().filter(|c| in_scope(&c.downstream)) {
                println!(
                    "{:<40} {:<20} {:<40} {}",
                    c.downstream, c.column, c.upstream, c.upstream_column
                );
            }
        }
        LineageFormat::Table => {
            println!("{:<40} {:<40} via", "upstream", "downstream");
            for e in &edges {
                println!("{:<40} {:<40} {}", e.upstream, e.downstream, e.via);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn has_mesh_file(dir: &Path) -> bool {
    dir.join("catalog").join("mesh.yaml").is_file()
}

/// The mesh of a folder without mesh.yaml: the tables of its `warehouse/` plus `extra`. With
/// `require_tables`, a folder with neither is an error.
fn standalone(
    dir: &Path,
    extra: &[meshql::spec::DatasetName],
    require_tables: bool,
) -> Result<Mesh> {
    let probe = Mesh::standalone(dir, &[]);
    let mut tables = meshql::storage::Warehouse::new(probe.warehouse.clone())?.discover();
    tables.extend(extra.iter().cloned());
    if require_tables && tables.is_empty() {
        return Err(Error::not_found(format!(
            "no mesh in {}: catalog/mesh.yaml not found, and no tables in {}/warehouse \
             (run `meshql job run JOB.json` there first, or pass --mesh DIR)",
            dir.display(),
            dir.display()
        )));
    }
    Ok(Mesh::standalone(dir, &tables))
}

/// Reads a mu-pipelines properties file: JSON, otherwise ignored.
fn properties(path: &Path, what: &str) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::user(format!("cannot read {what} {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::user(format!(
            "{}:{}:{}: invalid JSON in {what}: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

async fn run_job_file(
    mesh_dir: &Path,
    job: &Path,
    global_properties: Option<PathBuf>,
    connection_properties: Option<PathBuf>,
    force: bool,
) -> Result<ExitCode> {
    if let Some(p) = &global_properties {
        let props = properties(p, "global properties")?;
        match props.get("library").and_then(|l| l.as_str()) {
            Some(l) if l.eq_ignore_ascii_case("spark") => {}
            Some(other) => eprintln!(
                "note: library `{other}` in {} is ignored; meshql runs the job itself",
                p.display()
            ),
            None => {}
        }
    }
    if let Some(p) = &connection_properties {
        properties(p, "connection properties")?;
    }
    let text = std::fs::read_to_string(job)
        .map_err(|e| Error::user(format!("cannot read job file {}: {e}", job.display())))?;
    let mut diags = Vec::new();
    let parsed = meshql::spec::job::parse(job, &text, &mut diags);
    let file = match parsed {
        Some(f) if diags.is_empty() => f,
        _ => {
            eprintln!("{}", meshql::spec::Diagnostics(diags));
            return Err(Error::user(format!(
                "the job file {} is invalid",
                job.display()
            )));
        }
    };
    let mesh = if has_mesh_file(mesh_dir) {
        load(mesh_dir)?
    } else {
        let outputs: Vec<_> = file
            .jobs
            .iter()
            .flat_map(|j| j.outputs().cloned())
            .collect();
        let mut tables = outputs.clone();
        tables.extend(
            file.jobs
                .iter()
                .flat_map(|j| j.dependencies().map(|d| d.name.clone())),
        );
        standalone(mesh_dir, &tables, false)?
    };
    let engine = Engine::new(Arc::new(mesh))?;
    let base = std::env::current_dir()
        .map_err(|e| Error::user(format!("cannot read the working directory: {e}")))?;
    println!(
        "running {} job item(s) of {}",
        file.jobs.len(),
        job.display()
    );
    let display = RunDisplay::new();
    let report = JobRun::new(engine, file, base)
        .with_force(force)
        .with_progress(move |e| display.event(e))
        .await;
    summary(&report);
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn serve(engine: Arc<Engine>, addr: Option<SocketAddr>, no_build: bool) -> Result<ExitCode> {
    if !no_build {
        let mut missing = false;
        for dataset in engine.mesh().nodes() {
            if !engine.catalog().is_view(&dataset.name)
                && engine.catalog().snapshot(&dataset.name).await?.is_none()
            {
                missing = true;
                break;
            }
        }
        if missing {
            println!("the warehouse is missing tables; building them first");
            let plan = RunPlan::new(engine.mesh(), &[])?;
            let report = execute_run(Arc::clone(&engine), plan, None, false).await;
            if !report.succeeded() {
                eprintln!("warning: some tables failed to build; serving what is published");
            }
        }
    }
    // mesh.catalog.* describe what is served now.
    if let Err(e) = meshql::pipeline::refresh_system_catalog(&engine).await {
        eprintln!("warning: cannot refresh the mesh system catalog: {e}");
    }
    let addr = match addr {
        Some(a) => a,
        None => engine
            .mesh()
            .server
            .addr
            .parse()
            .map_err(|e| Error::user(format!("invalid server.addr: {e}")))?,
    };
    let server = Server::bind(Arc::clone(&engine), addr).await?;
    let local = server.local_addr();
    let scheme = if server.uses_tls() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let mesh = engine.mesh();
    let tables: Vec<_> = engine
        .catalog()
        .dataset_names()
        .into_iter()
        .filter(|n| n.domain != meshql::catalog::SYSTEM_CATALOG)
        .collect();
    let example = tables
        .iter()
        .find(|n| n.layer == "gold")
        .or_else(|| tables.first())
        .map(|n| n.to_string());
    println!(
        "meshql serving mesh `{}` ({} domains, {} datasets) on {scheme}://{local}",
        mesh.name,
        mesh.domains.len(),
        tables.len()
    );
    if let Some(table) = example {
        let login = if mesh.principals.is_empty() {
            ""
        } else {
            " --user USER --password PASSWORD"
        };
        println!(
            "try:  meshql query --server {scheme}://{local}{login} \"SELECT * FROM {table} LIMIT 10\""
        );
    }
    // Background work: schedules and freshness, stopped with the server.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    for s in meshql::pipeline::scheduled(engine.mesh()) {
        println!("schedule: {} at `{}`", s.node, s.expression);
    }
    let schedules = tokio::spawn(meshql::pipeline::run_schedules(
        Arc::clone(&engine),
        stopped(stop_rx.clone()),
    ));
    let every =
        std::time::Duration::from_secs(engine.mesh().notifications.freshness_check_secs.max(1));
    let freshness = tokio::spawn(
        meshql::pipeline::FreshnessMonitor::new(Arc::clone(&engine)).watch(every, stopped(stop_rx)),
    );
    let served = server.serve(shutdown_signal()).await;
    let _ = stop_tx.send(true);
    let _ = tokio::join!(schedules, freshness);
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM: the server stops accepting calls and finishes the running ones.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    println!("shutting down");
}
