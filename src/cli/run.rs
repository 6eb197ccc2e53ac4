//! `meshql run`: transforms and jobs in dependency order, here or on a server; and how a run's
//! progress and summary are printed.

use std::process::ExitCode;
use std::sync::Arc;

use meshql::Result;
use meshql::engine::Engine;
use meshql::pipeline::{Run, RunPlan, RunReport, Selector};

use super::Auth;
use super::progress::{RunDisplay, format_line};

/// Runs the selection in this process.
pub async fn local(
    engine: Arc<Engine>,
    select: &[String],
    parallelism: Option<usize>,
    force: bool,
) -> Result<ExitCode> {
    let selectors: Vec<Selector> = select.iter().map(|s| s.parse()).collect::<Result<_>>()?;
    let plan = RunPlan::new(engine.mesh(), &selectors)?;
    let report = execute(engine, plan, parallelism, force).await;
    Ok(ExitCode::from(report.exit_code()))
}

/// Runs the selection on a server (the RunPipeline action).
pub async fn remote(url: &str, auth: &Auth, select: &[String], force: bool) -> Result<ExitCode> {
    let mut client = auth.connect(url).await?;
    let result = client.run_pipeline(select, force).await?;
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

/// Runs `plan` with a progress display and prints the summary.
pub async fn execute(
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

pub fn summary(report: &RunReport) {
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
