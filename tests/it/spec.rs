//! Mesh validation: one test per class of problem, each asserting the message and position.

use meshql::spec::{Mesh, json_schemas};

use crate::common::{mesh_with, repo};

const MESH: &str = "name: t\ndomains:\n  - name: shop\n  - name: hr\n";
const SHOP: &str = "owner: shop\nsources:\n  - name: items\n    layer: raw\n    format: csv\n    location: data/items.csv\n";
const HR: &str = "owner: hr\n";
const CSV: &str = "id,price\n1,2.5\n";

/// Loads a mesh made of the valid base files overridden by `files`; returns the problems as
/// `relative/path:line:col: message` lines.
fn problems(files: &[(&str, &str)]) -> Vec<String> {
    let mut all: Vec<(&str, &str)> = vec![
        ("catalog/mesh.yaml", MESH),
        ("catalog/shop/domain.yaml", SHOP),
        ("catalog/shop/data/items.csv", CSV),
        ("catalog/hr/domain.yaml", HR),
        (
            "sql/shop/silver/items.sql",
            "SELECT id, price FROM raw.items",
        ),
    ];
    for (path, content) in files {
        all.retain(|(p, _)| p != path);
        if !content.is_empty() {
            all.push((path, content));
        }
    }
    let dir = mesh_with(&all);
    match Mesh::load(dir.path()) {
        Ok(_) => Vec::new(),
        Err(diags) => diags
            .iter()
            .map(|d| {
                let rel = d.file.strip_prefix(dir.path()).unwrap_or(&d.file);
                format!("{}:{}:{}: {}", rel.display(), d.line, d.column, d.message)
            })
            .collect(),
    }
}

#[test]
fn the_base_mesh_is_valid() {
    assert_eq!(problems(&[]), Vec::<String>::new());
}

#[test]
fn unknown_keys_are_all_reported_with_positions_and_hints() {
    let got = problems(&[(
        "catalog/mesh.yaml",
        "name: t\nwarehous: ./w\ndomains:\n  - name: shop\n    paht: x\n  - name: hr\nserver:\n  adr: 1\n",
    )]);
    assert_eq!(
        got,
        [
            "catalog/mesh.yaml:2:1: unknown key `warehous`; expected one of: admin_group, default_format, description, domains, iceberg_catalog, lineage, name, notifications, policies, principals, server, warehouse (did you mean `warehouse`?)",
            "catalog/mesh.yaml:5:5: unknown key `paht`; expected one of: name, path, sql (did you mean `path`?)",
            "catalog/mesh.yaml:8:3: unknown key `adr`; expected one of: accelerate, acceleration_mb, addr, audit, audit_flush_secs, catalog_staleness_secs, idle_timeout_secs, jwt, lease_secs, max_concurrent_queries, max_connections, max_expr_depth, max_queued_queries, max_result_rows, max_sql_bytes, memory_limit_mb, plan_cache_entries, planner_threads, planning_timeout_secs, previous_signing_keys, query_memory_limit_mb, query_timeout_secs, result_cache_mb, shutdown_grace_secs, signing_key, tls, token_ttl_secs, view_types (did you mean `addr`?)",
        ]
    );
}

#[test]
fn invalid_yaml_and_wrong_types_name_the_position() {
    let got = problems(&[(
        "catalog/hr/domain.yaml",
        "owner: hr\nlayers: [raw, silver\n",
    )]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("catalog/hr/domain.yaml:3:1: invalid YAML: "),
        "{got:?}"
    );

    let got = problems(&[(
        "catalog/hr/domain.yaml",
        "owner: hr\nsources:\n  - name: x\n    layer: raw\n    format: xlsx\n    location: a.csv\n",
    )]);
    assert_eq!(
        got,
        [
            "catalog/hr/domain.yaml:5:13: sources[0].format: unknown variant `xlsx`, expected one of `csv`, `parquet`, `json`, `delta`, `iceberg`"
        ]
    );
    let got = problems(&[("catalog/hr/domain.yaml", "description: no owner\n")]);
    assert_eq!(got, ["catalog/hr/domain.yaml:1:1: missing field `owner`"]);
}

