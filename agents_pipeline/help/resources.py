"""The LLM endpoint as a Dagster resource: URL, model, key and timeout from the environment."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from agents_pipeline.help.llm import KEY_ENV, MODEL_ENV, TIMEOUT_ENV, URL_ENV, LLMSettings


class HelpLLMResource(dg.ConfigurableResource):
    """An OpenAI-compatible chat endpoint for the help's answers; an empty URL means none
    (answers are then extractive). The key comes through dg.EnvVar and is shown nowhere."""

    url: str = Field(default="", description=f"base URL of the endpoint ({URL_ENV}), e.g. http://host:8000/v1")
    model: str = Field(default="", description=f"model name ({MODEL_ENV})")
    api_key: str = Field(default="", description=f"bearer token ({KEY_ENV})")
    timeout_s: str = Field(default="", description=f"seconds for a whole call ({TIMEOUT_ENV}, default 20)")

    def settings(self) -> LLMSettings | None:
        return LLMSettings.build(self.url, self.model, self.api_key, self.timeout_s)


def help_llm_resource() -> HelpLLMResource:
    """dg.EnvVar for each variable that is set, so the values never reach the UI or run config;
    only whether a variable exists is looked at here (an unset EnvVar would fail every tick)."""
    fields = {"url": URL_ENV, "model": MODEL_ENV, "api_key": KEY_ENV, "timeout_s": TIMEOUT_ENV}
    return HelpLLMResource(**{f: dg.EnvVar(env) for f, env in fields.items() if os.environ.get(env)})
