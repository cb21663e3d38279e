"""The migration report: per table what was read, written, rejected and whether it verified.

The same object renders as the CLI's JSON and as the Dagster op's markdown metadata, so the
two faces can never disagree about what happened.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from agents_pipeline.platform.markdown import escape_md


@dataclass
class TableReport:
    table: str
    target: str
    status: str = "migrated"            # migrated, absent, dry run, user table
    source_rows: int = 0                # SQL count in the snapshot
    read: int = 0                       # total read over all runs of this source
    written: int = 0                    # recounted in PostgreSQL
    rejected: int = 0                   # recounted in fleet.legacy_rejects
    new_this_run: int = 0
    seconds: float = 0.0
    checksum_ok: bool | None = None
    verified: bool | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source_table: str | None = None     # the file's table, when a mapping read it under this name

    @property
    def label(self) -> str:
        """The table as the operator knows it from their file."""
        return self.table if self.source_table in (None, self.table) else f"{self.source_table} (as {self.table})"


@dataclass
class RunReport:
    source: str
    path: str
    dry_run: bool
    journal_mode: str = ""
    placeholders_created: int = 0
    tables: list[TableReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    mapping: dict | None = None         # the mapping the file was read through, as applied
    reject_problem: str | None = None   # known tables rejected over the allowed share (outcome.py)

    @property
    def ok(self) -> bool:
        return not self.problems and all(t.verified is not False for t in self.tables)

    @property
    def totals(self) -> dict[str, int]:
        return {key: sum(getattr(t, key) for t in self.tables)
                for key in ("source_rows", "read", "written", "rejected", "new_this_run")}

    def to_dict(self) -> dict:
        return {"source": self.source, "path": self.path, "dry_run": self.dry_run, "ok": self.ok,
                "journal_mode": self.journal_mode, "placeholders_created": self.placeholders_created,
                "seconds": round(self.seconds, 3), "totals": self.totals, "problems": self.problems, "notes": self.notes,
                "reject_problem": self.reject_problem, "mapping": self.mapping,
                "tables": [{**asdict(t), "seconds": round(t.seconds, 3)} for t in self.tables]}

    def to_markdown(self) -> str:
        mode = "dry run (nothing written)" if self.dry_run else ("verified" if self.ok else "FAILED verification")
        # Table names, reasons and notes come from the legacy file: escaped, so it cannot add links.
        lines = [f"**{_md(self.source)}** ({_md(self.path)}): {mode}, {self.seconds:.1f} s, "
                 f"{self.placeholders_created} placeholder agents created", "",
                 "| table | target | status | source rows | read | written | rejected | new | seconds | checksum | verified |",
                 "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
        mark = {True: "ok", False: "MISMATCH", None: "-"}
        for t in self.tables:
            lines.append(f"| {_md(t.label)} | {_md(t.target)} | {t.status} | {t.source_rows} | {t.read} | {t.written} | "
                         f"{t.rejected} | {t.new_this_run} | {t.seconds:.2f} | {mark[t.checksum_ok]} | {mark[t.verified]} |")
        reasons = [(t.table, r, n) for t in self.tables for r, n in sorted(t.reasons.items())]
        if reasons:
            lines += ["", "| table | reject reason (this run) | rows |", "|---|---|---:|"]
            lines += [f"| {_md(t)} | {_md(r)} | {n} |" for t, r, n in reasons]
        notes = [f"{t.table}: {n}" for t in self.tables for n in t.notes] + self.notes + self.problems
        if self.reject_problem:
            notes.append(self.reject_problem)
        if notes:
            lines += ["", *(f"- {_md(n)}" for n in notes)]
        return "\n".join(lines)


def _md(text: object) -> str:
    return escape_md(text)
