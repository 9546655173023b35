"""The software meter: a DLMS/COSEM server built from the cosemcast layers.

Theory of operation. A TOML configuration (:mod:`cosemcast.meter.config`; the shipped
default describes a typical electricity meter) is turned into one COSEM object model per
logical device (:mod:`cosemcast.meter.build`). :class:`SoftwareMeter` answers requests
through the association layer, advances in injected time (energy registers integrate their
load curve, profiles capture on their period, push setups push) and keeps its state in
SQLite (:mod:`cosemcast.meter.state`) so that a restart loses nothing.
:mod:`cosemcast.meter.serve` runs it over TCP, UDP and serial lines.
"""

from cosemcast.meter.config import MeterConfig, default_config_text, load_config
from cosemcast.meter.meter import MeterSession, SoftwareMeter

__all__ = ["MeterConfig", "MeterSession", "SoftwareMeter", "default_config_text", "load_config"]
