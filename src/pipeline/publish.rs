//! Publishing a node's rows: write → audit → publish for products, a plain atomic write for the
//! other datasets.
//!
//! A product's rows are first written to a staging table under `<warehouse>/_mesh/staging/`,
//! which no catalog serves; the audit runs there; only if no error-severity rule failed are the
//! staged rows written to the product's table, in one commit that also records the contract's
//! version and columns (what `meshql check`'s semver guard compares against). Readers therefore
//! never see unaudited rows, even while the run is in progress.

use std::sync::Arc;

use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use serde_json::json;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::quality::{self, Check};
use crate::spec::DatasetName;
use crate::storage::{CommitMetadata, Published, WriteMode};

/// Writes `plan` into `name` with `mode`; audits it first when `name` is a product. Every check
/// evaluated is appended to `checks`, whether the publish happens or not.
pub(crate) async fn publish(
    engine: &Engine,
    name: &DatasetName,
    plan: LogicalPlan,
    mode: &WriteMode,
    mut metadata: CommitMetadata,
    checks: &mut Vec<Check>,
) -> Result<Published> {
    let catalog = engine.catalog();
    let store = catalog.store_or_create(name)?;
    let state = engine.session();
    let contract = engine.mesh().dataset(name).and_then(|d| d.contract.clone());
    let Some(contract) = contract else {
        let published = store.write(plan, &state, mode, metadata).await;
        catalog.invalidate(name).await;
        return published;
    };

    // Write: the rows go to the staging table.
    let warehouse = catalog.warehouse();
    let staging = warehouse.staging_store(name)?;
    staging
        .write(plan, &state, &WriteMode::Replace, CommitMetadata::new())
        .await
        .map_err(|e| Error::new(e.kind(), format!("staging `{name}`: {e}")))?;
    let staged = staging
        .open(&state)
        .await?
        .ok_or_else(|| Error::internal(format!("the staged rows of `{name}` vanished")))?;

    // Audit.
    let audit = quality::audit(engine, &contract, Arc::clone(&staged.provider)).await?;
    checks.extend(audit.checks.iter().cloned());
    if audit.blocking().next().is_some() {
        return Err(Error::new(
            ErrorKind::ContractViolation,
            format!(
                "{}\n  (the blocked rows stay in {} until the next run)",
                audit.summary(&contract),
                warehouse.staging_url(name)
            ),
        ));
    }

    // Publish: the audited rows, in one commit.
    metadata.insert(
        "contract".into(),
        json!({
            "id": contract.id,
            "version": contract.version_text,
            "columns": contract.columns,
        }),
    );
    let audited =
        LogicalPlanBuilder::scan("staged", provider_as_source(staged.provider), None)?.build()?;
    let published = store.write(audited, &state, mode, metadata).await;
    catalog.invalidate(name).await;
    let published = published?;
    remove_staging(&warehouse.staging_url(name));
    Ok(published)
}

/// Deletes a local staging table once its rows are published (object stores keep it; the next
/// run replaces it).
fn remove_staging(url: &str) {
    if let Some(path) = url.strip_prefix("file://")
        && let Err(e) = std::fs::remove_dir_all(path)
    {
        tracing::warn!(path, error = %e, "cannot remove a staging table");
    }
}
