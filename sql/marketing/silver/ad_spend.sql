-- Daily advertising spend per campaign, money as exact decimals.
SELECT
    CAST(spend_date AS DATE) AS spend_date,
    campaign_id,
    impressions,
    clicks,
    CAST(spend AS DECIMAL(12, 2)) AS spend
FROM raw.ad_spend
