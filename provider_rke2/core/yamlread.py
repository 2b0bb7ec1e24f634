"""YAML readers that keep what the user wrote instead of what YAML 1.1 guesses.

Two readings are needed:
- the cloud-config, read as the Go SDK reads it into string fields: every plain
  scalar is its own text (`cluster_token: 0755` is the token "0755"), only null
  and the merge key `<<` are resolved;
- the user's RKE2 `config`, read as RKE2 (YAML 1.1) would read booleans and
  nulls, but with numbers, dates and the like kept as written, so that an
  unquoted `write-kubeconfig-mode: 0644` stays "0644" instead of becoming 420.
"""

from __future__ import annotations

import re
import sys

import yaml

from provider_rke2.core.yamlwrite import BOOL_WORDS, TRUE_WORDS

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any, ClassVar, Dict, List, Optional, Tuple

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile("^(?:" + "|".join(f"{w}|{w.capitalize()}|{w.upper()}" for w in BOOL_WORDS) + ")$")


class _TextLoader(yaml.SafeLoader):
    """Plain scalars stay text; null and merge keys resolve."""

    # PyYAML keeps its resolvers per class (its stubs call them per instance)
    yaml_implicit_resolvers: ClassVar[dict] = {}  # type: ignore[misc]

    def fetch_flow_collection_start(self, token_class: type) -> None:
        # Checked as the scanner meets each `[` or `{`: past the bound it stops at once
        # (PyYAML rescans its pending keys at every level, quadratic in a deep nest).
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"nested more than {MAX_DEPTH} levels deep", self.get_mark()
            )
        super().fetch_flow_collection_start(token_class)


_TextLoader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
_TextLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


class _RKE2Loader(_TextLoader):
    """As _TextLoader, plus YAML 1.1 booleans, which RKE2 itself resolves."""

    yaml_implicit_resolvers: ClassVar[dict] = dict(_TextLoader.yaml_implicit_resolvers)  # type: ignore[misc]


_RKE2Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("yYnNtTfFoO"))


def _text_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return node.value


# Explicitly tagged scalars (`!!int 0644`) keep their text too.
for _loader in (_TextLoader, _RKE2Loader):
    for _tag in ("int", "float", "timestamp", "binary"):
        _loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _text_scalar)


def _bool_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return node.value.lower() in TRUE_WORDS


_RKE2Loader.add_constructor("tag:yaml.org,2002:bool", _bool_scalar)
_TextLoader.add_constructor("tag:yaml.org,2002:bool", _text_scalar)


def _unsupported(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    kind = node.tag.rsplit(":", 1)[-1]
    raise yaml.constructor.ConstructorError(
        None, None, f"!!{kind} is not supported here: write a mapping or a list", node.start_mark
    )


# Sets, ordered maps and pairs have no meaning for the SDK or RKE2: refused by name.
for _loader in (_TextLoader, _RKE2Loader):
    for _tag in ("set", "omap", "pairs"):
        _loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _unsupported)

# A document may not grow past these once its aliases are expanded (each use of an
# alias counts its whole value again), nor nest deeper: a "billion laughs" is refused
# before anything walks it.
MAX_VALUES = 500_000
MAX_DEPTH = 100


class YAMLSyntaxError(ValueError):
    """A YAML document that does not parse; the message points into it."""

    def __init__(self, message: str, line: int = 0):
        super().__init__(message)
        self.line = line  # 1-based; 0 when unknown


def load_cloud_config(text: str) -> Any:
    """The merged cloud-config, scalars as text."""
    skeleton, blocks = _lift_literal_blocks(text)
    loaded = _load(skeleton, _TextLoader)
    return _put_back(loaded, blocks) if blocks else loaded


# PyYAML scans a literal block a character at a time in Python: a `config: |` of 5,000 lines
# cost 40 ms. Where a document's every block scalar is a plain `key: |` or `key: |-` of the
# simplest shape, its lines are taken here instead: the key gets a token PyYAML reads as
# text, the lines it held are left empty (every other line keeps its number, for errors),
# and the block's text replaces the token afterwards. Anything else (another block style,
# tabs, odd line breaks, a quote or bracket outside such a block, a text that does not end
# in a line break) leaves the document to PyYAML whole; the tests check the two agree.
_LITERAL_START = re.compile(r"( *)([A-Za-z0-9_][A-Za-z0-9_.-]*): +\|(-?) *")
_ANY_BLOCK_START = re.compile(r"(?:^|[\s:-])[|>][-+0-9]*\s*(?:#.*)?$")
_UNBALANCED = re.compile(r"[\"'{}\[\]]")
_OTHER_BREAKS = ("\t", "\r", "\ufeff", "\x85", "\u2028", "\u2029")


