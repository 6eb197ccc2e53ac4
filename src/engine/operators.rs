//! Guards on DataFusion operators that size memory from the query before any pool can refuse
//! it.
//!
//! The top-k aggregation (`GROUP BY ... ORDER BY max(x) DESC LIMIT n`) allocates a hash table of
//! `10 × n` entries when it starts: `LIMIT 100000000` asks for gigabytes at once, and a failed
//! allocation aborts the process. A last physical-optimizer rule takes the limit hint away from
//! aggregations with a large limit; they run as plain aggregations (spilling, accounted) and the
//! limit still applies above them.
//!
//! Operators that emit many batches for each batch they read — joins (a cross join of six
//! tables emits without end), `UNNEST`, recursive queries — never return `Pending` while they
//! emit, so the task running them would never give its thread back: a deadline could not fire,
//! a cancelled query could not stop, and two such queries would hold every runtime thread. A
//! second rule puts them under DataFusion's `CooperativeExec`, which yields to the scheduler
//! once the task's budget is spent (DataFusion's own rule only covers leaves and exchanges).
//!
//! A recursive query emits one small batch per iteration, as fast as it can; a round-robin
//! exchange fanning that out to several consumers held nearly every batch of every iteration at
//! once (3.6 GiB for a 100,000-iteration `s || 'x'` that DataFusion answers in 29 MiB with one
//! partition), outside any memory pool. A third rule reads a recursive query's output in its one
//! partition: the operators above it run single-threaded, the recursion itself keeps its
//! parallel inputs.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::Partitioning;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::unnest::UnnestExec;

/// Largest limit an aggregation may size its tables by.
pub const MAX_AGGREGATE_LIMIT: usize = 100_000;

/// `state` with the guards appended to its physical-optimizer rules.
pub fn guarded(state: SessionState) -> SessionState {
    let mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> =
        state.physical_optimizers().to_vec();
    for rule in [
        NodeRule("meshql_cap_aggregate_limits", cap_aggregate_limit),
        NodeRule("meshql_unfanned_recursion", unfan_recursion),
        NodeRule("meshql_cooperative_producers", make_cooperative),
    ] {
        rules.push(Arc::new(rule));
    }
    SessionStateBuilder::new_from_existing(state)
        .with_physical_optimizer_rules(rules)
        .build()
}

type Node = Arc<dyn ExecutionPlan>;

/// A rule that rewrites the plan node by node, bottom up, with a named function.
#[derive(Debug)]
struct NodeRule(&'static str, fn(Node) -> Transformed<Node>);

impl PhysicalOptimizerRule for NodeRule {
    fn optimize(&self, plan: Node, _config: &ConfigOptions) -> Result<Node> {
        plan.transform_up(|node| Ok((self.1)(node))).map(|t| t.data)
    }

    fn name(&self) -> &str {
        self.0
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// An aggregation with a large limit hint runs as a plain one (the limit applies above it).
fn cap_aggregate_limit(node: Node) -> Transformed<Node> {
    let Some(agg) = node.as_any().downcast_ref::<AggregateExec>() else {
        return Transformed::no(node);
    };
    match agg.limit_options() {
        Some(l) if l.limit > MAX_AGGREGATE_LIMIT => {
            Transformed::yes(Arc::new(agg.with_new_limit_options(None)))
        }
        _ => Transformed::no(node),
    }
}

/// A round-robin exchange over a recursive query is dropped: it satisfies no distribution or
/// ordering its parent needs, so the parent reads the recursion's one partition directly.
fn unfan_recursion(node: Node) -> Transformed<Node> {
    let Some(exchange) = node.as_any().downcast_ref::<RepartitionExec>() else {
        return Transformed::no(node);
    };
    if matches!(exchange.partitioning(), Partitioning::RoundRobinBatch(_))
        && exchange.input().as_any().is::<RecursiveQueryExec>()
    {
        Transformed::yes(Arc::clone(exchange.input()))
    } else {
        Transformed::no(node)
    }
}

/// An operator that can emit batch after batch without polling its inputs runs under
/// `CooperativeExec`.
fn make_cooperative(node: Node) -> Transformed<Node> {
    let any = node.as_any();
    let emits_without_reading = any.is::<CrossJoinExec>()
        || any.is::<NestedLoopJoinExec>()
        || any.is::<HashJoinExec>()
        || any.is::<SortMergeJoinExec>()
        || any.is::<SymmetricHashJoinExec>()
        || any.is::<UnnestExec>()
        || any.is::<RecursiveQueryExec>();
    if emits_without_reading {
        Transformed::yes(Arc::new(CooperativeExec::new(node)))
    } else {
        Transformed::no(node)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn large_limits_leave_aggregations_unsized() {
        let ctx = SessionContext::new_with_state(super::guarded(SessionContext::new().state()));
        let sql = |n: u64| {
            format!(
                "SELECT value % 7 AS k, max(value) AS m FROM generate_series(1, 1000) \
                 GROUP BY 1 ORDER BY 2 DESC LIMIT {n}"
            )
        };
        let plan = |n| {
            let ctx = ctx.clone();
            async move {
                let p = ctx
                    .sql(&sql(n))
                    .await
                    .unwrap()
                    .create_physical_plan()
                    .await
                    .unwrap();
                displayable(p.as_ref()).indent(true).to_string()
            }
        };
        assert!(plan(5).await.contains("lim=[5]"), "{}", plan(5).await);
        assert!(
            !plan(1 << 40).await.contains("lim="),
            "{}",
            plan(1 << 40).await
        );
        let rows = ctx
            .sql(&sql(1 << 40))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 7);
    }
}
