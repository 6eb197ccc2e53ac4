//! The command line: one file per command, on top of the library. Output and progress rendering
//! live here too; exit codes come from error kinds (and, for runs, from how nodes ended).

mod auth;
mod check;
mod job;
mod lineage;
mod output;
mod policy;
mod progress;
mod run;
mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use meshql::engine::Engine;
use meshql::governance::Principal;
use meshql::service::{Call, Operation, Protocol, QueryService, Statement};
use meshql::spec::Mesh;
use meshql::{Error, Result};

pub use auth::Auth;
use output::Format;

/// meshql: a company's data domains as one governed, queryable data mesh, served over Arrow
/// Flight SQL.
///
/// Exit codes: 0 success; 1 a pipeline node failed; 2 bad input (SQL, mesh files, arguments);
/// 3 not found; 4 permission denied; 5 conflict; 6 resource or storage unavailable, deadline
/// passed; 70 internal error (a bug); 130 cancelled.
#[derive(Debug, Parser)]
#[command(name = "meshql", version, about, long_about)]
pub struct Cli {
    /// The mesh folder: holds catalog/mesh.yaml, catalog/<domain>/ and sql/<domain>/.
    #[arg(long, global = true, default_value = ".", env = "MESHQL_MESH")]
    mesh: PathBuf,

    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Whether the command is one that serves (it keeps running, and ignores SIGPIPE).
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Serve { .. })
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
    Job(job::JobCommand),
    /// Policies: what a principal may see.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
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
        #[arg(long, value_enum, default_value_t = lineage::LineageFormat::Table)]
        format: lineage::LineageFormat,
        /// Column-level lineage (table format only).
        #[arg(long)]
        columns: bool,
    },
    /// List domains, layers and datasets with row counts, versions and last update.
    Catalog {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List the versions of a Delta or Iceberg table, oldest first: what `VERSION AS OF` and
    /// `TIMESTAMP AS OF` can read.
    History {
        /// The dataset (`domain.layer.dataset`).
        dataset: String,
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

/// Runs the command line's command.
pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let mesh = cli.mesh;
    match cli.command {
        Command::Check => check::check(&mesh).await,
        Command::Schema { out } => check::write_schemas(&out),
        Command::HashPassword => check::hash_password(),
        Command::Token => check::token(),
        Command::Job(job::JobCommand::Run {
            job,
            global_properties,
            connection_properties,
            force,
            format,
        }) => {
            let format = format.as_deref();
            job::run_file(
                &mesh,
                &job,
                global_properties,
                connection_properties,
                force,
                format,
            )
            .await
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
        Command::Query { sql, format, .. } => embedded(engine(&mesh)?, &sql, format).await,
        Command::Run {
            select,
            server: Some(url),
            auth,
            force,
            ..
        } => run::remote(&url, &auth, &select, force).await,
        Command::Run {
            select,
            parallelism,
            force,
            ..
        } => run::local(engine(&mesh)?, &select, parallelism, force).await,
        Command::Serve { addr, no_build } => serve::serve(&mesh, addr, no_build).await,
        Command::Lineage {
            dataset,
            format,
            columns,
        } => lineage::lineage(&*engine(&mesh)?, dataset.as_deref(), format, columns).await,
        Command::Catalog { format } => {
            let batch = engine(&mesh)?.overview().await?;
            print(format, &batch.schema(), &[batch])
        }
        Command::History { dataset, format } => history(engine(&mesh)?, &dataset, format).await,
        Command::Policy(policy::PolicyCommand::Explain { principal, sql }) => {
            policy::explain(engine(&mesh)?, &principal, &sql).await
        }
    }
}

/// `meshql history`: the dataset's rows of `mesh.ops.versions`.
async fn history(engine: Arc<Engine>, dataset: &str, format: Format) -> Result<ExitCode> {
    let name = meshql::spec::DatasetName::parse(dataset)
        .ok_or_else(|| Error::user(format!("`{dataset}` is not domain.layer.dataset")))?;
    engine.catalog().versioned_store(&name)?;
    let literal = |s: &str| s.replace('\'', "''");
    let sql = format!(
        "SELECT version, snapshot_id, committed_at, operation, rows_added, run_id, current \
         FROM mesh.ops.versions WHERE domain = '{}' AND layer = '{}' AND dataset = '{}' \
         ORDER BY version, committed_at",
        literal(&name.domain),
        literal(&name.layer),
        literal(&name.dataset)
    );
    embedded(engine, &sql, format).await
}

/// Runs `sql` on the local mesh as a server would run it — through the query service, with its
/// limits and audit (protocol `cli`) — as the platform principal, and prints the rows.
async fn embedded(engine: Arc<Engine>, sql: &str, format: Format) -> Result<ExitCode> {
    let platform = Principal::platform(engine.mesh());
    let service = QueryService::new(engine)?;
    let call = Call::new(platform, Protocol::Cli, Operation::Query);
    let answer = async {
        let stream = service
            .execute(&call, Statement::new(service.default_path(), sql))
            .await?;
        let schema = stream.schema();
        let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await?;
        Ok::<_, Error>((schema, batches))
    }
    .await;
    service.flush_audit().await;
    let (schema, batches) = answer?;
    print(format, &schema, &batches)
}

/// The mesh of `dir`, with every problem of its files printed.
fn load(dir: &Path) -> Result<Mesh> {
    Mesh::load(dir).map_err(|diags| {
        eprintln!("{diags}");
        Error::user(format!("the mesh in {} is invalid", dir.display()))
    })
}

fn engine(dir: &Path) -> Result<Arc<Engine>> {
    Engine::new(Arc::new(load(dir)?))
}

fn has_mesh_file(dir: &Path) -> bool {
    dir.join("catalog").join("mesh.yaml").is_file()
}

fn print(
    format: Format,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[datafusion::arrow::record_batch::RecordBatch],
) -> Result<ExitCode> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    output::write(&mut out, format, schema, batches)?;
    out.flush().ok();
    Ok(ExitCode::SUCCESS)
}
