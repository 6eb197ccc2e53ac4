//! `meshql policy explain`: the rules that apply to a principal's query, and the governed plan.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use meshql::Result;
use meshql::engine::Engine;
use meshql::service::QueryService;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the rules that apply to a query of a principal, and the governed plan it runs.
    Explain {
        /// A principal of mesh.yaml.
        #[arg(long)]
        principal: String,
        /// The SQL query.
        sql: String,
    },
}

pub async fn explain(engine: Arc<Engine>, principal: &str, sql: &str) -> Result<ExitCode> {
    let service = QueryService::unaudited(engine)?;
    let who = service.principal_named(principal)?;
    let groups = if who.groups.is_empty() {
        "none".to_string()
    } else {
        who.groups.join(", ")
    };
    println!("principal: {} (groups: {groups})", who.name);
    let planned = service.explain(&who, sql).await?;
    println!("rules:");
    for r in &planned.rules {
        println!("  {r}");
    }
    if planned.rules.is_empty() {
        println!("  (none: the query reads no dataset)");
    }
    println!("governed plan:");
    for line in planned.plan.display_indent().to_string().lines() {
        println!("  {line}");
    }
    Ok(ExitCode::SUCCESS)
}
