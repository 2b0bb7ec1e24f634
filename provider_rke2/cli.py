"""The edge: argv, stdin, stdout and exit codes live here only.

    agent-provider-rke2 EVENT                one JSON event on stdin, one JSON response on stdout
    agent-provider-rke2 render [FILE]        what agent.boot would write for a cloud-config
    agent-provider-rke2 paths | mode         where RKE2 lives on this node, and why
    agent-provider-rke2 paths --env          the node scripts' paths (rke2-paths.env)
    agent-provider-rke2 upgrade --artifacts DIR   RKE2 replaced in place, rolled back if not ready

Exit status of event mode: 0 whenever a response object was written, errors
included (the agent reads `error` from it; a non-zero status would make it
discard the response and report "error while executing plugin" instead);
1 only when the response itself could not be written; 2 for a usage error.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, List, Optional, Set, TextIO

if TYPE_CHECKING:
    from provider_rke2.protocol import Response
    from provider_rke2.provider import Context

from provider_rke2.events import MAX_EVENT_BYTES

# Only os, sys and the event names at the top: most events are not ours, and
# their answer must cost no more than starting Python. Everything else is
# imported where it is needed.

COMMANDS = ("render", "validate", "paths", "mode", "events", "status", "wait-ready", "upgrade", "no-proxy")


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] not in COMMANDS and not args[0].startswith("-") and len(args) == 1:
        return event_mode(args[0])
    try:
        return command_mode(args, sys.stdin, sys.stdout, sys.stderr)
    except SystemExit as done:  # argparse's --help, --version and usage errors
        return done.code if isinstance(done.code, int) else 2


def event_mode(name: str) -> int:
    from provider_rke2.events import EMPTY_RESPONSE, HANDLED

    if name not in HANDLED:
        _read_stdin()  # drained, so the agent's write never meets a closed pipe
        sys.stdout.write(EMPTY_RESPONSE + "\n")
        sys.stdout.flush()
        return 0
    import signal

    from provider_rke2.node import LocalNode

    # Terminated mid-write, the cleanup in `finally` blocks must still run: no
    # temporary file is left behind, and the earlier output stays as it was.
    signal.signal(signal.SIGTERM, _terminated)
    if _at_a_terminal(sys.stdin):  # a person, not the agent: say what is awaited
        sys.stderr.write(
            f"agent-provider-rke2 {name}: reading one JSON event from stdin (end it with Ctrl-D);"
            " see `agent-provider-rke2 --help`\n"
        )
    channel = _claim_stdout()
    response = run_event(name, _read_stdin(), LocalNode())
    if channel is None:  # stdout was closed: nobody to answer
        return 1
    try:
        channel.write(response.to_json() + "\n")
        channel.flush()
    except (OSError, ValueError):
        return 1
    return 0


def run_event(name: str, stdin_text: str, node: object) -> Response:
    """The one place where every failure becomes a response; nothing escapes as a traceback."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from provider_rke2 import provider
    from provider_rke2.errors import ProviderError
    from provider_rke2.protocol import Response, parse_event

    context = provider.Context()
    stray = io.StringIO()
    try:
        with redirect_stdout(stray), redirect_stderr(stray):
            response = provider.handle(parse_event(stdin_text, name), node, context)  # type: ignore[arg-type]
    except ProviderError as err:
        response = Response(state="error", error=str(err))
    except Exception as err:  # noqa: BLE001 - a bug must still answer the agent in JSON
        response = Response(state="error", error=f"internal error: {type(err).__name__}: {err}")
    response = _scrubbed(response.noted(stray.getvalue().strip()), context.secrets)
    try:
        return _logged(name, _emitted(name, response, context, node), context, node)
    except Exception as err:  # noqa: BLE001 - bookkeeping must never cost the agent its answer
        return response.noted(f"warning: events or log not written: internal error: {type(err).__name__}")


