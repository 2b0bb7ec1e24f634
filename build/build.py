"""Builds the one-file executable, and the trees image builders need.

    python build/build.py executable   build/agent-provider-rke2
    python build/build.py image-tree   build/image/: what an image needs, the executable pre-extracted
    python build/build.py image        build/oci/: build/image as an OCI image (amd64 and arm64)
    python build/build.py package      build/provider-rke2-image.tar.gz: build/image as a tarball

image-tree rebuilds the executable first whenever any of its inputs (sources,
scripts, schemas, launcher, constraints, requirements) changed since it was built: an
artefact is never stale. The build fetches PyYAML's and pyrsistent's sources and the pinned
dependencies from PyPI; with WHEELS=DIR it takes them from that directory only (offline;
`make wheels` fills one).

The executable is a shiv zipapp holding only pure-Python code, so one file runs
on amd64 and arm64 and on every CPython from 3.9. Builds are reproducible: the
same commit gives the same bytes (pinned shiv, dependencies and build backends;
fixed timestamps; no build-machine paths).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
EXECUTABLE = HERE / "agent-provider-rke2"
INPUTS_RECORD = HERE / "agent-provider-rke2.inputs"
PACKAGE = HERE / "provider-rke2-image.tar.gz"
CONTAINERFILE = HERE / "Containerfile"
IMAGE_TREE = HERE / "image"
OCI_LAYOUT = HERE / "oci"
IMAGE_ARCHITECTURES = ("amd64", "arm64")


def _launcher_constant(name: str) -> str:
    """A path the launcher decides (build/launcher.py is the one place that says it)."""
    import ast

    for node in ast.parse((HERE / "launcher.py").read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise SystemExit(f"build: build/launcher.py has no {name}")


RUNTIME_ROOT = _launcher_constant("RUNTIME_ROOT")
IMAGE_ROOT = _launcher_constant("IMAGE_ROOT")
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
# Sources that cannot be pure unless told so.
PURE_ENV = {"PYYAML_FORCE_LIBYAML": "0", "PYRSISTENT_SKIP_EXTENSION": "1"}
EPOCH = 315532800  # 1980-01-01, the earliest time a zip can hold


def run(*args: str, **env: str) -> None:
    subprocess.run(args, check=True, env={**os.environ, **env}, cwd=PROJECT)


def source_date_epoch() -> str:
    """The commit's time, so rebuilding a commit gives the same bytes."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%ct"], cwd=PROJECT, capture_output=True, text=True, check=True
        ).stdout.strip()
        return str(max(int(out), EPOCH))
    except (OSError, subprocess.CalledProcessError, ValueError):
        return str(EPOCH)


def inputs() -> List[Path]:
    """Every file the executable is made from."""
    package = [
        p for p in (PROJECT / "provider_rke2").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ]
    others = ["pyproject.toml", "requirements.txt", "README.md", "LICENSE", "build/build.py",
              "build/launcher.py", "build/constraints.txt"]  # fmt: skip
    return sorted(package) + [PROJECT / name for name in others]


def inputs_digest() -> str:
    digest = hashlib.sha256()
    for path in inputs():
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def current_executable() -> Path:
    """The executable, rebuilt first unless it was built from exactly the inputs there are now."""
    recorded = INPUTS_RECORD.read_text().strip() if INPUTS_RECORD.exists() else ""
    if EXECUTABLE.exists() and recorded == inputs_digest():
        return EXECUTABLE
    return executable()


def say(text: str) -> None:
    # stderr: `make example` prints exactly the YIP on stdout.
    print(text, file=sys.stderr)


