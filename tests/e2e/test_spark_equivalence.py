"""The same dbt project on Apache Spark gives the same profiles as on DuckDB, row by row, from the
same landing files.

For the sample data (then again after a late file lands, an incremental build on both engines: a
merge, new messages, the audience history) and for a generated set of 200 people: the real Dagster
job builds DuckDB; Spark lands the same files itself (each read by a Spark task,
`orchestration/spark/landing.py`, in dbt-spark's session) and `dbt build --target spark` runs every
model and data test there: in a local Spark for the sample, and, for the generated people, the same
Dagster job on Spark (`WAREHOUSE_TARGET=spark`: landing, build with the unit tests, checks, privacy,
exports) on a standalone cluster (a master and two workers on loopback, started from the pyspark
package: `orchestration/spark/cluster.py`), whose audience exports are compared with the DuckDB
job's too. Every table of the `raw`, `marts`, `traits` and `audiences`
schemas is then compared with DuckDB's as a multiset of rows, every column included (profile ids,
load ids and rejection reasons too), except those that hold the wall-clock time of the landing or
the build (`loaded_at` and `rejected_at` in `raw` and `profile_events`, `profile_merges.merged_at`,
`audience_membership_history.changed_at`, `updated_at` of the trait groups and of
`profile_events`, `identity_links`, `profiles` and `profile_trait_sources`).

Needs Java and the `spark` extra (`pip install -e '.[spark]'`, which `make install` adds when Java is
present). Without them the test is skipped, unless REQUIRE_SPARK=1 or CI=true (`.ci/run`), where it
fails.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.core import settings
from orchestration.identity.generator import write_landing
from orchestration.location.runner import run_build_warehouse
from orchestration.spark import build as spark
from orchestration.spark.cluster import standalone_cluster
from tests.conftest import SEEDS, WAREHOUSE_FILE_NAME, environment
from tests.e2e.conftest import LATE_MESSAGES, run_metadata

# pytest-timeout counts the set-up of the fixtures a test is the first to use: the first test here
# builds the sample on both engines twice (about 4 min alone on a quiet 2-core machine, 5 beside
# the suite's other worker, three times that on a busy machine): more than the suite's 20 minutes
# a test leaves room for.
pytestmark = pytest.mark.timeout(2700)

# Computed traits and audiences count back from this time on both engines (the default is "now",
# which moves between the two builds).
AS_OF = "2024-07-01"
# The time of the build itself: legitimately different between any two builds.
WALL_CLOCK_COLUMNS = {("marts", "profile_merges", "merged_at"), ("marts", "audience_membership_history", "changed_at"),
                      ("marts", "profile_events", "loaded_at"),
                      *(("marts", table, "updated_at")
                        for table in ("profile_identifiers", "profile_events", "identity_links", "profiles",
                                      "profile_trait_sources"))}
# The Dagster job's run config on Spark, with the column metadata (read without Spark).
SPARK_JOB_CONFIG = {"ops": {"identity_warehouse_dbt_models": {"config": {"dbt_vars": {"as_of": AS_OF}}}}}
# Every schema compared: the landing tables, and what the build makes.
COMPARED_SCHEMAS = ["raw", *spark.OUTPUT_SCHEMAS]


def _require_spark() -> None:
    missing = spark.missing_requirements()
    if not missing:
        return
    message = "the Spark equivalence test needs " + " and ".join(missing)
    if os.environ.get("REQUIRE_SPARK") == "1" or os.environ.get("CI") == "true":
        pytest.fail(message + " (REQUIRE_SPARK=1 or CI=true: it must run here)")
    pytest.skip(message)


@dataclass
class Build:
    name: str
    duckdb: Path  # the DuckDB warehouse the job built
    spark_tables: dict[str, str]  # "schema.table" → a DuckDB relation of Spark's rows (spark_relation)
    seconds: dict[str, float] = field(default_factory=dict)
    exports: tuple[Path, Path] | None = None  # the audience exports of the DuckDB job and the Spark job
    control: Path | None = None  # the Spark job's control database (its views are attached as `c`)
    dbt_folder: Path | None = None  # the target folder of the Spark job's dbt build
    metadata: dict = field(default_factory=dict)  # the Spark job's materialization metadata, per asset


def parquet_relation(folder: Path) -> str:
    """The rows of a Parquet folder that Spark wrote, as a DuckDB relation."""
    return f"read_parquet('{folder}/*.parquet')"


def control_relation(control: Path, name: str) -> str:
    """A Spark table as the Spark job's control database shows it (orchestration/spark/tables.py),
    the database attached to the comparison's connection as ``c``."""
    schema, table = name.split(".")
    return f'c."{schema}"."{table}"'


