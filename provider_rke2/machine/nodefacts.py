"""What a check needs to know of the node it is for (provider_rke2.core.spec.NodeFacts), read
from the node: the data dir its last boot recorded, other tools' drop-ins, whether a data
dir holds cluster state, the tokens it holds. The reading is here; what it means is the
core's (the drop-ins are parsed by provider_rke2.core.rke2config, the rules are spec's)."""

from __future__ import annotations

import os

from provider_rke2.core.errors import ConfigError, Problem

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Callable, List, Optional

    from provider_rke2.core.paths import Paths
    from provider_rke2.core.spec import NodeFacts

MAX_DROP_IN = 1024 * 1024  # bytes read of another tool's config.d drop-in


def read(paths: Paths, read_state: Callable[[str], Optional[str]]) -> NodeFacts:
    """The facts of the node at `paths` (found where RKE2 really is); `read_state` reads a
    state file (None when there is none), as the machine does."""
    from provider_rke2.core.rke2config import PROVIDER_DROP_IN, USER_DROP_IN, DropIn, parse_drop_in
    from provider_rke2.core.spec import NodeFacts
    from provider_rke2.machine.fsio import read_whole

    recorded = read_state(paths.data_dir_state)
    drop_ins = []
    for name in _yaml_files(paths.drop_in_dir):
        if name in (USER_DROP_IN, PROVIDER_DROP_IN):
            continue
        where = os.path.join(paths.drop_in_dir, name)
        try:
            text = read_whole(where, MAX_DROP_IN).decode("utf-8")
        except OSError as err:
            if err.errno == 27:  # RKE2 reads it whole: skipped here, it would decide unseen
                raise ConfigError([Problem(where, f"{err.strerror}: RKE2 would apply it all")]) from None
            drop_ins.append(DropIn(name, problem=f"cannot be read ({err.strerror or err})"))
            continue
        except UnicodeDecodeError as err:
            drop_ins.append(DropIn(name, problem=f"cannot be read ({err})"))
            continue
        drop_ins.append(parse_drop_in(name, text))
    return NodeFacts(
        recorded_data_dir=recorded if recorded and recorded.startswith("/") else None,
        drop_ins=tuple(drop_ins),
        rke2_drop_ins=tuple(_yaml_files(paths.rke2_drop_in_dir)),
        has_state=has_rke2_state,
        resolve=os.path.realpath,
        paths=paths,
        held_token=lambda path: read_state(path) or None,  # a secret: compared, never shown
        registries_written=_written_by_provider(paths.registries_file),
        last_token=lambda: _config_token(paths.config_file),
    )


def has_rke2_state(data_dir: str) -> bool:
    """Whether RKE2 has run with this data dir (see provider_rke2.core.datadir.STATE_MARKERS)."""
    from provider_rke2.core.datadir import STATE_MARKERS

    return any(os.path.isdir(os.path.join(data_dir, marker)) for marker in STATE_MARKERS)


def _written_by_provider(path: str) -> bool:
    """Whether the file is there, a regular file whose first line is the provider's header."""
    if not os.path.lexists(path):  # nearly every node: nothing to import
        return False
    from provider_rke2.core.registries import HEADER
    from provider_rke2.machine.fsio import read_regular

    try:
        return read_regular(path, len(HEADER) + 1).decode("utf-8", errors="replace").startswith(HEADER + "\n")
    except OSError:
        return False


def _config_token(path: str) -> Optional[str]:
    """`token` of the config.yaml the provider last wrote, which RKE2 runs with; None without.
    The provider writes every top-level key at the start of a line, one line each for a
    scalar: only that line is read as YAML, not a config of thousands of labels."""
    from provider_rke2.core.yamlread import YAMLSyntaxError, load_rke2_config
    from provider_rke2.machine.fsio import read_regular

    try:
        text = read_regular(path, MAX_DROP_IN).decode("utf-8")
        line = next((line for line in text.splitlines() if line.startswith("token:")), None)
        config = load_rke2_config(line) if line else None
    except (OSError, UnicodeDecodeError, YAMLSyntaxError, RecursionError):
        return None
    token = config.get("token") if isinstance(config, dict) else None
    return token if isinstance(token, str) and token else None


def _yaml_files(directory: str) -> List[str]:
    try:
        return sorted(name for name in os.listdir(directory) if name.endswith(".yaml"))
    except OSError:
        return []
