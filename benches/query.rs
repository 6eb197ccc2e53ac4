//! Query-path benchmarks on the demo mesh: planning alone (parse, guard, plan on the planner
//! thread) and a full gold-layer query with a cross-domain join.
//!
//! `cargo bench --bench query`

use criterion::{Criterion, criterion_group, criterion_main};
use futures::TryStreamExt;

/// The integration tests' helpers: the demo mesh copy, engine and build.
#[allow(dead_code)]
#[path = "../tests/it/common.rs"]
mod common;

const JOIN: &str = "SELECT t.region, t.month, t.revenue, r.roas \
    FROM finance.gold.revenue_vs_target t JOIN marketing.gold.roas_by_region r ON r.region = t.region \
    ORDER BY t.region, t.month";

fn bench(c: &mut Criterion) {
    let rt = common::runtime();
    let dir = common::demo_mesh();
    let engine = common::engine(dir.path());
    rt.block_on(common::build_all(&engine));

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
