"""The simulated agents' behaviours: plain data, shared by the fleet supervisor, the agent
process and the history seeder, so the seeded past looks like the live present."""

from __future__ import annotations

from dataclasses import dataclass

DEMO_PREFIX = "demo-"
DEMO_AGENT_TYPE = "demo"
MODELS = (("gpt-4o-mini", 0.15, 0.60), ("claude-3-5-haiku", 0.80, 4.00), ("llama-3.1-8b", 0.05, 0.08))
"""(model, USD per million prompt tokens, USD per million completion tokens)."""


@dataclass(frozen=True)
class Profile:
    """How one simulated agent behaves.

    ``cpu_share`` is the fraction of each period spent busy on one core; ``fail_rate`` the
    chance a unit of work reports failure (the agent goes down at once); ``crash_after`` a
    range of cycles after which the process exits (the supervisor restarts it after
    ``restart_delay_s``); ``hang_after`` cycles after which it stops heartbeating while its
    process stays alive, for ``hang_s`` seconds.
    """

    name: str
    role: str
    cpu_share: float = 0.05
    fail_rate: float = 0.0
    crash_after: tuple[int, int] | None = None
    restart_delay_s: tuple[float, float] = (40.0, 70.0)
    hang_after: int | None = None
    hang_s: float = 0.0
    capabilities: tuple[str, ...] = ()     # the task kinds it claims; each kind has two agents or more


# The crawler crashes with crawl tasks in hand; the planner and the researcher (in every fleet of
# three or more) can crawl too, so its tasks move to them once it is marked down.
PROFILES: tuple[Profile, ...] = (
    Profile("steady", "planner", capabilities=("crawl", "summarise")),
    Profile("flaky", "researcher", cpu_share=0.1, fail_rate=0.2, capabilities=("crawl", "research")),
    Profile("crashy", "crawler", crash_after=(2, 5), capabilities=("crawl",)),
    Profile("hot", "summarizer", cpu_share=0.5, capabilities=("summarise", "research")),
    Profile("hung", "indexer", hang_after=2, hang_s=120.0, capabilities=("index", "summarise")),
    Profile("busy", "reviewer", cpu_share=0.08, fail_rate=0.05, capabilities=("index", "research")),
)
PRODUCER = f"{DEMO_PREFIX}producer"
"""The agent that submits the demo's tasks (the fleet supervisor acts for it)."""


def fleet(n: int) -> list[tuple[str, Profile]]:
    """Names and profiles of an ``n``-agent fleet: the behaviours cycle, names stay stable
    across restarts (the registry keeps one row per name)."""
    if n < 1:
        raise ValueError(f"a fleet needs at least one agent, got {n}")
    out = []
    for i in range(n):
        profile = PROFILES[i % len(PROFILES)]
        suffix = "" if i < len(PROFILES) else f"-{i // len(PROFILES) + 1}"
        out.append((f"{DEMO_PREFIX}{profile.role}{suffix}", profile))
    return out


def profile_named(name: str) -> Profile:
    for profile in PROFILES:
        if profile.name == name:
            return profile
    raise ValueError(f"unknown demo profile {name!r} (known: {', '.join(sorted({p.name for p in PROFILES}))})")
