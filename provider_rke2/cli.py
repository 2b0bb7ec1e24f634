"""The edge: argv, stdin, stdout, exit codes and the real filesystem live here only.

    agent-provider-rke2 EVENT          one JSON event on stdin, one JSON response on stdout
    agent-provider-rke2 render [FILE]  print what agent.boot would write for a cloud-config

Exit status of event mode: 0 whenever a response object was written, errors
included (the agent reads `error` from it; a non-zero status would make it
discard the response and report "error while executing plugin" instead);
1 only when the response itself could not be written.
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from typing import List, Optional, TextIO

from provider_rke2 import __version__
from provider_rke2.errors import ConfigError, ProviderError
from provider_rke2.protocol import MAX_EVENT_BYTES, Response, parse_event

USAGE = """\
usage: agent-provider-rke2 EVENT < event.json
       agent-provider-rke2 render [FILE|-]
       agent-provider-rke2 --help | --version

Kairos cluster provider for RKE2.

  EVENT          an event name from the Kairos agent (agent.boot, ...); reads one JSON
                 event on stdin and writes one JSON response on stdout
  render FILE    print, byte for byte, what agent.boot would write for the cloud-config
                 in FILE (or stdin, with '-' or no FILE); problems go to stderr
"""


class LocalNode:
    """The real machine."""

    def read_text(self, path: str) -> str:
        with open(path, encoding="utf-8") as handle:
            return handle.read(MAX_EVENT_BYTES + 1)

    def write_private(self, path: str, text: str) -> None:
        from provider_rke2.fsio import replace_file

        replace_file(path, text.encode("utf-8"), 0o600)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write(USAGE)
        return 2
    first = args[0]
    if first in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if first in ("-V", "--version"):
        sys.stdout.write(f"agent-provider-rke2 {__version__}\n")
        return 0
    if first == "render":
        return render_command(args[1:], sys.stdin, sys.stdout, sys.stderr)
    if first.startswith("-") or len(args) > 1:
        sys.stderr.write(USAGE)
        return 2
    channel = _claim_stdout()
    response = run_event(first, _read_stdin(), LocalNode())
    try:
        channel.write(response.to_json() + "\n")
        channel.flush()
    except OSError:
        return 1
    return 0


def run_event(name: str, stdin_text: str, node: object) -> Response:
    """The one place where every failure becomes a response; nothing escapes as a traceback."""
    from provider_rke2 import provider

    stray = io.StringIO()
    try:
        with redirect_stdout(stray), redirect_stderr(stray):
            response = provider.handle(parse_event(stdin_text, name), node)  # type: ignore[arg-type]
    except ProviderError as err:
        response = Response(state="error", error=str(err))
    except Exception as err:  # noqa: BLE001 - a bug must still answer the agent in JSON
        response = Response(state="error", error=f"internal error: {type(err).__name__}: {err}")
    captured = stray.getvalue().strip()
    if captured:
        log = "\n".join(part for part in (response.log, captured) if part)
        response = Response(response.state, response.data, response.error, log)
    return response


def render_command(args: List[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    if len(args) > 1 or (args and args[0].startswith("-") and args[0] != "-"):
        if args and args[0] in ("-h", "--help"):
            stdout.write(USAGE)
            return 0
        stderr.write(USAGE)
        return 2
    source = args[0] if args else "-"
    try:
        if source == "-":
            text = stdin.read()
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        stderr.write(f"error: cannot read {source}: {getattr(err, 'strerror', None) or err}\n")
        return 2
    from provider_rke2.render import OUTPUT_MODE, render

    try:
        rendered = render(text)
    except ConfigError as err:
        for problem in err.problems:
            stderr.write(f"error: {problem}\n")
        return 1
    except ProviderError as err:
        stderr.write(f"error: {err}\n")
        return 1
    if rendered is None:
        stderr.write("no cluster section: agent.boot would write nothing\n")
        return 0
    for warning in rendered.warnings:
        stderr.write(f"warning: {warning}\n")
    stderr.write(f"# agent.boot would write this to {rendered.path} (mode {OUTPUT_MODE:04o})\n")
    stdout.write(rendered.text)
    return 0


def _claim_stdout() -> TextIO:
    """Keep fd 1 for the response alone: anything else that writes there goes to stderr."""
    try:
        fd = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        return sys.stdout
    sys.stdout = os.fdopen(1, "w", closefd=False)
    return os.fdopen(fd, "w", encoding="utf-8")


def _read_stdin() -> str:
    try:
        stream = sys.stdin.buffer if sys.stdin is not None else None
        data = stream.read(MAX_EVENT_BYTES + 1) if stream is not None else b""
    except (OSError, ValueError):
        return ""
    return data.decode("utf-8", errors="replace")
