-- Monthly revenue targets per region, money as exact decimals.
SELECT
    region,
    month,
    CAST(revenue_target AS DECIMAL(14, 2)) AS revenue_target
FROM raw.revenue_targets
