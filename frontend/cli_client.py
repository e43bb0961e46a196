"""`onebox ps` and `onebox chat`: a terminal client of a running server.

Plain HTTP through the standard library (urllib), with no event loop: a Ctrl-C then arrives as a
KeyboardInterrupt wherever a read waits, which is how `chat` stops an answer and keeps the conversation.
What these commands write to stdout is their product, not a log, so it is written, not logged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPResponse
from typing import TextIO

from onebox_common.units import format_bytes

DEFAULT_URL = "http://127.0.0.1:8080"
PROMPT = ">>> "
PS_TIMEOUT = 10.0
# between two bytes of an answer: a first request may load the model, and a long prompt takes a while
CHAT_READ_TIMEOUT = 300.0
PS_HEADERS = ("MODEL", "STATE", "PID", "MEMORY", "IN FLIGHT", "REQUESTS", "IDLE")

Env = Callable[[str, str | None], str | None]


class ClientError(Exception):
    """What the server answered instead (its error message), or that no server answered."""


class Unreachable(ClientError):
    pass


def add_client_parsers(commands: argparse._SubParsersAction, env: Env) -> None:
    ps = commands.add_parser("ps", help="list the models a running server has loaded")
    add_connection_flags(ps, env)
    chat = commands.add_parser("chat", help="chat with a model of a running server in the terminal")
    chat.add_argument("model", help="the model to talk to (onebox models list, or GET /v1/models)")
    chat.add_argument("--system", help="a system message to start the conversation with")
    chat.add_argument("--max-tokens", type=int, help="longest answer, in tokens (default: the model's)")
    chat.add_argument("--temperature", type=float, help="sampling temperature (default: the model's)")
    add_connection_flags(chat, env)


def add_connection_flags(parser: argparse.ArgumentParser, env: Env) -> None:
    parser.add_argument(
        "--url",
        default=env("URL", DEFAULT_URL),
        help=f"the server's address (ONEBOX_URL; default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key", default=env("API_KEY", ""), help="one of the server's --api-keys (ONEBOX_API_KEY)"
    )


@dataclass(frozen=True)
class Server:
    url: str
    api_key: str = ""

    def open(self, path: str, body: dict | None = None, timeout: float = PS_TIMEOUT) -> HTTPResponse:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, headers=headers)
        # no proxy: the server is this machine or one beside it, never behind the proxy of $http_proxy
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            return opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            raise ClientError(error_message(error)) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise Unreachable(
                f"no onebox server answers at {self.url} ({reason}); start one with `onebox run`, "
                "or point --url (ONEBOX_URL) at it"
            ) from None

    def get_json(self, path: str) -> dict:
        with self.open(path) as response:
            return json.load(response)


def error_message(error: urllib.error.HTTPError) -> str:
    """The message of an OpenAI-shaped error body, else the status line."""
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        return str(json.loads(error.read())["error"]["message"])
    return f"HTTP {error.code} {error.reason}"


def main(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    server = Server(args.url, args.api_key)
    try:
        if args.command == "ps":
            out.write(ps_table(server.get_json("/backend/monitor")["workers"]))
            return 0
        return chat(server, args, out, err)
    except ClientError as error:
        err.write(f"onebox {args.command}: {error}\n")
        return 1


# --- ps ---------------------------------------------------------------------------------------------


def ps_table(workers: list[dict]) -> str:
    rows = [PS_HEADERS, *(ps_row(w) for w in workers)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(PS_HEADERS))]
    lines = ["   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "".join(line.rstrip() + "\n" for line in lines)


def ps_row(worker: dict) -> tuple[str, ...]:
    busy = worker["in_flight"] > 0 or worker["state"] != "ready"
    return (
        worker["model"],
        worker["state"],
        str(worker["pid"]),
        format_bytes(worker["resident_bytes"]) if worker["resident_bytes"] else "-",
        str(worker["in_flight"]),
        str(worker["requests_served"]),
        "-" if busy else format_seconds(worker["idle_seconds"]),
    )


def format_seconds(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole // 60 % 60:02d}m"


# --- chat -------------------------------------------------------------------------------------------


def chat(server: Server, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    server.get_json(f"/v1/models/{urllib.parse.quote(args.model, safe='')}")  # the server's 404, up front
    # Ctrl-C stops an answer. Python raises KeyboardInterrupt only if SIGINT was neither ignored nor blocked
    # when it started, and a parent may leave it so (a shell for a command started in the background)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    messages = [{"role": "system", "content": args.system}] if args.system else []
    while (text := read_turn(interactive, out)) is not None:
        if not text:
            continue
        messages.append({"role": "user", "content": text})
        answer = answer_turn(server, request_body(args, messages), out, err)
        if answer:
            messages.append({"role": "assistant", "content": answer})
        else:
            messages.pop()  # nothing came back: the question is not part of the conversation
    return 0


def read_turn(interactive: bool, out: TextIO) -> str | None:
    """The next message, "" for nothing to send, None to leave (/bye or end of input)."""
    while True:
        try:
            text = input(PROMPT if interactive else "").strip()
        except EOFError:
            if interactive:
                out.write("\n")
            return None
        except KeyboardInterrupt:
            out.write("\nUse Ctrl-D or /bye to leave.\n")
            continue
        return None if text == "/bye" else text


def request_body(args: argparse.Namespace, messages: list[dict]) -> dict:
    body: dict = {"model": args.model, "messages": messages, "stream": True}
    if args.max_tokens is not None:
        body["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        body["temperature"] = args.temperature
    return body


def answer_turn(server: Server, body: dict, out: TextIO, err: TextIO) -> str:
    """Print the answer as it streams and return it; Ctrl-C stops it (closing the connection stops the
    generation on the server) and keeps what was shown. A server error is reported and the turn dropped;
    a server that went away ends the chat."""
    pieces: list[str] = []
    stream = stream_answer(server, body)
    try:
        with contextlib.closing(stream):  # closed at once on Ctrl-C, and with it the connection
            for piece in stream:
                out.write(piece)
                out.flush()
                pieces.append(piece)
    except KeyboardInterrupt:
        out.write("\n[stopped]")
    except Unreachable:
        raise
    except ClientError as error:
        out.write("\n" if pieces else "")
        err.write(f"error: {error}\n")
        return ""
    out.write("\n\n" if sys.stdin.isatty() else "\n")
    out.flush()
    return "".join(pieces)


def stream_answer(server: Server, body: dict) -> Iterator[str]:
    with server.open("/v1/chat/completions", body, timeout=CHAT_READ_TIMEOUT) as response:
        for raw in response:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line.startswith("data:"):
                continue
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                return
            event = json.loads(data)
            if "error" in event:
                raise ClientError(event["error"].get("message", "the server reported an error"))
            for choice in event.get("choices", []):
                yield (choice.get("delta") or {}).get("content") or ""