#[test]
fn missing_files_are_reported() {
    let got = problems(&[("catalog/hr/domain.yaml", "")]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("catalog/mesh.yaml:4:11: domain `hr`: cannot read ")
            && got[0].ends_with("expected a domain.yaml in the domain folder"),
        "{got:?}"
    );
    let got = problems(&[("catalog/shop/data/items.csv", "")]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("catalog/shop/domain.yaml:6:15: source file or folder not found: "),
        "{got:?}"
    );
}

#[test]
fn duplicate_datasets_are_reported() {
    let got = problems(&[("sql/shop/raw/items.sql", "SELECT 1 AS x")]);
    assert!(
        got.iter().any(|p| p.starts_with(
            "sql/shop/raw/items.sql:1:1: duplicate dataset `shop.raw.items`: already declared in "
        )),
        "{got:?}"
    );
    let got = problems(&[(
        "catalog/mesh.yaml",
        "name: t\ndomains:\n  - name: shop\n  - name: hr\n  - name: shop\n",
    )]);
    assert_eq!(
        got,
        ["catalog/mesh.yaml:5:11: domain `shop` is listed twice"]
    );
}

#[test]
fn unknown_domains_and_layers_are_reported() {
    let got = problems(&[("sql/ops/silver/x.sql", "SELECT 1 AS x")]);
    assert_eq!(
        got,
        [
            "sql/ops:1:1: unknown domain `ops`: this transforms folder belongs to no domain listed in catalog/mesh.yaml"
        ]
    );
    let got = problems(&[("sql/shop/bronze/x.sql", "SELECT 1 AS x")]);
    assert_eq!(
        got,
        [
            "sql/shop/bronze:1:1: unknown layer `bronze`; domain `shop` has layers: raw, silver, gold"
        ]
    );
    let got = problems(&[(
        "catalog/shop/domain.yaml",
        "owner: shop\nsources:\n  - name: items\n    layer: bronze\n    format: csv\n    location: data/items.csv\n",
    )]);
    assert!(
        got.contains(&"catalog/shop/domain.yaml:4:12: unknown layer `bronze`; domain `shop` has layers: raw, silver, gold".to_string()),
        "{got:?}"
    );
}

#[test]
fn references_to_tables_that_exist_nowhere_are_reported() {
    let got = problems(&[(
        "sql/shop/gold/report.sql",
        "-- Report.\nSELECT *\nFROM silver.itemz",
    )]);
    assert_eq!(
        got,
        [
            "sql/shop/gold/report.sql:3:6: `shop.silver.itemz` exists nowhere in the mesh; did you mean `shop.silver.items`?"
        ]
    );
    let got = problems(&[("sql/shop/gold/report.sql", "SELECT * FROM crm.gold.people")]);
    assert_eq!(
        got,
        [
            "sql/shop/gold/report.sql:1:15: `crm.gold.people` refers to unknown domain `crm`; domains: shop, hr"
        ]
    );
}

#[test]
fn dependency_cycles_are_reported() {
    let got = problems(&[
        ("sql/shop/gold/a.sql", "SELECT * FROM b"),
        ("sql/shop/gold/b.sql", "SELECT * FROM c"),
        ("sql/shop/gold/c.sql", "SELECT *\n  FROM a"),
    ]);
    assert_eq!(
        got,
        [
            "sql/shop/gold/c.sql:2:8: dependency cycle: shop.gold.a → shop.gold.b → shop.gold.c → shop.gold.a"
        ]
    );
}

