"""Runs every job of a code location and gathers everything Dagster would show about it.

Written against the Definitions object rather than a list of job names, so jobs, assets,
secrets and resources that other domains add later are covered without editing this file:
the jobs come from the repository, the secret variables from the resources' dg.EnvVar
fields, the config from each job's schema.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster._config import ConfigTypeKind
from dagster._config.config_type import ConfigScalarKind
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._serdes import serialize_value

SECRETISH = ("PASSWORD", "TOKEN", "SECRET", "KEY", "CREDENTIAL", "_URL", "DSN")


def env_vars_of_resources(defs: dg.Definitions) -> set[str]:
    """Names of every environment variable the resources read through dg.EnvVar (nested too)."""
    names: set[str] = set()

    def walk(value: Any, depth: int = 0) -> None:
        if depth > 5:
            return
        if isinstance(value, dg.EnvVar):
            names.add(value.env_var_name)
        elif isinstance(value, dg.ConfigurableResource | dg.Config):
            for name in type(value).model_fields:
                walk(value.__dict__.get(name), depth + 1)
        elif isinstance(value, list | tuple | set):
            for item in value:
                walk(item, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)

    for resource in (defs.resources or {}).values():
        walk(resource)
    return names


NO_WAIT_FIELDS = ("wait_s",)


def example_config(config_type: Any) -> Any:
    """The smallest config that satisfies a schema: required fields only, plain values.

    A job that needs config (a Launchpad job) still runs; if the made-up values make it
    fail, its failure events are scanned too, which is where leaks like to hide.
    """
    kind = config_type.kind
    if kind in (ConfigTypeKind.STRICT_SHAPE, ConfigTypeKind.PERMISSIVE_SHAPE):
        shape = {name: example_config(f.config_type) for name, f in config_type.fields.items()
                 if f.is_required}
        # A Launchpad job that waits for a sensor's answer (help_request_job) would wait out its
        # whole default here, where no sensor runs: it only queues.
        shape.update({name: 0 for name in config_type.fields if name in NO_WAIT_FIELDS})
        return shape
    if kind == ConfigTypeKind.SELECTOR:
        name, f = next(iter(config_type.fields.items()))
        return {name: example_config(f.config_type)}
    if kind in (ConfigTypeKind.ARRAY, ConfigTypeKind.MAP):
        return [] if kind == ConfigTypeKind.ARRAY else {}
    if kind == ConfigTypeKind.NONEABLE:
        return None
    if kind == ConfigTypeKind.ENUM:
        return config_type.enum_values[0].config_value
    if kind == ConfigTypeKind.SCALAR_UNION:
        return example_config(config_type.scalar_type)
    if kind == ConfigTypeKind.SCALAR:
        return {ConfigScalarKind.INT: 1, ConfigScalarKind.FLOAT: 1.0, ConfigScalarKind.BOOL: False,
                ConfigScalarKind.STRING: "secret-scan"}[config_type.scalar_kind]
    return None


@dataclass
class JobRun:
    job: str
    run_id: str
    status: DagsterRunStatus
    partition: str | None = None


@dataclass
class Plan:
    """What to run: each named job, then one implicit asset job per partitioning for the assets
    no named job covers (so every asset and its checks execute at least once)."""

    jobs: list[tuple[str, dg.JobDefinition]] = field(default_factory=list)


def plan(defs: dg.Definitions) -> Plan:
    repo = defs.get_repository_def()
    out = Plan()
    covered: set[dg.AssetKey] = set()
    for job in repo.get_all_jobs():
        if job.name.startswith("__ASSET_JOB"):
            continue
        out.jobs.append((job.name, job))
        if job.asset_layer is not None:
            covered |= set(job.asset_layer.executable_asset_keys)
    graph = repo.asset_graph
    groups: dict[Any, list[dg.AssetKey]] = defaultdict(list)
    for key in graph.materializable_asset_keys:
        if key not in covered:
            groups[graph.get(key).partitions_def].append(key)
    for keys in groups.values():
        job = repo.get_implicit_job_def_for_assets(keys)
        if job is not None:
            out.jobs.append((f"assets:{','.join(k.to_user_string() for k in keys)}", job))
    return out


def run_all(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[JobRun]:
    runs = []
    for label, job in plan(defs).jobs:
        partition = None
        if job.partitions_def is not None:
            with dg.partition_loading_context(dynamic_partitions_store=instance):
                partition = job.partitions_def.get_last_partition_key()
            if partition is None:
                continue  # no partition exists yet (dynamic): nothing the UI could launch either
        run_config = example_config(job.run_config_schema.config_type)
        result = job.execute_in_process(run_config=run_config, instance=instance, partition_key=partition,
                                        raise_on_error=False)
        runs.append(JobRun(label, result.run_id, instance.get_run_by_id(result.run_id).status, partition))
    return runs


def instance_texts(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Everything the instance stored about the runs: the run (config, tags) and every event."""
    for run_id in run_ids:
        yield f"run {run_id}", serialize_value(instance.get_run_by_id(run_id))
        for entry in instance.all_logs(run_id):
            yield f"event {run_id} {entry.dagster_event_type or 'log'}", serialize_value(entry)