def _lift_literal_blocks(text: str) -> Tuple[str, Dict[str, str]]:
    # Line breaks a split on "\n" would not see, and characters the reader refuses (in
    # the lines it no longer reads too): PyYAML reads such a document itself.
    if any(c in text for c in _OTHER_BREAKS) or yaml.reader.Reader.NON_PRINTABLE.search(text):
        return text, {}
    token = _token(text)
    if token is None:
        return text, {}
    lines = text.split("\n")
    blocks: Dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        start = _LITERAL_START.fullmatch(line)
        if start is None:
            if _ANY_BLOCK_START.search(line) or _UNBALANCED.search(line):
                return text, {}
            index += 1
            continue
        key_indent = len(start.group(1))
        end, content = _literal_lines(lines, index + 1, key_indent)
        if content is None:
            return text, {}
        name = f"{token}{len(blocks)}"
        blocks[name] = "\n".join(content) + ("" if start.group(3) else "\n")
        lines[index] = f"{start.group(1)}{start.group(2)}: {name}"
        lines[index + 1 : end] = [""] * (end - index - 1)
        index = end
    return ("\n".join(lines), blocks) if blocks else (text, {})


def _literal_lines(lines: List[str], first: int, key_indent: int) -> Tuple[int, Optional[List[str]]]:
    """Where a literal block that starts at `first` ends, and its lines without their
    indentation and without trailing empty lines; None for a shape left to PyYAML."""
    indent = len(lines[first]) - len(lines[first].lstrip(" ")) if first < len(lines) else 0
    if first >= len(lines) or not lines[first].strip() or indent <= key_indent:
        return first, None  # empty, or starting with an empty line: PyYAML decides
    end = first
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" " * indent)):
        if not lines[end].strip() and len(lines[end]) > indent:
            return end, None  # spaces past the indentation on an empty line
        end += 1
    if end == len(lines) and lines[-1]:
        return end, None  # runs to the end of a text without a final break: PyYAML judges
    if end < len(lines) and len(lines[end]) - len(lines[end].lstrip(" ")) > key_indent:
        return end, None  # what follows is not a sibling or a parent of the key
    content = [line[indent:] for line in lines[first:end]]
    while content and not content[-1]:
        content.pop()
    return end, content


def _token(text: str) -> Optional[str]:
    """A plain scalar the text does not hold, to stand for a block until it is put back; None
    after a few tries (a text that holds them all is left to PyYAML: no quadratic search)."""
    for counter in range(8):
        token = f"provider-rke2-block{counter}-"
        if token not in text:
            return token
    return None


def _put_back(value: Any, blocks: Dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _put_back(item, blocks) for key, item in value.items()}
    if isinstance(value, list):
        return [_put_back(item, blocks) for item in value]
    return blocks.get(value, value) if isinstance(value, str) else value


def load_rke2_config(text: str) -> Any:
    """The user's RKE2 config, booleans resolved, every other scalar as text."""
    simple = _flat_config(text)
    return simple if simple is not None else _load(text, _RKE2Loader)


# The shape nearly every RKE2 config has: top-level `key: value` and `key:` followed
# by `- item` lines, plain one-line scalars, comments. Read line by line, it costs a
# tenth of PyYAML's pure-Python scanner; anything outside this grammar (quotes,
# nesting, flow style, tabs, anchors, odd keys) goes to PyYAML instead. The tests
# check the two agree on everything this accepts.
_SCALAR = r"[A-Za-z0-9_/.(][A-Za-z0-9_/.=+~,@:()$%*\- ]*?"
_KEY_LINE = re.compile(rf"([A-Za-z0-9][A-Za-z0-9_.-]*\+?):(?: +({_SCALAR}))?(?: +#.*)? *\Z")
_ITEM_LINE = re.compile(rf"( *)- ({_SCALAR})(?: +#.*)? *\Z")
_SKIP_LINE = re.compile(r" *(?:#.*)?\Z")
# PyYAML refuses a plain key longer than this ("could not find expected ':'"): past it the
# fast reader is not certain, so it defers.
_SIMPLE_KEY = 1024


def _flat_config(text: str) -> Any:
    if "\t" in text or "\r" in text or "\ufeff" in text or text.startswith(("---", "%")):
        return None
    reader = _FlatReader()
    try:
        for line in text.split("\n"):
            if not _SKIP_LINE.match(line):
                reader.read(line)
    except _Deferred:
        return None
    return reader.done() or None


class _Deferred(Exception):
    """Outside the flat grammar: PyYAML decides."""


class _FlatReader:
    """The flat grammar's state: the config so far, and the list the last key opened."""

    def __init__(self) -> None:
        self.config: dict = {}
        self.key: Optional[str] = None
        self.items: Optional[list] = None  # the open key's list; None when the key had a value
        self.indent: Optional[int] = None  # its items' indentation, once one is read

    def read(self, line: str) -> None:
        item = _ITEM_LINE.match(line)
        if item:
            if self.items is None or (self.indent is not None and len(item.group(1)) != self.indent):
                raise _Deferred
            self.indent = len(item.group(1))
            self.items.append(_certain(item.group(2)))
            return
        pair = _KEY_LINE.match(line)
        if (
            not pair
            or _NULL.match(pair.group(1))
            or _BOOL.match(pair.group(1))
            or len(pair.group(1)) > _SIMPLE_KEY
        ):
            raise _Deferred
        self.done()
        self.key, self.indent = pair.group(1), None
        self.items = [] if pair.group(2) is None else None
        self.config[self.key] = None if pair.group(2) is None else _certain(pair.group(2))

    def done(self) -> dict:
        if self.items:
            self.config[self.key] = self.items
        return self.config


