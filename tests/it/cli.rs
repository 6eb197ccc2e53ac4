//! The command line: exit codes and messages of the commands that need no server.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{runtime, serve_demo};

fn meshql(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshql"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("meshql");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hash_password_and_token_make_what_mesh_yaml_expects() {
    let (code, out, _) = meshql(&["hash-password"], "s3cret\n");
    assert_eq!(code, Some(0));
    assert!(out.starts_with("$argon2id$"), "{out}");
    let (code, _, err) = meshql(&["hash-password"], "\n");
    assert_eq!(code, Some(2));
    assert_eq!(err, "error: the password is empty\n");
    let (code, out, _) = meshql(&["token"], "");
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("token: mqt_") && lines[1].starts_with("hash:  sha256:"),
        "{out}"
    );
}

#[test]
fn remote_commands_report_login_and_query_errors_with_exit_codes() {
    runtime().block_on(async {
        let served = serve_demo(true).await;
        let url = format!("grpc://{}", served.addr);
        let (code, out, err) = tokio::task::spawn_blocking({
            let url = url.clone();
            move || {
                meshql(
                    &[
                        "query",
                        "--server",
                        &url,
                        "--user",
                        "analyst",
                        "--password",
                        "analyst",
                        "--format",
                        "csv",
                        "SELECT count(*) AS n FROM sales.gold.daily_revenue",
                    ],
                    "",
                )
            }
        })
        .await
        .unwrap();
        assert_eq!((code, out.as_str()), (Some(0), "n\n360\n"), "{err}");
        let (code, _, err) = tokio::task::spawn_blocking({
            let url = url.clone();
            move || {
                meshql(
                    &[
                        "query",
                        "--server",
                        &url,
                        "--user",
                        "analyst",
                        "--password",
                        "wrong",
                        "SELECT 1",
                    ],
                    "",
                )
            }
        })
        .await
        .unwrap();
        assert_eq!(code, Some(4), "{err}");
        assert!(err.contains("invalid user name or password"), "{err}");
        let (code, _, err) = tokio::task::spawn_blocking(move || {
            meshql(
                &[
                    "run",
                    "--server",
                    &url,
                    "--user",
                    "analyst",
                    "--password",
                    "analyst",
                ],
                "",
            )
        })
        .await
        .unwrap();
        assert_eq!(code, Some(4), "{err}");
        assert!(
            err.contains("`analyst` may not run `finance.raw.revenue_targets` (default: only the owner group of domain `finance` may run its datasets)"),
            "{err}"
        );
    });
}

#[test]
fn embedded_queries_run_through_the_service_with_its_limits_and_audit() {
    use crate::common::{demo_mesh, edit, meshql_in};

    let dir = demo_mesh();
    edit(
        &dir.path().join("catalog/mesh.yaml"),
        "server:\n",
        "server:\n  query_memory_limit_mb: 16\n  max_result_rows: 5\n",
    );
    let (code, out, err) = meshql_in(dir.path(), &["query", "SELECT 41 + 1 AS answer"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("42"), "{out}");

    // The server's limits hold here too: rows per result, memory per query (exit code 6).
    let (code, _, err) = meshql_in(
        dir.path(),
        &["query", "SELECT value FROM generate_series(1, 10)"],
    );
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("max_result_rows"), "{err}");
    let (code, _, err) = meshql_in(
        dir.path(),
        &[
            "query",
            "SELECT count(*) FROM generate_series(1, 3000000) a \
             JOIN generate_series(1, 3000000) b ON a.value = b.value",
        ],
    );
    assert_eq!(code, Some(6), "{err}");

    // Each left an audit record, as the platform principal through the command line.
    let (code, out, err) = meshql_in(
        dir.path(),
        &[
            "query",
            "SELECT principal, operation, protocol, outcome, count(*) AS n FROM mesh.ops.audit \
             GROUP BY principal, operation, protocol, outcome ORDER BY outcome",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let rows = out.replace(' ', "");
    assert!(rows.contains("|meshql|query|cli|ok|1|"), "{out}");
    assert!(
        rows.contains("|meshql|query|cli|resource_exhausted|2|"),
        "{out}"
    );
}
