"""The LLM endpoint as a Dagster resource: URL, model, key and timeout from the environment.

The settings in use are read from the environment when used; the fields only mirror it for the
UI. ``help_answers`` can be materialized from the Launchpad, where run config may override a
field: an override that differs from the environment is refused, so nobody can point the
client at a URL of their own while the key still comes from ``{env: ...}``.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from agents_pipeline.defs.help.llm import KEY_ENV, MODEL_ENV, TIMEOUT_ENV, URL_ENV, LLMSettings
from agents_pipeline.platform.resources import refuse_override

_FIELDS = {"url": URL_ENV, "model": MODEL_ENV, "api_key": KEY_ENV, "timeout_s": TIMEOUT_ENV}


class HelpLLMResource(dg.ConfigurableResource):
    """An OpenAI-compatible chat endpoint for the help's answers; an empty URL means none
    (answers are then extractive). The key comes through dg.EnvVar and is shown nowhere."""

    url: str = Field(default="", description=f"base URL of the endpoint ({URL_ENV}), e.g. https://host/v1")
    model: str = Field(default="", description=f"model name ({MODEL_ENV})")
    api_key: str = Field(default="", description=f"bearer token ({KEY_ENV})")
    timeout_s: str = Field(default="", description=f"seconds for a whole call ({TIMEOUT_ENV}, default 20)")

    def settings(self) -> LLMSettings | None:
        """The environment's endpoint, or ConfigurationError if a field here says otherwise."""
        for field, variable in _FIELDS.items():
            refuse_override("help_llm", field, getattr(self, field), os.environ.get(variable, ""), variable)
        return LLMSettings.from_env()


def help_llm_resource() -> HelpLLMResource:
    """dg.EnvVar for each variable that is set, so the values never reach the UI or run config;
    only whether a variable exists is looked at here (an unset EnvVar would fail every tick)."""
    return HelpLLMResource(**{f: dg.EnvVar(env) for f, env in _FIELDS.items() if os.environ.get(env)})


@dg.definitions
def resources() -> dg.Definitions:
    """Binds ``help_llm`` for the help answers."""
    return dg.Definitions(resources={"help_llm": help_llm_resource()})
