import dagster as dg

from agents_pipeline.help.assets import help_answers, knowledge_base
from agents_pipeline.help.checks import knowledge_base_current
from agents_pipeline.help.jobs import help_request_job
from agents_pipeline.help.resources import help_llm_resource
from agents_pipeline.help.sensors import help_requests_sensor, knowledge_base_sensor

defs = dg.Definitions(
    assets=[knowledge_base, help_answers],
    asset_checks=[knowledge_base_current],
    sensors=[knowledge_base_sensor, help_requests_sensor],
    jobs=[help_request_job],
    resources={"help_llm": help_llm_resource()},
)
