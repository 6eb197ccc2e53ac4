//! `meshql job run`: the items of a mu-pipelines job file, in a mesh or in any folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use meshql::engine::Engine;
use meshql::pipeline::JobRun;
use meshql::spec::Mesh;
use meshql::{Error, Result};

use super::has_mesh_file;
use super::progress::RunDisplay;

#[derive(Debug, Subcommand)]
pub enum JobCommand {
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
        /// Outside a mesh folder: the table format of the tables the job writes (`delta`, the
        /// default, or `iceberg`). Inside one, the mesh and its domains decide.
        #[arg(long, value_parser = ["delta", "iceberg"])]
        format: Option<String>,
    },
}

/// The mesh of a folder without mesh.yaml: the tables of its `warehouse/` plus `extra`. With
/// `require_tables`, a folder with neither is an error.
pub fn standalone(
    dir: &Path,
    extra: &[meshql::spec::DatasetName],
    require_tables: bool,
) -> Result<Mesh> {
    let probe = Mesh::standalone(dir, &[]);
    let mut tables: Vec<_> = meshql::storage::Warehouse::new(probe.warehouse.clone())?
        .discover()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
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

/// Runs the items of `job` in order.
pub async fn run_file(
    mesh_dir: &Path,
    job: &Path,
    global_properties: Option<PathBuf>,
    connection_properties: Option<PathBuf>,
    force: bool,
    format: Option<&str>,
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
        if format.is_some() {
            return Err(Error::user(
                "--format applies outside a mesh folder; in a mesh, set `format:` in the \
                 domain's domain.yaml or `default_format:` in catalog/mesh.yaml",
            ));
        }
        super::load(mesh_dir)?
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
        let mut mesh = standalone(mesh_dir, &tables, false)?;
        if format == Some("iceberg") {
            mesh.default_format = meshql::spec::TableFormatName::Iceberg;
        }
        mesh
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
    super::run::summary(&report);
    Ok(ExitCode::from(report.exit_code()))
}
