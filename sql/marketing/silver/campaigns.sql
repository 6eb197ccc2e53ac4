-- Campaigns with typed dates.
SELECT
    campaign_id,
    campaign_name,
    channel,
    region,
    CAST(start_date AS DATE) AS start_date,
    CAST(end_date AS DATE) AS end_date
FROM raw.campaigns
