-- Orders deduplicated, without zero quantities or unknown customers; money as exact decimals.
-- @materialized: table
SELECT DISTINCT
    order_id,
    ordered_at,
    CAST(ordered_at AS DATE) AS order_date,
    store_id,
    customer_id,
    product_sku,
    quantity,
    CAST(unit_price AS DECIMAL(12, 2)) AS unit_price,
    CAST(quantity * CAST(unit_price AS DECIMAL(12, 2)) AS DECIMAL(14, 2)) AS amount,
    status
FROM raw.transactions
WHERE quantity > 0
  AND customer_id IS NOT NULL
