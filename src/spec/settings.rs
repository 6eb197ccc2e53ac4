//! Checks of mesh-wide settings in mesh.yaml: the warehouse, the server section (address,
//! limits, TLS files) and the principals (never a plaintext secret).

use std::collections::BTreeSet;
use std::path::Path;

use super::diagnostic::Diagnostic;
use super::files::{
    IcebergCatalogKind, IcebergCatalogSettings, MeshFile, PrincipalFile, ServerSettings,
};
use super::paths::normalize;
use super::yaml::Positions;

/// Whether `text` is an absolute `http://` or `https://` URL with a host.
pub fn is_http_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// The catalog name the warehouse's own Iceberg tables are registered under (PyIceberg:
/// `SqlCatalog("meshql", uri="sqlite:///<warehouse>/_mesh/iceberg.db", warehouse=...)`).
pub const ICEBERG_CATALOG_NAME: &str = "meshql";

/// The value of a setting that may name an environment variable (`env:NAME`) instead of holding
/// a secret; `what` names the setting in the error.
pub fn literal_or_env(value: &str, what: &str) -> crate::error::Result<String> {
    match value.strip_prefix("env:") {
        Some(var) => std::env::var(var).map_err(|_| {
            crate::error::Error::user(format!(
                "{what} names environment variable `{var}`, which is not set"
            ))
        }),
        None => Ok(value.to_string()),
    }
}

/// The keys of `settings` only a REST catalog takes that are set.
pub(super) fn rest_keys_set(settings: &IcebergCatalogSettings) -> Vec<&'static str> {
    [
        ("warehouse", settings.warehouse.is_some()),
        ("token", settings.token.is_some()),
        ("headers", !settings.headers.is_empty()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect()
}

/// Checks the settings of `spec`; answers the warehouse URL and the server settings with TLS
/// paths resolved against the mesh folder.
pub fn check(
    root: &Path,
    mesh_file: &Path,
    spec: &MeshFile,
    pos: &Positions,
    diags: &mut Vec<Diagnostic>,
) -> (String, ServerSettings) {
    let at = |path: &[&str]| {
        let p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        pos.of(&p)
    };
    let warehouse = match resolve_warehouse(root, spec.warehouse.as_deref()) {
        Ok(w) => w,
        Err(msg) => {
            let (l, c) = pos.value(&["warehouse".to_string()]);
            diags.push(Diagnostic::new(mesh_file, l, c, msg));
            String::new()
        }
    };
    for (i, hook) in spec.notifications.webhooks.iter().enumerate() {
        if !is_http_url(&hook.url) {
            let (l, c) = pos.value(&[
                "notifications".into(),
                "webhooks".into(),
                i.to_string(),
                "url".into(),
            ]);
            diags.push(Diagnostic::new(
                mesh_file,
                l,
                c,
                format!(
                    "invalid webhook URL `{}`; expected http:// or https://",
                    hook.url
                ),
            ));
        }
    }
    check_iceberg_catalog(mesh_file, &spec.iceberg_catalog, pos, diags);
    if let Some(ol) = &spec.lineage.openlineage
        && let Some(u) = &ol.url
        && !url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
    {
        let (l, c) = pos.value(&["lineage".into(), "openlineage".into(), "url".into()]);
        diags.push(Diagnostic::new(
            mesh_file,
            l,
            c,
            format!("invalid OpenLineage URL `{u}`; expected http:// or https://"),
        ));
    }
    for (i, pattern) in spec.server.accelerate.iter().enumerate() {
        if crate::spec::policy::Pattern::dataset(pattern).is_none() {
            let (l, c) = pos.value(&["server".into(), "accelerate".into(), i.to_string()]);
            diags.push(Diagnostic::new(
                mesh_file,
                l,
                c,
                format!(
                    "invalid dataset pattern `{pattern}` in server.accelerate; expected domain, \
                     domain.layer or domain.layer.dataset (`*` for any part)"
                ),
            ));
        }
    }
    let addr = &spec.server.addr;
    if addr.parse::<std::net::SocketAddr>().is_err() {
        let (l, c) = pos.value(&["server".into(), "addr".into()]);
        diags.push(Diagnostic::new(
            mesh_file,
            l,
            c,
            format!("invalid server address `{addr}`; expected HOST:PORT such as 127.0.0.1:50051"),
        ));
    }
    if spec.server.max_expr_depth == 0 || spec.server.max_sql_bytes == 0 {
        let (l, c) = at(&["server"]);
        diags.push(Diagnostic::new(
            mesh_file,
            l,
            c,
            "server limits must be greater than zero",
        ));
    }
    let mut server = spec.server.clone();
    if let Some(tls) = &mut server.tls {
        let mut resolve = |key: &str, value: &mut String| {
            let path = normalize(&root.join(&*value));
            if !path.is_file() {
                let (l, c) = pos.value(&["server".into(), "tls".into(), key.into()]);
                diags.push(Diagnostic::new(
                    mesh_file,
                    l,
                    c,
                    format!("TLS file not found: {}", path.display()),
                ));
            }
            *value = path.display().to_string();
        };
        resolve("cert", &mut tls.cert);
        resolve("key", &mut tls.key);
        if let Some(ca) = &mut tls.client_ca {
            resolve("client_ca", ca);
        }
    }
    if let Some(jwt) = &mut server.jwt {
        let path = normalize(&root.join(&jwt.jwks));
        let problem = match std::fs::read_to_string(&path) {
            Err(e) => Some(format!("cannot read the JWKS file {}: {e}", path.display())),
            Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .filter(|v| v.get("keys").is_some_and(|k| k.is_array()))
                .is_none()
                .then(|| {
                    format!(
                        "{} is not a JWKS document (`{{\"keys\": [...]}}`)",
                        path.display()
                    )
                }),
        };
        if let Some(msg) = problem {
            let (l, c) = pos.value(&["server".into(), "jwt".into(), "jwks".into()]);
            diags.push(Diagnostic::new(mesh_file, l, c, msg));
        }
        jwt.jwks = path.display().to_string();
    }
    check_principals(mesh_file, &spec.principals, pos, diags);
    (warehouse, server)
}

fn check_principals(
    file: &Path,
    principals: &[PrincipalFile],
    pos: &Positions,
    diags: &mut Vec<Diagnostic>,
) {
    let mut seen = BTreeSet::new();
    for (i, p) in principals.iter().enumerate() {
        let key = |k: &str| vec!["principals".to_string(), i.to_string(), k.to_string()];
        let (l, c) = pos.value(&key("name"));
        let valid = !p.name.is_empty()
            && p.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_.@-".contains(ch));
        if !valid {
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                format!(
                    "invalid principal name `{}`; expected letters, digits and `_.@-`",
                    p.name
                ),
            ));
        } else if !seen.insert(p.name.clone()) {
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                format!("principal `{}` is listed twice", p.name),
            ));
        }
        if let Some(hash) = &p.password_hash
            && !hash.starts_with("$argon2")
        {
            let (l, c) = pos.value(&key("password_hash"));
            diags.push(Diagnostic::new(
                file,
                l,
                c,
                "password_hash must be an Argon2 hash in PHC format ($argon2id$...), never a password; \
                 make one with `meshql hash-password`",
            ));
        }
        for (j, t) in p.token_hashes.iter().enumerate() {
            let ok = t
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.chars().all(|ch| ch.is_ascii_hexdigit()));
            if !ok {
                let (l, c) = pos.value(&[
                    "principals".into(),
                    i.to_string(),
                    "token_hashes".into(),
                    j.to_string(),
                ]);
                diags.push(Diagnostic::new(
                    file,
                    l,
                    c,
                    "token hashes are `sha256:` followed by 64 hex digits; make one with `meshql token`",
                ));
            }
        }
    }
}

