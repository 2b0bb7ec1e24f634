"""The edge: argv, stdin, stdout and exit codes live here only.

    agent-provider-rke2 EVENT                one JSON event on stdin, one JSON response on stdout
    agent-provider-rke2 VERB ...             an operator's verb (provider_rke2.verbs.commands)

Exit status of event mode: 0 whenever a response object was written, errors
included (the agent reads `error` from it; a non-zero status would make it
discard the response and report "error while executing plugin" instead);
1 only when the response itself could not be written; 2 for a usage error.
"""

from __future__ import annotations

import os
import sys

from provider_rke2.names import COMMANDS, MAX_EVENT_BYTES, STDIN_DEADLINE

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import List, Optional, Set, TextIO, Union

    from provider_rke2.agent.protocol import Response
    from provider_rke2.agent.provider import Context
    from provider_rke2.core.errors import ProviderError
    from provider_rke2.core.paths import Paths
    from provider_rke2.machine import Machine

# Only os, sys and the event names at the top: most events are not ours, and
# their answer must cost no more than starting Python. Everything else is
# imported where it is needed.


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] not in COMMANDS and not args[0].startswith("-") and len(args) == 1:
        return event_mode(args[0])
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:  # a verb started with it closed: its words go nowhere, quietly
            setattr(sys, name, open(os.devnull, "w"))
    try:
        return command_mode(args, sys.stdin, sys.stdout, sys.stderr)
    except SystemExit as done:  # argparse's --help, --version and usage errors
        return done.code if isinstance(done.code, int) else 2


def event_mode(name: str) -> int:
    from provider_rke2.names import EMPTY_RESPONSE, HANDLED

    if name not in HANDLED:
        _read_stdin(STDIN_DEADLINE)  # drained, so the agent's write never meets a closed pipe
        sys.stdout.write(EMPTY_RESPONSE + "\n")
        sys.stdout.flush()
        return 0
    import _signal  # `signal` without the enum classes it builds on import (0.5 ms a boot)

    from provider_rke2.machine.node import LocalNode
    from provider_rke2.machine.process import at_a_terminal, terminates

    # Terminated mid-write, the cleanup in `finally` blocks must still run: no
    # temporary file is left behind, and the earlier output stays as it was.
    _signal.signal(_signal.SIGTERM, terminates("the event"))
    if at_a_terminal(sys.stdin):  # a person, not the agent: say what is awaited
        sys.stderr.write(
            f"agent-provider-rke2 {name}: reading one JSON event from stdin (end it with Ctrl-D);"
            " see `agent-provider-rke2 --help`\n"
        )
    channel = _claim_stdout()
    deadline = None if at_a_terminal(sys.stdin) else STDIN_DEADLINE  # a person types at their pace
    response = run_event(name, _read_stdin(deadline), LocalNode())
    if channel is None:  # stdout was closed: nobody to answer
        return 1
    try:
        channel.write(response.to_json() + "\n")
        channel.flush()
    except (OSError, ValueError):
        return 1
    return 0


def run_event(name: str, stdin_text: Optional[str], node: Machine) -> Response:
    """The one place where every failure becomes a response; nothing escapes as a traceback.
    `stdin_text` None: the event never ended (stdin held open past its deadline)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from provider_rke2.agent import provider
    from provider_rke2.agent.protocol import EventError, Response, parse_event
    from provider_rke2.core.errors import ProviderError
    from provider_rke2.core.paths import Paths

    context = provider.Context()
    stray = io.StringIO()
    try:
        if stdin_text is None:
            raise EventError(
                f"no whole event on stdin within {STDIN_DEADLINE:.0f} s: the sender never closed it"
            )
        with redirect_stdout(stray), redirect_stderr(stray):
            response = provider.handle(parse_event(stdin_text, name), node, context)
    except ProviderError as err:
        # Every warning too, as a boot that succeeds lists them (the hints are in the error).
        warnings = getattr(err, "warnings", ())
        response = Response(state="error", error=str(err), log="\n".join(f"warning: {w}" for w in warnings))
    except Exception as err:  # noqa: BLE001 - a bug must still answer the agent in JSON
        response = Response(state="error", error=f"internal error: {type(err).__name__}: {err}")
    response = _scrubbed(response.noted(stray.getvalue().strip()), context.secrets)
    try:
        try:  # the root the handler found, else the node's: the logs are where its paths say
            logs: Union[Paths, ProviderError] = Paths((context.root or node.stylus_root()).path)
        except ProviderError as err:
            logs = err
        return _logged(name, _emitted(name, response, context, node, logs), context, node, logs)
    except Exception as err:  # noqa: BLE001 - bookkeeping must never cost the agent its answer
        return response.noted(f"warning: events or log not written: internal error: {type(err).__name__}")


def _emitted(
    name: str, response: Response, context: Context, node: Machine, logs: Union[Paths, ProviderError]
) -> Response:
    """Write the handler's events, and an `error` event for a failure; never fails the event."""
    from provider_rke2.core.errors import ProviderError
    from provider_rke2.core.secrets import scrub
    from provider_rke2.machine import eventlog

    events = list(context.events)
    if response.error:
        events.append((eventlog.ERROR, response.error))
    if not events:
        return response
    if isinstance(logs, ProviderError):
        return response.noted("\n".join(f"warning: event lost: {kind} ({logs})" for kind, _ in events))
    lost = []
    for kind, message in events:
        entry = eventlog.record(kind, scrub(message, context.secrets), context.role, name)
        try:
            node.emit(logs.events_log, entry)
        except ProviderError as err:
            lost.append(f"warning: event lost: {kind} ({err})")
    return response.noted("\n".join(lost))


