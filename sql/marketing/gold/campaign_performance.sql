-- Spend, clicks and impressions per campaign over its whole run.
SELECT
    c.campaign_id,
    c.campaign_name,
    c.channel,
    c.region,
    c.start_date,
    c.end_date,
    SUM(a.spend) AS spend,
    SUM(a.clicks) AS clicks,
    SUM(a.impressions) AS impressions
FROM silver.campaigns AS c
JOIN silver.ad_spend AS a ON a.campaign_id = c.campaign_id
GROUP BY c.campaign_id, c.campaign_name, c.channel, c.region, c.start_date, c.end_date
