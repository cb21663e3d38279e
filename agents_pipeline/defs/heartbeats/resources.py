"""The health evaluator's tunables as a resource, so the UI's *Resources* page shows the values
in force (none is secret), not only the environment they came from.

The values are read from the environment when the definitions load (``HealthSettings.from_env``,
which names a bad value), as the sensor's runs and ticks load them; change a variable, reload
the code location. A value set in a run's config wins for that run, as for any resource.
"""

import dagster as dg
from pydantic import Field

from agents_pipeline.defs.heartbeats import settings as hs
from agents_pipeline.defs.heartbeats.settings import HealthSettings


class HealthSettingsResource(dg.ConfigurableResource):
    """What agent_health_sensor and the agent_health asset evaluate with."""

    reminder_s: float = Field(default=3600.0, description=f"{hs.REMINDER_S}: reminder while an agent stays down (0: none)")
    error_share: float = Field(default=0.25, description=f"{hs.ERROR_SHARE}: the health check is an error above this share down")
    collapse_min_fleet: int = Field(default=5, description=f"{hs.COLLAPSE_MIN_FLEET}: fleet size the collapse guard applies from")
    lock_hold_s: float = Field(default=30.0, description=f"{hs.LOCK_HOLD_LIMIT_S}: an agent row held this long alerts")
    throttle_alert_s: float = Field(default=300.0, description=f"{hs.THROTTLE_ALERT_S}: throttled this long alerts")
    ingest_stall_max_s: float = Field(default=120.0, description=f"{hs.INGEST_STALL_MAX_S}: while no agent is heard, "
                                      "silences wait this long before they count (0: never wait)")

    def settings(self) -> HealthSettings:
        return HealthSettings(reminder_s=self.reminder_s, error_share=self.error_share,
                              collapse_min_fleet=self.collapse_min_fleet, lock_hold_s=self.lock_hold_s,
                              throttle_alert_s=self.throttle_alert_s, ingest_stall_max_s=self.ingest_stall_max_s)


def health_settings_resource() -> HealthSettingsResource:
    s = HealthSettings.from_env()
    return HealthSettingsResource(reminder_s=s.reminder_s, error_share=s.error_share,
                                  collapse_min_fleet=s.collapse_min_fleet, lock_hold_s=s.lock_hold_s,
                                  throttle_alert_s=s.throttle_alert_s, ingest_stall_max_s=s.ingest_stall_max_s)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"health_settings": health_settings_resource()})
