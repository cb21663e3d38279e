"""The demo kick-off: which partitions it launches, read from whatever the definitions hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from agents_pipeline.demo.kickoff import Launch, kickoff_plan


def test_plan_takes_the_latest_partition_of_each_partitioned_asset():
    start = "2026-01-01"

    @dg.asset(partitions_def=dg.HourlyPartitionsDefinition(start_date=f"{start}-00:00"))
    def rollup() -> None: ...

    @dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date=start, end_offset=-30))
    def archive() -> None: ...

    @dg.asset
    def plain() -> None: ...

    @dg.asset(partitions_def=dg.DynamicPartitionsDefinition(name="agents"))
    def story() -> None: ...

    external = dg.AssetSpec("outside", partitions_def=dg.DailyPartitionsDefinition(start_date=start))
    repo = dg.Definitions(assets=[rollup, archive, plain, story, external]).get_repository_def()
    now = datetime.now(UTC)
    plan = {item.asset_key: item.partition for item in kickoff_plan(repo)}
    # not the unpartitioned one, not the external spec, not the per-agent one (its sensor fills it)
    assert set(plan) == {"rollup", "archive"}
    assert plan["archive"] == (now - timedelta(days=31)).strftime("%Y-%m-%d")
    last_hour = (now - timedelta(hours=1)).strftime("%Y-%m-%d-%H:00")
    assert plan["rollup"] == last_hour or now.minute == 0  # (an hour boundary during the test)
    assert Launch("archive", plan["archive"]) in kickoff_plan(repo)
