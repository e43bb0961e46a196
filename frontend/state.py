"""Typed keys for what lives on the application (no module globals)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from frontend.config import ServerConfig
from frontend.workers.manager import ProcessManager
from onebox_common.registry import ModelRegistry

CONFIG = web.AppKey("config", ServerConfig)
REGISTRY = web.AppKey("registry", ModelRegistry)
MANAGER = web.AppKey("manager", ProcessManager)
READY = web.AppKey("ready", dict)
LISTENING = web.AppKey("listening", asyncio.Event)
