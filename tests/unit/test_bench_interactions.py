"""The benchmark of what a user waits for: its pieces read what the product really writes."""

from __future__ import annotations

import duckdb

from benchmarks import interactions
from orchestration.core import settings


def test_the_metadata_figure_is_read_from_the_line_the_dbt_asset_logs():
    """If the dbt asset's log line changes, the benchmark would report nothing: this fails first."""
    source = (settings.PROJECT_ROOT / "orchestration/location/assets/dbt.py").read_text()
    assert "column schema and lineage: {metadata_seconds:.1f} s" in source
    found = interactions.METADATA_LOG.search("dbt build: 12.3 s; column schema and lineage: 0.4 s, unchanged")
    assert found and float(found.group(1)) == 0.4


def test_the_identifier_looked_up_is_the_one_of_the_largest_profile(tmp_path):
    database = tmp_path / settings.DEFAULT_DUCKDB_PATH.name
    with duckdb.connect(str(database)) as conn:
        conn.execute("create schema marts")
        conn.execute("create table marts.profile_identifiers (identifier_type text, identifier_value text, "
                     "profile_id text)")
        conn.execute("insert into marts.profile_identifiers values ('email', 'a@example.com', 'p1'), "
                     "('user_id', 'u2', 'p2'), ('email', 'b@example.com', 'p2'), ('anonymous_id', 'd2', 'p2')")
    assert interactions.a_known_identifier(database) == ("anonymous_id", "d2")


def test_the_table_names_each_target():
    sample = {"lookup_seconds": 0.31, "lookup_seconds_all": [0.3, 0.31, 0.4], "explain_seconds": 0.5,
              "explain_seconds_all": [0.5], "build_seconds": 18.2, "build_seconds_all": [18.2], "first_build_seconds": 25.0,
              "build_metadata_seconds": [0.2], "nothing_new_seconds": 3.0, "nothing_new_job_seconds": 14.1,
              "nothing_new_metadata_seconds": None}
    table = "\n".join(interactions.markdown(sample, {"people": 1_000_000, "wall_seconds": 9.5, "job_seconds": 24.0},
                                            190.0))
    assert "**0.31 s**" in table and "≤ 1 s" in table
    assert "**18.2 s** (runs: [18.2]); first 25.0 s | ≤ 20 s" in table
    assert "0.2; – s" in table
    assert "the job with `--force`) | **3.0 s**; 14.1 s |" in table
    assert "no model built) | **9.5 s**, 5% of a full run; 24.0 s | ≤ 10 s at 1 M" in table