def _emitted(name: str, response: Response, context: Context, node: object) -> Response:
    """Write the handler's events, and an `error` event for a failure; never fails the event."""
    from provider_rke2 import eventlog
    from provider_rke2.errors import ProviderError
    from provider_rke2.paths import Paths
    from provider_rke2.secrets import scrub

    events = list(context.events)
    if response.error:
        events.append((eventlog.ERROR, response.error))
    if not events:
        return response
    try:
        path = Paths((context.root or node.stylus_root()).path).events_log  # type: ignore[attr-defined]
    except ProviderError as err:
        return response.noted("\n".join(f"warning: event lost: {kind} ({err})" for kind, _ in events))
    lost = []
    for kind, message in events:
        entry = eventlog.record(kind, scrub(message, context.secrets), context.role, name)
        try:
            node.emit(path, entry)  # type: ignore[attr-defined]
        except ProviderError as err:
            lost.append(f"warning: event lost: {kind} ({err})")
    return response.noted("\n".join(lost))


def _scrubbed(response: Response, secrets: Set[str]) -> Response:
    """The one place secrets are removed: every field but `state`, just before anything leaves."""
    from provider_rke2.protocol import Response
    from provider_rke2.secrets import scrub

    # Never the protocol's own word: a short secret must not turn "success" into "succ<redacted>ss".
    return Response(
        response.state, *(scrub(text, secrets) for text in (response.data, response.error, response.log))
    )


def _logged(name: str, response: Response, context: Context, node: object) -> Response:
    """Append the (already scrubbed) outcome to the provider log; never fails the event."""
    from provider_rke2 import __version__
    from provider_rke2.errors import ProviderError
    from provider_rke2.eventlog import now
    from provider_rke2.paths import Paths

    lines = [
        ("warning", line[9:]) if line.startswith("warning: ") else ("info", line)
        for line in response.log.splitlines()
    ]
    if response.error:
        lines.append(("error", response.error))
    if not lines:
        return response
    from provider_rke2.errors import printable

    # One record a line: nothing from the input (a role, a key) can start a line of its own.
    stamp, role = now(), printable(context.role or "-")
    text = "".join(
        f"{stamp} provider-rke2/{__version__} {printable(name)} role={role} {level}: {printable(message)}\n"
        for level, message in lines
    )
    try:
        root = context.root or node.stylus_root()  # type: ignore[attr-defined]
        node.append_log(Paths(root.path).provider_log, text)  # type: ignore[attr-defined]
    except ProviderError as err:
        return response.noted(f"warning: provider log not written: {err}")
    return response


