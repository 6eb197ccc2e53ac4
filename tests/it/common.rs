//! Shared helpers: a private copy of the demo mesh, a runtime, a server on port 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_flight::sql::client::FlightSqlServiceClient;
use meshql::engine::Engine;
use meshql::pipeline::{Run, RunPlan};
use meshql::server::Server;
use meshql::spec::Mesh;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// The repository root (the bundled demo mesh lives in its `catalog/` and `sql/`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A runtime whose workers have room for deep (but allowed) expressions, like `meshql serve`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A copy of the demo mesh in a temporary folder, with its own empty warehouse.
pub fn demo_mesh() -> TempDir {
    let dir = TempDir::new().expect("tempdir");
    copy_dir(&repo().join("catalog"), &dir.path().join("catalog"));
    copy_dir(&repo().join("sql"), &dir.path().join("sql"));
    dir
}

/// Declares `layer.name` of `domain` in the mesh at `dir` as a CSV source read from
/// `location` (relative to the domain's folder).
pub fn add_csv_source(dir: &Path, domain: &str, layer: &str, name: &str, location: &str) {
    let file = dir.join("catalog").join(domain).join("domain.yaml");
    let mut text = std::fs::read_to_string(&file).expect("read");
    assert!(
        !text.contains("\nsources:"),
        "{} declares sources already",
        file.display()
    );
    text.push_str(&format!(
        "sources:\n  - name: {name}\n    layer: {layer}\n    format: csv\n    location: {location}\n"
    ));
    std::fs::write(&file, text).expect("write");
}

/// Replaces `from` by `to` in the file at `path`; the text must be there.
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    std::fs::write(path, text.replace(from, to)).expect("write");
}

/// The demo mesh served on port 0; the server stops when this is dropped.
pub struct Served {
    _dir: TempDir,
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Served {
    /// The served mesh folder.
    pub fn path(&self) -> &Path {
        self._dir.path()
    }
}

/// Serves a private copy of the demo mesh, built first when `build` is set.
pub async fn serve_demo(build: bool) -> Served {
    let dir = demo_mesh();
    let engine = engine(dir.path());
    if build {
        build_all(&engine).await;
    }
    let (addr, stop) = start_server(engine).await;
    Served {
        _dir: dir,
        addr,
        _stop: stop,
    }
}

/// Writes `files` (path relative to the mesh folder → content) into a new mesh folder.
pub fn mesh_with(files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new().expect("tempdir");
    for (path, content) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
    }
    dir
}

pub fn engine(dir: &Path) -> Arc<Engine> {
    let mesh = Mesh::load(dir).unwrap_or_else(|d| panic!("mesh invalid:\n{d}"));
    Engine::new(Arc::new(mesh)).expect("engine")
}

/// Runs every transform of the mesh and asserts they all succeeded.
pub async fn build_all(engine: &Arc<Engine>) {
    let plan = RunPlan::new(engine.mesh(), &[]).expect("plan");
    let report = Run::new(Arc::clone(engine), plan).await;
    assert!(report.succeeded(), "{report:#?}");
}

