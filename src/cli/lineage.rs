//! `meshql lineage`: table and column lineage as a table, Mermaid, Graphviz or OpenLineage.

use std::process::ExitCode;

use meshql::engine::Engine;
use meshql::{Error, Result};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LineageFormat {
    /// One row per edge.
    Table,
    /// A Mermaid flowchart.
    Mermaid,
    /// A Graphviz digraph.
    Dot,
    /// OpenLineage RunEvents, one JSON object per line.
    Openlineage,
}

/// Prints the lineage of the mesh, or around `dataset`.
pub async fn lineage(
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
