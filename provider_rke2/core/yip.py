"""The subset of the yip document model this provider writes, and its YAML form."""

from __future__ import annotations

from provider_rke2.core import yamlwrite
from provider_rke2.core.record import record

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping, Sequence, Tuple

HEADER = "#cloud-config\n"

# yip renders file content, commands and `if` through Go text/template; this
# action prints a literal "{{", so user text reaches the node unchanged.
_TEMPLATE_OPEN = '{{ "{{" }}'


def escape_template(text: str) -> str:
    """Text that Go text/template renders back to `text`."""
    return text.replace("{{", _TEMPLATE_OPEN)


@record
class File:
    """A file a YIP step writes."""

    path: str
    content: str
    permissions: int
    owner: int = 0
    group: int = 0


@record
class Directory:
    """A directory a YIP step makes."""

    path: str
    permissions: int
    owner: int = 0
    group: int = 0


@record
class Step:
    """One YIP step: its commands, files and directories, run in that order."""

    name: str
    commands: Tuple[str, ...] = ()
    files: Tuple[File, ...] = ()
    directories: Tuple[Directory, ...] = ()
    only_if: str = ""

    def to_dict(self) -> Dict[str, Any]:
        # Keys in the order yip runs them: if, directories, files, commands.
        step: Dict[str, Any] = {"name": self.name}
        if self.only_if:
            step["if"] = escape_template(self.only_if)
        if self.directories:
            step["directories"] = [_owned(d.path, d.permissions, d.owner, d.group) for d in self.directories]
        if self.files:
            step["files"] = [
                dict(_owned(f.path, f.permissions, f.owner, f.group), content=escape_template(f.content))
                for f in self.files
            ]
        if self.commands:
            step["commands"] = [escape_template(c) for c in self.commands]
        return step


@record
class Document:
    """A YIP document: steps by stage."""

    name: str
    stages: Mapping[str, Sequence[Step]]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "stages": {stage: [s.to_dict() for s in steps] for stage, steps in self.stages.items()},
        }


def _owned(path: str, permissions: int, owner: int, group: int) -> Dict[str, Any]:
    return {"path": path, "permissions": permissions, "owner": owner, "group": group}


def dump(document: Mapping[str, Any]) -> str:
    """The file Kairos reads: the cloud-config header, then the document."""
    return HEADER + yamlwrite.dump(dict(document))
