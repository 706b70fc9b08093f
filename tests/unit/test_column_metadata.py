"""Column schema and lineage kept per version of the dbt project (orchestration/location/column_metadata.py),
and dagster-dbt's lineage failures as one DEBUG line (orchestration/location/dbt_event_stream.py)."""

import json
import logging

import dagster as dg

from orchestration.location import column_metadata, dbt_event_stream

PROFILES, EVENTS = dg.AssetKey(["marts", "profiles"]), dg.AssetKey(["marts", "profile_events"])
SCHEMA = dg.TableSchemaMetadataValue(dg.TableSchema(columns=[dg.TableColumn("profile_id", "VARCHAR")]))
LINEAGE = dg.TableColumnLineageMetadataValue(dg.TableColumnLineage(
    {"profile_id": [dg.TableColumnDep(asset_key=EVENTS, column_name="profile_id")]}))


def test_the_column_metadata_of_a_version_is_read_back_as_it_was_stored(tmp_path):
    path = tmp_path / "target" / column_metadata.CACHE_FILE
    assert column_metadata.load(path, "v1", {PROFILES}) is None  # nothing stored yet
    column_metadata.store(path, "v1", {
        PROFILES: {"dagster/column_schema": SCHEMA, "dagster/column_lineage": LINEAGE, "profiles": 3},
        EVENTS: {},  # sqlglot could not read it: no lineage, and nothing to fetch again
    })
    assert column_metadata.load(path, "v1", {PROFILES, EVENTS}) == {
        PROFILES: {"dagster/column_schema": SCHEMA, "dagster/column_lineage": LINEAGE},  # not the data's
        EVENTS: {},
    }
    assert column_metadata.load(path, "v2", {PROFILES}) is None  # another version of the project
    assert column_metadata.load(path, "v1", {PROFILES, dg.AssetKey(["marts", "new_model"])}) is None


def test_a_build_of_a_few_models_adds_to_its_version_and_old_versions_go(tmp_path):
    path = tmp_path / column_metadata.CACHE_FILE
    column_metadata.store(path, "v1", {PROFILES: {"dagster/column_schema": SCHEMA}})
    column_metadata.store(path, "v1", {EVENTS: {"dagster/column_lineage": LINEAGE}})
    assert set(column_metadata.load(path, "v1", {PROFILES, EVENTS})) == {PROFILES, EVENTS}
    for n in range(2, column_metadata.KEPT_VERSIONS + 1):
        column_metadata.store(path, f"v{n}", {PROFILES: {}})
    column_metadata.store(path, "v2", {EVENTS: {}})  # stored again: now the newest
    column_metadata.store(path, "v-new", {PROFILES: {}})
    assert len(json.loads(path.read_text())) == column_metadata.KEPT_VERSIONS
    assert column_metadata.load(path, "v1", {PROFILES}) is None  # the oldest went
    assert column_metadata.load(path, "v2", {PROFILES, EVENTS}) is not None
    assert column_metadata.load(path, "v3", {PROFILES}) is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{path.name}.") and not p.name.endswith(".lock")]


def test_an_unreadable_file_means_fetch_anew(tmp_path):
    path = tmp_path / column_metadata.CACHE_FILE
    path.write_text("{not json")
    assert column_metadata.load(path, "v1", {PROFILES}) is None
    column_metadata.store(path, "v1", {PROFILES: {"dagster/column_schema": SCHEMA}})  # replaces it
    assert column_metadata.load(path, "v1", {PROFILES}) == {PROFILES: {"dagster/column_schema": SCHEMA}}
    path.write_text(json.dumps({"v1": {"assets": {"marts/profiles": "not a serialized value"}}}))
    assert column_metadata.load(path, "v1", {PROFILES}) is None


def test_the_version_follows_the_project_and_the_packages_that_compute_it(monkeypatch):
    assert column_metadata.metadata_version("a") == column_metadata.metadata_version("a")
    assert column_metadata.metadata_version("a") != column_metadata.metadata_version("b")
    before = column_metadata.metadata_version("a")
    real_version = column_metadata.importlib.metadata.version
    monkeypatch.setattr(column_metadata.importlib.metadata, "version",
                        lambda name: "0.0.1" if name == "sqlglot" else real_version(name))
    assert column_metadata.metadata_version("a") != before


def lineage_failure(logger: logging.Logger) -> None:
    """What dagster-dbt logs when sqlglot cannot derive a model's lineage (dbt_event_iterator.py)."""
    try:
        raise ValueError("Cannot resolve 'component_id' due to missing source schemas")
    except ValueError as error:
        logger.warning(
            "An error occurred while building column lineage metadata for the dbt resource"
            " `models/intermediate/int_identity_components.sql`. Lineage metadata will not be included in the"
            f" event.\n\nException: {error}", exc_info=True)


def test_a_model_whose_lineage_sqlglot_cannot_read_is_one_debug_line_without_traceback(caplog):
    from dagster_dbt.core import dbt_event_iterator

    dbt_event_stream.install()
    logger = logging.getLogger(dbt_event_iterator.logger.name)
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        lineage_failure(logger)
        logger.info("Running dbt command: `dbt build --select fqn:*`.")
        logger.warning("something else went wrong")
    (lineage, command, other) = caplog.records
    assert (lineage.levelno, lineage.exc_info, lineage.getMessage()) == (
        logging.DEBUG, None, "column lineage of models/intermediate/int_identity_components.sql not built: "
        "Cannot resolve 'component_id' due to missing source schemas")
    assert "Traceback" not in caplog.text
    assert command.levelno == logging.DEBUG  # dagster-dbt's mechanics: in the UI's log, not the console
    assert other.levelno == logging.WARNING  # anything else is left as it is
