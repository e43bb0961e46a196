"""Transcriptions rendered in OpenAI's response formats: json, text, srt, vtt and verbose_json."""

from __future__ import annotations

import math

from aiohttp import web

from frontend.workers.messages import Segment, Transcription


def render(result: Transcription, response_format: str, task: str, words: bool) -> web.Response:
    if response_format == "text":
        return web.Response(text=result.text + "\n", content_type="text/plain")
    if response_format == "srt":
        return web.Response(text=srt(result.segments), content_type="application/x-subrip")
    if response_format == "vtt":
        return web.Response(text=vtt(result.segments), content_type="text/vtt")
    if response_format == "verbose_json":
        return web.json_response(verbose(result, task, words))
    usage = {"type": "duration", "seconds": math.ceil(result.duration)}
    return web.json_response({"text": result.text, "usage": usage})


def verbose(result: Transcription, task: str, words: bool) -> dict:
    body: dict = {
        "task": task,
        "language": result.language,
        "duration": round(result.duration, 3),
        "text": result.text,
        "segments": [segment_json(i, s) for i, s in enumerate(result.segments)],
    }
    if words:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for s in result.segments
            for w in s.words
        ]
    return body


def segment_json(index: int, segment: Segment) -> dict:
    return {
        "id": index,  # faster-whisper counts from 1, OpenAI from 0
        "seek": 0,
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text,
        "tokens": list(segment.tokens),
        "temperature": segment.temperature,
        "avg_logprob": segment.avg_logprob,
        "compression_ratio": segment.compression_ratio,
        "no_speech_prob": segment.no_speech_prob,
    }


def srt(segments: tuple[Segment, ...]) -> str:
    blocks = [
        f"{i}\n{timestamp(s.start, ',')} --> {timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(segments, start=1)
    ]
    return "\n".join(blocks)


def vtt(segments: tuple[Segment, ...]) -> str:
    blocks = [f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{s.text.strip()}\n" for s in segments]
    return "WEBVTT\n\n" + "\n".join(blocks)


def timestamp(seconds: float, separator: str) -> str:
    """12.5 -> '00:00:12,500' (SRT) or '00:00:12.500' (VTT)."""
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"
