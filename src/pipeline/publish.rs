//! Publishing a node's rows: write → audit → publish for products, a plain atomic write for the
//! other datasets.
//!
//! A product's rows are first written to a staging table of the run under
//! `<warehouse>/_mesh/staging/`, which no catalog serves; the audit runs there; only if no
//! error-severity rule failed are the staged rows written to the product's table, in one commit
//! that also records the contract's version and columns (what `meshql check`'s semver guard
//! compares against). Readers therefore never see unaudited rows, even while the run is in
//! progress, and concurrent runs never share staged rows.

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
    metadata: CommitMetadata,
    checks: &mut Vec<Check>,
) -> Result<Published> {
    let contract = engine.mesh().dataset(name).and_then(|d| d.contract.clone());
    let Some(contract) = contract else {
        return write(engine, name, plan, mode, metadata).await;
    };
    let run = metadata
        .get("run_id")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let warehouse = engine.catalog().warehouse();
    let published = audited(engine, name, &contract, &run, plan, mode, metadata, checks).await;
    match &published {
        // Blocked rows stay for inspection; after any other failure nothing is worth keeping.
        Err(e) if e.kind() == ErrorKind::ContractViolation => {}
        _ => remove_staging(&warehouse.staging_root(name), Some(&run), published.is_ok()),
    }
    published
}

/// Writes `plan` into `name` in one commit and makes the new version visible at once.
async fn write(
    engine: &Engine,
    name: &DatasetName,
    plan: LogicalPlan,
    mode: &WriteMode,
    metadata: CommitMetadata,
) -> Result<Published> {
    engine
        .catalog()
        .publish(name, plan, &engine.session(), mode, metadata)
        .await
}

