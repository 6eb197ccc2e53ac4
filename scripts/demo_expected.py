#!/usr/bin/env python3
"""Independently compute the expected results of the meshql demo pipelines.

Reads the demo CSVs with the csv module (no code shared with the generator)
and prints the expected silver/gold results as JSON; also writes them to
scripts/demo_expected.json.

Money is computed with decimal.Decimal as exact sums of quantity*unit_price
(no rounding). Only the ratios roas and attainment are rounded, to 4
decimals with ROUND_HALF_UP.

Usage: python3 scripts/demo_expected.py [REPO_ROOT]
"""
import csv
import json
import sys
from collections import defaultdict
from decimal import Decimal, ROUND_HALF_UP
from pathlib import Path

FOUR = Decimal("0.0001")


def read(root, rel):
    with open(root / rel, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def ratio(num, den):
    return str((num / den).quantize(FOUR, rounding=ROUND_HALF_UP))


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parent.parent

    stores = read(root, "catalog/sales/data/stores.csv")
    tx = read(root, "catalog/sales/data/transactions.csv")
    campaigns = read(root, "catalog/marketing/data/campaigns.csv")
    ad_spend = read(root, "catalog/marketing/data/ad_spend.csv")
    targets = read(root, "catalog/finance/data/revenue_targets.csv")

    region_of_store = {int(s["store_id"]): s["region"] for s in stores}

    # ---- silver.clean_transactions -------------------------------------
    seen = set()
    deduped = []
    for r in tx:
        key = tuple(r[c] for c in tx[0].keys())
        if key in seen:
            continue
        seen.add(key)
        deduped.append(r)
    clean = []
    for r in deduped:
        qty = int(r["quantity"])
        if qty <= 0:
            continue
        if r["customer_id"].strip() == "":
            continue
        price = Decimal(r["unit_price"])
        clean.append({
            "order_id": int(r["order_id"]),
            "ordered_at": r["ordered_at"],
            "store_id": int(r["store_id"]),
            "customer_id": int(r["customer_id"]),
            "product_sku": r["product_sku"],
            "quantity": qty,
            "unit_price": price,
            "status": r["status"],
            "amount": price * qty,
        })
    status_counts = defaultdict(int)
    for r in clean:
        status_counts[r["status"]] += 1

    # ---- gold sales.gold.daily_revenue ---------------------------------
    daily = defaultdict(lambda: {"orders": set(), "units": 0,
                                 "revenue": Decimal("0")})
    for r in clean:
        if r["status"] != "completed":
            continue
        k = (r["ordered_at"][:10], region_of_store[r["store_id"]])
        daily[k]["orders"].add(r["order_id"])
        daily[k]["units"] += r["quantity"]
        daily[k]["revenue"] += r["amount"]
    daily_rows = {k: {"order_date": k[0], "region": k[1],
                      "orders": len(v["orders"]), "units": v["units"],
                      "revenue": v["revenue"]}
                  for k, v in daily.items()}
    dr_total_rev = sum((v["revenue"] for v in daily_rows.values()),
                       Decimal("0"))
    dr_total_orders = sum(v["orders"] for v in daily_rows.values())
    dr_total_units = sum(v["units"] for v in daily_rows.values())
    sample = dict(daily_rows[("2026-02-14", "north")])
    sample["revenue"] = str(sample["revenue"])

    # ---- gold marketing.gold.campaign_performance ----------------------
    perf = defaultdict(lambda: {"spend": Decimal("0"), "clicks": 0,
                                "impressions": 0, "days": 0})
    for a in ad_spend:
        p = perf[a["campaign_id"]]
        p["spend"] += Decimal(a["spend"])
        p["clicks"] += int(a["clicks"])
        p["impressions"] += int(a["impressions"])
        p["days"] += 1
    camp_by_id = {c["campaign_id"]: c for c in campaigns}
    cp_total_spend = sum((p["spend"] for p in perf.values()), Decimal("0"))
    cp_total_clicks = sum(p["clicks"] for p in perf.values())
    cp_total_impr = sum(p["impressions"] for p in perf.values())
    c1 = camp_by_id["CMP-001"]
    p1 = perf["CMP-001"]
    cmp001 = {"campaign_id": "CMP-001",
              "campaign_name": c1["campaign_name"],
              "channel": c1["channel"], "region": c1["region"],
              "start_date": c1["start_date"], "end_date": c1["end_date"],
              "spend": str(p1["spend"]), "clicks": p1["clicks"],
              "impressions": p1["impressions"], "days": p1["days"]}

    # ---- gold marketing.gold.roas_by_region (cross-domain) -------------
    spend_by_region = defaultdict(lambda: Decimal("0"))
    for cid, p in perf.items():
        spend_by_region[camp_by_id[cid]["region"]] += p["spend"]
    rev_by_region = defaultdict(lambda: Decimal("0"))
    for v in daily_rows.values():
        rev_by_region[v["region"]] += v["revenue"]
    regions = sorted(set(spend_by_region) | set(rev_by_region))
    roas = [{"region": reg, "spend": str(spend_by_region[reg]),
             "revenue": str(rev_by_region[reg]),
             "roas": ratio(rev_by_region[reg], spend_by_region[reg])}
            for reg in regions]

    # ---- gold finance.gold.revenue_vs_target ---------------------------
    rev_rm = defaultdict(lambda: Decimal("0"))
    for v in daily_rows.values():
        rev_rm[(v["region"], v["order_date"][:7])] += v["revenue"]
    rvt = []
    for t in sorted(targets, key=lambda t: (t["region"], t["month"])):
        rev = rev_rm[(t["region"], t["month"])]
        tgt = Decimal(t["revenue_target"])
        rvt.append({"region": t["region"], "month": t["month"],
                    "revenue": str(rev), "revenue_target": str(tgt),
                    "attainment": ratio(rev, tgt)})

    result = {
        "notes": "money values are exact Decimal strings (no rounding); "
                 "roas and attainment rounded to 4 decimals, ROUND_HALF_UP",
        "bronze": {
            "stores_rows": len(stores),
            "transactions_rows": len(tx),
            "campaigns_rows": len(campaigns),
            "ad_spend_rows": len(ad_spend),
            "revenue_targets_rows": len(targets),
        },
        "silver.clean_transactions": {
            "rows_after_dedup": len(deduped),
            "duplicates_removed": len(tx) - len(deduped),
            "rows": len(clean),
            "rows_by_status": dict(sorted(status_counts.items())),
            "total_amount_all_statuses": str(
                sum((r["amount"] for r in clean), Decimal("0"))),
        },
        "sales.gold.daily_revenue": {
            "rows": len(daily_rows),
            "total_revenue": str(dr_total_rev),
            "total_orders": dr_total_orders,
            "total_units": dr_total_units,
            "row_2026-02-14_north": sample,
        },
        "marketing.gold.campaign_performance": {
            "rows": len(perf),
            "total_spend": str(cp_total_spend),
            "total_clicks": cp_total_clicks,
            "total_impressions": cp_total_impr,
            "row_CMP-001": cmp001,
        },
        "marketing.gold.roas_by_region": roas,
        "finance.gold.revenue_vs_target": rvt,
    }
    text = json.dumps(result, indent=2) + "\n"
    sys.stdout.write(text)
    with open(Path(__file__).resolve().parent / "demo_expected.json", "w",
              encoding="utf-8", newline="\n") as f:
        f.write(text)


if __name__ == "__main__":
    main()