def _scrubbed(response: Response, secrets: Set[str]) -> Response:
    """The one place secrets are removed: every field but `state`, just before anything leaves."""
    from provider_rke2.agent.protocol import Response
    from provider_rke2.core.secrets import scrub

    # Never the protocol's own word: a short secret must not turn "success" into "succ<redacted>ss".
    return Response(
        response.state, *(scrub(text, secrets) for text in (response.data, response.error, response.log))
    )


def _logged(
    name: str, response: Response, context: Context, node: Machine, logs: Union[Paths, ProviderError]
) -> Response:
    """Append the (already scrubbed) outcome to the provider log; never fails the event."""
    from provider_rke2 import __version__
    from provider_rke2.core.errors import ProviderError
    from provider_rke2.machine.eventlog import now

    lines = [
        ("warning", line[9:]) if line.startswith("warning: ") else ("info", line)
        for line in response.log.splitlines()
    ]
    if response.error:
        lines.append(("error", response.error))
    if not lines:
        return response
    from provider_rke2.core.errors import printable

    # One record a line: nothing from the input (a role, a key) can start a line of its own.
    head = f"{now()} provider-rke2/{__version__} {printable(name)} role={printable(context.role or '-')}"
    text = "".join(f"{head} {level}: {printable(message)}\n" for level, message in lines)
    if isinstance(logs, ProviderError):
        return response.noted(f"warning: provider log not written: {logs}")
    try:
        node.append_log(logs.provider_log, text)
    except ProviderError as err:
        return response.noted(f"warning: provider log not written: {err}")
    return response


def command_mode(args: List[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """An operator's verb: parsed, run against this machine, its errors reported on stderr."""
    from provider_rke2.core.errors import ConfigError, ProviderError
    from provider_rke2.machine.node import LocalNode
    from provider_rke2.verbs import commands

    parser = commands.build_parser()
    options = parser.parse_args(args)
    if options.command is None:
        parser.print_usage(stderr)
        return 2
    node = LocalNode(options.stylus_root)
    try:
        return commands.VERBS[options.command].run(options, node, commands.Streams(stdin, stdout, stderr))
    except ConfigError as err:
        for problem in err.problems:
            stderr.write(f"error: {problem}\n")
        return 1
    except ProviderError as err:
        stderr.write(f"error: {err}\n")
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to tell it, and no traceback. Python
        # flushes stdout once more at exit: point it where that cannot fail again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 1


def _claim_stdout() -> Optional[TextIO]:
    """Keep fd 1 for the response alone: anything else that writes there goes to stderr.
    None when there is no stdout at all (closed by the caller)."""
    try:
        fd = os.dup(1)
    except OSError:
        return None
    try:
        os.dup2(2, 1)
        sys.stdout = os.fdopen(1, "w", closefd=False)
    except OSError:
        pass  # no stderr to send stray output to: fd 1 stays as it was
    return os.fdopen(fd, "w", encoding="utf-8")


def _read_stdin(deadline: Optional[float] = None) -> Optional[str]:
    """The event as sent: up to its end, MAX_EVENT_BYTES + 1 at most; None when the sender has
    not ended it within `deadline` seconds (a sender that never closes stdin must not hold
    the boot forever)."""
    import select
    import time

    chunks: List[bytes] = []
    size = 0
    end = time.monotonic() + (deadline if deadline is not None else float("inf"))
    try:
        fd = sys.stdin.fileno() if sys.stdin is not None else -1
        while fd >= 0 and size <= MAX_EVENT_BYTES:
            left = end - time.monotonic()
            if left <= 0:
                return None
            if not select.select([fd], [], [], min(left, 3600.0))[0]:
                continue
            chunk = os.read(fd, min(1 << 20, MAX_EVENT_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (OSError, ValueError):
        pass
    # Undecodable bytes are kept (as lone surrogates) so that the event is refused by name.
    return b"".join(chunks).decode("utf-8", errors="surrogateescape")
