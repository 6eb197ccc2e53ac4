"""A generated mesh served without a build: the server listens before it has described the mesh
in its system catalog, describes it in the background, and every listing agrees on what it
holds. (The 30,000-table form is `benches/mesh_scale.py`; this one is small enough for CI.)"""

import sys
import time
from pathlib import Path

from harness import REPO, Server, connect

sys.path.insert(0, str(REPO / "benches"))

from mesh_scale import generate  # noqa: E402

DOMAINS, DATASETS = 6, 5
TABLES = DOMAINS * 3 * DATASETS


def test_a_generated_mesh_is_listed_and_described_alike(tmp_path: Path):
    mesh = generate(tmp_path / "mesh", DOMAINS, DATASETS)
    with Server(mesh, extra_args=["--no-build"]) as server:
        deadline = time.monotonic() + 120
        while "datasets described" not in server.log():
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.2)
        with connect(server.uri, "admin") as conn, conn.cursor() as cur:
            def one(sql):
                cur.execute(sql)
                return cur.fetch_arrow_table().column(0)[0].as_py()

            assert one("SELECT count(*) FROM mesh.catalog.datasets") == TABLES
            assert one("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_catalog <> 'mesh' AND table_schema <> 'information_schema'"
                       ) == TABLES
            assert one("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_type = 'VIEW' AND table_schema <> 'information_schema'"
                       ) == 2 * DOMAINS * DATASETS
            # Views hold no rows of their own; sources are counted.
            assert one("SELECT count(*) FROM mesh.catalog.datasets WHERE rows IS NOT NULL"
                       ) == DOMAINS * DATASETS
            assert one("SELECT sum(amount) FROM d005.gold.g004") == 30
            objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            listed = sum(len(s["db_schema_tables"] or [])
                         for c in objects if c["catalog_name"] != "mesh"
                         for s in c["catalog_db_schemas"] or [])
            assert listed == TABLES
