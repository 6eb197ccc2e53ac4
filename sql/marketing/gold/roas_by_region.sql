-- Return on ad spend per region: marketing spend against the sales domain's revenue product.
WITH spend AS (
    SELECT region, SUM(spend) AS spend
    FROM campaign_performance
    GROUP BY region
),
revenue AS (
    SELECT region, SUM(revenue) AS revenue
    FROM sales.gold.daily_revenue
    GROUP BY region
)
SELECT
    s.region,
    s.spend,
    r.revenue,
    ROUND(CAST(r.revenue AS DOUBLE) / CAST(s.spend AS DOUBLE), 4) AS roas
FROM spend AS s
JOIN revenue AS r ON r.region = s.region
