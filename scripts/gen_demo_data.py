#!/usr/bin/env python3
"""Deterministic demo data generator for meshql.

Writes the bronze CSV files of the demo catalog (sales, marketing, finance).
Stdlib only; all randomness comes from one seeded random.Random, and nothing
depends on the current time, so two runs produce byte-identical files.

Usage: python3 scripts/gen_demo_data.py [REPO_ROOT]
"""
import csv
import datetime as dt
import random
import sys
from pathlib import Path

SEED = 20261121
REGIONS = ["north", "south", "east", "west"]
CHANNELS = ["search", "social", "email", "display"]
Q1_START = dt.date(2026, 1, 1)
Q1_END = dt.date(2026, 3, 31)
Q1_DAYS = (Q1_END - Q1_START).days + 1  # 90

N_STORES = 24
N_CUSTOMERS = 800
N_PRODUCTS = 60
N_TRANSACTION_ROWS = 6000      # total rows in the file, duplicates included
N_DUPLICATES = 20              # exact duplicate rows (order_id repeated)
N_ZERO_QTY = 60                # ~1% rows with quantity 0
N_NULL_CUSTOMER = 60           # ~1% rows with empty customer_id
FIRST_ORDER_ID = 100001

CITIES = [
    "Lisbon", "Porto", "Madrid", "Barcelona", "Valencia", "Seville",
    "Paris", "Lyon", "Marseille", "Toulouse", "Berlin", "Hamburg",
    "Munich", "Cologne", "Milan", "Rome", "Turin", "Naples",
    "Vienna", "Zurich", "Geneva", "Brussels", "Antwerp", "Amsterdam",
]

CAMPAIGN_THEMES = [
    "Winter Sale", "New Year Kickoff", "Valentine Deals", "Spring Preview",
    "Loyalty Boost", "Brand Awareness", "Clearance", "Flash Weekend",
    "Back In Stock", "Early Bird", "Member Week", "Quarter Close",
]


