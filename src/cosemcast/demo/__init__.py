"""``cosemcast demo``: centre, head-ends and meters of EP 2671052 on loopback (:mod:`.run`)."""

from cosemcast.demo.run import DemoOptions, DemoResult, run_demo

__all__ = ["DemoOptions", "DemoResult", "run_demo"]
