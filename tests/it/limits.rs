//! What one client can make the server do: the deepest allowed queries plan on the planner
//! threads' stacks, planning stops at its budget, functions that would build huge values are
//! refused, and answers are right (decimal literals, types a UNION or a rewrite settles).

use tonic::Code;

use crate::common::{client, error_of, query, runtime, serve_with};

#[test]
fn the_deepest_allowed_queries_fit_the_planner_stack() {
    runtime().block_on(async {
        let (_dir, addr, _stop) = serve_with("", true).await;
        let mut c = client(addr).await;
        let n = 490;
        let plus = format!("SELECT 1{} AS x", "+1".repeat(n));
        let ors = format!(
            "SELECT count(*) AS x FROM sales.silver.stores WHERE {}",
            vec!["store_id = 1"; n].join(" OR ")
        );
        let unions = vec!["SELECT 1 AS x"; n].join(" UNION ALL ");
        let mut calls = "store_id".to_string();
        // Parenthesised nesting stops at the parser's recursion limit (50).
        for _ in 0..45 {
            calls = format!("abs({calls})");
        }
        let calls = format!("SELECT max({calls}) AS x FROM sales.silver.stores");
        let mut subqueries = "SELECT 1 AS x".to_string();
        // Each subquery level takes two of the parser's recursion levels.
        for _ in 0..20 {
            subqueries = format!("SELECT x FROM ({subqueries}) s");
        }
        let mut else_chain = "0".to_string();
        // The parser stops nested CASE at its recursion limit too; the chain is flattened.
        for i in 0..40 {
            else_chain = format!("CASE WHEN store_id = {i} THEN {i} ELSE {else_chain} END");
        }
        let else_chain = format!("SELECT max({else_chain}) AS x FROM sales.silver.stores");
        let mut nested = "store_id".to_string();
        for i in 0..12 {
            nested = format!("CASE WHEN ({nested}) > {i} THEN store_id ELSE 0 END");
        }
        let nested = format!("SELECT max({nested}) AS x FROM sales.silver.stores");
        for sql in [
            &plus,
            &ors,
            &unions,
            &calls,
            &subqueries,
            &else_chain,
            &nested,
        ] {
            let out = query(&mut c, sql).await;
            assert!(out.contains("| x"), "{out}");
        }
    });
}