#[test]
fn layer_rules_are_enforced() {
    let got = problems(&[
        ("sql/shop/raw/copy.sql", "SELECT * FROM items"),
        ("sql/shop/gold/direct.sql", "SELECT * FROM raw.items"),
        ("sql/hr/silver/peek.sql", "SELECT * FROM shop.silver.items"),
    ]);
    assert_eq!(
        got,
        [
            "sql/hr/silver/peek.sql:1:15: layer rule: `hr.silver.peek` may not read `shop.silver.items`: silver reads its own domain's raw and silver layers only",
            "sql/shop/gold/direct.sql:1:15: layer rule: `shop.gold.direct` may not read `shop.raw.items`: gold reads its own silver and gold layers (clean raw data in silver first)",
            "sql/shop/raw/copy.sql:1:1: layer rule: `shop.raw.copy` is a transform in the raw layer; raw is fed by sources and jobs only (move the SQL to silver)",
        ]
    );
    // Gold may read another domain's gold: that is a published product.
    let got = problems(&[
        (
            "sql/shop/gold/total.sql",
            "SELECT count(*) AS n FROM silver.items",
        ),
        (
            "sql/hr/gold/uses_product.sql",
            "SELECT n FROM shop.gold.total",
        ),
    ]);
    assert_eq!(got, Vec::<String>::new());
}

#[test]
fn bad_sql_and_bad_headers_are_reported_with_positions() {
    let got = problems(&[(
        "sql/shop/gold/bad.sql",
        "-- A report.\nSELECT id,\nFROM silver.items WHERE",
    )]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("sql/shop/gold/bad.sql:3:"), "{got:?}");
    assert!(got[0].contains("invalid SQL: "), "{got:?}");
    let got = problems(&[(
        "sql/shop/gold/bad.sql",
        "-- @materialised: table\nSELECT 1 AS x",
    )]);
    assert_eq!(
        got,
        [
            "sql/shop/gold/bad.sql:1:4: unknown transform option `@materialised`; expected one of: materialized, unique_key, watermark, schedule, format"
        ]
    );
    let got = problems(&[("sql/shop/gold/bad.sql", "DELETE FROM silver.items")]);
    assert_eq!(
        got,
        [
            "sql/shop/gold/bad.sql:1:1: a transform must be a single SELECT query (no DDL, DML or SET)"
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let got = problems(&[
        (
            "catalog/mesh.yaml",
            "name: t\nwarehous: x\ndomains:\n  - name: shop\n  - name: hr\n",
        ),
        ("sql/shop/gold/a.sql", "SELECT * FROM silver.nope"),
        ("sql/hr/bronze/x.sql", "SELECT 1 AS x"),
    ]);
    assert_eq!(got.len(), 3, "{got:?}");
}

#[test]
fn the_bundled_demo_mesh_validates() {
    let mesh = Mesh::load(repo()).unwrap_or_else(|d| panic!("the demo mesh is invalid:\n{d}"));
    assert_eq!(mesh.name, "demo");
    let domains: Vec<&str> = mesh.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(domains, ["sales", "marketing", "finance"]);
    // Every SQL file under sql/ became a transform of the mesh.
    let mut files = Vec::new();
    let mut stack = vec![repo().join("sql")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert_eq!(files.len(), mesh.transforms().count());
    // Every domain file under catalog/ is part of the mesh.
    for entry in std::fs::read_dir(repo().join("catalog")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                mesh.domain(&name).is_some(),
                "catalog/{name} is not a domain of the mesh"
            );
        }
    }
}

#[test]
fn shipped_json_schemas_match_the_structs() {
    for (name, text) in json_schemas() {
        let shipped =
            std::fs::read_to_string(repo().join("schemas").join(name)).unwrap_or_default();
        assert_eq!(
            shipped, text,
            "schemas/{name} is stale: run `meshql schema --out schemas`"
        );
    }
}

#[test]
fn principals_never_hold_plaintext_secrets() {
    let got = problems(&[(
        "catalog/mesh.yaml",
        "name: t\ndomains:\n  - name: shop\n  - name: hr\nprincipals:\n  - name: ana\n    password_hash: hunter2\n    \
         token_hashes: [abc]\n  - name: ana\n",
    )]);
    assert_eq!(
        got,
        [
            "catalog/mesh.yaml:7:20: password_hash must be an Argon2 hash in PHC format ($argon2id$...), never a password; make one with `meshql hash-password`",
            "catalog/mesh.yaml:8:20: token hashes are `sha256:` followed by 64 hex digits; make one with `meshql token`",
            "catalog/mesh.yaml:9:11: principal `ana` is listed twice",
        ]
    );
}

#[test]
fn missing_tls_files_are_reported() {
    let got = problems(&[(
        "catalog/mesh.yaml",
        "name: t\ndomains:\n  - name: shop\n  - name: hr\nserver:\n  tls:\n    cert: certs/server.pem\n    key: certs/server.key\n",
    )]);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("catalog/mesh.yaml:7:11: TLS file not found: "),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("catalog/mesh.yaml:8:10: TLS file not found: "),
        "{got:?}"
    );
}

