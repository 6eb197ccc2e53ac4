//! Query-path benchmarks on the demo mesh: planning alone (parse, guard, plan on the planner
//! thread) and a full gold-layer query with a cross-domain join.
//!
//! `cargo bench --bench query`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::TryStreamExt;
use meshql::engine::Engine;
use meshql::pipeline::{Run, RunPlan};
use meshql::spec::Mesh;

const JOIN: &str = "SELECT t.region, t.month, t.revenue, r.roas \
    FROM finance.gold.revenue_vs_target t JOIN marketing.gold.roas_by_region r ON r.region = t.region \
    ORDER BY t.region, t.month";

fn copy_dir(from: &Path, to: &Path) {
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

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("runtime");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo.join("catalog"), &dir.path().join("catalog"));
    copy_dir(&repo.join("sql"), &dir.path().join("sql"));
    let mesh = Mesh::load(dir.path()).expect("demo mesh");
    let engine = Engine::new(Arc::new(mesh)).expect("engine");
    rt.block_on(async {
        let plan = RunPlan::new(engine.mesh(), &[]).expect("plan");
        assert!(Run::new(Arc::clone(&engine), plan).await.succeeded());
    });

    let mut group = c.benchmark_group("query");
    group.sample_size(20);
    group.bench_function("plan_cross_domain_join", |b| {
        b.to_async(&rt).iter(|| async {
            let state = engine.session();
            engine.plan(JOIN, &state).await.expect("plan")
        })
    });
    group.bench_function("run_cross_domain_join", |b| {
        b.to_async(&rt).iter(|| async {
            let state = engine.session();
            let (_, stream) = engine.execute(JOIN, &state).await.expect("execute");
            let batches: Vec<_> = stream.try_collect().await.expect("collect");
            batches
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