/// A server on 127.0.0.1:0, serving until the returned sender is dropped.
pub async fn start_server(engine: Arc<Engine>) -> (SocketAddr, oneshot::Sender<()>) {
    let server = Server::bind(engine, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = server.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// A Flight SQL client connected to `addr`, not logged in (the listener is bound, so this needs
/// no retry).
pub async fn anonymous_client(addr: SocketAddr) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    FlightSqlServiceClient::new(channel)
}

/// A client logged in as one of the demo principals (each password is the user name).
pub async fn client_as(addr: SocketAddr, user: &str) -> FlightSqlServiceClient<Channel> {
    let mut c = anonymous_client(addr).await;
    c.handshake(user, user).await.expect("handshake");
    c
}

/// A client logged in as the demo administrator.
pub async fn client(addr: SocketAddr) -> FlightSqlServiceClient<Channel> {
    client_as(addr, "admin").await
}

/// Runs the `meshql` binary in `dir`; answers its exit code, standard output and error.
pub fn meshql_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshql"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("meshql");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub type Client = FlightSqlServiceClient<Channel>;

/// The status of a failed Flight call.
pub fn status(e: arrow_flight::error::FlightError) -> tonic::Status {
    match e {
        arrow_flight::error::FlightError::Tonic(s) => *s,
        other => panic!("expected a status, got {other:?}"),
    }
}

/// Every batch of every endpoint of `info`; checks each stream's schema equals the announced one.
pub async fn fetch(
    client: &mut Client,
    info: arrow_flight::FlightInfo,
) -> Vec<datafusion::arrow::record_batch::RecordBatch> {
    use futures::TryStreamExt;
    let announced: datafusion::arrow::datatypes::Schema = info
        .clone()
        .try_decode_schema()
        .expect("schema in FlightInfo");
    let mut out = Vec::new();
    for endpoint in info.endpoint {
        let mut stream = client
            .do_get(endpoint.ticket.expect("ticket"))
            .await
            .expect("do_get");
        while let Some(batch) = stream.try_next().await.expect("batch") {
            assert_eq!(
                batch.schema().as_ref(),
                &announced,
                "DoGet schema differs from FlightInfo"
            );
            out.push(batch);
        }
    }
    out
}

/// The result of `sql` as a pretty-printed table.
pub async fn query(client: &mut Client, sql: &str) -> String {
    let info = client
        .execute(sql.to_string(), None)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", &sql[..sql.len().min(200)]));
    let batches = fetch(client, info).await;
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string()
}

/// The error status of `sql`, from planning or from the stream.
pub async fn error_of(client: &mut Client, sql: &str) -> tonic::Status {
    use futures::TryStreamExt;
    let info = match client.execute(sql.to_string(), None).await {
        Ok(info) => info,
        Err(e) => return status(e),
    };
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    match client.do_get(ticket).await {
        Err(e) => status(e),
        Ok(s) => match s.try_collect::<Vec<_>>().await {
            Err(e) => status(e),
            Ok(_) => panic!("expected an error for {}", &sql[..sql.len().min(200)]),
        },
    }
}

/// A copy of the demo mesh with `settings` (lines under `server:`) and its engine, built first
/// (without them) when `build` is set.
pub async fn demo_with(settings: &str, build: bool) -> (TempDir, Arc<Engine>) {
    let dir = demo_mesh();
    if build {
        build_all(&engine(dir.path())).await;
    }
    edit(
        &dir.path().join("catalog/mesh.yaml"),
        "server:\n",
        &format!("server:\n{settings}"),
    );
    let engine = engine(dir.path());
    (dir, engine)
}

/// The demo mesh served with `settings` (see [`demo_with`]).
pub async fn serve_with(settings: &str, build: bool) -> (TempDir, SocketAddr, oneshot::Sender<()>) {
    let (dir, engine) = demo_with(settings, build).await;
    let (addr, stop) = start_server(engine).await;
    (dir, addr, stop)
}

/// Like [`query`], with the error status instead of a panic.
pub async fn try_query(client: &mut Client, sql: &str) -> Result<String, tonic::Status> {
    use futures::TryStreamExt;
    let info = client
        .execute(sql.to_string(), None)
        .await
        .map_err(status)?;
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let stream = client
            .do_get(endpoint.ticket.expect("ticket"))
            .await
            .map_err(status)?;
        batches.extend(stream.try_collect::<Vec<_>>().await.map_err(status)?);
    }
    Ok(
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .expect("format")
            .to_string(),
    )
}

/// The batches of `sql` run embedded (as the platform team, ungoverned).
pub async fn embedded_batches(
    e: &Engine,
    sql: &str,
) -> Vec<datafusion::arrow::record_batch::RecordBatch> {
    use futures::TryStreamExt;
    let state = e.session();
    let (_, stream) = e
        .execute(sql, &state)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    stream.try_collect().await.expect("batches")
}

/// The result of `sql` run embedded, as a pretty-printed table.
pub async fn embedded(e: &Engine, sql: &str) -> String {
    let batches = embedded_batches(e, sql).await;
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string()
}

/// The single Int64 value `sql` answers (a count), run embedded.
pub async fn embedded_count(e: &Engine, sql: &str) -> i64 {
    use datafusion::arrow::array::{Array, Int64Array};
    let batches = embedded_batches(e, sql).await;
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("a count")
        .value(0)
}

/// Runs every node of the mesh one at a time; answers the report (whatever it says).
pub async fn run_all(e: &Arc<Engine>) -> meshql::pipeline::RunReport {
    let plan = RunPlan::new(e.mesh(), &[]).expect("plan");
    Run::new(Arc::clone(e), plan).with_parallelism(1).await
}

/// The answer `who` gets for `sql` through the query service, as a pretty-printed table.
pub async fn answer(service: &meshql::service::QueryService, who: &str, sql: &str) -> String {
    use futures::TryStreamExt;
    let call = meshql::service::Call::new(
        service.principal_named(who).unwrap(),
        meshql::service::Protocol::FlightSql,
        meshql::service::Operation::Fetch,
    );
    let stream = service
        .execute(
            &call,
            meshql::service::Statement::new(service.default_path(), sql),
        )
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches: Vec<_> = stream.try_collect().await.expect("stream");
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

/// Publishes the rows of `sql` into `name` (`domain.layer.dataset`) with `mode`.
pub async fn publish(
    e: &Engine,
    name: &str,
    sql: &str,
    mode: meshql::storage::WriteMode,
) -> meshql::error::Result<meshql::storage::Published> {
    let state = e.session();
    let plan = e.plan(sql, &state).await?;
    let name = meshql::spec::DatasetName::parse(name).expect("domain.layer.dataset");
    e.catalog()
        .publish(
            &name,
            plan,
            &state,
            &mode,
            meshql::storage::CommitMetadata::new(),
        )
        .await
}

/// Publishes a new version of `finance.gold.revenue_vs_target` without the north region.
pub async fn publish_without_north(e: &Engine) {
    publish(
        e,
        "finance.gold.revenue_vs_target",
        "SELECT * FROM finance.gold.revenue_vs_target WHERE region <> 'north'",
        meshql::storage::WriteMode::Replace,
    )
    .await
    .unwrap();
}