#[test]
fn policy_webhook_and_identity_provider_problems_are_pinned() {
    let got = problems(&[
        (
            "catalog/mesh.yaml",
            "name: t\ndomains:\n  - name: shop\n  - name: hr\npolicies:\n  - name: p1\n    allow: [read, delete]\n  - name: p2\n    mask: scramble\n  - name: p3\n    row_filter: \"region = = 'x'\"\n  - name: p4\n    allow: [read]\n    deny: [run]\n  - name: p1\n    deny: [read]\n    on: [shop.silver.items.extra]\nnotifications:\n  webhooks:\n    - url: ftp://x\nserver:\n  jwt:\n    issuer: i\n    jwks: missing.json\n",
        ),
        (
            "catalog/hr/domain.yaml",
            "owner: hr\npolicies:\n  - name: peek\n    allow: [read]\n    on: [shop.silver]\n",
        ),
    ]);
    let jwks = "missing.json";
    let got: Vec<String> = got
        .into_iter()
        .map(|l| match l.find("cannot read the JWKS file") {
            // The message carries the absolute path and the OS error; keep the stable part.
            Some(i) => format!("{}cannot read the JWKS file …/{jwks}", &l[..i]),
            None => l,
        })
        .collect();
    assert_eq!(
        got,
        [
            "catalog/hr/domain.yaml:5:10: `shop.silver` is outside domain `hr`: a domain's policies speak about its own datasets",
            "catalog/mesh.yaml:7:12: unknown action `delete`; expected read, run or ingest",
            "catalog/mesh.yaml:9:11: a mask needs `columns` or `classification`",
            "catalog/mesh.yaml:9:11: invalid mask `scramble`; expected sha256, redact, null or a SQL expression using {column}",
            "catalog/mesh.yaml:11:17: invalid row filter: Expected: an expression, found: = (at character 10 of the expression)",
            "catalog/mesh.yaml:12:11: policy `p4` must do exactly one thing: allow, deny, mask or row_filter (found 2)",
            "catalog/mesh.yaml:15:11: policy `p1` is declared twice",
            "catalog/mesh.yaml:17:10: invalid pattern `shop.silver.items.extra`; expected domain, domain.layer or domain.layer.dataset (`*` for any part)",
            "catalog/mesh.yaml:20:12: invalid webhook URL `ftp://x`; expected http:// or https://",
            "catalog/mesh.yaml:24:11: cannot read the JWKS file …/missing.json",
        ]
    );
}

#[test]
fn acceleration_patterns_are_checked() {
    let got = problems(&[(
        "catalog/mesh.yaml",
        "name: t\ndomains:\n  - name: shop\n  - name: hr\nserver:\n  accelerate: [shop.gold, shop.gold.items.x, 'shop..x']\n",
    )]);
    assert_eq!(
        got,
        [
            "catalog/mesh.yaml:6:27: invalid dataset pattern `shop.gold.items.x` in server.accelerate; expected domain, domain.layer or domain.layer.dataset (`*` for any part)",
            "catalog/mesh.yaml:6:46: invalid dataset pattern `shop..x` in server.accelerate; expected domain, domain.layer or domain.layer.dataset (`*` for any part)",
        ]
    );
}

#[test]
fn a_layer_format_for_a_layer_the_domain_lacks_is_reported_at_its_key() {
    let got = problems(&[(
        "catalog/hr/domain.yaml",
        "owner: hr\nlayer_formats:\n  silver: iceberg\n  bronze: delta\n",
    )]);
    assert_eq!(
        got,
        [
            "catalog/hr/domain.yaml:4:3: layer_formats: domain `hr` has no layer `bronze`; its layers: raw, silver, gold"
        ]
    );
}