def stage(work: Path) -> Path:
    """Every runtime package, pure Python, installed into one site-packages tree."""
    wheels, site = work / "wheels", work / "site-packages"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    offline = os.environ.get("WHEELS")
    if offline:
        pip_from = ["--no-index", "--find-links", str(Path(offline).resolve())]
    else:
        pip_from = []
    env = {
        **PURE_ENV,
        "PIP_CONSTRAINT": str(HERE / "constraints.txt"),
        "SOURCE_DATE_EPOCH": source_date_epoch(),
    }
    run(*pip, "wheel", *pip_from, "--no-deps", "--no-binary", "pyyaml,pyrsistent", "-r", "requirements.txt",
        "-w", str(wheels), **env)  # fmt: skip
    # From a clean copy: setuptools would otherwise write its own build/lib into this folder.
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(PROJECT / name, source / name)
    shutil.copytree(
        PROJECT / "provider_rke2", source / "provider_rke2", ignore=shutil.ignore_patterns("__pycache__")
    )
    run(*pip, "wheel", *pip_from, "--no-deps", "-w", str(wheels), str(source), **env)
    run(*pip, "install", "--no-deps", "--no-index", "--no-compile", "--target", str(site),
        *sorted(str(w) for w in wheels.glob("*.whl")), **env)  # fmt: skip
    # Nothing that names the build machine or only pip needs: scripts, install records; nor
    # jsonschema's own test suite and benchmarks (files a first run would unpack for nothing).
    for unused in ("bin", "jsonschema/tests", "jsonschema/benchmarks"):
        shutil.rmtree(site / unused, ignore_errors=True)
    gone = [*site.rglob("direct_url.json"), *site.rglob("INSTALLER"), *site.rglob("REQUESTED")]
    for leftover in gone:
        leftover.unlink()
    # RECORD lists them with their hashes, and direct_url.json's names where the source came
    # from (PyPI, or WHEELS): dropped too, so that both builds give the same bytes.
    names = {f"{p.parent.name}/{p.name}" for p in gone}
    for record in site.rglob("RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(line for line in lines if line.split(",", 1)[0] not in names))
    for cache in site.rglob("__pycache__"):
        shutil.rmtree(cache)
    quicker_yaml_reader(site / "yaml" / "reader.py")
    check_staged(site, work)
    return site


# PyYAML's reader compiles, when it is imported, a character class spanning all of Unicode:
# about 5 ms of every boot. The same class written as its complement matches exactly the
# same code points (tests/system/test_executable.py checks every one) and compiles in a tenth.
YAML_NON_PRINTABLE = (
    r"NON_PRINTABLE = re.compile('[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD"
    r"\U00010000-\U0010ffff]')",
    r"NON_PRINTABLE = re.compile('[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x84\x86-\x9F\uD800-\uDFFF"
    r"\uFFFE\uFFFF]')",
)


def quicker_yaml_reader(reader: Path) -> None:
    old, new = YAML_NON_PRINTABLE
    text = reader.read_text()
    if text.count(old) != 1:
        raise SystemExit(f"build: {reader} no longer holds PyYAML 6's NON_PRINTABLE line: review the patch")
    reader.write_text(text.replace(old, new))


def check_staged(site: Path, work: Path) -> None:
    native = [p for p in site.rglob("*") if p.suffix in NATIVE_SUFFIXES]
    if native:
        raise SystemExit(f"build: native code staged, the executable would not be portable: {native}")
    for path in site.rglob("*"):
        if path.is_file() and (
            str(work).encode() in path.read_bytes() or str(PROJECT).encode() in path.read_bytes()
        ):
            raise SystemExit(f"build: {path} names a build-machine path")


def executable(out: Path = EXECUTABLE, root: str = RUNTIME_ROOT) -> Path:
    work = HERE / "work"
    shutil.rmtree(work, ignore_errors=True)
    site = stage(work)
    shiv_out = work / out.name
    run(sys.executable, "-m", "shiv", "--site-packages", str(site), "--reproducible", "--root", root,
        "-e", "provider_rke2.cli:main", "-p", "/usr/bin/env python3", "-o", str(shiv_out),
        SOURCE_DATE_EPOCH=source_date_epoch())  # fmt: skip
    digest = inputs_digest()
    with_launcher(shiv_out, out)
    shutil.rmtree(work)
    if out == EXECUTABLE:
        INPUTS_RECORD.write_text(digest + "\n")
    say(f"built {out.relative_to(PROJECT)}  sha256 {sha256(out)}")
    return out


def with_launcher(shiv_zip: Path, out: Path) -> None:
    """The shiv zip with its __main__ replaced by build/launcher.py, entry order and times
    kept, and the launcher's byte code beside it (__main__.pyc, which zipimport takes before
    the source: no run compiles the launcher; another Python version ignores it)."""
    data = shiv_zip.read_bytes()
    with zipfile.ZipFile(shiv_zip) as source:
        build_id = json.loads(source.read("environment.json"))["build_id"]
        prefix = data[: source.infolist()[0].header_offset]  # the #! line
        buffer = io.BytesIO()
        buffer.write(prefix)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                body = source.read(info)
                if info.filename == "__main__.py":
                    body = launcher(build_id)
                    compiled = zipfile.ZipInfo("__main__.pyc", date_time=info.date_time)
                    compiled.external_attr, compiled.compress_type = info.external_attr, zipfile.ZIP_DEFLATED
                    main_pyc = (compiled, _unchecked_pyc(body, "__main__.py"))
                target.writestr(info, body)
            target.writestr(*main_pyc)
            for info, body in bytecode(source):
                target.writestr(info, body)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.chmod(0o755)
    tmp.replace(out)


def bytecode(source: zipfile.ZipFile) -> List[Tuple[zipfile.ZipInfo, bytes]]:
    """Byte code for the build's Python beside every module (shiv leaves it out), so that no
    run compiles: unchecked-hash .pyc (no times, so the bytes are reproducible; never checked
    against the source, which nothing changes in an unpacked tree), their file names as the
    tree holds them. Another Python version ignores them and compiles for itself."""
    from importlib.util import cache_from_source

    compiled = []
    for info in source.infolist():
        if not (info.filename.startswith("site-packages/") and info.filename.endswith(".py")):
            continue
        pyc = zipfile.ZipInfo(cache_from_source(info.filename), date_time=info.date_time)
        pyc.external_attr, pyc.compress_type = info.external_attr, zipfile.ZIP_DEFLATED
        compiled.append((pyc, _unchecked_pyc(source.read(info), info.filename)))
    return compiled


def _unchecked_pyc(text: bytes, filename: str) -> bytes:
    from importlib._bootstrap_external import _code_to_hash_pyc  # type: ignore[attr-defined]
    from importlib.util import source_hash

    code = compile(text, filename, "exec", dont_inherit=True)
    return bytes(_code_to_hash_pyc(code, source_hash(text), checked=False))


def launcher(build_id: str) -> bytes:
    """build/launcher.py with what it must know without importing the package: the CLI's
    verbs, the events answered, the empty answer, the event's size and time bounds, and the build id
    that names this build's unpacked tree."""
    sys.path.insert(0, str(PROJECT))
    from provider_rke2.names import COMMANDS, EMPTY_RESPONSE, HANDLED, MAX_EVENT_BYTES, STDIN_DEADLINE

    text = (HERE / "launcher.py").read_text()
    values = {
        "COMMANDS": tuple(COMMANDS),
        "HANDLED": tuple(sorted(HANDLED)),
        "EMPTY_RESPONSE": EMPTY_RESPONSE,
        "MAX_EVENT_BYTES": MAX_EVENT_BYTES,
        "STDIN_DEADLINE": STDIN_DEADLINE,
        "BUILD_ID": build_id,
    }
    for name, value in values.items():
        line = re.compile(rf"^{name} = [^#\n]*", re.M)
        if len(line.findall(text)) != 1:
            raise SystemExit(f"build: build/launcher.py must assign {name} once, at the top")
        text = line.sub(f"{name} = {value!r}  ", text, count=1)
    return text.encode()


def image_tree() -> None:
    """What an image needs, laid out as a root tree (build/image): the executable in the
    providers directory (PROVIDERS_DIR: /system/providers, or /usr/local/system/providers
    for the systemd-sysext layout), the node scripts, and the executable already unpacked
    under IMAGE_ROOT (under /usr: an installed Kairos node sees it, where it would not see
    /usr/local), byte-compiled for every Python from 3.9 this machine has, so that no boot
    unpacks or compiles anything."""
    sys.path.insert(0, str(PROJECT))
    from provider_rke2.core.paths import PROVIDER_DIRS  # where the Kairos agent finds providers

    providers = os.environ.get("PROVIDERS_DIR") or PROVIDER_DIRS[0]
    if providers not in PROVIDER_DIRS:
        raise SystemExit(f"build: PROVIDERS_DIR must be one of {', '.join(PROVIDER_DIRS)}, got {providers}")
    os.umask(0o022)  # a tree only root may write, as the launcher asks of one it runs as root
    shutil.rmtree(IMAGE_TREE, ignore_errors=True)
    binary = IMAGE_TREE / providers.lstrip("/") / "agent-provider-rke2"
    binary.parent.mkdir(parents=True)
    shutil.copy2(current_executable(), binary)
    scripts = IMAGE_TREE / "opt" / "rke2" / "scripts"
    scripts.mkdir(parents=True)
    for script in sorted((PROJECT / "provider_rke2" / "scripts").glob("*.sh")):
        shutil.copy2(script, scripts / script.name)
        (scripts / script.name).chmod(0o755)
    cli_docs(IMAGE_TREE)
    extract_root = IMAGE_TREE / IMAGE_ROOT.lstrip("/")
    subprocess.run(
        [sys.executable, str(binary), "--version"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "SHIV_ROOT": str(extract_root)},
    )
    for lock in extract_root.glob(".*_lock"):
        lock.unlink()
    compiled = []
    for python, version in pythons():
        # Unchecked hashes: no times in the bytes, never checked against a source that
        # nothing changes; their file names as the node sees them; one hash seed, so that
        # a set's constants are marshalled in one order.
        subprocess.run(
            [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
             "-s", str(IMAGE_TREE), "-p", "/", str(extract_root)],
            check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        compiled.append(version)
    # The commit's time and plain modes, whatever the umask and clock of this build: the
    # same tree from every build, and one that a root launcher trusts (no group writes).
    epoch = int(source_date_epoch())
    for path in [*IMAGE_TREE.rglob("*"), IMAGE_TREE]:
        executable = path.is_dir() or path.stat().st_mode & 0o100
        path.chmod(0o755 if executable else 0o644)
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    say(
        f"built {IMAGE_TREE.relative_to(PROJECT)}/ (the provider in {providers};"
        f" byte code for Python {', '.join(compiled)})"
    )


# Where a distribution's shells and man look, below an image's root.
CLI_DOCS = {
    "bash": "usr/share/bash-completion/completions/agent-provider-rke2",
    "zsh": "usr/share/zsh/site-functions/_agent-provider-rke2",
    "man": "usr/share/man/man1/agent-provider-rke2.1",
}


def cli_docs(tree: Path) -> None:
    """Shell completion (shtab) and the man page (argparse-manpage), generated from the
    verbs' own parser: what `--help` says, and nothing written by hand to drift from it."""
    import shtab
    from build_manpages.manpage import Manpage

    from provider_rke2 import __version__
    from provider_rke2.verbs.commands import build_parser

    texts = {shell: shtab.complete(build_parser(), shell=shell) for shell in ("bash", "zsh")}
    page = Manpage(build_parser())
    page.date = datetime.fromtimestamp(int(source_date_epoch()), timezone.utc).strftime("%Y-%m-%d")
    page.source = f"agent-provider-rke2 {__version__}"
    page.manual = "provider-rke2"
    texts["man"] = str(page)
    for kind, name in CLI_DOCS.items():
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(texts[kind], encoding="utf-8")


def pythons() -> List[Tuple[str, str]]:
    """(interpreter, "3.N") for each CPython from 3.9 this machine runs, once per version:
    PYTHONS (space-separated) when set, else python3.9 ... python3.14 on the PATH and the
    versions pyenv installed."""
    names = os.environ.get("PYTHONS", "").split()
    if not names:
        names = [f"python3.{minor}" for minor in range(9, 15)]
        pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
        names += sorted(str(p) for p in pyenv.glob("3.*/bin/python3"))
    found: Dict[str, str] = {}
    for name in [sys.executable, *names]:
        try:
            version = subprocess.run(
                [name, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, check=True, timeout=30,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            continue  # not here (or a pyenv shim for a version not selected)
        if version not in found and tuple(map(int, version.split("."))) >= (3, 9):
            found[version] = name
    return sorted(((python, version) for version, python in found.items()), key=lambda p: int(p[1][2:]))


def package() -> None:
    """build/image as one reproducible tarball, for image builds that take a tar (ADD ... /)."""
    _image_tree_built("package")
    entries = [
        (str(path.relative_to(IMAGE_TREE)), path.read_bytes(), path.stat().st_mode & 0o777)
        for path in sorted(IMAGE_TREE.rglob("*"))
        if path.is_file() and not path.is_symlink()
    ]
    write_tarball(PACKAGE, entries)
    say(f"built {PACKAGE.relative_to(PROJECT)}  sha256 {sha256(PACKAGE)}")


def write_tarball(path: Path, entries: List[tuple]) -> None:
    mtime = int(source_date_epoch())
    dirs = sorted(
        {str(Path(name).parents[i]) for name, _, _ in entries for i in range(len(Path(name).parts) - 1)}
    )
    buffer = io.BytesIO()
    # gzip's own header time is fixed too, through mtime on the GzipFile.
    import gzip

    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=mtime) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in dirs:
                tar.addfile(tar_info(name, 0o755, mtime, tarfile.DIRTYPE))
            for name, body, mode in sorted(entries):
                info = tar_info(name, mode, mtime, tarfile.REGTYPE)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    path.write_bytes(buffer.getvalue())


def tar_info(name: str, mode: int, mtime: int, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.type = mode, mtime, kind
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def image(layout: Path = OCI_LAYOUT) -> None:
    """build/image as an OCI image (build/oci, an OCI layout): one FROM scratch layer, the
    same bytes for amd64 and arm64 (pure Python), under one index; built by buildah (vfs
    storage of its own, chroot isolation: root, no daemon), with the standard labels and
    every time the commit's, so that two builds of a commit give one digest."""
    _image_tree_built("image")
    labels = image_labels()
    tag = labels["org.opencontainers.image.version"]
    storage = Path(tempfile.mkdtemp(prefix=".buildah-", dir=HERE))
    shutil.rmtree(layout, ignore_errors=True)
    buildah = ["buildah", "--storage-driver", "vfs", "--root", str(storage / "root"),
               "--runroot", str(storage / "run")]  # fmt: skip
    CONTAINERFILE.write_text(
        "# provider-rke2 for Kairos images: COPY --from=<this image> / /\n"
        "# Built by `make image` from build/image (made by `make image-tree`).\n"
        "FROM scratch\n"
        "COPY . /\n"
    )
    name = f"localhost/provider-rke2:{tag}"
    try:
        quiet(*buildah, "manifest", "create", name)
        for arch in IMAGE_ARCHITECTURES:
            quiet(*buildah, "build", "--quiet", "--isolation", "chroot", "--timestamp", source_date_epoch(),
                  "--platform", f"linux/{arch}", *(f"--label={k}={v}" for k, v in labels.items()),
                  "--manifest", name, "-f", str(CONTAINERFILE), str(IMAGE_TREE))  # fmt: skip
        push = ["manifest", "push", "--quiet", "--all", "--format", "oci", name, f"oci:{layout}:{tag}"]
        quiet(*buildah, *push)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    say(f"built {layout}/ (an OCI layout): provider-rke2:{tag}  {digest}")


def _image_tree_built(target: str) -> None:
    if not (IMAGE_TREE / IMAGE_ROOT.lstrip("/")).is_dir():
        raise SystemExit(f"build: build/image is missing: run `make image-tree` first (make {target} does)")


def quiet(*args: str) -> None:
    """A build tool's command: its chatter shown only when it fails."""
    try:
        done = subprocess.run(args, cwd=PROJECT, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SystemExit(f"build: {args[0]} is missing (Debian: apt-get install {args[0]})") from None
    if done.returncode != 0:
        raise SystemExit(f"build: {' '.join(args[:4])} ... failed:\n{done.stdout}{done.stderr}")


def image_labels() -> Dict[str, str]:
    """The standard OCI labels, from git and the project: all the commit's, none the build's."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=PROJECT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    revision = git("rev-parse", "HEAD")
    tag = git("describe", "--tags", "--exact-match", "--match", "v*")
    version = tag[1:] if tag else package_version() + (f"-g{revision[:12]}" if revision else "")
    if revision and git("status", "--porcelain", "--untracked-files=no"):
        version += "-dirty"
    created = datetime.fromtimestamp(int(source_date_epoch()), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.title": "provider-rke2",
        "org.opencontainers.image.description": "Kairos cluster provider for RKE2 (agent-provider-rke2)",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision or "unknown",
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    source = os.environ.get("IMAGE_SOURCE") or git("remote", "get-url", "origin")
    if source:
        labels["org.opencontainers.image.source"] = source
    else:
        say("build: no git remote 'origin': the image names no source (set IMAGE_SOURCE)")
    return labels


def package_version() -> str:
    text = (PROJECT / "provider_rke2" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)  # type: ignore[union-attr]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    targets = {"executable": executable, "package": package, "image-tree": image_tree, "image": image}
    if len(sys.argv) != 2 or sys.argv[1] not in targets:
        raise SystemExit(f"usage: build.py {{{','.join(targets)}}}")
    targets[sys.argv[1]]()
