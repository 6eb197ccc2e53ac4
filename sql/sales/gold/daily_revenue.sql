-- Revenue per day and region from completed orders: the sales domain's published product.
-- @materialized: table
SELECT
    t.order_date,
    s.region,
    COUNT(DISTINCT t.order_id) AS orders,
    SUM(t.quantity) AS units,
    SUM(t.amount) AS revenue
FROM silver.clean_transactions AS t
JOIN silver.stores AS s ON t.store_id = s.store_id
WHERE t.status = 'completed'
GROUP BY t.order_date, s.region
