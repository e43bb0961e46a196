"""Typed keys for what lives on the application (no module globals)."""

from __future__ import annotations

from aiohttp import web

from frontend.config import ModelRegistry, ServerConfig
from frontend.manager import ProcessManager

CONFIG = web.AppKey("config", ServerConfig)
REGISTRY = web.AppKey("registry", ModelRegistry)
MANAGER = web.AppKey("manager", ProcessManager)
READY = web.AppKey("ready", dict)