@dataclass
class DuckdbBuild:
    name: str
    duckdb: Path  # a copy of the warehouse as the job left it
    landing: Path  # a copy of the landing folder as the job read it
    seconds: float


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


class EnginePair:
    """One landing folder built on both engines: DuckDB by the real job, Spark by its own landing and dbt."""

    def __init__(self, root: Path, landing: Path, instance: dg.DagsterInstance):
        self.root, self.landing = root, landing
        self.database = root / "duckdb" / WAREHOUSE_FILE_NAME
        self.spark_dir = root / "spark"
        self.instance = instance

    def environment(self):
        return environment(LANDING_DIR=self.landing, DUCKDB_PATH=self.database, SPARK_WAREHOUSE_DIR=self.spark_dir,
                           EXPORT_DIR=self.root / "exports")

    def build_duckdb(self, name: str) -> DuckdbBuild:
        """The real job on the landing folder as it is now (kept as it is for Spark's landing)."""
        with self.environment():
            started = time.monotonic()
            outcome = run_build_warehouse(self.instance, run_config={"ops": {"identity_warehouse_dbt_models": {
                "config": {"dbt_vars": {"as_of": AS_OF}, "column_metadata": False}}}})
            assert outcome.success, f"the DuckDB job failed on {name}: {outcome}"
            seconds = time.monotonic() - started
        # Copies of the DuckDB file and the landing folder as they are now: the next build changes
        # them (copytree keeps the files' times, which raw.loaded_files records).
        copy, landing = self.root / f"{_slug(name)}.duckdb", self.root / "landing-as-built" / _slug(name)
        shutil.copy(self.database, copy)
        shutil.copytree(self.landing, landing, symlinks=True)
        return DuckdbBuild(name, copy, landing, seconds)

    def build_spark(self, builds: list[DuckdbBuild], unit_tests: bool = True) -> list[Build]:
        """Each DuckDB build's landing folder landed and built on Spark in turn, incrementally after
        the first, in one Spark process: its start and the JVM's warm-up are paid once. dbt's unit tests
        (which do not depend on the data) run in the first build when ``unit_tests``."""
        exports = [self.root / "spark-export" / _slug(build.name) for build in builds]
        steps = []
        for index, build in enumerate(builds):
            steps += [{**spark.land_files_step(build.landing), "name": f"land {index}"},
                      {**spark.build_step(unit_tests=unit_tests and index == 0), "name": f"build {index}"},
                      {**spark.export_step(exports[index], COMPARED_SCHEMAS), "name": f"export {index}"}]
        with self.environment():
            started = time.monotonic()
            results = spark.run_steps(steps, {"as_of": AS_OF})
        print(f"one Spark process: {time.monotonic() - started:.1f} s")
        spark_builds = []
        for index, build in enumerate(builds):
            seconds = {"duckdb job": build.seconds,
                       **{f"spark {step}": results[f"{step} {index}"].seconds for step in ("land", "build", "export")}}
            print(f"{build.name}: " + ", ".join(f"{step} {value:.1f} s" for step, value in seconds.items()))
            tables = spark.exported_tables(results[f"export {index}"], exports[index])
            spark_builds.append(Build(build.name, build.duckdb, {name: parquet_relation(folder)
                                                                 for name, folder in tables.items()}, seconds))
        return spark_builds

    def spark_job_environment(self, build: DuckdbBuild):
        """Where the Dagster job on Spark lands ``build``'s landing folder, keeps its control database
        and writes its exports."""
        return environment(WAREHOUSE_TARGET="spark", LANDING_DIR=build.landing, DUCKDB_PATH=self.control,
                           EXPORT_DIR=self.root / "spark-exports")

    @property
    def control(self) -> Path:
        return self.root / "spark-control" / WAREHOUSE_FILE_NAME

    def build_spark_with_dagster(self, build: DuckdbBuild) -> Build:
        """The DuckDB build's landing folder through the same Dagster job on Spark (WAREHOUSE_TARGET=spark):
        Spark lands and builds; checks, privacy requests and exports read Spark's tables through
        the control database's views."""
        control, exports = self.control, self.root / "spark-exports"
        with self.environment(), self.spark_job_environment(build):
            started = time.monotonic()
            outcome = run_build_warehouse(self.instance, run_config=SPARK_JOB_CONFIG)
            seconds = {"duckdb job": build.seconds, "spark job": time.monotonic() - started}
        assert outcome.success and not outcome.failed_checks, f"the Dagster job on Spark failed on {build.name}: {outcome}"
        print(f"{build.name}: " + ", ".join(f"{step} {value:.1f} s" for step, value in seconds.items()))
        with duckdb.connect(str(control), read_only=True) as conn:
            names = [f"{schema}.{table}" for schema, table in conn.execute(
                "select table_schema, table_name from information_schema.tables where table_type = 'VIEW' "
                f"and table_schema in ({', '.join(repr(s) for s in COMPARED_SCHEMAS)})").fetchall()]
        [dbt_folder] = (settings.DBT_PROJECT_DIR / spark.TARGET_PATH).glob(f"identity_warehouse_dbt_models-{outcome.run_id[:7]}-*")
        return Build(build.name, build.duckdb, {name: control_relation(control, name) for name in names}, seconds,
                     exports=(self.root / "exports", exports), control=control, dbt_folder=dbt_folder,
                     metadata=run_metadata(self.instance, outcome.run_id))


