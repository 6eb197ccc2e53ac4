//! Lineage of the demo mesh, exactly: tables from the DAG, columns from the transforms' plans;
//! and its renderings (Mermaid, dot, OpenLineage), including the events a run emits.

use crate::common::{build_all, demo_mesh, edit, engine, meshql_in as meshql, runtime};

/// Every output column of the demo's transforms and the source columns it is computed from.
const COLUMN_LINEAGE: &[[&str; 4]] = &[
    [
        "finance.gold.revenue_vs_target",
        "attainment",
        "finance.silver.revenue_targets",
        "revenue_target",
    ],
    [
        "finance.gold.revenue_vs_target",
        "attainment",
        "sales.gold.daily_revenue",
        "revenue",
    ],
    [
        "finance.gold.revenue_vs_target",
        "month",
        "sales.gold.daily_revenue",
        "order_date",
    ],
    [
        "finance.gold.revenue_vs_target",
        "region",
        "sales.gold.daily_revenue",
        "region",
    ],
    [
        "finance.gold.revenue_vs_target",
        "revenue",
        "sales.gold.daily_revenue",
        "revenue",
    ],
    [
        "finance.gold.revenue_vs_target",
        "revenue_target",
        "finance.silver.revenue_targets",
        "revenue_target",
    ],
    [
        "finance.silver.revenue_targets",
        "month",
        "finance.raw.revenue_targets",
        "month",
    ],
    [
        "finance.silver.revenue_targets",
        "region",
        "finance.raw.revenue_targets",
        "region",
    ],
    [
        "finance.silver.revenue_targets",
        "revenue_target",
        "finance.raw.revenue_targets",
        "revenue_target",
    ],
    [
        "marketing.gold.campaign_performance",
        "campaign_id",
        "marketing.silver.campaigns",
        "campaign_id",
    ],
    [
        "marketing.gold.campaign_performance",
        "campaign_name",
        "marketing.silver.campaigns",
        "campaign_name",
    ],
    [
        "marketing.gold.campaign_performance",
        "channel",
        "marketing.silver.campaigns",
        "channel",
    ],
    [
        "marketing.gold.campaign_performance",
        "clicks",
        "marketing.silver.ad_spend",
        "clicks",
    ],
    [
        "marketing.gold.campaign_performance",
        "end_date",
        "marketing.silver.campaigns",
        "end_date",
    ],
    [
        "marketing.gold.campaign_performance",
        "impressions",
        "marketing.silver.ad_spend",
        "impressions",
    ],
    [
        "marketing.gold.campaign_performance",
        "region",
        "marketing.silver.campaigns",
        "region",
    ],
    [
        "marketing.gold.campaign_performance",
        "spend",
        "marketing.silver.ad_spend",
        "spend",
    ],
    [
        "marketing.gold.campaign_performance",
        "start_date",
        "marketing.silver.campaigns",
        "start_date",
    ],
    [
        "marketing.gold.roas_by_region",
        "region",
        "marketing.gold.campaign_performance",
        "region",
    ],
    [
        "marketing.gold.roas_by_region",
        "revenue",
        "sales.gold.daily_revenue",
        "revenue",
    ],
    [
        "marketing.gold.roas_by_region",
        "roas",
        "marketing.gold.campaign_performance",
        "spend",
    ],
    [
        "marketing.gold.roas_by_region",
        "roas",
        "sales.gold.daily_revenue",
        "revenue",
    ],
    [
        "marketing.gold.roas_by_region",
        "spend",
        "marketing.gold.campaign_performance",
        "spend",
    ],
    [
        "marketing.silver.ad_spend",
        "campaign_id",
        "marketing.raw.ad_spend",
        "campaign_id",
    ],
    [
        "marketing.silver.ad_spend",
        "clicks",
        "marketing.raw.ad_spend",
        "clicks",
    ],
    [
        "marketing.silver.ad_spend",
        "impressions",
        "marketing.raw.ad_spend",
        "impressions",
    ],
    [
        "marketing.silver.ad_spend",
        "spend",
        "marketing.raw.ad_spend",
        "spend",
    ],
    [
        "marketing.silver.ad_spend",
        "spend_date",
        "marketing.raw.ad_spend",
        "spend_date",
    ],
    [
        "marketing.silver.campaigns",
        "campaign_id",
        "marketing.raw.campaigns",
        "campaign_id",
    ],
    [
        "marketing.silver.campaigns",
        "campaign_name",
        "marketing.raw.campaigns",
        "campaign_name",
    ],
    [
        "marketing.silver.campaigns",
        "channel",
        "marketing.raw.campaigns",
        "channel",
    ],
    [
        "marketing.silver.campaigns",
        "end_date",
        "marketing.raw.campaigns",
        "end_date",
    ],
    [
        "marketing.silver.campaigns",
        "region",
        "marketing.raw.campaigns",
        "region",
    ],
    [
        "marketing.silver.campaigns",
        "start_date",
        "marketing.raw.campaigns",
        "start_date",
    ],
    [
        "sales.gold.customer_value",
        "customer_id",
        "sales.silver.clean_transactions",
        "customer_id",
    ],
    [
        "sales.gold.customer_value",
        "first_order",
        "sales.silver.clean_transactions",
        "order_date",
    ],
    [
        "sales.gold.customer_value",
        "last_order",
        "sales.silver.clean_transactions",
        "order_date",
    ],
    [
        "sales.gold.customer_value",
        "orders",
        "sales.silver.clean_transactions",
        "order_id",
    ],
    [
        "sales.gold.customer_value",
        "revenue",
        "sales.silver.clean_transactions",
        "amount",
    ],
    [
        "sales.gold.daily_revenue",
        "order_date",
        "sales.silver.clean_transactions",
        "order_date",
    ],
    [
        "sales.gold.daily_revenue",
        "orders",
        "sales.silver.clean_transactions",
        "order_id",
    ],
    [
        "sales.gold.daily_revenue",
        "region",
        "sales.silver.stores",
        "region",
    ],
    [
        "sales.gold.daily_revenue",
        "revenue",
        "sales.silver.clean_transactions",
        "amount",
    ],
    [
        "sales.gold.daily_revenue",
        "units",
        "sales.silver.clean_transactions",
        "quantity",
    ],
    [
        "sales.silver.clean_transactions",
        "amount",
        "sales.raw.transactions",
        "quantity",
    ],
    [
        "sales.silver.clean_transactions",
        "amount",
        "sales.raw.transactions",
        "unit_price",
    ],
    [
        "sales.silver.clean_transactions",
        "customer_id",
        "sales.raw.transactions",
        "customer_id",
    ],
    [
        "sales.silver.clean_transactions",
        "order_date",
        "sales.raw.transactions",
        "ordered_at",
    ],
    [
        "sales.silver.clean_transactions",
        "order_id",
        "sales.raw.transactions",
        "order_id",
    ],
    [
        "sales.silver.clean_transactions",
        "ordered_at",
        "sales.raw.transactions",
        "ordered_at",
    ],
    [
        "sales.silver.clean_transactions",
        "product_sku",
        "sales.raw.transactions",
        "product_sku",
    ],
    [
        "sales.silver.clean_transactions",
        "quantity",
        "sales.raw.transactions",
        "quantity",
    ],
    [
        "sales.silver.clean_transactions",
        "status",
        "sales.raw.transactions",
        "status",
    ],
    [
        "sales.silver.clean_transactions",
        "store_id",
        "sales.raw.transactions",
        "store_id",
    ],
    [
        "sales.silver.clean_transactions",
        "unit_price",
        "sales.raw.transactions",
        "unit_price",
    ],
    [
        "sales.silver.stores",
        "opened_on",
        "sales.raw.stores",
        "opened_on",
    ],
    [
        "sales.silver.stores",
        "region",
        "sales.raw.stores",
        "region",
    ],
    [
        "sales.silver.stores",
        "store_id",
        "sales.raw.stores",
        "store_id",
    ],
    [
        "sales.silver.stores",
        "store_name",
        "sales.raw.stores",
        "store_name",
    ],
];