/// The warehouse as a URL: a local folder (relative to the mesh folder) or an object-store URL.
fn resolve_warehouse(root: &Path, configured: Option<&str>) -> Result<String, String> {
    let raw = configured.unwrap_or("./warehouse").trim();
    if let Some((scheme, rest)) = raw.split_once("://") {
        const SCHEMES: &[&str] = &["file", "s3", "s3a"];
        if !SCHEMES.contains(&scheme) {
            return Err(format!(
                "unsupported warehouse URL scheme `{scheme}://`; expected a folder or one of: file://, s3://, s3a://"
            ));
        }
        if rest.trim_matches('/').is_empty() {
            return Err(format!("warehouse URL `{raw}` names no location"));
        }
        return Ok(raw.trim_end_matches('/').to_string());
    }
    if raw.is_empty() {
        return Err("the warehouse must not be empty; expected a folder or a URL".into());
    }
    let path = normalize(&root.join(raw));
    Ok(format!("file://{}", path.display()))
}

/// `iceberg_catalog:`: a REST catalog needs an http(s) `uri`; the embedded one takes no other key.
fn check_iceberg_catalog(
    mesh_file: &Path,
    settings: &IcebergCatalogSettings,
    pos: &Positions,
    diags: &mut Vec<Diagnostic>,
) {
    let key = |k: &str| pos.value(&["iceberg_catalog".to_string(), k.to_string()]);
    let mut report = |(l, c): (usize, usize), message: String| {
        diags.push(Diagnostic::new(mesh_file, l, c, message));
    };
    match settings.kind {
        IcebergCatalogKind::Rest if settings.name.is_some() => report(
            key("name"),
            "`name` is a setting of a source's SQL catalog; a REST catalog is named by its `uri` \
             (and `warehouse`)"
                .into(),
        ),
        IcebergCatalogKind::Rest => match &settings.uri {
            None => report(
                pos.value(&["iceberg_catalog".to_string(), "type".to_string()]),
                "an Iceberg REST catalog needs its `uri` (e.g. http://127.0.0.1:8181)".into(),
            ),
            Some(uri) => {
                if !is_http_url(uri) {
                    report(
                        key("uri"),
                        format!("invalid REST catalog URL `{uri}`; expected http:// or https://"),
                    );
                }
            }
        },
        IcebergCatalogKind::Sql => {
            let uri = settings.uri.is_some().then_some("uri");
            for name in uri.into_iter().chain(rest_keys_set(settings)) {
                report(
                    key(name),
                    format!(
                        "`{name}` is a setting of REST catalogs; add `type: rest`, or remove it \
                         to use the embedded catalog"
                    ),
                );
            }
            if settings.name.is_some() {
                report(
                    key("name"),
                    format!(
                        "`name` is a setting of a source's SQL catalog; the warehouse's embedded \
                         catalog is always named `{}`",
                        ICEBERG_CATALOG_NAME
                    ),
                );
            }
        }
    }
}