def _duckdb_tables(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return [tuple(row) for row in conn.execute(
        "select table_schema, table_name from information_schema.tables where table_catalog = 'd' "
        f"and table_schema in ({', '.join(repr(s) for s in COMPARED_SCHEMAS)}) "
        "and table_type in ('BASE TABLE', 'VIEW') order by 1, 2").fetchall()]  # a view's rows are compared too


def _as_text(column: str, data_type: str) -> str:
    """A value as text, the same way for both engines' types (read by DuckDB: Spark's timestamps
    come back from Parquet as UTC instants)."""
    if data_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"cast(timezone('UTC', \"{column}\") as varchar)"
    return f"cast(\"{column}\" as varchar)"


def compare(build: Build) -> dict[str, list[str]]:
    """Differences per table (empty when the engines agree): missing tables, columns, and rows
    found on one engine only (counted with multiplicity), with examples."""
    problems: dict[str, list[str]] = {}
    with duckdb.connect() as conn:
        conn.execute(f"attach '{build.duckdb}' as d (read_only)")
        if build.control is not None:
            conn.execute(f"attach '{build.control}' as c (read_only)")
        duck_tables = _duckdb_tables(conn)
        expected = {f"{schema}.{table}" for schema, table in duck_tables}
        for missing in sorted(expected - set(build.spark_tables)):
            problems[missing] = ["not built on Spark"]
        for extra in sorted(set(build.spark_tables) - expected):
            problems[extra] = ["on Spark only"]
        for schema, table in duck_tables:
            name = f"{schema}.{table}"
            if name not in build.spark_tables:
                continue
            conn.execute(f"create or replace view s as select * from {build.spark_tables[name]}")
            duck_columns = conn.execute(
                "select column_name, data_type from information_schema.columns where table_catalog = 'd' "
                "and table_schema = ? and table_name = ? order by ordinal_position", [schema, table]).fetchall()
            spark_columns = dict(conn.execute("select column_name, column_type from (describe s)").fetchall())
            names = [c for c, _ in duck_columns]
            if sorted(names) != sorted(spark_columns):
                problems[name] = [f"columns differ: DuckDB {names}, Spark {list(spark_columns)}"]
                continue
            compared = [(c, t) for c, t in duck_columns if (schema, table, c) not in WALL_CLOCK_COLUMNS
                        and (schema, c) not in {("traits", "updated_at"),  # every trait group's
                                                ("raw", "loaded_at"), ("raw", "rejected_at")}]
            duck_select = ", ".join(f"{_as_text(c, t)} as \"{c}\"" for c, t in compared)
            spark_select = ", ".join(f"{_as_text(c, spark_columns[c])} as \"{c}\"" for c, _ in compared)
            found = []
            for label, left, right in [("DuckDB only", f"select {duck_select} from d.\"{schema}\".\"{table}\"",
                                        f"select {spark_select} from s"),
                                       ("Spark only", f"select {spark_select} from s",
                                        f"select {duck_select} from d.\"{schema}\".\"{table}\"")]:
                rows = conn.execute(f"select * from ({left} except all {right}) as x limit 1000").fetchall()
                if rows:
                    found.append(f"{len(rows)} row(s) {label}, e.g. {dict(zip([c for c, _ in compared], rows[0]))}")
            counts = conn.execute(f"select (select count(*) from d.\"{schema}\".\"{table}\"), (select count(*) from s)").fetchone()
            if counts[0] != counts[1]:
                found.append(f"{counts[0]} rows on DuckDB, {counts[1]} on Spark")
            if found:
                problems[name] = found
    return problems


def _assert_same(build: Build) -> None:
    problems = compare(build)
    assert not problems, f"{build.name}: Spark and DuckDB differ:\n" + json.dumps(problems, indent=2, default=str)


@pytest.fixture(scope="module")
def sample_builds(tmp_path_factory, dagster_instance) -> tuple[Build, Build]:
    _require_spark()
    root = tmp_path_factory.mktemp("spark-sample")
    landing = root / "landing"
    shutil.copytree(SEEDS, landing)
    pair = EnginePair(root, landing, dagster_instance)
    first = pair.build_duckdb("sample")
    late = landing / "events" / "late" / "intilery_s2_mobile_login.jsonl"
    late.parent.mkdir(parents=True)
    late.write_text("".join(json.dumps(m) + "\n" for m in LATE_MESSAGES))
    second = pair.build_duckdb("sample + late file (incremental)")
    # dbt's unit tests (they do not depend on the data) run once, in the Dagster job's build on the cluster
    return tuple(pair.build_spark([first, second], unit_tests=False))


@dataclass
class ClusterBuild:
    build: Build
    cluster_state: dict  # the master's view after the build and the run again
    worker_states: list[dict]  # each worker's
    again: dict  # the job on Spark again with nothing new: what `identity-warehouse run` knew before, the run


def run_again_with_nothing_new(pair: EnginePair, build: DuckdbBuild, instance: dg.DagsterInstance) -> dict:
    """After the job on Spark: whether ``identity-warehouse run`` would know it has nothing to do, then
    the job again (as the schedule or the UI starts it, which asks no such question)."""
    from orchestration.location.up_to_date import current_as_of

    with pair.environment(), pair.spark_job_environment(build):
        up_to_date_as_of = current_as_of({"as_of": AS_OF})
        started = time.monotonic()
        outcome = run_build_warehouse(instance, run_config=SPARK_JOB_CONFIG)
        seconds = time.monotonic() - started
    print(f"the job on Spark again with nothing new: {seconds:.1f} s")
    return {"up_to_date_as_of": up_to_date_as_of, "outcome": outcome, "seconds": seconds,
            "metadata": run_metadata(instance, outcome.run_id)}


@pytest.fixture(scope="module")
def generated_build(tmp_path_factory, dagster_instance) -> ClusterBuild:
    """The generated people on a Spark standalone cluster: a master and two workers on loopback, each
    worker an executor process of one core, so the build's shuffles cross processes."""
    _require_spark()
    root = tmp_path_factory.mktemp("spark-generated")
    landing = root / "landing"
    write_landing(landing, 200, seed=11)
    pair = EnginePair(root, landing, dagster_instance)
    duckdb_build = pair.build_duckdb("generated, 200 people, seed 11")
    with standalone_cluster(root / "cluster", workers=2) as cluster, environment(SPARK_MASTER=cluster.master_url):
        build = pair.build_spark_with_dagster(duckdb_build)
        again = run_again_with_nothing_new(pair, duckdb_build, dagster_instance)
        return ClusterBuild(build, cluster.wait_until_idle(), cluster.worker_states(), again)


def test_sample_marts_are_equal_on_spark(sample_builds):
    first, _ = sample_builds
    assert {"marts.profiles", "marts.profile_identifiers", "marts.profile_events", "marts.profile_traits",
            "marts.audience_members"} <= set(first.spark_tables)
    _assert_same(first)


def test_an_incremental_build_after_a_late_file_is_equal_on_spark(sample_builds):
    first, second = sample_builds
    _assert_same(second)
    # On Spark too, the late login merged two profiles under the older id, which the first build named
    # (int_profile_ids read its previous state; profile_merges recorded the merge).
    with duckdb.connect() as conn:
        def spark_rows(table: str, sql: str) -> list[tuple]:
            conn.execute(f"create or replace view t as select * from {second.spark_tables[table]}")
            return conn.execute(sql).fetchall()

        before = {row[0]: row[1] for row in conn.execute(
            f"select identifier_value, profile_id from {first.spark_tables['marts.profile_identifiers']} "
            "where identifier_value in ('intilery-s2-mobile', 'intilery-user-2')").fetchall()}
        after = dict(spark_rows("marts.profile_identifiers", "select identifier_value, profile_id from t "
                                "where identifier_value in ('intilery-s2-mobile', 'intilery-user-2')"))
        merges = spark_rows("marts.profile_merges", "select merged_profile_id, surviving_profile_id from t")
    assert before["intilery-s2-mobile"] != before["intilery-user-2"]
    assert after["intilery-s2-mobile"] == after["intilery-user-2"] in before.values()
    assert (({*before.values()} - {after["intilery-user-2"]}).pop(), after["intilery-user-2"]) in merges


def test_unit_test_inputs_are_one_inline_table_on_spark(generated_build):
    """dbt's unit tests ran on Spark in the Dagster job's first build on Spark, with their inputs as
    one `values` table (macros/cross_db/fixture_sql.sql), not a union of a select per row, which
    Spark copies into every place a model reads its input: 50 s a test of int_identity_conflicts
    instead of 4-12."""
    compiled = (generated_build.build.dbt_folder / "run" / "identity_warehouse" / "models" / "intermediate"
                / "_intermediate__unit_tests.yml" / "models" / "intermediate" / "a_device_over_the_threshold_is_junk_by_default.sql")
    fixture = compiled.read_text().split("-- Fixture for int_identifiers", 1)[1].split("as fixture (", 1)[0]
    assert fixture.lstrip().startswith("select * from values") and "union all" not in fixture


def test_generated_people_marts_are_equal_on_a_spark_cluster(generated_build):
    _assert_same(generated_build.build)


def test_the_job_on_spark_exports_the_same_audiences(generated_build):
    """From landing files to exports: the Dagster job on Spark writes every audience's members as the
    job on DuckDB does, byte for byte, and the same changes (but for their time)."""
    duckdb_exports, spark_exports = generated_build.build.exports
    audiences = sorted(path.name for path in duckdb_exports.iterdir() if path.is_dir())
    assert audiences and audiences == sorted(path.name for path in spark_exports.iterdir() if path.is_dir())
    for audience in audiences:
        duck, spark_folder = duckdb_exports / audience, spark_exports / audience
        assert (duck / "members.csv").read_bytes() == (spark_folder / "members.csv").read_bytes(), audience
        with duckdb.connect() as conn:
            rows = [conn.execute(f"select * from '{folder / 'members.parquet'}' order by all").fetchall()
                    for folder in (duck, spark_folder)]
        assert rows[0] == rows[1], audience
        with duckdb.connect() as conn:  # changed_at is each build's own time
            changes = [conn.execute(f"select * exclude (changed_at) from read_csv('{folder / 'changes' / '*.csv'}', "
                                    "all_varchar = true) order by all").fetchall() for folder in (duck, spark_folder)]
        assert changes[0] == changes[1], audience


def test_the_job_on_spark_gives_the_models_column_schema_and_lineage(generated_build):
    """As on DuckDB, without a Spark in the Dagster process: the columns from the control database's
    views, the lineage from the Spark build's compiled SQL."""
    profiles = generated_build.build.metadata["marts/profiles"]
    with duckdb.connect(str(generated_build.build.duckdb), read_only=True) as conn:
        duckdb_columns = [name for (name,) in conn.execute(
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'profiles' order by ordinal_position").fetchall()]
    assert [column.name for column in profiles["dagster/column_schema"].columns] == duckdb_columns
    lineage = profiles["dagster/column_lineage"].deps_by_column
    assert {(dep.asset_key.to_user_string(), dep.column_name) for dep in lineage["last_seen_at"]} == {
        ("marts/profile_events", "event_at")}


def test_the_job_on_spark_with_nothing_new_starts_no_spark(generated_build):
    """The build plan works on Spark as on DuckDB (kept in the control database): with nothing new,
    `identity-warehouse run` knows it has nothing to do, and the job run anyway lands nothing and
    builds no model without starting Spark (the cluster ran only the first run's two
    applications: test_the_cluster_build_ran_in_an_executor_on_each_worker)."""
    again = generated_build.again
    assert again["up_to_date_as_of"] is not None
    assert again["outcome"].ok, again["outcome"]
    assert not {key for key in again["metadata"] if key.split("/")[0] in ("staging", "intermediate", "marts",
                                                                           "traits", "audiences")}
    assert again["metadata"]["raw/loaded_files"]["files_loaded"] == 0
    assert again["metadata"]["raw/loaded_files"]["files_skipped"] > 0


def test_the_cluster_build_ran_in_an_executor_on_each_worker(generated_build):
    """Not a local Spark in disguise: the master ran two applications (the job's landing, then its
    dbt build), each with an executor on each worker; the run with nothing new started none."""
    applications = generated_build.cluster_state["completedapps"]
    assert len(applications) == 2 and generated_build.cluster_state["aliveworkers"] == 2
    assert all(application["cores"] == 2 for application in applications)
    for worker in generated_build.worker_states:
        assert sorted(executor["appid"] for executor in worker["finishedexecutors"]) == sorted(
            application["id"] for application in applications), worker


def test_the_comparison_finds_a_changed_row(sample_builds, tmp_path):
    """The comparison is not blind: one changed profile id is reported."""
    first, _ = sample_builds
    changed = tmp_path / "changed.duckdb"
    shutil.copy(first.duckdb, changed)
    with duckdb.connect(str(changed)) as conn:
        conn.execute("update marts.profile_identifiers set profile_id = 'prof_changed' "
                     "where identifier_value = (select min(identifier_value) from marts.profile_identifiers)")
    problems = compare(Build("changed", changed, first.spark_tables))
    assert list(problems) == ["marts.profile_identifiers"]
    assert any("DuckDB only" in p for p in problems["marts.profile_identifiers"])
