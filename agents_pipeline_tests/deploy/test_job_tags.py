"""Every job carries the tags deploy/dagster.yaml's run limits key on (issue #21).

A job without them is silently unlimited in a shared deployment: two archive runs would compete
for the database's disk, and a second run of a job would start beside the first. So the test
walks every job of the loaded code location and reads the limits from the deploy file itself.
"""

from __future__ import annotations

import dagster as dg
import yaml

from agents_pipeline.core import settings
from agents_pipeline.definitions import defs

JOB_TAG = "agents_pipeline/job"
KIND_TAG = "agents_pipeline/kind"
KINDS = {"bulk", "light"}
#: The jobs that move bulk data: named here so that a job changing kind shows up in review.
BULK_JOBS = {"sqlite_migration_job", "raw_telemetry_archive_job", "history_archive_job",
             "database_maintenance_job", "langsmith_backfill_job"}
#: Dagster's implicit job behind an asset page's "Materialize" button; it takes no tags of its own.
IMPLICIT_ASSET_JOB = "__ASSET_JOB"


def _limits() -> list[dict]:
    instance = yaml.safe_load((settings.PROJECT_DIR / "deploy" / "dagster.yaml").read_text())
    return instance["concurrency"]["runs"]["tag_concurrency_limits"]


def _jobs() -> list[dg.JobDefinition]:
    jobs = [job for job in defs.get_repository_def().get_all_jobs() if job.name != IMPLICIT_ASSET_JOB]
    assert len(jobs) >= 12, [job.name for job in jobs]   # the walk really sees the location's jobs
    return jobs


def test_every_job_names_itself_and_its_kind():
    problems = []
    for job in _jobs():
        tags = job.tags
        if tags.get(JOB_TAG) != job.name:
            problems.append(f"{job.name}: {JOB_TAG} is {tags.get(JOB_TAG)!r}, not its own name")
        if tags.get(KIND_TAG) not in KINDS:
            problems.append(f"{job.name}: {KIND_TAG} is {tags.get(KIND_TAG)!r}, not one of {sorted(KINDS)}")
    assert not problems, "\n".join(problems)


def test_the_bulk_jobs_are_the_data_movers():
    bulk = {job.name for job in _jobs() if job.tags.get(KIND_TAG) == "bulk"}
    assert bulk == BULK_JOBS


def test_the_deploy_limits_key_on_exactly_these_tags():
    """A limit on a tag no job carries limits nothing; a renamed tag would leave jobs unlimited."""
    limits = {(limit["key"], yaml.safe_dump(limit.get("value"))): limit["limit"] for limit in _limits()}
    assert limits[(JOB_TAG, yaml.safe_dump({"applyLimitPerUniqueValue": True}))] == 1
    assert limits[(KIND_TAG, yaml.safe_dump("bulk"))] == 1
    ours = {key for key, _ in limits if key.startswith("agents_pipeline/")}
    assert ours == {JOB_TAG, KIND_TAG}
    for job in _jobs():
        assert ours <= set(job.tags), job.name
