//! End-to-end query latency through the Flight SQL server on loopback: GetFlightInfo (plan,
//! govern, sign a ticket) plus DoGet (verify, plan, govern, execute, stream), with arrow-flight's
//! client — as the admin, and as an analyst whose query is masked and filtered, with the audit
//! log on and off.
//!
//! `cargo bench --bench flight`

use criterion::{Criterion, criterion_group, criterion_main};
use futures::TryStreamExt;

/// The integration tests' helpers: the demo mesh copy, engine, build and server.
#[allow(dead_code)]
#[path = "../tests/it/common.rs"]
mod common;

const QUERIES: &[(&str, &str)] = &[
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
];

fn bench(c: &mut Criterion) {
    let rt = common::runtime();
    for audit in [true, false] {
        let dir = common::demo_mesh();
        rt.block_on(common::build_all(&common::engine(dir.path())));
        common::edit(
            &dir.path().join("catalog/mesh.yaml"),
            "server:\n",
            &format!("server:\n  audit: {audit}\n"),
        );
        let engine = common::engine(dir.path());
        let (addr, _stop) = rt.block_on(common::start_server(engine));
        let admin = rt.block_on(common::client(addr));
        let analyst = rt.block_on(common::client_as(addr, "analyst"));
        let suffix = if audit { "" } else { "/audit_off" };

        let mut group = c.benchmark_group("flight");
        group.sample_size(20);
        let masked = [(
            "masked_by_analyst",
            "SELECT customer_id, revenue FROM sales.gold.customer_value ORDER BY revenue DESC LIMIT 10",
        )];
        let runs = QUERIES
            .iter()
            .map(|q| (q, &admin))
            .chain(masked.iter().map(|q| (q, &analyst)));
        for ((name, sql), client) in runs {
            group.bench_function(format!("{name}{suffix}"), |b| {
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
