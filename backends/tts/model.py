"""The `tts` backend: a Piper voice (VITS as an ONNX graph plus its .onnx.json config).

piper-tts is GPL-3.0, so it is an optional extra (`pip install 'onebox[tts]'`) and imported here only, in
the worker process. The model's `file` is the voice folder (or the .onnx file itself); `options.onnx_file`
names the graph when the folder holds more than one. `voice` picks a speaker of a multi-speaker voice and
is otherwise ignored: the model is the voice, as an OpenAI voice name says nothing about a Piper model.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import grpc
import numpy as np

from backends.errors import InvalidRequest, LoadFailed
from backends.options import load_options
from backends.tts.encode import encode
from onebox_common.options import TtsOptions
from onebox_proto import backend_pb2 as pb

log = logging.getLogger("onebox.worker.tts")


class PiperModel:
    def __init__(self, request: pb.LoadModelRequest) -> None:
        try:
            from piper import PiperVoice
        except ImportError:
            raise LoadFailed("the tts backend needs piper-tts (GPL-3.0): pip install 'onebox[tts]'") from None
        started = time.perf_counter()
        onnx = find_onnx(Path(request.model_path), load_options(TtsOptions, request.options_json).onnx_file)
        config = onnx.with_name(onnx.name + ".json")
        self._voice = PiperVoice.load(str(onnx), config_path=str(config), use_cuda=False)
        self._speakers: dict[str, int] = self._voice.config.speaker_id_map or {}
        self._load_seconds = time.perf_counter() - started
        log.info("piper voice %s, %d Hz, %d speakers", onnx.name, self._voice.config.sample_rate,
                 max(1, len(self._speakers)))  # fmt: skip

    def describe(self) -> pb.LoadModelResponse:
        return pb.LoadModelResponse(load_seconds=self._load_seconds)

    def Synthesize(
        self, request: pb.SynthesizeRequest, context: grpc.ServicerContext
    ) -> pb.SynthesizeResponse:
        from piper import SynthesisConfig

        if not request.text.strip():
            raise InvalidRequest("'input' has nothing to speak", param="input")
        settings = SynthesisConfig(
            speaker_id=self._speakers.get(request.voice), length_scale=1.0 / (request.speed or 1.0)
        )
        chunks = []
        for chunk in self._voice.synthesize(request.text, syn_config=settings):
            if not context.is_active():  # the client went away: stop speaking
                break
            chunks.append(chunk.audio_int16_array)
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        audio, content_type = encode(samples, self._voice.config.sample_rate, request.format or "wav")
        return pb.SynthesizeResponse(audio=audio, content_type=content_type)


def find_onnx(path: Path, name: str | None) -> Path:
    if path.is_file():
        return path
    if name:
        candidate = (path / name).resolve()
        if not candidate.is_relative_to(path.resolve()) or not candidate.is_file():
            raise LoadFailed(f"option onnx_file {name!r} is not a file inside {path}")
        return candidate
    graphs = sorted(path.glob("*.onnx"))
    if len(graphs) != 1:
        raise LoadFailed(f"{path} holds {len(graphs)} .onnx files; name one with options.onnx_file")
    return graphs[0]