_UNSURE = object()


def _certain(text: str) -> Any:
    value = _plain(text)
    if value is _UNSURE:
        raise _Deferred
    return value


def _plain(text: str) -> Any:
    """A plain scalar as _RKE2Loader resolves it, or _UNSURE when PyYAML should decide."""
    if ": " in text or " #" in text or text.endswith(":"):
        return _UNSURE
    if _NULL.match(text):
        return None
    if _BOOL.match(text):
        return text.lower() in TRUE_WORDS
    return text


def parse_bool(text: str) -> bool | None:
    """A YAML 1.1 boolean word as Go's yaml decodes it into a bool field, else None."""
    if _BOOL.match(text):
        return text.lower() in TRUE_WORDS
    return None


# PyYAML quotes what it stumbled on: a tag, an alias or an anchor may be a token written in
# the wrong place (`token: !K10...`, `token: *K10...`), and a document that does not parse
# gives up no secret to scrub it with. What it quotes is shown only when too short to be one.
_QUOTED = re.compile(r"'([^']*)'")  # left to right, in pairs
_TOKEN_NAME = re.compile(r"<[a-z ]+>")  # PyYAML's own words: '<stream end>', '<scalar>'


def _unquoted(problem: str) -> str:
    def shown(found: re.Match) -> str:
        text = found.group(1)
        if len(text) <= 4 or _TOKEN_NAME.fullmatch(text):
            return found.group(0)
        return f"'<{len(text)} characters, not shown>'"

    return _QUOTED.sub(shown, problem)


def _load(text: str, loader_class: type) -> Any:
    try:
        loader = loader_class(text)
    except yaml.YAMLError as err:  # the reader refuses a character at once
        raise YAMLSyntaxError(str(err).split("\n")[0]) from None
    # PyYAML composes recursively, a few frames a level: with the stack bounded a little
    # past MAX_DEPTH levels, a document nested thousands deep fails at once, not after
    # climbing to Python's own limit.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(min(limit, _frames() + 6 * MAX_DEPTH))
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = err.problem or str(err)
        if "'\\t'" in problem:  # PyYAML's words for the commonest mistake of all
            problem = "a tab where YAML expects spaces: YAML indents with spaces only"
        raise YAMLSyntaxError(f"{_unquoted(problem)}{where}", mark.line + 1 if mark else 0) from None
    except yaml.YAMLError as err:
        raise YAMLSyntaxError(_unquoted(str(err).split("\n")[0])) from None
    except RecursionError:
        raise YAMLSyntaxError(f"is nested more than {MAX_DEPTH} levels deep") from None
    finally:
        sys.setrecursionlimit(limit)
        loader.dispose()


def _frames() -> int:
    frame: Optional[FrameType] = sys._getframe()
    depth = 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _check_size(root: yaml.Node) -> None:
    """Refuse a document past MAX_VALUES values (aliases expanded) or MAX_DEPTH levels; linear
    in what it counts, and it stops counting at the bound (a recursive alias included)."""
    stack = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise YAMLSyntaxError(
                f"expands to more than {MAX_VALUES} values (aliases counted each time they are used)"
            )
        if depth > MAX_DEPTH:
            line = node.start_mark.line + 1
            raise YAMLSyntaxError(f"is nested more than {MAX_DEPTH} levels deep (line {line})", line)
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def line_numbers(text: str, prefix: str = "", first_line: int = 1, rke2: bool = False) -> dict:
    """Dotted path -> 1-based line for every key and list item, for pointing at problems."""
    loader = _RKE2Loader if rke2 else _TextLoader
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return {}
    lines: dict = {}
    _walk(node, prefix, first_line - 1, lines)
    return lines


def _walk(node: Any, path: str, offset: int, lines: dict) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value)
            child = f"{path}.{name}" if path else name
            lines.setdefault(child, key.start_mark.line + 1 + offset)
            if name.endswith("+"):
                lines.setdefault(child[:-1], key.start_mark.line + 1 + offset)
            _walk(value, child, offset, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault(f"{path}[{index}]", item.start_mark.line + 1 + offset)
            _walk(item, f"{path}[{index}]", offset, lines)
    elif path == "cluster.config" and isinstance(node, yaml.ScalarNode) and node.style == "|":
        # A literal block keeps its lines: the RKE2 config's own keys map 1:1.
        lines.update(line_numbers(node.value, path, node.start_mark.line + 2 + offset, rke2=True))
