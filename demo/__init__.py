"""``make demo``: a local Flywheel stand-in, the agent and sample studies, end to end.

Not part of the product: the agent (``fwagent``) never imports it.
"""

from .run import main, run_demo

__all__ = ["main", "run_demo"]
