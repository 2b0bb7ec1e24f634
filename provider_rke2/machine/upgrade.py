"""`upgrade`: RKE2 replaced in place on an agent-mode node, and put back by itself when the
new version is not ready (docs/upgrades.md).

Nothing changes until the artefacts are verified, the step between the versions is one
Kubernetes supports, the node is ready on its current version and, on a server, an etcd
snapshot is taken. From the first change on, a journal in the provider's state says what
has been done, so that whoever comes next (`upgrade`, `agent.boot`, `status`) after a
crash or a SIGKILL finishes the rollback before anything else.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from provider_rke2.core import rke2version
from provider_rke2.core.errors import ProviderError, Terminated
from provider_rke2.core.paths import ROLES, UNITS, Paths, server_ca, server_token, snapshot_dir, unit_for
from provider_rke2.core.record import Factory, as_dict, record
from provider_rke2.core.secrets import in_config, scrub
from provider_rke2.machine import eventlog
from provider_rke2.machine.swap import (
    SwapError,
    SwapSet,
    discard,
    is_release_name,
    keep_previous,
    restore,
    stage,
    swap_in,
)

if TYPE_CHECKING:
    from provider_rke2.machine import Check, Machine

SNAPSHOT_TIMEOUT = 600.0
LOCK_WAIT = 10.0  # a boot holds the lock for well under a second
PROBE_INTERVAL = 5.0

PLANNED, UNCHANGED, UPGRADED = "planned", "unchanged", "upgraded"
REFUSED, ROLLED_BACK, FAILED = "refused", "rolled_back", "failed"
EXIT = {PLANNED: 0, UNCHANGED: 0, UPGRADED: 0, REFUSED: 1, ROLLED_BACK: 1, FAILED: 3}

# The journal's phases, in order; a journal found in any but the last is rolled back.
SWAPPING, WAITING, ROLLING_BACK, COMMITTED = "swapping", "waiting for readiness", "rolling back", "committed"
_PHASES = (SWAPPING, WAITING, ROLLING_BACK, COMMITTED)


class Refused(ProviderError):
    """The upgrade was not started: nothing on the node changed."""


@record
class Request:
    """What `upgrade` was asked."""

    artifacts: str
    role: str = ""
    timeout: float = 900.0
    dry_run: bool = False
    force: bool = False
    kubelet_url: str = ""
    supervisor_url: str = ""


@record
class Plan:
    """What an upgrade will do, decided before anything changes."""

    root: str
    role: str
    role_from: str
    unit: str
    was_active: bool
    binary: str
    current: str
    new: str
    step: str
    files: Tuple[str, ...]  # installed paths the release replaces or adds
    added: Tuple[str, ...]  # those of them the node does not have yet
    upgrade_dir: str
    data_dir: str
    snapshot: Tuple[str, ...]  # the snapshot command; empty on a worker
    checks: Tuple[Check, ...]
    timeout: float


@record(frozen=False)
class Result:
    """How an upgrade ended, and what it says."""

    outcome: str
    message: str
    plan: Optional[Plan] = None
    took: float = 0.0
    snapshot: str = ""
    probe: str = ""
    notes: List[str] = Factory(list)
    refusals: List[str] = Factory(list)  # a dry run's: every reason the upgrade would be refused

    @property
    def exit_status(self) -> int:
        return EXIT[self.outcome]

    def to_json(self) -> str:
        report = {k: v for k, v in as_dict(self).items() if k != "plan"}
        report["exit_status"] = self.exit_status
        report["plan"] = as_dict(self.plan) if self.plan else None
        return json.dumps(report, indent=2) + "\n"

    def text(self) -> str:
        lines = [f"note: {note}" for note in self.notes]
        if self.plan and (self.outcome == PLANNED or self.refusals):
            lines += plan_text(self.plan)
        lines.append(f"{self.outcome.replace('_', ' ')}: {self.message}")
        return "\n".join(lines) + "\n"


def plan_text(plan: Plan) -> List[str]:
    checks = ", ".join(
        f"{url} answers {expect!r}" + (f" (CA {ca})" if ca else "") for url, expect, ca in plan.checks
    )
    lines = [
        f"node: root {plan.root}, role {plan.role} ({plan.role_from}), unit {plan.unit}"
        f" ({'active' if plan.was_active else 'not active'})",
        f"version: {plan.current} -> {plan.new} ({plan.step})",
    ]
    if plan.snapshot:
        lines.append("1. etcd snapshot first: " + " ".join(plan.snapshot))
    else:
        lines.append("1. no etcd snapshot (a worker has no etcd)")
    lines += [
        f"2. stage the release in {plan.upgrade_dir}/new; link the files it replaces into"
        f" {plan.upgrade_dir}/old (the rollback set)",
        f"3. stop {plan.unit}; swap, one rename each:",
        *(f"     {path}{' (new)' if path in plan.added else ''}" for path in plan.files),
        f"4. start {plan.unit}; wait up to {plan.timeout:.0f} s until {checks}",
        "5. ready: remove the rollback set, keep the snapshot. Not ready: stop, put the previous"
        f" files back, start {plan.unit}, wait again",
    ]
    return lines


def upgrade(req: Request, paths: Paths, machine: Machine, say: Callable[[str], None]) -> Result:
    """The whole procedure; the caller holds the node's lock (not for a dry run, which writes
    nothing). Never raises for a failure of the upgrade itself: the result says what happened
    and the exit status."""
    if req.dry_run:
        return dry_run(req, paths, machine)
    notes = []
    try:
        finished = recover(paths, machine, "upgrade", start=True)
    except SwapError as err:
        return Result(FAILED, f"{err}: look at it, and at {paths.upgrade_dir}, before any upgrade")
    if finished:
        notes.append(finished)
        say(finished)
    top = paths.upgrade_dir
    try:
        plan, swap = _prepare(req, paths, machine, top)
        if plan.current == plan.new and not req.force:
            discard(top)
            return Result(
                UNCHANGED, f"{plan.binary} is already {plan.new}; nothing changed", plan, notes=notes
            )
        _ready_before(plan, req, machine, say)
        snapshot = _snapshot(plan, paths, machine, say)
        swap = keep_previous(swap)
        journal = _journal(plan, swap, snapshot)
        _write_journal(paths, journal)
    except ProviderError as err:  # Terminated included: nothing changed yet
        discard(top)
        message = f"upgrade not started, nothing changed: {err}"
        _emit(machine, paths, REFUSED, message, req.role, {"why": str(err)})
        return Result(REFUSED, message, notes=notes)
    result = _swap_and_verify(plan, swap, journal, req, paths, machine, say)
    result.notes = notes + result.notes
    return result


def dry_run(req: Request, paths: Paths, machine: Machine) -> Result:
    """The plan, and every reason the upgrade would be refused, without writing anything (no
    lock, no staging: the new release's files and version are read from its archive)."""
    from provider_rke2.machine.release import (
        ARCHITECTURES,
        InstallError,
        release_listing,
        verified_archive,
    )

    refusals: List[str] = []
    if pending(paths):
        refusals.append(
            f"an interrupted upgrade left {paths.upgrade_journal}:"
            " the next upgrade, boot or status rolls it back first"
        )
    if not os.path.isfile(paths.binary):
        refusals.append(f"no RKE2 at {paths.binary}: install it first (init.provider.install)")
    try:
        role, role_from = _role(req, paths, machine)
    except Refused as err:
        refusals.append(str(err))
        role, role_from = "", "unknown"
    new_version, names = "", []  # type: Tuple[str, List[str]]
    arch = ARCHITECTURES.get(machine.architecture())
    if not os.path.isdir(req.artifacts):
        refusals.append(f"no directory {req.artifacts} (--artifacts): no release to plan for")
    elif arch is None:
        refusals.append(f"unsupported architecture {machine.architecture()!r}: expected amd64 or arm64")
    else:
        try:
            names, new_version = release_listing(verified_archive(req.artifacts, arch)[0])
            if not new_version:
                refusals.append(f"the new rke2 in {req.artifacts} names no version")
        except InstallError as err:
            refusals.append(str(err))
    current = (
        rke2version.of_output(machine.version_of(paths.binary)) if os.path.isfile(paths.binary) else None
    )
    new = rke2version.of_output(f"rke2 version {new_version} ") if new_version else None
    if current is None and os.path.isfile(paths.binary) and not req.force:
        refusals.append(f"{paths.binary} --version names no version: cannot tell the step (--force to go on)")
    problem = rke2version.step_problem(current, new) if current and new else None
    if problem and not req.force:
        refusals.append(f"{problem} (--force to do it anyway)")
    unit = unit_for(role) if role else "rke2-server.service or rke2-agent.service"
    was_active = bool(role) and machine.systemctl("is-active", "--quiet", unit)[0] == 0
    if role and not was_active and not req.force:
        refusals.append(f"{unit} is not running: start it first, or --force")
    data_dir = paths.effective_data_dir(machine.read_state(paths.data_dir_state))
    server = role != "worker"
    snapshot = _snapshot_command(paths, data_dir, new.text if new else "") if server else ()
    from provider_rke2.machine.readiness import checks

    prefix = paths.install_prefix
    plan = Plan(
        root=paths.root, role=role or "unknown", role_from=role_from, unit=unit, was_active=was_active,
        binary=paths.binary, current=current.text if current else "unknown",
        new=new.text if new else "unknown",
        step=rke2version.describe_step(current, new) if current and new else "unknown step",
        files=tuple(os.path.join(prefix, name) for name in names),
        added=tuple(os.path.join(prefix, n) for n in names if not os.path.lexists(os.path.join(prefix, n))),
        upgrade_dir=paths.upgrade_dir, data_dir=data_dir, snapshot=snapshot,
        checks=tuple(checks(server, server_ca(data_dir), req.kubelet_url, req.supervisor_url)),
        timeout=req.timeout,
    )  # fmt: skip
    if refusals:
        message = "nothing changed (--dry-run); the upgrade would be refused: " + "; ".join(refusals)
        return Result(REFUSED, message, plan, refusals=refusals)
    if plan.current == plan.new and not req.force:
        return Result(
            UNCHANGED, f"{plan.binary} is already {plan.new}; nothing would change (--dry-run)", plan
        )
    return Result(PLANNED, "nothing changed (--dry-run)", plan)


def _prepare(req: Request, paths: Paths, machine: Machine, top: str) -> Tuple[Plan, SwapSet]:
    """Everything checked and the release staged; Refused, with nothing installed changed,
    for anything that stops the upgrade."""
    if not os.path.isfile(paths.binary):
        raise Refused(f"no RKE2 at {paths.binary}: install it first (init.provider.install)")
    role, role_from = _role(req, paths, machine)
    unit = unit_for(role)
    swap = _staged(req, paths, machine, top)
    current, new = _versions(req, paths, machine, swap)
    was_active = machine.systemctl("is-active", "--quiet", unit)[0] == 0
    if not was_active and not req.force:
        raise Refused(
            f"{unit} is not running: an upgrade could not tell a broken release from a stopped node"
            " (start it first, or --force)"
        )
    data_dir = paths.effective_data_dir(machine.read_state(paths.data_dir_state))
    server = role != "worker"
    snapshot = _snapshot_command(paths, data_dir, new.text) if server else ()
    from provider_rke2.machine.readiness import checks

    plan = Plan(
        root=paths.root,
        role=role,
        role_from=role_from,
        unit=unit,
        was_active=was_active,
        binary=paths.binary,
        current=current.text if current else "unknown",
        new=new.text,
        step=rke2version.describe_step(current, new) if current else "unknown step (forced)",
        files=tuple(swap.target(name) for name in swap.files),
        added=tuple(swap.target(name) for name in swap.files if not os.path.lexists(swap.target(name))),
        upgrade_dir=paths.upgrade_dir,
        data_dir=data_dir,
        snapshot=snapshot,
        checks=tuple(checks(server, server_ca(data_dir), req.kubelet_url, req.supervisor_url)),
        timeout=req.timeout,
    )
    return plan, swap


def _snapshot_command(paths: Paths, data_dir: str, new: str) -> Tuple[str, ...]:
    """A server's etcd snapshot before the swap, named for the release it precedes."""
    command = (paths.binary, "etcd-snapshot", "save", "--config", paths.config_file, "--data-dir", data_dir)
    if not new:
        return command
    return (*command, "--name", "provider-rke2-pre-" + re.sub(r"[^a-z0-9-]", "-", new.lower()).strip("-"))


def _staged(req: Request, paths: Paths, machine: Machine, top: str) -> SwapSet:
    """The release for this machine's architecture, verified against its sums, unpacked in `top`."""
    from provider_rke2.machine.release import ARCHITECTURES, InstallError, verified_archive

    arch = ARCHITECTURES.get(machine.architecture())
    if arch is None:
        raise Refused(f"unsupported architecture {machine.architecture()!r}: expected amd64 or arm64")
    try:
        archive, _ = verified_archive(req.artifacts, arch)
        return stage(archive, paths.install_prefix, top)
    except (InstallError, SwapError) as err:
        raise Refused(str(err)) from None


def _versions(
    req: Request, paths: Paths, machine: Machine, swap: SwapSet
) -> Tuple[Optional[rke2version.Version], rke2version.Version]:
    """The installed and the staged release's versions, when Kubernetes supports the step (or --force)."""
    new = rke2version.of_output(machine.version_of(os.path.join(swap.new_dir, "bin/rke2")))
    if new is None:
        raise Refused(f"the new rke2 in {req.artifacts} does not run here or prints no version")
    current = rke2version.of_output(machine.version_of(paths.binary))
    if current is None and not req.force:
        raise Refused(f"{paths.binary} --version names no version: cannot tell the step (--force to go on)")
    problem = rke2version.step_problem(current, new) if current else None
    if problem and not req.force:
        raise Refused(f"{problem} (--force to do it anyway)")
    return current, new


def _role(req: Request, paths: Paths, machine: Machine) -> Tuple[str, str]:
    if req.role:
        return req.role, "--role"
    recorded = machine.read_state(paths.role_state) or ""
    if recorded in ROLES:
        return recorded, f"the last boot, {paths.role_state}"
    enabled = [unit for unit in UNITS if _enabled(machine, unit)]
    if len(enabled) == 1:
        return ("worker" if enabled[0] == unit_for("worker") else "server"), f"{enabled[0]} is enabled"
    raise Refused(
        "cannot tell this node's role (no boot recorded one, and not one RKE2 unit is enabled): --role"
    )


def _enabled(machine: Machine, unit: str) -> bool:
    code, output = machine.systemctl("is-enabled", unit)
    return code == 0 and output.strip() in ("enabled", "enabled-runtime")


def _ready_before(plan: Plan, req: Request, machine: Machine, say: Callable[[str], None]) -> None:
    say(f"checking that RKE2 {plan.current} is ready before anything changes")
    outcome = machine.wait_ready(plan.checks, req.timeout)
    if not outcome.ready and not req.force:
        raise Refused(
            f"RKE2 {plan.current} is not ready on this node ({outcome.detail}): an upgrade could not tell"
            " a broken release from a broken node (--force to go on)"
        )


def _snapshot(plan: Plan, paths: Paths, machine: Machine, say: Callable[[str], None]) -> str:
    if not plan.snapshot:
        return ""
    name = plan.snapshot[-1]
    say(f"taking the etcd snapshot {name}")
    done = machine.run(plan.snapshot, SNAPSHOT_TIMEOUT)
    if done.returncode != 0:
        why = "did not finish in time" if done.returncode is None else f"exited {done.returncode}"
        output = scrub(done.output, _node_secrets(paths.config_file, plan.data_dir, machine))[-400:]
        raise Refused(f"the etcd snapshot {name} failed ({why}): {output}".rstrip(": "))
    return name


def _node_secrets(config_file: str, data_dir: str, machine: Machine) -> Set[str]:
    """What RKE2's own output may quote that nobody may read: the upgrade reads no cloud-config,
    so they come from the node: the secret options of the config.yaml RKE2 runs with, and the
    server's token, whole and its password alone."""
    from provider_rke2.core.tokens import parts
    from provider_rke2.core.yamlread import YAMLSyntaxError, load_rke2_config
    from provider_rke2.machine.fsio import read_regular

    found: Set[str] = set()
    try:
        found |= in_config(load_rke2_config(read_regular(config_file, 4 << 20).decode("utf-8")))
    except (OSError, UnicodeDecodeError, YAMLSyntaxError, RecursionError):
        pass
    held = machine.read_state(server_token(data_dir)) or ""  # a state file's reading: never a link
    for token in {held, *found}:
        found |= {token, parts(token)[1]} if token else set()
    return found


def _journal(plan: Plan, swap: SwapSet, snapshot: str) -> Dict[str, Any]:
    """Written before the first change: enough for anyone to put the previous release back."""
    return {
        "phase": SWAPPING,
        "role": plan.role,
        "unit": plan.unit,
        "was_active": plan.was_active,
        "from": plan.current,
        "to": plan.new,
        "snapshot": snapshot,
        "files": list(swap.files),
        "added": list(swap.added),
    }


def _swap_and_verify(
    plan: Plan,
    swap: SwapSet,
    journal: Dict[str, Any],
    req: Request,
    paths: Paths,
    machine: Machine,
    say: Callable[[str], None],
) -> Result:
    began = time.monotonic()
    snapshot = journal["snapshot"]
    details = {"from": plan.current, "to": plan.new, "snapshot": snapshot}
    try:
        say(f"stopping {plan.unit}; swapping {len(swap.files)} files")
        with _shielded():
            code, output = machine.systemctl("stop", plan.unit)
            if code != 0:
                raise SwapError(f"systemctl stop {plan.unit} failed: {output.strip()}")
            swap_in(swap)
            machine.systemctl("daemon-reload")
            journal["phase"] = WAITING
            _write_journal(paths, journal)
        say(f"starting {plan.unit} on {plan.new}; waiting up to {req.timeout:.0f} s for it to be ready")
        code, output = machine.systemctl("start", plan.unit)
        if code != 0:
            raise SwapError(f"systemctl start {plan.unit} failed: {output.strip()}")
        outcome = machine.wait_ready(plan.checks, req.timeout)
    except ProviderError as err:  # Terminated included: put the previous release back
        wait = not isinstance(err, Terminated)
        return _rollback(plan, swap, journal, paths, machine, say, str(err), "", wait, req.timeout)
    if not outcome.ready:
        why = f"{plan.new} was not ready after {req.timeout:.0f} s"
        return _rollback(plan, swap, journal, paths, machine, say, why, outcome.detail, True, req.timeout)
    took = round(time.monotonic() - began, 1)
    journal["phase"] = COMMITTED
    with _shielded():
        _write_journal(paths, journal)
        message = (
            f"RKE2 {plan.current} -> {plan.new} on {plan.unit} in {took:.0f} s; ready ({outcome.detail})"
        )
        _emit(machine, paths, UPGRADED, message, plan.role, {**details, "took_seconds": took})
        _finish(paths)
    return Result(UPGRADED, message, plan, took, snapshot, outcome.detail)


def _rollback(
    plan: Plan,
    swap: SwapSet,
    journal: Dict[str, Any],
    paths: Paths,
    machine: Machine,
    say: Callable[[str], None],
    why: str,
    probe: str,
    wait: bool,
    timeout: float,
) -> Result:
    say(f"rolling back to {plan.current}: {why}")
    details = {
        "from": plan.current,
        "to": plan.new,
        "why": why,
        "probe": probe,
        "snapshot": journal["snapshot"],
    }
    try:
        with _shielded():
            _put_back(journal, swap, paths, machine, start=plan.was_active)
    except ProviderError as err:
        message = (
            f"could not roll back: {err}. The previous files are in {swap.old_dir}, the new ones partly"
            f" in {plan.binary}'s directory; the journal {paths.upgrade_journal} makes the next upgrade, boot"
            " or status try again"
        )
        _emit(machine, paths, FAILED, message, plan.role, details)
        return Result(FAILED, message, plan, probe=probe)
    try:
        outcome = machine.wait_ready(plan.checks, timeout) if wait and plan.was_active else None
    except Terminated:  # told to stop while the previous release comes up: it is back, unwatched
        outcome, why = None, f"{why}; terminated before {plan.current} was seen ready"
    if outcome is not None and not outcome.ready:
        message = (
            f"{plan.new} was not ready ({why}) and {plan.current}, put back at {plan.binary}, is not ready"
            f" either: {outcome.detail}. Look at `journalctl -u {plan.unit}`"
        )
        if journal.get("snapshot"):
            message += f"; the etcd snapshot {journal['snapshot']} is in {snapshot_dir(plan.data_dir)}"
        _emit(machine, paths, FAILED, message, plan.role, {**details, "probe": outcome.detail})
        _finish(paths)
        return Result(FAILED, message, plan, probe=outcome.detail)
    message = f"RKE2 {plan.new} failed ({why}); {plan.current} is back on {plan.unit}"
    if outcome is not None:
        message += f" and ready ({outcome.detail})"
    _emit(machine, paths, ROLLED_BACK, message, plan.role, details)
    _finish(paths)
    return Result(ROLLED_BACK, message, plan, probe=probe)


def _put_back(journal: Dict[str, Any], swap: SwapSet, paths: Paths, machine: Machine, start: bool) -> None:
    """Stop the unit, the previous files back, start it again if it ran before the upgrade."""
    journal["phase"] = ROLLING_BACK
    _write_journal(paths, journal)
    machine.systemctl("stop", journal["unit"])
    restore(swap)
    machine.systemctl("daemon-reload")
    # What is back is what the binary says, not what restore() believes: a rollback set removed
    # or cut meanwhile restores nothing and must not read as a release put back.
    wanted = rke2version.parse(journal["from"])
    back = rke2version.of_output(machine.version_of(paths.binary))
    if wanted is not None and (back is None or back.text != wanted.text):
        raise SwapError(
            f"{paths.binary} is {back.text if back else 'no RKE2 that runs'} after the previous files were"
            f" put back, not {journal['from']}: the rollback set in {swap.old_dir} is incomplete"
        )
    if start:
        code, output = machine.systemctl("start", journal["unit"])
        if code != 0:
            raise SwapError(
                f"the previous files are back, but systemctl start {journal['unit']} failed: {output}"
            )


def recover(paths: Paths, machine: Machine, by: str, start: bool) -> Optional[str]:
    """Finish what an interrupted upgrade left: roll it back (or, when it had been found
    ready, only clean up). What was done, or None when there was nothing to finish."""
    journal = _read_journal(paths)
    if journal is None:
        return None
    details = {"from": journal["from"], "to": journal["to"]}
    if journal["phase"] == COMMITTED:
        _finish(paths)
        return f"finished the cleanup of the upgrade {journal['from']} -> {journal['to']} (it was ready)"
    why = f"interrupted while {journal['phase']}; rolled back by {by}"
    swap = SwapSet(paths.install_prefix, paths.upgrade_dir, journal["files"], journal["added"])
    try:
        with _shielded():
            _put_back(journal, swap, paths, machine, start=start and journal["was_active"] is True)
    except ProviderError as err:
        message = (
            f"an interrupted upgrade {journal['from']} -> {journal['to']} could not be rolled back: {err};"
            f" the journal {paths.upgrade_journal} is kept"
        )
        _emit(machine, paths, FAILED, message, journal["role"], details, by)
        raise SwapError(message) from None
    message = f"RKE2 {journal['to']} was {why}; {journal['from']} is back"
    _emit(machine, paths, ROLLED_BACK, message, journal["role"], {**details, "why": why}, by)
    _finish(paths)
    return message


def pending(paths: Paths) -> bool:
    return os.path.lexists(paths.upgrade_journal)


def _read_journal(paths: Paths) -> Optional[Dict[str, Any]]:
    """The journal, checked: a file name it lists is one inside the prefix, never a path."""
    from provider_rke2.machine.fsio import read_regular

    try:
        journal = json.loads(read_regular(paths.upgrade_journal, 1 << 20))
    except FileNotFoundError:
        return None
    except RecursionError:  # nested past what json reads: none this provider wrote
        raise SwapError(
            f"the upgrade journal {paths.upgrade_journal} is not one this provider wrote"
        ) from None
    except (OSError, ValueError) as err:
        raise SwapError(f"the upgrade journal {paths.upgrade_journal} cannot be read: {err}") from None
    names = journal.get("files") if isinstance(journal, dict) else None
    if not (
        isinstance(names, list)
        and all(isinstance(n, str) and is_release_name(n) for n in names)
        and isinstance(journal.get("added"), list)
        and set(journal["added"]) <= set(names)
        and journal.get("phase") in _PHASES
        and all(isinstance(journal.get(k), str) for k in ("from", "to", "unit", "role"))
        and journal["unit"] in UNITS
    ):
        raise SwapError(f"the upgrade journal {paths.upgrade_journal} is not one this provider wrote")
    journal["files"], journal["added"] = tuple(names), tuple(journal["added"])
    return journal


def _write_journal(paths: Paths, journal: Dict[str, Any]) -> None:
    from provider_rke2.machine.fsio import PRIVATE_DIR, replace_file

    data = json.dumps({**journal, "files": list(journal["files"]), "added": list(journal["added"])})
    replace_file(paths.upgrade_journal, data.encode("utf-8") + b"\n", 0o600, PRIVATE_DIR)


def _finish(paths: Paths) -> None:
    discard(paths.upgrade_dir)
    try:
        os.unlink(paths.upgrade_journal)
    except FileNotFoundError:
        pass


def _emit(
    machine: Machine,
    paths: Paths,
    outcome: str,
    message: str,
    role: str,
    details: Dict[str, Any],
    by: str = "upgrade",
) -> None:
    kind = {UPGRADED: eventlog.RKE2_UPGRADED, ROLLED_BACK: eventlog.RKE2_ROLLED_BACK}.get(
        outcome, eventlog.ERROR
    )
    known = {key: value for key, value in details.items() if value != ""}  # nothing said, nothing sent
    entry = eventlog.record(kind, message, role, by, upgrade={"outcome": outcome, **known})
    try:
        machine.emit(paths.events_log, entry)
    except ProviderError:
        pass  # the result still says it; the event log is the fleet manager's copy


@contextmanager
def _shielded() -> Iterator[None]:
    """SIGTERM held back while files are renamed and units switched: it arrives after, once
    the node is consistent again (a SIGKILL is what the journal is for)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
