"""The migration benchmark's results as text: what pgloader and this project did with each kind
of dirty row (looked up by rowid in both databases), and the markdown tables of seconds, rows
per second, peak memory and ratios that docs/benchmarks/migration.md quotes.

Split from sqlite_migration.py, which runs the tools; this only reads their databases and
results.
"""

from __future__ import annotations

import psycopg2
from legacy_dirty_file import CONV_DIRT, CONV_MOD, HB_DIRT, HB_MOD, METRIC_DIRT, METRIC_MOD, STOPS_PGLOADER

from agents_pipeline.core.dsn import connect_kwargs


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()


def dirt_fates(ours: str, pgl: str, sizes: tuple[int, int, int]) -> list[tuple[str, str, str, str]]:
    """(table, dirt kind, what pgloader did, what this project did) for three rowids per kind."""
    fates = []
    checks = [("agent_heartbeats", "heartbeats", sizes[0], HB_DIRT, HB_MOD, "timestamp"),
              ("performance_metrics", "perf_samples", sizes[1], METRIC_DIRT, METRIC_MOD, "metric_value"),
              ("llm_conversations", "llm_conversations", sizes[2], CONV_DIRT, CONV_MOD, "prompt_tokens")]
    for legacy, target, size, dirt, modulus, show in checks:
        for residue, kind in dirt.items():
            first = residue
            if kind in STOPS_PGLOADER:  # generated only in the last 1 % of the table
                base = int(size * 0.99)
                first = base + (residue - base) % modulus
            rowids = [first + modulus * k for k in range(3)]
            have = query(pgl, f'SELECT count(*) FROM {legacy} WHERE id = ANY(%s)', (rowids,))[0][0]  # noqa: S608
            sample = query(pgl, f'SELECT "{show}"::text FROM {legacy} WHERE id = %s', (rowids[0],))  # noqa: S608
            pg_fate = (f"kept {have}/3" + (f", {show} = {sample[0][0]!r}" if sample else "")) if have else "row lost (0/3 kept)"
            written = query(ours, f"SELECT count(*) FROM fleet.{target} WHERE legacy_source = 1 "  # noqa: S608
                                  "AND legacy_id = ANY(%s)", (rowids,))[0][0]
            rejected = query(ours, "SELECT reason FROM fleet.legacy_rejects WHERE table_name = %s AND legacy_id = ANY(%s)",
                             (legacy, rowids))
            our_fate = (f"converted {written}/3" if written else "") + (
                f"rejected {len(rejected)}/3: {rejected[0][0][:70]}" if rejected else "")
            fates.append((legacy, kind, pg_fate, our_fate))
    return fates


def render(results: dict, sizes: tuple[int, int, int], prefetch: int = 10000) -> str:
    lines = [f"Generated sizes: {sizes[0]:,} heartbeats, {sizes[1]:,} metrics, {sizes[2]:,} conversations "
             "(2-4 KB prompts, 1.5-3 KB responses), 50 agents, 1,000 alerts.", ""]
    lines += ["| file | tool | seconds | rows/s | peak RSS (MiB) | exit | rows in PostgreSQL |",
              "|---|---|---:|---:|---:|---:|---|"]
    for variant, result in results.items():
        mine, rows, report = result["ours"], result["rows"], result.get("report", {})
        totals = report.get("totals", {})
        lines.append(f"| {variant} ({rows:,} rows) | agents-pipeline (verification included) | {mine['seconds']:.1f} | "
                     f"{rows / mine['seconds']:,.0f} | {mine['peak_mb']:.0f} | {mine['returncode']} | "
                     f"{totals.get('written', 0):,} written + {totals.get('rejected', 0):,} rejected with reasons |")
        pgl = result.get("pgloader")
        if pgl:
            kept = sum(pgl["rows_in_postgres"].values())
            status = "hung (no CPU for 60 s), killed" if pgl.get("hung") else pgl["returncode"]
            lines.append(f"| {variant} ({rows:,} rows) | pgloader, prefetch rows = {prefetch} | {pgl['seconds']:.1f} | "
                         f"{rows / pgl['seconds']:,.0f} | {pgl['peak_mb']:.0f} | {status} | "
                         f"{kept:,} ({rows - kept:,} lost) |")
        for how, floor in result.get("floors", {}).items():
            lines.append(f"| {variant} ({rows:,} rows) | baseline: plain COPY, no checks or digests, {how} | "
                         f"{floor['loaded']:.1f} | {rows / floor['loaded']:,.0f} | - | 0 | {rows:,} (clean rows only) |")
            lines.append(f"| {variant} ({rows:,} rows) | the same + the verification's SQL | {floor['verified']:.1f} | "
                         f"{rows / floor['verified']:,.0f} | {floor['peak_mb']:.0f} | 0 | {rows:,} |")
    for variant, result in results.items():
        if result.get("pgloader") and not result["pgloader"].get("hung"):
            ratio = result["pgloader"]["seconds"] / result["ours"]["seconds"]
            lines += ["", f"Ratio on the {variant} file (pgloader seconds / agents-pipeline seconds): **{ratio:.2f}x**"]
            for how, floor in result.get("floors", {}).items():
                lines += ["", f"Baseline ({how}) on the {variant} file: pgloader seconds / plain-COPY seconds "
                              f"{result['pgloader']['seconds'] / floor['loaded']:.2f}x, with the verification's SQL "
                              f"{result['pgloader']['seconds'] / floor['verified']:.2f}x; agents-pipeline seconds / "
                              f"baseline-with-verification seconds {result['ours']['seconds'] / floor['verified']:.2f}"]
    dirty = results.get("dirty", {})
    if dirty.get("fates"):
        lines += ["", "| table | dirty row (3 samples) | pgloader | agents-pipeline |", "|---|---|---|---|"]
        lines += [f"| {t} | {k} | {p} | {o} |" for t, k, p, o in dirty["fates"]]
        pgl = dirty["pgloader"]
        lines += ["", "pgloader column types: " + ", ".join(f"{t}.{c} {d}" for t, c, d in pgl["column_types"]),
                  "", "pgloader errors (first lines of its log):", "", *(f"    {e}" for e in pgl["log_errors"])]
    for variant, result in results.items():
        report = result.get("report", {})
        if report:
            lines += ["", f"agents-pipeline per-table report, {variant} file:", "",
                      "| table | read | written | rejected | seconds | verified |", "|---|---:|---:|---:|---:|---|"]
            lines += [f"| {t['table']} | {t['read']:,} | {t['written']:,} | {t['rejected']:,} | {t['seconds']:.1f} | "
                      f"{t['verified']} |" for t in report.get("tables", [])]
    return "\n".join(lines) + "\n"
