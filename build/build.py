"""Builds the one-file executable, and the trees image builders need.

    python build/build.py executable   build/agent-provider-rke2
    python build/build.py package      build/provider-rke2-image.tar.gz, and build/context/ with
                                       build/Containerfile (its build context: build/context)
    python build/build.py image-tree   build/image/: the package, pre-extracted

package and image-tree rebuild the executable first whenever any of its inputs (sources,
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
import zipfile
from pathlib import Path
from typing import List, Tuple

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
EXECUTABLE = HERE / "agent-provider-rke2"
INPUTS_RECORD = HERE / "agent-provider-rke2.inputs"
PACKAGE = HERE / "provider-rke2-image.tar.gz"
CONTAINERFILE = HERE / "Containerfile"
CONTEXT = HERE / "context"
IMAGE_TREE = HERE / "image"


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
    others = ["pyproject.toml", "requirements.txt", "README.md", "build/build.py", "build/launcher.py",
              "build/constraints.txt"]  # fmt: skip
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
    for name in ("pyproject.toml", "README.md"):
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
    check_staged(site, work)
    return site


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
    """The shiv zip with its __main__ replaced by build/launcher.py, entry order and times kept."""
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
                target.writestr(info, body)
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
    from importlib._bootstrap_external import _code_to_hash_pyc  # type: ignore[attr-defined]
    from importlib.util import cache_from_source, source_hash

    compiled = []
    for info in source.infolist():
        if not (info.filename.startswith("site-packages/") and info.filename.endswith(".py")):
            continue
        text = source.read(info)
        code = compile(text, info.filename, "exec", dont_inherit=True)
        pyc = zipfile.ZipInfo(cache_from_source(info.filename), date_time=info.date_time)
        pyc.external_attr, pyc.compress_type = info.external_attr, zipfile.ZIP_DEFLATED
        compiled.append((pyc, bytes(_code_to_hash_pyc(code, source_hash(text), checked=False))))
    return compiled


def launcher(build_id: str) -> bytes:
    """build/launcher.py with what it must know without importing the package: the CLI's
    verbs, the events answered, the empty answer, the event size bound, and the build id
    that names this build's unpacked tree."""
    sys.path.insert(0, str(PROJECT))
    from provider_rke2.cli import COMMANDS
    from provider_rke2.events import EMPTY_RESPONSE, HANDLED, MAX_EVENT_BYTES

    text = (HERE / "launcher.py").read_text()
    values = {
        "COMMANDS": tuple(COMMANDS),
        "HANDLED": tuple(sorted(HANDLED)),
        "EMPTY_RESPONSE": EMPTY_RESPONSE,
        "MAX_EVENT_BYTES": MAX_EVENT_BYTES,
        "BUILD_ID": build_id,
    }
    for name, value in values.items():
        line = re.compile(rf"^{name} = [^#\n]*", re.M)
        if len(line.findall(text)) != 1:
            raise SystemExit(f"build: build/launcher.py must assign {name} once, at the top")
        text = line.sub(f"{name} = {value!r}  ", text, count=1)
    return text.encode()


def package() -> None:
    """What an image needs, as a tarball, plus a FROM scratch container file for OCI builds."""
    binary = current_executable()
    entries = [("system/providers/agent-provider-rke2", binary.read_bytes(), 0o755)]
    scripts = PROJECT / "provider_rke2" / "scripts"
    entries += [(f"opt/rke2/scripts/{p.name}", p.read_bytes(), 0o755) for p in sorted(scripts.glob("*.sh"))]
    write_tarball(PACKAGE, entries)
    # The Containerfile's build context: the same files, as a tree.
    shutil.rmtree(CONTEXT, ignore_errors=True)
    for name, body, mode in entries:
        path = CONTEXT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        path.chmod(mode)
    CONTAINERFILE.write_text(
        "# Image layer for Kairos image builds: COPY --from=<this image> / /\n"
        "# Build context: build/context (made with this file by `make package`), e.g.\n"
        "#   docker build -f build/Containerfile build/context\n"
        "FROM scratch\n"
        "COPY system/ /system/\n"
        "COPY opt/ /opt/\n"
    )
    say(f"built {PACKAGE.relative_to(PROJECT)}  sha256 {sha256(PACKAGE)}")
    say(f"built {CONTAINERFILE.relative_to(PROJECT)} with its context {CONTEXT.relative_to(PROJECT)}/")


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


def image_tree() -> None:
    """The package laid out as a root filesystem, with the executable pre-extracted under
    /usr/local/lib/provider-rke2, so that a boot writes nothing."""
    shutil.rmtree(IMAGE_TREE, ignore_errors=True)
    binary = IMAGE_TREE / "system" / "providers" / "agent-provider-rke2"
    binary.parent.mkdir(parents=True)
    shutil.copy2(current_executable(), binary)
    scripts = IMAGE_TREE / "opt" / "rke2" / "scripts"
    shutil.copytree(PROJECT / "provider_rke2" / "scripts", scripts)
    extract_root = IMAGE_TREE / IMAGE_ROOT.lstrip("/")
    subprocess.run(
        [sys.executable, str(binary), "--version"],
        check=True,
        env={**os.environ, "SHIV_ROOT": str(extract_root)},
    )
    for lock in extract_root.glob(".*_lock"):
        lock.unlink()
    # Byte-compile for the Python that ran this target; others compile in memory.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(extract_root)], check=True)
    say(f"built {IMAGE_TREE.relative_to(PROJECT)}/ (copy it onto the image's /)")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    targets = {"executable": executable, "package": package, "image-tree": image_tree}
    if len(sys.argv) != 2 or sys.argv[1] not in targets:
        raise SystemExit(f"usage: build.py {{{','.join(targets)}}}")
    targets[sys.argv[1]]()
