-- Stores with the region they report to.
SELECT
    store_id,
    store_name,
    region,
    CAST(opened_on AS DATE) AS opened_on
FROM raw.stores
