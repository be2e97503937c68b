"""The engine process around the pure core: sequencing, the command port for gateways, the
event port for the relay and the exporter, metrics. ``EngineApp`` wires them together;
``python -m exchange`` runs it."""

from __future__ import annotations

from exchange.engine.app import EngineApp, core_config

__all__ = ["EngineApp", "core_config"]