def command_mode(args: List[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    import argparse

    from provider_rke2 import __version__
    from provider_rke2.errors import ConfigError, ProviderError

    parser = argparse.ArgumentParser(
        prog="agent-provider-rke2",
        description="Kairos cluster provider for RKE2. Run with an event name as the only"
        " argument, it answers the Kairos agent: one JSON event on stdin, one JSON response on stdout.",
    )
    parser.add_argument("--version", action="version", version=f"agent-provider-rke2 {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="{render,validate,paths,mode,events,status,wait-ready,upgrade}"
    )
    root_help = "STYLUS_ROOT to use (default: /etc/spectro/environment, then $STYLUS_ROOT, then /)"
    render = commands.add_parser(
        "render",
        help="print what agent.boot would write for a cloud-config",
        description="Print, byte for byte, what agent.boot would write for the cloud-config in FILE"
        " (stdin with '-' or no FILE). Warnings and problems go to stderr. Exit 0 rendered,"
        " 1 the config has problems, 2 usage or unreadable file.",
    )
    render.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    render.add_argument(
        "--fresh",
        action="store_true",
        help="render as for a node with no state yet (no fingerprint key, recorded data dir or drop-ins)",
    )
    render.add_argument("--stylus-root", metavar="PATH", type=_root_flag, help=root_help)
    validate = commands.add_parser(
        "validate",
        help="report every problem of a cloud-config, at its line",
        description="Check the cluster section of the cloud-config in FILE (stdin with '-'): the section's"
        " schema, the RKE2 config against RKE2's options, and the render. Prints the file with each problem"
        " marked at its line (E1, W1, ...) and listed below, or a JSON report with --format json."
        " Exit 0 no errors (warnings allowed), 1 errors, 2 usage or unreadable file.",
    )
    validate.add_argument("file", metavar="FILE|-")
    validate.add_argument("--format", choices=("annotate", "json"), default="annotate")
    validate.add_argument("--stylus-root", metavar="PATH", type=_root_flag, help=root_help)
    paths = commands.add_parser(
        "paths",
        help="print every RKE2 path for the resolved root",
        description="Print every RKE2 path for the resolved root; with --env, the node scripts' paths"
        " (this node's data dir included) as the rke2-paths.env file that every boot lays beside them.",
    )
    paths.add_argument("--env", action="store_true", help="the node scripts' paths, as rke2-paths.env")
    paths.add_argument("--json", action="store_true", help="a JSON object (README: paths --json)")
    paths.add_argument("--stylus-root", metavar="PATH", type=_root_flag, help=root_help)
    mode_text = "appliance or agent mode, with the evidence"
    mode_parser = commands.add_parser("mode", help=mode_text, description=mode_text)
    mode_parser.add_argument("--json", action="store_true", help="a JSON object (README: mode --json)")
    mode_parser.add_argument("--stylus-root", metavar="PATH", type=_root_flag, help=root_help)
    events = commands.add_parser(
        "events",
        help="the event log, as a table or JSON lines",
        description="Print the event log (<root>/var/log/provider-rke2/events.jsonl), oldest first.",
    )
    from provider_rke2.eventlog import TYPES
    from provider_rke2.timespec import INSTANT_FORMS

    events.add_argument(
        "--type",
        dest="kind",
        choices=TYPES,
        metavar="TYPE",
        help=f"only events of this type: {', '.join(TYPES)}",
    )
    events.add_argument(
        "--since", metavar="TIME", type=_since, help=f"only events at or after TIME: {INSTANT_FORMS}"
    )
    events.add_argument("--json", action="store_true", help="raw JSON lines instead of a table")
    events.add_argument("--follow", action="store_true", help="keep printing new events until interrupted")
    events.add_argument("--stylus-root", metavar="PATH", type=_root_flag, help=root_help)
    status = commands.add_parser("status", help="mode, role, data dir, RKE2 units, last event of each type")
    status.add_argument("--json", action="store_true", help="a JSON object (README: status --json)")
    status.add_argument("--stylus-root", metavar="PATH", type=_root_flag, help=root_help)
    # Run by the readiness watcher's transient unit at every boot; by people to check a node.
    ready = commands.add_parser(
        "wait-ready",
        help="wait until RKE2 answers on this node; print and record the outcome",
        description="Wait until RKE2 answers on this node (the kubelet's healthz; on servers the supervisor's"
        " ping over the cluster's TLS); print the outcome and the last probe's answers, record them in the"
        " event log. Exit 0 ready, 1 not ready in time, 2 usage.",
    )
    ready.add_argument("--role", required=True, choices=("init", "controlplane", "worker"))
    ready.add_argument(
        "--timeout", type=_seconds, default=900.0, metavar="DURATION",
        help="how long to wait in all: seconds, or 90s, 15m, 2h (default 15m)",
    )  # fmt: skip
    ready.add_argument(
        "--after", default="", help="what the boot stage did: started, restarted, unchanged, failed"
    )
    ready.add_argument("--data-dir", default=None, help="RKE2's data dir (default: the root's)")
    ready.add_argument("--kubelet-url", default=None)
    ready.add_argument("--supervisor-url", default=None)
    ready.add_argument("--max-interval", type=_seconds, default=15.0, metavar="DURATION")
    ready.add_argument("--stylus-root", metavar="PATH", type=_root_flag, help=root_help)
    up = commands.add_parser(
        "upgrade",
        help="replace RKE2 in place (agent mode), rolled back by itself when it is not ready",
        description="Replace RKE2 on this agent-mode node with the release in DIR (rke2.linux-<arch>.tar.gz"
        " and sha256sum-<arch>.txt, verified first): on a server an etcd snapshot first, then stop, swap,"
        " start, and wait until the node is ready (the checks of wait-ready); not ready in time, the"
        " previous release is put back. Exit 0 upgraded (or nothing to do), 1 not upgraded (refused before"
        " any change, or rolled back), 2 usage or appliance mode, 3 failed and could NOT be rolled back.",
    )
    up.add_argument("--artifacts", required=True, metavar="DIR", type=os.path.abspath)
    up.add_argument(
        "--role",
        choices=("init", "controlplane", "worker"),
        help="default: the last boot's, else the enabled unit's",
    )
    up.add_argument(
        "--timeout", type=_seconds, default=900.0, metavar="DURATION",
        help="how long each release may take to be ready (default 15m)",
    )  # fmt: skip
    up.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    up.add_argument(
        "--force", action="store_true", help="a downgrade, a skipped minor version, a stopped or unready node"
    )
    up.add_argument("--json", action="store_true", help="a JSON object (README: upgrade --json)")
    up.add_argument("--kubelet-url", default="", help=argparse.SUPPRESS)
    up.add_argument("--supervisor-url", default="", help=argparse.SUPPRESS)
    up.add_argument("--stylus-root", metavar="PATH", type=_root_flag, help=root_help)
    # Run by the unit's ExecStartPre when a proxy is configured, not by people.
    no_proxy = commands.add_parser(
        "no-proxy", description="Write the unit's NO_PROXY with this node's own subnets added."
    )
    no_proxy.add_argument("--unit", required=True, choices=("rke2-server", "rke2-agent"))
    no_proxy.add_argument("--stylus-root", metavar="PATH", type=_root_flag, help=root_help)
    options = parser.parse_args(args)
    if options.command is None:
        parser.print_usage(stderr)
        return 2
    from provider_rke2.node import LocalNode

    node = LocalNode(options.stylus_root)
    try:
        if options.command == "render":
            return _render(options.file, options.fresh, node, stdin, stdout, stderr)
        if options.command == "validate":
            return _validate(options.file, options.format, node, stdin, stdout, stderr)
        if options.command == "wait-ready":
            from provider_rke2.watch import wait_ready

            return wait_ready(options, node, stderr, stdout)
        if options.command == "upgrade":
            return _upgrade(options, node, stdout, stderr)
        if options.command in ("events", "status"):
            from provider_rke2 import report

            if options.command == "status":
                _finish_upgrade(node, stderr)
            if options.command == "events":
                return report.events(
                    node.stylus_root(),
                    options.kind,
                    options.since,
                    options.json,
                    options.follow,
                    stdout,
                    stderr,
                )
            return report.status(node.stylus_root(), stdout, as_json=options.json)
        if options.command == "no-proxy":
            return _no_proxy(options.unit, node, stderr)
        from provider_rke2 import mode

        root = node.stylus_root()
        if options.command == "paths" and options.env:
            stdout.write(_scripts_env(root, node))
        elif options.command == "paths":
            stdout.write(mode.paths_json(root) if options.json else mode.path_table(root))
        else:
            seen = mode.gather()
            stdout.write(mode.describe_json(root, seen) if options.json else mode.describe(root, seen))
        return 0
    except ConfigError as err:
        for problem in err.problems:
            stderr.write(f"error: {problem}\n")
        return 1
    except ProviderError as err:
        stderr.write(f"error: {err}\n")
        return 1


def _read_source(source: str, stdin: TextIO, stderr: TextIO) -> Optional[str]:
    try:
        if source == "-":
            if _at_a_terminal(stdin):
                stderr.write("reading the cloud-config from stdin (end it with Ctrl-D), or give a FILE\n")
            return stdin.read()
        with open(source, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as err:
        stderr.write(f"error: cannot read {source}: {getattr(err, 'strerror', None) or err}\n")
        return None


def _validate(source: str, style: str, node: object, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    text = _read_source(source, stdin, stderr)
    if text is None:
        return 2
    from provider_rke2 import validation

    findings = validation.validate(text, node.stylus_root())  # type: ignore[attr-defined]
    if style == "json":
        stdout.write(validation.as_json(source, findings))
    else:
        stdout.write(validation.annotate(text, findings))
    return 1 if validation.has_errors(findings) else 0


def _render(source: str, fresh: bool, node: Any, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    text = _read_source(source, stdin, stderr)
    if text is None:
        return 2
    from provider_rke2.errors import ConfigError
    from provider_rke2.paths import Paths
    from provider_rke2.render import (
        DEFAULT_EXECUTABLE,
        NO_FACTS,
        OUTPUT_MODE,
        cluster_section,
        render_section,
        root_for_section,
    )
    from provider_rke2.secrets import in_section, scrub
    from provider_rke2.validation import HEADER

    section = cluster_section(text)  # read once, as agent.boot does
    if section is None:
        stderr.write("no cluster section: agent.boot would write nothing\n")
        return 0
    secrets = in_section(section)
    root = root_for_section(section, node.stylus_root())
    paths = Paths(root.path)
    # The node's own fingerprint key and state when it has them (never made here), so that
    # the output is byte for byte what agent.boot would write on this node; --fresh: as on
    # a node that has none yet (the golden renders in stages/).
    key = b"" if fresh else (node.read_state(paths.fingerprint_key) or "").encode()
    facts = NO_FACTS if fresh else node.facts(paths)
    try:
        # The path the provider has in an image, whoever runs `render` from wherever.
        rendered = render_section(section, root, key, DEFAULT_EXECUTABLE, facts)
    except ConfigError:
        from provider_rke2 import validation

        for finding in validation.validate(text, root):  # every problem, not the first layer's
            stderr.write(f"{finding.level}: {scrub(str(finding.problem), secrets)}\n")
        return 1
    if not text.startswith(HEADER):
        stderr.write(f"warning: file: does not start with {HEADER}: Kairos reads no configuration from it\n")
    for warning in rendered.warnings:
        stderr.write(f"warning: {scrub(str(warning), secrets)}\n")
    stderr.write(
        f"# agent.boot would write this to {rendered.path} (mode {OUTPUT_MODE:04o});"
        f" root {rendered.root.path} from {rendered.root.source}\n"
    )
    stdout.write(rendered.text)
    return 0


def _upgrade(options: Any, node: Any, stdout: TextIO, stderr: TextIO) -> int:
    import signal

    from provider_rke2 import upgrade
    from provider_rke2.errors import ProviderError
    from provider_rke2.paths import Paths

    root = node.stylus_root()
    if not root.agent_mode:
        stderr.write(
            "error: upgrade: this node is in appliance mode (root /): RKE2 is part of the immutable OS"
            " image there and changes with it (kairos-agent upgrade); nothing changed\n"
        )
        return 2
    paths = Paths(root.path)
    request = upgrade.Request(
        options.artifacts,
        options.role or "",
        options.timeout,
        options.dry_run,
        options.force,
        options.kubelet_url,
        options.supervisor_url,
    )

    def say(line: str) -> None:
        stderr.write(f"upgrade: {line}\n")
        stderr.flush()

    signal.signal(signal.SIGTERM, _upgrade_terminated)  # a stop mid-upgrade puts the previous release back
    try:
        with node.lock(paths.lock_file, upgrade.LOCK_WAIT, "upgrade"):
            result = upgrade.upgrade(request, paths, node, say)
    except Exception as err:  # noqa: BLE001 - a bug must still say where the node stands
        what = str(err) if isinstance(err, ProviderError) else f"internal error: {type(err).__name__}: {err}"
        if upgrade.pending(paths):
            result = upgrade.Result(
                upgrade.FAILED,
                f"{what}; the next upgrade, boot or status rolls back what {paths.upgrade_journal} lists",
            )
        else:
            result = upgrade.Result(upgrade.REFUSED, f"not upgraded, nothing changed: {what}")
    stdout.write(result.to_json() if options.json else result.text())
    return result.exit_status


def _finish_upgrade(node: Any, stderr: TextIO) -> None:
    """`status` first rolls back an upgrade a crash interrupted, unless one is running now."""
    from provider_rke2 import upgrade
    from provider_rke2.errors import Busy, ProviderError
    from provider_rke2.paths import Paths

    paths = Paths(node.stylus_root().path)
    if not upgrade.pending(paths):
        return
    try:
        with node.lock(paths.lock_file, 0, "status"):
            done = upgrade.recover(paths, node, "status", start=True)
    except Busy as err:
        done = f"an interrupted upgrade is not rolled back now: {err}"
    except ProviderError as err:
        done = f"error: {err}"
    if done:
        stderr.write(f"status: {done}\n")


def _seconds(text: str) -> float:
    """A duration (90, 90s, 15m, 2h): finite and not negative (nan and inf would never end a wait)."""
    import argparse

    from provider_rke2.timespec import duration

    try:
        return duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _since(text: str) -> Any:
    import argparse
    from datetime import datetime, timezone

    from provider_rke2.timespec import instant

    try:
        return instant(text, datetime.now(timezone.utc))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _root_flag(text: str) -> str:
    """--stylus-root checked where the other usage errors are (exit 2)."""
    import argparse

    from provider_rke2.errors import ConfigError
    from provider_rke2.root import FROM_FLAG, clean

    try:
        return clean(text, FROM_FLAG)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(err.problems[0].message) from None


def _scripts_env(root: Any, node: Any) -> str:
    """rke2-paths.env for this node: the one its last boot laid beside the scripts (with the
    kubelet dir its config names), else made from its recorded data dir or the root's defaults."""
    from provider_rke2.fsio import read_regular
    from provider_rke2.paths import Paths

    paths = Paths(root.path)
    try:
        return read_regular(paths.scripts_env, 65536).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    recorded = node.read_state(paths.data_dir_state)
    data_dir = recorded if recorded and recorded.startswith("/") else paths.data_dir
    return paths.reset_plan(data_dir, paths.kubelet_dir).env_file()


def _no_proxy(unit: str, node: Any, stderr: TextIO) -> int:
    from provider_rke2 import proxy
    from provider_rke2.fsio import read_regular
    from provider_rke2.paths import Paths

    paths = Paths(node.stylus_root().path)
    try:
        # Never through a link, never blocking on a FIFO: RKE2's start waits for this.
        rendered = read_regular(paths.env_file(unit), 65536).decode("utf-8", errors="replace")
    except OSError as err:
        stderr.write(f"no-proxy: nothing to do: {paths.env_file(unit)}: {err.strerror or err}\n")
        return 0
    text = proxy.with_subnets(rendered, proxy.node_subnets(*node.routes()))
    if text is None:
        stderr.write(f"no-proxy: nothing to do: {paths.env_file(unit)} sets no NO_PROXY\n")
        return 0
    node.write_private(paths.no_proxy_env(unit), text)
    return 0


def _terminated(signum: int, frame: object, doing: str = "the event") -> None:
    # Raised where the handler runs: cleanups unwind (temporary files, a script's process
    # group), and the event still ends in an answer and an `error` event.
    import signal

    from provider_rke2.errors import Terminated

    raise Terminated(f"terminated by {signal.Signals(signum).name} before {doing} finished")


def _upgrade_terminated(signum: int, frame: object) -> None:
    _terminated(signum, frame, "the upgrade")


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


def _at_a_terminal(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (OSError, ValueError):
        return False


def _read_stdin() -> str:
    try:
        stream = sys.stdin.buffer if sys.stdin is not None else None
        data = stream.read(MAX_EVENT_BYTES + 1) if stream is not None else b""
    except (OSError, ValueError):
        return ""
    # Undecodable bytes are kept (as lone surrogates) so that the event is refused by name.
    return data.decode("utf-8", errors="surrogateescape")