def money(cents):
    """Format integer cents as a decimal string with exactly 2 decimals."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return "%s%d.%02d" % (sign, cents // 100, cents % 100)


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def gen_stores(rng):
    # 6 stores per region, region assignment shuffled deterministically.
    regions = [r for r in REGIONS for _ in range(N_STORES // len(REGIONS))]
    rng.shuffle(regions)
    rows = []
    for i in range(N_STORES):
        store_id = i + 1
        opened = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randint(0, 3650))
        rows.append([store_id, "Store %02d %s" % (store_id, CITIES[i]),
                     regions[i], opened.isoformat()])
    return rows


def gen_transactions(rng):
    # Product catalog: fixed unit price per SKU, in cents (2.00 .. 250.00).
    product_price = {}
    for p in range(1, N_PRODUCTS + 1):
        product_price["SKU-%04d" % p] = rng.randint(200, 25000)
    skus = sorted(product_price)

    n_unique = N_TRANSACTION_ROWS - N_DUPLICATES
    q1_seconds = Q1_DAYS * 86400
    start = dt.datetime(2026, 1, 1)
    seconds = sorted(rng.randrange(q1_seconds) for _ in range(n_unique))

    rows = []
    for i, sec in enumerate(seconds):
        order_id = FIRST_ORDER_ID + i
        ts = start + dt.timedelta(seconds=sec)
        store_id = rng.randint(1, N_STORES)
        customer_id = rng.randint(1, N_CUSTOMERS)
        sku = rng.choice(skus)
        qty = rng.randint(1, 5)
        status = rng.choices(["completed", "cancelled", "refunded"],
                             weights=[88, 7, 5])[0]
        rows.append([order_id, ts.strftime("%Y-%m-%dT%H:%M:%S"), store_id,
                     customer_id, sku, qty, product_price[sku], status])

    # Dirty rows: quantity 0 and empty (null) customer_id, disjoint sets.
    dirty = rng.sample(range(n_unique), N_ZERO_QTY + N_NULL_CUSTOMER)
    for idx in dirty[:N_ZERO_QTY]:
        rows[idx][5] = 0
    for idx in dirty[N_ZERO_QTY:]:
        rows[idx][3] = ""

    # Exact duplicates: copy whole rows, insert each right after a random
    # later position so that duplicates are not always adjacent.
    dup_src = sorted(rng.sample(range(n_unique), N_DUPLICATES))
    inserts = {}
    for idx in dup_src:
        pos = min(n_unique - 1, idx + rng.randint(0, 40))
        inserts.setdefault(pos, []).append(list(rows[idx]))
    out = []
    for i, r in enumerate(rows):
        out.append(r)
        out.extend(inserts.get(i, []))
    assert len(out) == N_TRANSACTION_ROWS

    for r in out:
        r[6] = money(r[6])
    return out


def gen_campaigns(rng):
    rows = []
    themes = list(CAMPAIGN_THEMES)
    rng.shuffle(themes)
    n = 0
    for region in REGIONS:
        channels = rng.sample(CHANNELS, 3)
        for ch in channels:
            n += 1
            duration = rng.randint(14, 45)
            latest_start = Q1_DAYS - duration
            s = Q1_START + dt.timedelta(days=rng.randint(0, latest_start))
            e = s + dt.timedelta(days=duration - 1)
            assert Q1_START <= s <= e <= Q1_END
            name = "%s %s %s" % (region.capitalize(), themes[n - 1],
                                 ch.capitalize())
            rows.append(["CMP-%03d" % n, name, ch, region,
                         s.isoformat(), e.isoformat()])
    return rows


def gen_ad_spend(rng, campaigns):
    ctr_range = {"search": (300, 600), "social": (80, 200),
                 "email": (200, 450), "display": (30, 90)}  # per 10,000
    cpc_range = {"search": (90, 260), "social": (40, 140),
                 "email": (15, 60), "display": (60, 200)}   # cents
    rows = []
    for cid, _name, ch, _region, s, e in campaigns:
        d = dt.date.fromisoformat(s)
        end = dt.date.fromisoformat(e)
        while d <= end:
            impressions = rng.randint(8000, 60000)
            ctr = rng.randint(*ctr_range[ch])
            clicks = impressions * ctr // 10000
            assert clicks <= impressions
            spend = clicks * rng.randint(*cpc_range[ch])
            rows.append([d.isoformat(), cid, impressions, clicks,
                         money(spend)])
            d += dt.timedelta(days=1)
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def gen_revenue_targets(rng, stores, transactions):
    # Approximate completed revenue per (region, month) to anchor targets,
    # then apply a +/-15% deviation, rounded to whole thousands.
    region_of = {s[0]: s[2] for s in stores}
    seen = set()
    rev = {}
    for r in transactions:
        key = tuple(r)
        if key in seen:
            continue
        seen.add(key)
        if r[5] <= 0 or r[3] == "" or r[7] != "completed":
            continue
        k = (region_of[r[2]], r[1][:7])
        cents = int(r[6].replace(".", ""))
        rev[k] = rev.get(k, 0) + cents * r[5]
    rows = []
    for region in REGIONS:
        for month in ("2026-01", "2026-02", "2026-03"):
            factor = rng.randint(8500, 11500)
            target = rev[(region, month)] * factor // 10000
            target = (target + 50000) // 100000 * 100000  # whole 1000s
            rows.append([region, month, money(target)])
    return rows


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parent.parent
    rng = random.Random(SEED)

    stores = gen_stores(rng)
    transactions = gen_transactions(rng)
    campaigns = gen_campaigns(rng)
    ad_spend = gen_ad_spend(rng, campaigns)
    targets = gen_revenue_targets(rng, stores, transactions)

    files = [
        ("catalog/sales/data/stores.csv",
         ["store_id", "store_name", "region", "opened_on"], stores),
        ("catalog/sales/data/transactions.csv",
         ["order_id", "ordered_at", "store_id", "customer_id", "product_sku",
          "quantity", "unit_price", "status"], transactions),
        ("catalog/marketing/data/campaigns.csv",
         ["campaign_id", "campaign_name", "channel", "region", "start_date",
          "end_date"], campaigns),
        ("catalog/marketing/data/ad_spend.csv",
         ["spend_date", "campaign_id", "impressions", "clicks", "spend"],
         ad_spend),
        ("catalog/finance/data/revenue_targets.csv",
         ["region", "month", "revenue_target"], targets),
    ]
    for rel, header, rows in files:
        path = root / rel
        write_csv(path, header, rows)
        print("%-45s %6d rows %8d bytes" % (rel, len(rows),
                                            path.stat().st_size))


if __name__ == "__main__":
    main()