/// Write → audit → publish of a product's rows, staged under `run`.
#[allow(clippy::too_many_arguments)]
async fn audited(
    engine: &Engine,
    name: &DatasetName,
    contract: &crate::spec::contract::Contract,
    run: &str,
    plan: LogicalPlan,
    mode: &WriteMode,
    mut metadata: CommitMetadata,
    checks: &mut Vec<Check>,
) -> Result<Published> {
    // Write: the rows go to the run's staging table.
    let state = engine.session();
    let warehouse = engine.catalog().warehouse();
    let staging = warehouse.staging_store(name, run)?;
    claim_staging(&warehouse.staging_url(name, run));
    staging
        .write(plan, &state, &WriteMode::Replace, CommitMetadata::new())
        .await
        .map_err(|e| Error::new(e.kind(), format!("staging `{name}`: {e}")))?;
    let staged = staging
        .open(&state)
        .await?
        .ok_or_else(|| Error::internal(format!("the staged rows of `{name}` vanished")))?;

    // Audit.
    let audit = quality::audit(engine, contract, Arc::clone(&staged.provider)).await?;
    checks.extend(audit.checks.iter().cloned());
    if audit.blocking().next().is_some() {
        mark_blocked(&warehouse.staging_url(name, run));
        return Err(Error::new(
            ErrorKind::ContractViolation,
            format!(
                "{}\n  (the blocked rows stay in {} until a later run publishes `{name}`)",
                audit.summary(contract),
                warehouse.staging_url(name, run)
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
    write(engine, name, audited, mode, metadata).await
}

/// Removes what killed runs staged for `name` (a run starting calls it for its nodes).
pub(crate) fn sweep_staging(engine: &Engine, name: &DatasetName) {
    if engine
        .mesh()
        .dataset(name)
        .is_some_and(|d| d.contract.is_some())
    {
        remove_staging(
            &engine.catalog().warehouse().staging_root(name),
            None,
            false,
        );
    }
}

/// Marks a staging table whose rows were blocked: a later publish of the dataset removes it.
fn mark_blocked(url: &str) {
    if let Some(path) = url.strip_prefix("file://")
        && let Err(e) = std::fs::write(std::path::Path::new(path).join(BLOCKED_MARKER), b"")
    {
        tracing::warn!(path, error = %e, "cannot mark blocked staged rows");
    }
}

const BLOCKED_MARKER: &str = "_blocked";
/// Names the process staging into a folder, so a later run can tell a killed run's leftovers
/// from a concurrent run's rows.
const OWNER_MARKER: &str = "_owner";

/// Records this process as the owner of a local staging folder. The folder appears with its
/// owner already in it (made aside, then renamed into place), so a run killed at any moment
/// leaves no staging folder whose owner is unknown.
fn claim_staging(url: &str) {
    let Some(path) = url.strip_prefix("file://") else {
        return;
    };
    let path = std::path::Path::new(path.trim_end_matches('/'));
    let (Some(root), Some(run)) = (path.parent(), path.file_name()) else {
        return;
    };
    let aside = root.join(format!("{CLAIM_PREFIX}{}", run.to_string_lossy()));
    let claimed = std::fs::create_dir_all(&aside)
        .and_then(|()| std::fs::write(aside.join(OWNER_MARKER), process_identity()))
        .and_then(|()| std::fs::rename(&aside, path));
    if let Err(e) = claimed {
        tracing::warn!(path = %path.display(), error = %e, "cannot mark a staging folder");
    }
}

/// Folders being claimed (see [`claim_staging`]); what a kill leaves of one is removed.
const CLAIM_PREFIX: &str = ".claiming-";

/// `pid start-time` of this process (the start time tells a reused pid apart).
fn process_identity() -> String {
    let pid = std::process::id();
    format!("{pid} {}", start_time(pid).unwrap_or_default())
}

/// The start time of a process, in clock ticks since boot (Linux); `None` if it is gone.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19).map(str::to_string)
}

/// Whether the process that staged into `dir` is gone (it was killed mid-run). Unknown owners
/// (other hosts, other systems) count as alive.
fn owner_gone(dir: &std::path::Path) -> bool {
    let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_MARKER)) else {
        return false;
    };
    let mut parts = owner.split_whitespace();
    let (Some(pid), Some(started)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if !std::path::Path::new("/proc/self/stat").exists() {
        return false;
    }
    start_time(pid).as_deref() != Some(started)
}

/// Deletes the staging table of `run`, the ones killed runs left behind, any over a day old and,
/// once the dataset is `published` again, the ones blocked runs left for inspection (a
/// concurrent run still staging is none of these, so it keeps its own). Object stores keep
/// them; they are never read again.
fn remove_staging(root: &str, run: Option<&str>, published: bool) {
    let Some(root) = root.strip_prefix("file://") else {
        return;
    };
    let root = std::path::Path::new(root);
    if !root.exists() {
        return;
    }
    let remove = |path: &std::path::Path| {
        if let Err(e) = std::fs::remove_dir_all(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a staging table");
        }
    };
    if let Some(run) = run {
        remove(&root.join(run));
    }
    let day = std::time::Duration::from_secs(24 * 3600);
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        let old = age > day;
        let path = entry.path();
        // Blocked rows are kept for inspection until the dataset publishes again.
        let blocked = published && path.join(BLOCKED_MARKER).exists();
        // A claim is renamed into place a moment after it starts; one older than a minute was
        // left by a kill (with its owner written or not).
        let abandoned = entry
            .file_name()
            .to_string_lossy()
            .starts_with(CLAIM_PREFIX)
            && age > std::time::Duration::from_secs(60);
        if old || blocked || abandoned || owner_gone(&path) {
            remove(&path);
        }
    }
    // The dataset's folder goes once no run stages there.
    let _ = std::fs::remove_dir(root);
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::*;

    fn age(path: &Path, by: Duration) {
        let file = std::fs::File::open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn staging_folders_appear_with_their_owner_and_what_kills_leave_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shop/gold/items");
        let url = |run: &str| format!("file://{}/{run}/", root.display());

        claim_staging(&url("live"));
        let owner = std::fs::read_to_string(root.join("live").join(OWNER_MARKER)).unwrap();
        assert_eq!(owner, process_identity());

        // A run killed after writing its owner: that process is gone.
        let killed = root.join("killed");
        std::fs::create_dir_all(&killed).unwrap();
        std::fs::write(killed.join(OWNER_MARKER), "4194304 1").unwrap();
        // Runs killed while claiming: long ago (removed) and a moment ago (perhaps still
        // claiming, so kept).
        let stale = root.join(format!("{CLAIM_PREFIX}stale"));
        std::fs::create_dir_all(&stale).unwrap();
        age(&stale, Duration::from_secs(120));
        let fresh = root.join(format!("{CLAIM_PREFIX}fresh"));
        std::fs::create_dir_all(&fresh).unwrap();

        let root_url = format!("file://{}/", root.display());
        remove_staging(&root_url, None, false);
        let mut left: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [format!("{CLAIM_PREFIX}fresh"), "live".to_string()]);
    }
}
