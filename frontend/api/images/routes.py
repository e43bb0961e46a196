"""POST /v1/images/generations, and GET /v1/images/files/{name} for the images answered as `url`.

Extensions to OpenAI's request: `seed` (the same seed gives the same PNG bytes), `negative_prompt`,
`steps` and `guidance_scale`. `response_format` defaults to `b64_json`, which needs no stored file.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from frontend.api.capabilities import IMAGES, require
from frontend.api.images.files import GENERATED
from frontend.api.parsing import ModelName, parse_body
from frontend.config import ServerConfig
from frontend.errors import NotFound
from frontend.state import CONFIG, MANAGER
from frontend.workers.messages import ImageGeneration

routes = web.RouteTableDef()

MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 2048, 8
MAX_IMAGES = 4
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")


def parse_size(value: str) -> tuple[int, int]:
    """'512x768' -> (512, 768); each side a multiple of 8 within [64, 2048] (latent diffusion needs /8)."""
    match = SIZE.fullmatch(value)
    sides = tuple(int(side) for side in match.groups()) if match else ()
    if len(sides) != 2 or any(s % SIDE_STEP or not MIN_SIDE <= s <= MAX_SIDE for s in sides):
        raise PydanticCustomError(
            "size",
            "expected WxH, sides multiples of {step} from {low} to {high} (like 512x512), got {value!r}",
            {"step": SIDE_STEP, "low": MIN_SIDE, "high": MAX_SIDE, "value": value},
        )
    return sides  # type: ignore[return-value]


class ImageRequest(BaseModel):
    # quality, style, user, background...: OpenAI fields a diffusion model has no use for, ignored
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    prompt: str = Field(min_length=1, max_length=32000)
    n: int = Field(1, ge=1, le=MAX_IMAGES)
    size: str = "512x512"
    response_format: Literal["b64_json", "url"] = "b64_json"
    seed: int | None = None
    negative_prompt: str = ""
    steps: int | None = Field(None, ge=1, le=500)
    guidance_scale: float | None = Field(None, ge=0, le=50)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "the prompt must not be empty")
        return value

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        parse_size(value)
        return value

    def to_generation(self) -> ImageGeneration:
        width, height = parse_size(self.size)
        return ImageGeneration(
            prompt=self.prompt, width=width, height=height, n=self.n, negative_prompt=self.negative_prompt,
            steps=self.steps, seed=self.seed, guidance_scale=self.guidance_scale,
        )  # fmt: skip


def image_item(request: web.Request, png: bytes, response_format: str) -> dict:
    if response_format == "b64_json":
        return {"b64_json": base64.b64encode(png).decode()}
    name = request.app[GENERATED].save_png(png)
    path = str(request.app.router["generated_file"].url_for(name=name))
    return {"url": url_base(request.app[CONFIG]) + path}


def url_base(config: ServerConfig) -> str:
    """Where clients fetch generated files: never the request's Host header, which the client writes (a
    forged Host, through a shared cache or proxy, would hand other users links to the attacker's host).

    --public-url when set; else this server's own address, absolute as OpenAI's URLs are (clients often
    download them as they are); else, on a wildcard bind that no client can dial, relative to the server
    (OpenAI's SDKs pass the string through untouched).
    """
    if config.public_url:
        return config.public_url.rstrip("/")
    if config.host in WILDCARD_HOSTS:
        return ""
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{config.port}"


@routes.post("/v1/images/generations")
async def generations(request: web.Request) -> web.Response:
    body = await parse_body(request, ImageRequest)
    require(request, body.model, IMAGES)
    async with request.app[MANAGER].use(body.model) as worker:
        images = await worker.generate_image(body.to_generation())
    data = [image_item(request, png, body.response_format) for png in images]
    return web.json_response({"created": int(time.time()), "data": data})


@routes.get("/v1/images/files/{name}", name="generated_file")
async def generated_file(request: web.Request) -> web.FileResponse:
    path = request.app[GENERATED].find(request.match_info["name"])
    if path is None:
        raise NotFound("no such generated file (files are kept for a limited time)")
    return web.FileResponse(path, headers={"Content-Type": "image/png", "Cache-Control": "private"})
