//! End-to-end query latency through the Flight SQL server on loopback: GetFlightInfo (plan,
//! sign a ticket) plus DoGet (verify, plan, execute, stream), with arrow-flight's client.
//!
//! `cargo bench --bench flight`

use criterion::{Criterion, criterion_group, criterion_main};
use futures::TryStreamExt;

/// The integration tests' helpers: the demo mesh copy, engine, build and server.
#[allow(dead_code)]
#[path = "../tests/it/common.rs"]
mod common;

fn bench(c: &mut Criterion) {
    let rt = common::runtime();
    let dir = common::demo_mesh();
    let engine = common::engine(dir.path());
    rt.block_on(common::build_all(&engine));
    let (addr, _stop) = rt.block_on(common::start_server(engine));
    let client = rt.block_on(common::client(addr));

    let mut group = c.benchmark_group("flight");
    group.sample_size(20);
    for (name, sql) in [
        (
            "point_lookup",
            "SELECT * FROM sales.gold.daily_revenue WHERE order_date = DATE '2026-02-14' AND region = 'north'",
        ),
        (
            "cross_domain_join",
            "SELECT t.region, t.month, t.revenue, r.roas FROM finance.gold.revenue_vs_target t \
             JOIN marketing.gold.roas_by_region r ON r.region = t.region ORDER BY 1, 2",
        ),
        (
            "scan_5860_rows",
            "SELECT * FROM sales.silver.clean_transactions",
        ),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let mut client = client.clone();
                async move {
                    let info = client
                        .execute(sql.to_string(), None)
                        .await
                        .expect("flight info");
                    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
                    let stream = client.do_get(ticket).await.expect("do_get");
                    stream.try_collect::<Vec<_>>().await.expect("batches")
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
