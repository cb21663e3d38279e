"""The threshold rules, now in ``core.thresholds``: a fleet file (coordination) validates an agent's
thresholds with them too, and domains do not import one another. Re-exported here for the
performance domain's modules and for code written against the old path."""

from agents_pipeline.core.thresholds import (  # noqa: F401
    AGENT_RULES,
    CONFIG_KEY,
    CUSTOM_PREFIX,
    DEFAULTS,
    HOST_RULES,
    MAX_FOR_S,
    RULES,
    SEVERITIES,
    Effective,
    Rule,
    Setting,
    apply_layer,
    custom_rules,
    is_custom,
    resolve,
    rule_for,
    validate_layer,
)
