"""The hostile-agent suite: every attack on the agent boundary, run as the agent login holding a
valid token for its own agent ('mallory'), while 20 honest agents heartbeat through SharedState
as the same login and one honest agent goes silent. A real evaluator loop (health evaluation,
boundary checks, delivery to a real webhook receiver) runs the whole time.

One timeline is shared by every test of this package (a package fixture in conftest.py): an idle
phase measures the honest heartbeats' latency, then the attack phase measures it again while
mallory attacks (mallory.py). The tests are grouped by what they judge: the fleet's service
during the attack, row locks, rate limits and connection floods, size caps and privileges, and
what one agent can learn of or change for another.
"""