#[test]
fn column_lineage_of_the_demo_is_exact_and_run_events_carry_it() {
    let dir = demo_mesh();
    edit(
        &dir.path().join("catalog/mesh.yaml"),
        "server:\n",
        "lineage:\n  openlineage:\n    file: lineage/events.jsonl\nserver:\n",
    );
    runtime().block_on(async {
        let e = engine(dir.path());
        build_all(&e).await;
        let columns = meshql::pipeline::lineage::column_edges(&e).await.unwrap();
        let got: Vec<[&str; 4]> = columns
            .iter()
            .map(|c| {
                [
                    c.downstream.as_str(),
                    c.column.as_str(),
                    c.upstream.as_str(),
                    c.upstream_column.as_str(),
                ]
            })
            .collect();
        assert_eq!(got, COLUMN_LINEAGE);
        // The same rows are in the system catalog.
        let state = e.session();
        let (_, stream) = e
            .execute("SELECT count(*) FROM mesh.lineage.columns", &state)
            .await
            .unwrap();
        let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await.unwrap();
        let n = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(n as usize, COLUMN_LINEAGE.len());
    });

    // The run wrote one OpenLineage RunEvent per node.
    let text = std::fs::read_to_string(dir.path().join("lineage/events.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 15);
    let revenue = events
        .iter()
        .find(|e| e["job"]["name"] == "sales.gold.daily_revenue")
        .expect("an event for daily_revenue");
    assert_eq!(revenue["eventType"], "COMPLETE");
    assert_eq!(revenue["job"]["namespace"], "meshql://demo");
    let inputs: Vec<&str> = revenue["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs,
        ["sales.silver.clean_transactions", "sales.silver.stores"]
    );
    let fields = &revenue["outputs"][0]["facets"]["columnLineage"]["fields"];
    assert_eq!(
        fields["region"]["inputFields"],
        serde_json::json!([{"namespace": "meshql://demo", "name": "sales.silver.stores", "field": "region"}])
    );
    assert!(revenue["run"]["facets"]["parent"]["run"]["runId"].is_string());

    // Renderings around one dataset.
    let (code, out, err) = meshql(
        dir.path(),
        &[
            "lineage",
            "sales.gold.customer_value",
            "--format",
            "mermaid",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "graph LR\n  \
         sales_raw_transactions[\"sales.raw.transactions\"] --> sales_silver_clean_transactions[\"sales.silver.clean_transactions\"]\n  \
         sales_silver_clean_transactions[\"sales.silver.clean_transactions\"] --> sales_gold_customer_value[\"sales.gold.customer_value\"]\n"
    );
    let (_, out, _) = meshql(
        dir.path(),
        &["lineage", "sales.gold.customer_value", "--format", "dot"],
    );
    assert_eq!(
        out,
        "digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n  \
         \"sales.raw.transactions\" -> \"sales.silver.clean_transactions\" [label=\"transform\"];\n  \
         \"sales.silver.clean_transactions\" -> \"sales.gold.customer_value\" [label=\"transform\"];\n}\n"
    );
    let (_, out, _) = meshql(
        dir.path(),
        &[
            "lineage",
            "sales.gold.customer_value",
            "--format",
            "openlineage",
        ],
    );
    let jobs: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["job"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        jobs,
        [
            "sales.gold.customer_value",
            "sales.silver.clean_transactions"
        ]
    );
    let (code, _, err) = meshql(dir.path(), &["lineage", "sales.gold.daily_revenu"]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("did you mean `sales.gold.daily_revenue`?"),
        "{err}"
    );
}
