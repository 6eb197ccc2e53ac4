//! One domain: its domain.yaml, the sources it declares, and the datasets its folders add.

use super::folders::{load_contracts, load_jobs, load_transforms};
use super::*;
use crate::spec::settings::is_http_url;
use crate::spec::{IcebergCatalogKind, IcebergCatalogSettings, SourceFormat};

pub(super) fn load_domain(
    name: &str,
    folder: PathBuf,
    file: &Path,
    spec: DomainFile,
    pos: &Positions,
    sql_dir: &Path,
    diags: &mut Vec<Diagnostic>,
) -> Domain {
    let mut layers: Vec<String> = Vec::new();
    for (i, layer) in spec.layers.iter().enumerate() {
        let (l, c) = pos.value(&["layers".into(), i.to_string()]);
        if !is_valid_name(layer) {
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                format!("invalid layer name `{layer}`; expected {NAME_RULE}"),
            ));
        } else if layers.contains(layer) {
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                format!("layer `{layer}` is listed twice"),
            ));
        } else {
            layers.push(layer.clone());
        }
    }
    for layer in spec.layer_formats.keys() {
        if !layers.contains(layer) {
            let (l, c) = pos.of(&["layer_formats".into(), layer.clone()]);
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                format!(
                    "layer_formats: domain `{name}` has no layer `{layer}`; its layers: {}",
                    layers.join(", ")
                ),
            ));
        }
    }
    if spec.owner.trim().is_empty() {
        let (l, c) = pos.value(&["owner".into()]);
        diags.push(Diagnostic::new(
            file,
            l,
            c,
            "the owner group must not be empty",
        ));
    }

    let mut datasets: Vec<Dataset> = Vec::new();
    for (i, source) in spec.sources.iter().enumerate() {
        if let Some(ds) = load_source(name, &folder, file, &layers, source, pos, i, diags) {
            push_unique(
                &mut datasets,
                ds,
                pos.value(&["sources".into(), i.to_string(), "name".into()]),
                diags,
            );
        }
    }
    load_transforms(name, sql_dir, &layers, &mut datasets, diags);
    load_jobs(name, &folder, &layers, &mut datasets, diags);
    load_contracts(name, &folder, &mut datasets, diags);
    // Layer order first (raw, silver, gold), then names: how listings show a domain.
    datasets.sort_by_key(|d| {
        (
            layers.iter().position(|l| *l == d.name.layer),
            d.name.dataset.clone(),
        )
    });

    let policies = policy::validate(file, &spec.policies, pos, Some(name), diags);
    Domain {
        name: name.to_string(),
        owner: spec.owner,
        description: spec.description,
        layers,
        format: spec.format,
        layer_formats: spec.layer_formats,
        folder,
        datasets,
        policies,
    }
}

#[allow(clippy::too_many_arguments)]
fn load_source(
    domain: &str,
    folder: &Path,
    file: &Path,
    layers: &[String],
    src: &SourceFile,
    pos: &Positions,
    i: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<Dataset> {
    let key = |k: &str| vec!["sources".to_string(), i.to_string(), k.to_string()];
    let before = diags.len();
    if !is_valid_name(&src.name) {
        let (l, c) = pos.value(&key("name"));
        diags.push(Diagnostic::new(
            file,
            l,
            c,
            format!("invalid dataset name `{}`; expected {NAME_RULE}", src.name),
        ));
    }
    if !layers.contains(&src.layer) {
        let (l, c) = pos.value(&key("layer"));
        diags.push(Diagnostic::new(
            file,
            l,
            c,
            format!(
                "unknown layer `{}`; domain `{domain}` has layers: {}",
                src.layer,
                layers.join(", ")
            ),
        ));
    }
    let delimiter = match src.delimiter.as_bytes() {
        [b] => *b,
        _ => {
            let (l, c) = pos.value(&key("delimiter"));
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                "the delimiter must be exactly one ASCII character",
            ));
            b','
        }
    };
    let catalog = source_catalog(folder, file, src, pos, &key, diags);
    // A missing file is reported, but the dataset stays declared so references to it resolve.
    let fatal = diags.len() > before;
    let location = if catalog.is_some() || src.location.contains("://") {
        src.location.clone()
    } else {
        let path = normalize(&folder.join(&src.location));
        if !path.exists() {
            let (l, c) = pos.value(&key("location"));
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                format!("source file or folder not found: {}", path.display()),
            ));
        }
        let mut url = format!("file://{}", path.display());
        if path.is_dir() && !url.ends_with('/') {
            url.push('/');
        }
        url
    };
    if fatal {
        return None;
    }
    Some(Dataset {
        name: DatasetName::new(domain, &src.layer, &src.name),
        file: file.to_path_buf(),
        description: src.description.clone(),
        contract: None,
        kind: DatasetKind::Source(Source {
            format: src.format,
            location,
            catalog,
            has_header: src.has_header,
            delimiter,
        }),
    })
}

/// The `catalog:` of an Iceberg source, its SQLite file resolved against the domain folder; the
/// table is then named `namespace.table` by `location`.
fn source_catalog(
    folder: &Path,
    file: &Path,
    src: &SourceFile,
    pos: &Positions,
    key: &dyn Fn(&str) -> Vec<String>,
    diags: &mut Vec<Diagnostic>,
) -> Option<IcebergCatalogSettings> {
    let catalog = src.catalog.as_ref()?;
    let mut report = |path: Vec<String>, message: String| {
        let (l, c) = pos.value(&path);
        diags.push(Diagnostic::new(file, l, c, message));
    };
    let inner = |k: &str| {
        let mut path = key("catalog");
        path.push(k.to_string());
        path
    };
    if src.format != SourceFormat::Iceberg {
        report(
            key("catalog"),
            "`catalog` names the Iceberg catalog of an `iceberg` source".into(),
        );
        return None;
    }
    if src.location.split('.').filter(|p| !p.is_empty()).count() < 2 {
        report(
            key("location"),
            format!(
                "with `catalog`, `location` is the table's name in it, `namespace.table`; `{}` is not",
                src.location
            ),
        );
    }
    let mut resolved = catalog.clone();
    match catalog.kind {
        IcebergCatalogKind::Sql => {
            let Some(uri) = &catalog.uri else {
                report(
                    inner("type"),
                    "a source's SQL catalog needs its `uri`: the catalog's SQLite file".into(),
                );
                return None;
            };
            // A path, or PyIceberg's `sqlite:///<absolute path>`.
            let path = match uri.strip_prefix("sqlite:///") {
                Some(absolute) => std::path::PathBuf::from(format!("/{absolute}")),
                None => normalize(&folder.join(uri)),
            };
            if !path.is_file() {
                report(
                    inner("uri"),
                    format!("Iceberg catalog file not found: {}", path.display()),
                );
            }
            for name in crate::spec::settings::rest_keys_set(catalog) {
                report(
                    inner(name),
                    format!(
                        "`{name}` is a setting of REST catalogs; a SQL catalog has `uri` and `name`"
                    ),
                );
            }
            resolved.uri = Some(path.display().to_string());
        }
        IcebergCatalogKind::Rest => {
            if !catalog.uri.as_deref().is_some_and(is_http_url) {
                report(
                    inner("uri"),
                    "a REST catalog needs its `uri`, an http:// or https:// URL".into(),
                );
            }
            if catalog.name.is_some() {
                report(
                    inner("name"),
                    "`name` is a setting of SQL catalogs; a REST catalog is named by its `uri`"
                        .into(),
                );
            }
        }
    }
    Some(resolved)
}