META = """
fragment Meta on MetadataEntry {
  label description __typename
  ... on TextMetadataEntry { text }
  ... on MarkdownMetadataEntry { mdStr }
  ... on UrlMetadataEntry { url }
  ... on JsonMetadataEntry { jsonString }
  ... on PathMetadataEntry { path }
  ... on TableMetadataEntry { table { records } }
}"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { runId status runConfigYaml tags { key value } } }
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events {
      __typename
      ... on MessageEvent { message level stepKey }
      ... on MaterializationEvent { metadataEntries { ...Meta } }
      ... on ObservationEvent { metadataEntries { ...Meta } }
      ... on ExecutionStepFailureEvent { error { message stack } }
      ... on RunFailureEvent { error { message stack } }
      ... on EngineEvent { error { message stack } metadataEntries { ...Meta } }
      ... on AssetCheckEvaluationEvent { evaluation { metadataEntries { ...Meta } } }
    } }
    ... on PythonError { message }
  }
}""" + META

LOCATION_QUERY = """
{
  instance { info }
  workspaceOrError { __typename ... on Workspace { locationEntries { name locationOrLoadError {
    __typename
    ... on PythonError { message stack }
    ... on RepositoryLocation { repositories {
      name
      allTopLevelResourceDetails { name description configuredValues { key value type } }
      assetNodes { assetKey { path } description metadataEntries { ...Meta } }
      pipelines { name description }
    } }
  } } } }
}""" + META


SECRET_FIELD = ("password", "passwd", "token", "secret", "api_key", "apikey", "credential", "private_key")


def secret_config_fields(config_type: Any, path: str = "") -> Iterator[str]:
    """Paths of run-config fields, named like secrets, that a launch must fill in (the UI shows run
    config). A resource field set through dg.EnvVar also appears in the schema, but optional, its
    value coming from the environment; only a required one would make someone type the secret."""
    if config_type.kind in (ConfigTypeKind.STRICT_SHAPE, ConfigTypeKind.PERMISSIVE_SHAPE, ConfigTypeKind.SELECTOR):
        for name, f in config_type.fields.items():
            here = f"{path}.{name}" if path else name
            if any(part in name.lower() for part in SECRET_FIELD) and f.is_required:
                yield here
            yield from secret_config_fields(f.config_type, here)
    elif config_type.kind in (ConfigTypeKind.ARRAY, ConfigTypeKind.NONEABLE, ConfigTypeKind.MAP):
        inner = getattr(config_type, "inner_type", None) or getattr(config_type, "value_type", None)
        if inner is not None:
            yield from secret_config_fields(inner, path + "[]")


def plain_secret_resource_fields(defs: dg.Definitions) -> list[str]:
    """Resource fields named like secrets whose value was given directly instead of dg.EnvVar."""
    found = []

    def walk(owner: str, value: Any, depth: int = 0) -> None:
        if depth > 5 or not isinstance(value, dg.ConfigurableResource | dg.Config):
            return
        for name in type(value).model_fields:
            item = value.__dict__.get(name)
            if isinstance(item, dg.ConfigurableResource | dg.Config):
                walk(f"{owner}.{name}", item, depth + 1)
            elif (any(part in name.lower() for part in SECRET_FIELD) and isinstance(item, str)
                  and not isinstance(item, dg.EnvVar) and item):
                found.append(f"{owner}.{name}")

    for key, resource in (defs.resources or {}).items():
        walk(key, resource)
    return found
