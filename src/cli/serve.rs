//! `meshql serve`: build what is missing, then serve until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use meshql::engine::Engine;
use meshql::server::Server;
use meshql::service::serving::{self, Maintenance, OnDescribed};
use meshql::{Error, Result};

use super::progress::RunDisplay;

/// Prints a line for the operator. A server outlives whoever reads its output: a closed pipe
/// must not stop it (`println!` would panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub async fn serve(dir: &Path, addr: Option<SocketAddr>, no_build: bool) -> Result<ExitCode> {
    // In a folder without a mesh, the tables of its warehouse are served.
    let mesh = match super::has_mesh_file(dir) {
        true => super::load(dir)?,
        false => super::job::standalone(dir, &[], true)?,
    };
    let engine = Engine::new(Arc::new(mesh))?;
    let mut built = false;
    if !no_build && serving::missing_tables(&engine).await? {
        println!("the warehouse is missing tables; building them first");
        let display = RunDisplay::new();
        let report = serving::prepare(&engine, true, move |e| display.event(e)).await?;
        if let Some(report) = report {
            built = true;
            super::run::summary(&report);
            if !report.succeeded() {
                eprintln!("warning: some tables failed to build; serving what is published");
            }
        }
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
    banner(&engine, &server);
    for s in meshql::pipeline::scheduled(engine.mesh()) {
        say!("schedule: {} at `{}`", s.node, s.expression);
    }
    // A build just described the mesh; otherwise it is described once listening.
    let on_described = (!built).then(|| {
        let datasets = engine.listed_datasets().len();
        Box::new(move |described: Result<Option<Duration>>| match described {
            Ok(Some(took)) => say!(
                "system catalog: {datasets} datasets described in {:.1} s",
                took.as_secs_f64()
            ),
            Ok(None) => say!(
                "system catalog: described by the `meshql serve` holding the warehouse's lease"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot describe the mesh in its system catalog"),
        }) as OnDescribed
    });
    let maintenance = Maintenance::start(&engine, on_described);
    let grace = Duration::from_secs(engine.mesh().server.shutdown_grace_secs);
    let served = server.serve(shutdown_signal(grace)).await;
    maintenance.stop().await;
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Where the server listens and a query to try.
fn banner(engine: &Engine, server: &Server) {
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
    say!(
        "meshql serving mesh `{}` ({} domains, {} datasets) on {scheme}://{local}",
        mesh.name,
        mesh.domains.len(),
        tables.len()
    );
    let example = tables
        .iter()
        .find(|n| n.layer == "gold")
        .or_else(|| tables.first());
    if let Some(table) = example {
        let login = if mesh.principals.is_empty() {
            ""
        } else {
            " --user USER --password PASSWORD"
        };
        say!(
            "try:  meshql query --server {scheme}://{local}{login} \"SELECT * FROM {table} LIMIT 10\""
        );
    }
}

/// Completes on Ctrl-C or SIGTERM: the server stops accepting calls and finishes the running ones,
/// for `grace` at most (`server.shutdown_grace_secs`; then the process exits, whatever still runs).
async fn shutdown_signal(grace: Duration) {
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
    say!(
        "shutting down: finishing running requests (at most {} s)",
        grace.as_secs()
    );
    // A thread of its own: it must fire even if every runtime thread is busy.
    std::thread::spawn(move || {
        std::thread::sleep(grace);
        say!(
            "requests still running {} s after the shutdown signal; exiting",
            grace.as_secs()
        );
        std::process::exit(0);
    });
}
