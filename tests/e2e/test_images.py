"""/v1/images/generations against the real server and a real diffusion worker.

No diffusion checkpoint ships on PyPI, so the session builds a tiny random-weight Stable Diffusion
pipeline (../shared/MODELS.md), saves it with save_pretrained into a models folder, and serves it like any
model. Its images are noise, but real PNGs of the asked size, made by the real diffusers code path.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import OneboxServer

pytest.importorskip("diffusers", reason="the diffusion extra is not installed: pip install -e '.[diffusion]'")
Image = pytest.importorskip("PIL.Image")

pytestmark = pytest.mark.e2e

MODEL = "tiny-sd"
FP16_MODEL = "tiny-sd-fp16"  # laid out like sd-turbo: *.fp16.safetensors
WORDS = "a lighthouse at dusk red cat on mat the of in"


def build_tiny_pipeline(dest: Path, variant: str | None = None) -> Path:
    """A 2-block UNet, a 2-block VAE and a 2-layer CLIP text encoder, random weights (seeded), saved.

    With variant="fp16", saved the way sd-turbo ships: half-precision weights in *.fp16.safetensors files.
    """
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, attention_head_dim=4,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )  # fmt: skip
    vocab = {w: i for i, w in enumerate(dict.fromkeys(["<pad>", "<unk>", "<s>", "</s>", *WORDS.split()]))}
    word_level = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        model_max_length=77,
    )  # fmt: skip
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            vocab_size=len(vocab), max_position_embeddings=77, pad_token_id=0, bos_token_id=2, eos_token_id=3,
        )
    )  # fmt: skip
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    if variant == "fp16":
        pipeline.to(torch.float16)
    pipeline.save_pretrained(dest, variant=variant)
    return dest


@pytest.fixture(scope="session")
def image_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models_path = tmp_path_factory.mktemp("onebox-images") / "models"
    build_tiny_pipeline(models_path / MODEL)
    (models_path / f"{MODEL}.yaml").write_text(
        f"name: {MODEL}\nbackend: diffusion\nfile: {MODEL}\n"
        "options:\n  steps: 4\n  guidance_scale: 2.0\n  scheduler: EulerDiscreteScheduler\n"
    )
    build_tiny_pipeline(models_path / FP16_MODEL, variant="fp16")
    (models_path / f"{FP16_MODEL}.yaml").write_text(
        f"name: {FP16_MODEL}\nbackend: diffusion\nfile: {FP16_MODEL}\noptions:\n  steps: 2\n  variant: fp16\n"
    )
    (models_path / "not-images.yaml").write_text("name: not-images\nbackend: embeddings\nfile: nowhere\n")
    return models_path


@pytest.fixture(scope="session")
def image_server(image_models: Path) -> Iterator[OneboxServer]:
    generated = image_models.parent / "generated"
    srv = OneboxServer(image_models, "--generated-path", str(generated), "--threads", "2")
    yield srv
    srv.stop()


def generate(server: OneboxServer, **body: object) -> httpx.Response:
    payload = {"model": MODEL, "prompt": "a lighthouse at dusk", "size": "64x64", "seed": 7, **body}
    return httpx.post(f"{server.url}/v1/images/generations", json=payload, timeout=300)


def pngs(reply: httpx.Response) -> list[bytes]:
    assert reply.status_code == 200, reply.text
    return [base64.b64decode(item["b64_json"]) for item in reply.json()["data"]]


def assert_png(data: bytes, size: tuple[int, int]) -> None:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.verify()
    assert image.size == size


def test_b64_json_is_a_png_of_the_requested_size(image_server: OneboxServer) -> None:
    [data] = pngs(generate(image_server, size="64x96"))
    assert_png(data, (64, 96))


def test_url_is_served_by_the_server_as_the_same_png(image_server: OneboxServer) -> None:
    by_url = generate(image_server, response_format="url")
    assert by_url.status_code == 200, by_url.text
    url = by_url.json()["data"][0]["url"]
    assert url.startswith(f"{image_server.url}/v1/images/files/")
    fetched = httpx.get(url, timeout=30)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/png"
    assert_png(fetched.content, (64, 64))
    assert fetched.content == pngs(generate(image_server))[0]


def test_openai_client_generates_n_images(image_server: OneboxServer) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{image_server.url}/v1", api_key="unused", max_retries=0, timeout=300)
    result = client.images.generate(
        model=MODEL, prompt="a red cat", size="64x64", n=2, response_format="b64_json", extra_body={"seed": 3}
    )  # type: ignore[arg-type]
    assert len(result.data) == 2
    for item in result.data:
        assert_png(base64.b64decode(item.b64_json or ""), (64, 64))


def test_fp16_variant_weights_load_and_generate(image_server: OneboxServer) -> None:
    assert_png(pngs(generate(image_server, model=FP16_MODEL))[0], (64, 64))


def test_same_seed_gives_the_same_bytes(image_server: OneboxServer) -> None:
    assert pngs(generate(image_server, seed=11)) == pngs(generate(image_server, seed=11))


def test_different_seed_gives_different_bytes(image_server: OneboxServer) -> None:
    assert pngs(generate(image_server, seed=11)) != pngs(generate(image_server, seed=12))


def test_negative_prompt_and_steps_change_the_image(image_server: OneboxServer) -> None:
    plain = pngs(generate(image_server))
    assert pngs(generate(image_server, negative_prompt="cat on mat")) != plain
    assert pngs(generate(image_server, steps=2)) != plain


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"size": "65x64"}, "size"),
        ({"size": "4096x4096"}, "size"),
        ({"size": "big"}, "size"),
        ({"n": 0}, "n"),
        ({"n": 5}, "n"),
        ({"response_format": "jpeg"}, "response_format"),
        ({"model": "not-images"}, "model"),
    ],
)
def test_bad_request_is_a_400_naming_the_param(image_server: OneboxServer, body: dict, param: str) -> None:
    reply = generate(image_server, **body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


BAD_NAMES = ["../models/tiny-sd.yaml", "x.png", "%2e%2e%2fsecret.png", "A" * 32 + ".txt"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_is_not_a_generated_token_is_404(image_server: OneboxServer, name: str) -> None:
    reply = httpx.get(f"{image_server.url}/v1/images/files/{name}", timeout=30)
    assert reply.status_code == 404


def test_an_unknown_token_is_404(image_server: OneboxServer) -> None:
    reply = httpx.get(f"{image_server.url}/v1/images/files/{'A' * 32}.png", timeout=30)
    assert reply.status_code == 404