#[test]
fn planning_stops_at_its_budget_and_the_server_goes_on() {
    runtime().block_on(async {
        let (_dir, addr, _stop) = serve_with("  planning_timeout_secs: 1\n", true).await;
        let mut c = client(addr).await;
        // 480 branches of a six-way join: seconds of optimisation in any build.
        let branch = "SELECT a.store_id FROM sales.silver.stores a \
                      JOIN sales.silver.stores b ON a.store_id = b.store_id \
                      JOIN sales.silver.stores c ON b.region = c.region \
                      JOIN sales.silver.stores d ON c.store_id = d.store_id \
                      JOIN sales.silver.stores e ON d.region = e.region \
                      JOIN sales.silver.stores f ON e.store_id = f.store_id";
        let sql = vec![branch; 480].join(" UNION ALL ");
        let started = std::time::Instant::now();
        let s = error_of(&mut c, &sql).await;
        assert_eq!(s.code(), Code::DeadlineExceeded, "{s:?}");
        assert!(
            s.message().contains("server.planning_timeout_secs"),
            "{}",
            s.message()
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        assert!(
            query(&mut c, "SELECT 41 + 1 AS answer")
                .await
                .contains("42")
        );
    });
}

#[test]
fn an_endless_join_stops_at_its_deadline_and_frees_the_server() {
    runtime().block_on(async {
        let (_dir, addr, _stop) = serve_with("  query_timeout_secs: 2\n", true).await;
        let mut c = client(addr).await;
        // 5,860^6 rows, no statistics can count them: the join emits batch after batch without
        // reading, and must still give its threads back.
        let t = "sales.silver.clean_transactions";
        let sql = format!("SELECT count(*) FROM {t} a, {t} b, {t} c, {t} d, {t} e, {t} f");
        let started = std::time::Instant::now();
        let s = tokio::time::timeout(std::time::Duration::from_secs(20), error_of(&mut c, &sql))
            .await
            .expect("the deadline fired");
        assert_eq!(s.code(), Code::DeadlineExceeded, "{s:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            query(&mut c, "SELECT 41 + 1 AS answer"),
        )
        .await
        .expect("the server answers");
        assert!(answer.contains("42"));
    });
}

#[test]
fn values_no_batch_can_hold_are_refused_and_panics_cost_one_query() {
    runtime().block_on(async {
        let (_dir, addr, _stop) = serve_with("  query_memory_limit_mb: 256\n", true).await;
        let mut c = client(addr).await;
        for sql in [
            "SELECT repeat('x', 2147483647)",
            "SELECT lpad('a', 2000000000, 'bc')",
            "SELECT array_length(array_repeat(1, 1000000000))",
            // Folded as an IN list's constant, in a batch of no rows.
            "SELECT 23407 IN (cardinality(range(744129, (gcd(120889, 472520) << 1000), 1)), 1)",
            "SELECT 3 IN (length(repeat('x', 2147483647)), 1)",
            "SELECT length(string_agg(repeat('x', 1000000), ',')) FROM generate_series(1, 100000)",
        ] {
            let s = error_of(&mut c, sql).await;
            assert_eq!(s.code(), Code::ResourceExhausted, "{sql}: {s:?}");
        }
        let s = error_of(&mut c, "SELECT repeat('x', 2147483647)").await;
        assert!(
            s.message().contains("`repeat` would build 2.0 GiB"),
            "{}",
            s.message()
        );
        for sql in [
            "SELECT '' ~ '['",
            "SELECT regexp_replace('', '\\1', 'z')",
            "SELECT date_part('xx', now())",
            "SELECT DATE '2026-01-01' + INTERVAL '10000000 years'",
            "SELECT overlay('abc' PLACING 'x' FROM -5 FOR 9223372036854775807)",
            "SELECT TIMESTAMP 2",
            "SELECT abs(1, 2)",
            "SELECT (1 = 1) BETWEEN 1 AND 2",
            "SELECT CAST(store_id AS DECIMAL(5, -5)) FROM sales.silver.stores",
            &format!("SELECT CAST({} AS BIGINT)", "9".repeat(100_000)),
        ] {
            let s = error_of(&mut c, sql).await;
            assert_eq!(s.code(), Code::InvalidArgument, "{sql}: {s:?}");
            assert!(s.message().len() < 5_000, "{}", s.message().len());
            assert!(
                !s.message().contains("bug in DataFusion"),
                "{}",
                s.message()
            );
        }
        assert!(
            query(&mut c, "SELECT 41 + 1 AS answer")
                .await
                .contains("42")
        );
    });
}

#[test]
fn decimal_literals_and_union_types_give_right_answers() {
    runtime().block_on(async {
        let (_dir, addr, _stop) = serve_with("", true).await;
        let mut c = client(addr).await;
        for sql in [
            "SELECT count(*) AS n FROM marketing.gold.roas_by_region WHERE revenue = 552376.27",
            "SELECT count(*) AS n FROM marketing.gold.roas_by_region WHERE revenue BETWEEN 552376.27 AND 552376.27",
            "SELECT count(*) AS n FROM marketing.gold.roas_by_region WHERE revenue IN (552376.27, 1.5)",
            // A floating-point column against a decimal literal compares as doubles.
            "SELECT count(*) AS n FROM marketing.gold.roas_by_region WHERE roas = 17.3029",
        ] {
            assert!(query(&mut c, sql).await.contains("| 1 |"), "{sql}");
        }
        let out = query(
            &mut c,
            "SELECT count(*) AS n FROM marketing.gold.roas_by_region WHERE roas > 17.3029",
        )
        .await;
        assert!(out.contains("| 0 |"), "{out}");
        // The UNION's type is the decimal; no row is cut to an integer on the way out.
        let out = query(
            &mut c,
            "SELECT (a.orders + a.customer_id) AS v FROM sales.gold.customer_value a WHERE a.customer_id IS NULL \
             UNION ALL SELECT revenue AS v FROM marketing.gold.roas_by_region ORDER BY 1",
        )
        .await;
        assert!(out.contains("552376.27"), "{out}");
        // Exponent literals are whole numbers, whatever they are combined with.
        let out = query(
            &mut c,
            "SELECT 1e5 AS a, 1.5e3 AS b, 1e5 * count(*) AS c, 1e40 > 1 AS d, 2e3 = 2000 AS e \
             FROM sales.silver.stores",
        )
        .await;
        assert!(out.contains("| 100000 | 1500 | "), "{out}");
        assert!(out.contains("| true | true |"), "{out}");
        let out = query(
            &mut c,
            "SELECT DISTINCT round(1e5 * store_id, 1) AS r FROM sales.raw.stores ORDER BY 1 LIMIT 1",
        )
        .await;
        assert!(out.contains("| 100000"), "{out}");
        // concat_ws with an empty separator is rewritten to concat, which keeps string views:
        // the LIKE coerced for concat_ws's Utf8 still plans.
        let out = query(
            &mut c,
            "SELECT count(*) AS n FROM marketing.silver.campaigns \
             WHERE concat_ws('', campaign_name, channel) ILIKE '%a%'",
        )
        .await;
        assert!(out.contains("| 12 |"), "{out}");
    });
}
