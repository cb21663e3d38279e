"""The live test: the whole stack for N minutes under injected faults, and its report (issue #19)."""
