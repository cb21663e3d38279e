"""The ui domain: what makes the Dagster UI a living monitoring surface.

A demo fleet of real agent processes and backdated history (so a newcomer sees data at once),
the readiness checks an operator runs before trusting the system, and launching runs through
the webserver's API so they land on the real instance.
"""
