//! The dataset files of a domain's folders: SQL transforms under `sql/<domain>/<layer>/`, jobs and
//! contracts under `catalog/<domain>/`.

use super::*;

pub(super) fn load_transforms(
    domain: &str,
    sql_dir: &Path,
    layers: &[String],
    datasets: &mut Vec<Dataset>,
    diags: &mut Vec<Diagnostic>,
) {
    let Ok(entries) = sorted_entries(sql_dir) else {
        return;
    };
    for layer_dir in entries {
        let layer = file_name(&layer_dir);
        if !layer_dir.is_dir() {
            diags.push(Diagnostic::new(
                &layer_dir,
                1,
                1,
                format!(
                    "unexpected file; transforms live in {}/<layer>/<dataset>.sql",
                    sql_dir.display()
                ),
            ));
            continue;
        }
        if !layers.contains(&layer) {
            diags.push(Diagnostic::new(
                &layer_dir,
                1,
                1,
                format!(
                    "unknown layer `{layer}`; domain `{domain}` has layers: {}",
                    layers.join(", ")
                ),
            ));
            continue;
        }
        for file in sorted_entries(&layer_dir).unwrap_or_default() {
            let fname = file_name(&file);
            let Some(dataset) = fname.strip_suffix(".sql") else {
                diags.push(Diagnostic::new(
                    &file,
                    1,
                    1,
                    "unexpected file; expected <dataset>.sql",
                ));
                continue;
            };
            if !is_valid_name(dataset) {
                diags.push(Diagnostic::new(&file, 1, 1, format!("invalid dataset name `{dataset}` (from the file name); expected {NAME_RULE}")));
                continue;
            }
            let sql = match std::fs::read_to_string(&file) {
                Ok(s) => s,
                Err(e) => {
                    diags.push(Diagnostic::new(
                        &file,
                        1,
                        1,
                        format!("cannot read transform: {e}"),
                    ));
                    continue;
                }
            };
            if let Some(t) = transform::parse(&file, &sql, domain, &layer, diags) {
                let ds = Dataset {
                    name: DatasetName::new(domain, &layer, dataset),
                    file: file.clone(),
                    description: t.description.clone(),
                    contract: None,
                    kind: DatasetKind::Transform(t),
                };
                push_unique(datasets, ds, (1, 1), diags);
            }
        }
    }
}

/// The files of `dir` ending in one of `extensions`, with their text, in name order; any other
/// entry, and any file that cannot be read, is reported (`holds` says what belongs there).
fn spec_files(
    dir: &Path,
    extensions: &[&str],
    holds: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(PathBuf, String)> {
    let Ok(entries) = sorted_entries(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for file in entries {
        let name = file_name(&file);
        if file.is_dir() || !extensions.iter().any(|e| name.ends_with(e)) {
            diags.push(Diagnostic::new(
                &file,
                1,
                1,
                format!("unexpected entry; {holds}"),
            ));
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(text) => out.push((file, text)),
            Err(e) => diags.push(Diagnostic::new(
                &file,
                1,
                1,
                format!("cannot read the file: {e}"),
            )),
        }
    }
    out
}

/// Contracts in `<domain folder>/products/*.yaml`, each attached to the dataset it names.
pub(super) fn load_contracts(
    domain: &str,
    folder: &Path,
    datasets: &mut [Dataset],
    diags: &mut Vec<Diagnostic>,
) {
    for (file, text) in spec_files(
        &folder.join("products"),
        &[".yaml", ".yml"],
        "products/ holds data contracts (*.yaml)",
        diags,
    ) {
        let Some((spec, pos)) = yaml::parse::<ContractFile>(&file, &text, diags) else {
            continue;
        };
        let Some(c) = contract::validate(&file, &text, spec, &pos, domain, diags) else {
            continue;
        };
        let names: Vec<String> = datasets.iter().map(|d| d.name.to_string()).collect();
        let Some(ds) = datasets.iter_mut().find(|d| d.name == c.dataset) else {
            let wanted = c.dataset.to_string();
            let hint = did_you_mean(&wanted, names.iter().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            diags.push(Diagnostic::new(
                &file,
                c.dataset_line,
                c.dataset_column,
                format!(
                    "the contract describes `{wanted}`, which the domain does not produce{hint}"
                ),
            ));
            continue;
        };
        if let Some(other) = &ds.contract {
            diags.push(Diagnostic::new(
                &file,
                c.dataset_line,
                c.dataset_column,
                format!(
                    "`{}` already has a contract: {}",
                    ds.name,
                    other.file.display()
                ),
            ));
            continue;
        }
        let header_schedule = match &ds.kind {
            DatasetKind::Transform(t) => t.options.schedule.is_some(),
            _ => false,
        };
        if header_schedule && c.schedule.is_some() {
            diags.push(Diagnostic::new(
                &file,
                c.dataset_line,
                c.dataset_column,
                format!(
                    "`{}` has a schedule in its SQL header and in its contract; declare it in one place",
                    ds.name
                ),
            ));
        }
        if ds.description.is_none() {
            ds.description = c.description.clone();
        }
        ds.contract = Some(Arc::new(c));
    }
}

/// Job files in `<domain folder>/jobs/*.json`: every table a job item writes is a dataset of this
/// domain.
pub(super) fn load_jobs(
    domain: &str,
    folder: &Path,
    layers: &[String],
    datasets: &mut Vec<Dataset>,
    diags: &mut Vec<Diagnostic>,
) {
    for (file, text) in spec_files(
        &folder.join("jobs"),
        &[".json"],
        "jobs/ holds mu-pipelines job files (*.json)",
        diags,
    ) {
        let Some(parsed) = job::parse(&file, &text, diags) else {
            continue;
        };
        for job in parsed.jobs {
            let job = Arc::new(job);
            for dest in &job.destinations {
                let DestinationKind::Table { name, .. } = &dest.kind else {
                    continue;
                };
                let here = |msg: String| Diagnostic::new(&file, dest.at.line, dest.at.column, msg);
                if name.domain != domain {
                    diags.push(here(format!(
                        "`{name}`: a job of domain `{domain}` writes into its own domain only"
                    )));
                    continue;
                }
                if !layers.contains(&name.layer) {
                    diags.push(here(format!(
                        "`{name}`: unknown layer `{}`; domain `{domain}` has layers: {}",
                        name.layer,
                        layers.join(", ")
                    )));
                    continue;
                }
                let ds = Dataset {
                    name: name.clone(),
                    file: file.clone(),
                    description: None,
                    contract: None,
                    kind: DatasetKind::Job(Arc::clone(&job)),
                };
                push_unique(datasets, ds, (dest.at.line, dest.at.column), diags);
            }
        }
    }
}
