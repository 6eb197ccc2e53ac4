-- Orders and revenue per customer from completed orders: who buys how much.
SELECT
    customer_id,
    COUNT(DISTINCT order_id) AS orders,
    SUM(amount) AS revenue,
    MIN(order_date) AS first_order,
    MAX(order_date) AS last_order
FROM silver.clean_transactions
WHERE status = 'completed'
GROUP BY customer_id
