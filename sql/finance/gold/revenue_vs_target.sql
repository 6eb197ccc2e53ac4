-- Monthly revenue per region against finance's targets.
WITH monthly AS (
    SELECT region, to_char(order_date, '%Y-%m') AS month, SUM(revenue) AS revenue
    FROM sales.gold.daily_revenue
    GROUP BY region, to_char(order_date, '%Y-%m')
)
SELECT
    m.region,
    m.month,
    m.revenue,
    t.revenue_target,
    ROUND(CAST(m.revenue AS DOUBLE) / CAST(t.revenue_target AS DOUBLE), 4) AS attainment
FROM monthly AS m
JOIN silver.revenue_targets AS t ON t.region = m.region AND t.month = m.month
