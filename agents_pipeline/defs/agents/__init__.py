"""One agent's story in the UI: the agent_story asset, one dynamic partition per agent."""
