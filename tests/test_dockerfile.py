"""The Dockerfile: hadolint finds nothing in it (and does find things in a bad one), its shape is what
deploy/ relies on (numeric non-root USER, the ENTRYPOINT and CMD, one slim base for both stages, the
version label), the build context holds what COPY needs; and its install steps replayed outside
Docker (there is no engine here) give a working, read-only-safe install:

* builder: COPY into a scratch root, RUN `docker/install.sh wheels` (pip's normal cache, PyPI);
* runtime: RUN `docker/install.sh venv` against those wheels only (no index, no pip config), then
  the installed `compat-extender` from that clean venv with the image's ENV, ENTRYPOINT and CMD:
  --help, check-spec, and serve on the bundled examples answering /healthz and a /filter, with the
  install made unwritable and checked byte for byte afterwards.

Differences from the image, by necessity: the host's Python (3.11 here, 3.12 in the image); the
process runs as this user, not USER 65532 (as root it drops every capability, so it cannot write
what is not writable).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from extender.config import Config
from tests import dockerfile
from tests.dockerfile import DOCKERFILE, ROOT, DockerIgnore, Instruction, Stage
from tests.project import PYPROJECT, SCRIPT_NAME, VERSION, tool
from tests.waiting import SAFETY_SECONDS, finishes

INSTALL_SCRIPT = "docker/install.sh"
# PATH inside python:*-slim (the $PATH the image's ENV PATH extends)
BASE_IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def hadolint(path: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    # run from an empty directory with an empty HOME: no .hadolint.yaml anywhere can ignore rules
    env = {"PATH": os.environ["PATH"], "HOME": str(scratch), "XDG_CONFIG_HOME": str(scratch)}
    return subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", str(path)],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- lint and shape ----------------------------------------------------------------------------------


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    result = hadolint(DOCKERFILE, tmp_path)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_does_find_problems(tmp_path: Path) -> None:
    """The control: the same invocation fails a Dockerfile with an untagged base, a cached and
    unpinned pip install, and root as the last USER."""
    bad = tmp_path / "Dockerfile.bad"
    bad.write_text("FROM python\nRUN pip install aiohttp\nUSER root\n")
    result = hadolint(bad, tmp_path)
    assert result.returncode != 0
    for rule in ("DL3006", "DL3042", "DL3013", "DL3002"):
        assert rule in result.stdout, result.stdout


def test_ignore_pragmas_are_justified() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+(global\s+)?ignore", line):
            before = lines[i - 1].strip() if i else ""
            assert before.startswith("#") and "hadolint" not in before, (
                f"Dockerfile:{i + 1}: a hadolint ignore needs a comment line above it saying why"
            )


def test_one_pinned_slim_base_for_every_stage() -> None:
    stages = dockerfile.read()
    first = stages[0]
    match = re.fullmatch(r"python:3\.(\d+)-slim-[a-z]+(@sha256:[0-9a-f]{64})?", first.base)
    assert match, f"the base {first.base!r} is not a pinned python:3.N-slim-<debian> tag"
    required = re.fullmatch(r">=3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert required and int(match.group(1)) >= int(required.group(1))
    assert first.name, "the base stage needs a name for the others to build FROM"
    for stage in stages[1:]:
        assert stage.base == first.name, f"stage {stage.name or 'final'} is FROM {stage.base}, not the base"


def _run_words(instruction: Instruction) -> list[str]:
    words = instruction.words()
    assert words[:1] == ["sh"] and len(words) >= 3 and words[2] in ("wheels", "venv"), (
        f"Dockerfile:{instruction.line}: every RUN is `sh <{INSTALL_SCRIPT}> wheels|venv ...`, so that "
        f"tests/test_dockerfile.py replays all of it; got {instruction.rest!r}"
    )
    return words


def test_runtime_stage_shape() -> None:
    stages = dockerfile.read()
    final = stages[-1]
    env = dockerfile.env(stages, final, initial={"PATH": BASE_IMAGE_PATH})
    args = dockerfile.arg_defaults(final)

    uid, gid = dockerfile.user_ids(final)
    assert uid > 0 and gid > 0
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert entrypoint is not None and entrypoint.rest.startswith("[") and entrypoint.words() == [SCRIPT_NAME]
    assert cmd is not None and cmd.rest.startswith("[")
    words = cmd.words()
    assert words[0] == "serve" and words[words.index("--config") + 1].startswith("/")
    (expose,) = final.all("EXPOSE")
    assert expose.rest == str(Config().listen.port)

    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env["HOME"] == "/tmp"
    (venv_run,) = final.all("RUN")
    assert env["PATH"] == f"{_run_words(venv_run)[-1]}/bin:{BASE_IMAGE_PATH}"  # the venv's commands first

    labels: dict[str, str] = {}
    for label in final.all("LABEL"):
        labels.update({k: dockerfile.substitute(v, args) for k, v in label.pairs().items()})
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    assert labels["org.opencontainers.image.title"] == SCRIPT_NAME
    assert labels["org.opencontainers.image.description"]

    # only the install script runs; nothing is copied into the runtime stage (the wheels and the
    # script are bind mounts of the one RUN), so no compiler or build tool can get in
    assert final.all("COPY") == [] and final.all("ADD") == []
    for stage in stages:
        for run in stage.all("RUN"):
            _run_words(run)


def test_the_build_context_has_what_copy_needs() -> None:
    ignore = DockerIgnore(dockerfile.DOCKERIGNORE.read_text())
    needed: list[str] = []
    for stage in dockerfile.read():
        for copy in stage.all("COPY") + stage.all("ADD"):
            if copy.flag("from") is None:
                needed += copy.words()[:-1]
        for run in stage.all("RUN"):
            for _, mount in (f for f in run.flags if f[0] == "mount"):
                opts = dict(o.partition("=")[::2] for o in mount.split(","))
                if "from" not in opts:
                    needed.append(opts["source"])
    assert INSTALL_SCRIPT in needed
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not ignore.excluded(path), f".dockerignore excludes {path}, which the Dockerfile copies"
    assert not ignore.excluded("extender/cli/main.py")
    for kept_out in ("tests/test_app.py", ".venv/bin/python", ".git/HEAD", "extender/__pycache__/cli.pyc"):
        assert ignore.excluded(kept_out), kept_out


# -- the replay --------------------------------------------------------------------------------------


@dataclass
class Built:
    builder_root: Path  # the builder stage's file system
    root: Path  # the runtime stage's file system
    wheels: Path
    venv: Path
    stages: list[Stage]

    def inside(self, path: str) -> Path:
        """An absolute path in the runtime image -> where the replay put it."""
        assert path.startswith("/"), path
        return self.root / path.lstrip("/")


def _copy(instruction: Instruction, root: Path, workdir: str, ignore: DockerIgnore) -> None:
    *sources, dest = instruction.words()
    target = root / (dest if dest.startswith("/") else f"{workdir}/{dest}").lstrip("/")
    for source in sources:
        src = ROOT / source
        if src.is_dir():
            for path in sorted(src.rglob("*")):
                rel = path.relative_to(ROOT).as_posix()
                if path.is_file() and not ignore.excluded(rel):
                    out = target / path.relative_to(src)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)
        elif len(sources) > 1 or dest.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / src.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def _run(
    instruction: Instruction,
    root: Path,
    workdir: str,
    env: dict[str, str],
    stage_roots: dict[str, Path],
) -> None:
    """RUN `sh SCRIPT ARGS`: container paths to replay paths, bind mounts to their sources."""
    mounts: dict[str, Path] = {}
    for name, value in instruction.flags:
        assert name == "mount", f"Dockerfile:{instruction.line}: unexpected RUN option --{name}"
        opts = dict(o.partition("=")[::2] for o in value.split(","))
        assert opts.get("type") == "bind", value
        base = stage_roots[opts["from"]] if "from" in opts else ROOT
        mounts[opts["target"]] = base / opts["source"].lstrip("/")

    def where(path: str) -> str:
        if not path.startswith("/"):
            return path
        for target, source in mounts.items():
            if path == target or path.startswith(target + "/"):
                return str(source) + path[len(target) :]
        return str(root / path.lstrip("/"))

    words = [where(w) for w in _run_words(instruction)]
    cwd = root / workdir.lstrip("/")
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"Dockerfile:{instruction.line}: {shlex.join(words)}\n{result.stderr}"


def _base_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHON": sys.executable}


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int, int]]:
    out: dict[str, tuple[int, int, int]] = {}
    for path in root.rglob("*"):
        if path == skip or skip in path.parents:
            continue
        st = path.lstat()
        out[path.relative_to(root).as_posix()] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def _set_writable(root: Path, writable: bool, skip: Path) -> None:
    paths = [root, *root.rglob("*")]
    for path in paths if writable else reversed(paths):
        if path == skip or skip in path.parents or path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The Dockerfile's stages replayed in scratch roots, the runtime root then made unwritable
    (except the HOME/emptyDir) for the tests that run it."""
    stages = dockerfile.read()
    ignore = DockerIgnore(dockerfile.DOCKERIGNORE.read_text())
    base = tmp_path_factory.mktemp("image")
    roots: dict[str, Path] = {}
    for index, stage in enumerate(stages):
        if stage.base in roots:  # FROM an earlier stage: start from a copy of its file system
            root = base / (stage.name or "final")
            shutil.copytree(roots[stage.base], root, symlinks=True)
        else:
            root = base / (stage.name or f"stage{index}")
            root.mkdir()
        workdir = "/"
        base_env = _base_env()
        if stage is stages[-1]:
            # the runtime stage sees none of this machine's pip settings (index, find-links):
            # --no-index and the wheels are all there is
            base_env["PIP_CONFIG_FILE"] = os.devnull
        else:
            # the builder keeps this machine's pip settings and pip's cache (PIP_NO_CACHE_DIR is
            # for the image's layers; here it would only make the test slower)
            base_env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
        for instruction in stage.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = instruction.rest
            elif instruction.keyword in ("COPY", "ADD"):
                assert instruction.flag("from") is None, "COPY --from is not replayed"
                _copy(instruction, root, workdir, ignore)
            elif instruction.keyword == "RUN":
                env = dockerfile.env(stages, stage, before=instruction, initial=base_env)
                if stage is not stages[-1]:
                    env.pop("PIP_NO_CACHE_DIR", None)
                _run(instruction, root, workdir, env, roots)
        if stage.name:
            roots[stage.name] = root
    final_root = base / "final"
    assert final_root.is_dir()
    builder = dockerfile.stage_named(stages, "builder")
    (wheels_run,) = builder.all("RUN")
    (venv_run,) = stages[-1].all("RUN")
    wheels = roots["builder"] / wheels_run.words()[-1].lstrip("/")
    image = Built(roots["builder"], final_root, wheels, final_root / venv_run.words()[-1].lstrip("/"), stages)

    home = image.inside(dockerfile.env(stages, stages[-1])["HOME"])
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o1777)  # an emptyDir
    # what serve --config <CMD's path> reads: config/extender.yaml and the examples it points at
    cmd = stages[-1].last("CMD")
    assert cmd is not None
    words = cmd.words()
    config = image.inside(words[words.index("--config") + 1])
    config.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "config" / "extender.yaml", config)
    shutil.copytree(ROOT / "examples", config.parent.parent / "examples")
    _set_writable(final_root, False, skip=home)
    try:
        yield image
    finally:
        _set_writable(final_root, True, skip=home)


def test_the_project_wheel(built: Built) -> None:
    (wheel,) = built.wheels.glob("nfd_compat_extender-*.whl")
    assert wheel.name.startswith(f"nfd_compat_extender-{VERSION}-py3-none-any")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = zf.read(f"nfd_compat_extender-{VERSION}.dist-info/entry_points.txt").decode()
    assert "extender/py.typed" in names
    assert "extender/cli/main.py" in names
    tops = {n.split("/")[0] for n in names}
    assert tops == {"extender", f"nfd_compat_extender-{VERSION}.dist-info"}, tops  # no tests/, benchmarks/
    assert not [n for n in names if "/tests/" in n or n.startswith("tests/")]
    assert f"{SCRIPT_NAME} = extender.cli.main:main" in entry_points
    # every dependency came as a wheel (the runtime stage installs with --no-index)
    assert len(list(built.wheels.glob("*.whl"))) > len(PYPROJECT["project"]["dependencies"])


def _distributions(python: Path) -> set[str]:
    code = "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
    out = subprocess.run(
        [str(python), "-I", "-c", code], capture_output=True, text=True, timeout=SAFETY_SECONDS, check=True
    )
    return {re.sub(r"[-_.]+", "-", n).lower() for n in out.stdout.split()}


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def test_a_clean_venv_with_only_the_runtime(built: Built) -> None:
    cfg = (built.venv / "pyvenv.cfg").read_text()
    assert re.search(r"^include-system-site-packages\s*=\s*false$", cfg, re.M), cfg
    installed = _distributions(built.venv / "bin" / "python")
    assert "nfd-compat-extender" in installed
    for requirement in PYPROJECT["project"]["dependencies"]:
        assert _requirement_name(requirement) in installed, requirement
    # not the test extras, not the installer
    for requirement in PYPROJECT["project"]["optional-dependencies"]["test"]:
        assert _requirement_name(requirement) not in installed, requirement
    assert not installed & {"pip", "setuptools", "wheel"}, installed


@dataclass
class Runtime:
    env: dict[str, str]
    prefix: list[str]  # what makes the install unwritable to the process (as root: no capabilities)
    entrypoint: list[str]  # prefix + the ENTRYPOINT, found on the image's PATH
    cmd: list[str]  # the CMD, container paths mapped


def _runtime(built: Built) -> Runtime:
    final = built.stages[-1]
    image_env = dockerfile.env(built.stages, final, initial={"PATH": BASE_IMAGE_PATH})

    def mapped_path_list(value: str) -> str:
        out: list[str] = []
        for part in value.split(":"):
            out.append(str(built.inside(part)) if built.inside(part).exists() else part)
        return ":".join(out)

    env = {k: v for k, v in image_env.items() if k not in ("PATH", "HOME")}
    env["PATH"] = mapped_path_list(image_env["PATH"])
    env["HOME"] = str(built.inside(image_env["HOME"]))
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert entrypoint is not None and cmd is not None
    (program, *rest) = entrypoint.words()
    found = shutil.which(program, path=env["PATH"])
    assert found is not None and Path(found).parent == built.venv / "bin", (found, env["PATH"])
    cmd_words = [str(built.inside(w)) if w.startswith("/") else w for w in cmd.words()]
    prefix: list[str] = []
    if os.geteuid() == 0:
        # root ignores file modes; without any capability it cannot (the image runs as 65532,
        # which this machine's interpreter may not be readable by)
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root needs setpriv (util-linux) to drop capabilities"
        prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs"]
    return Runtime(env, prefix, [*prefix, found, *rest], cmd_words)


def _exec(runtime: Runtime, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*runtime.entrypoint, *args],
        env=runtime.env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SAFETY_SECONDS,
    )


@contextlib.asynccontextmanager
async def _serving(runtime: Runtime, *extra: str, cwd: Path) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        *runtime.entrypoint,
        *runtime.cmd,
        *extra,
        env=runtime.env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    stderr: list[str] = []
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            stderr.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match and not listening.done():
                listening.set_result(match.group(1))

    reader = asyncio.create_task(read())
    try:
        waiting: list[asyncio.Future[Any]] = [listening, reader]
        done, _ = await asyncio.wait(waiting, timeout=SAFETY_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        assert listening in done, "serve did not start:\n" + "".join(stderr)
        yield listening.result()
        proc.send_signal(signal.SIGTERM)
        assert await finishes(proc.wait(), "serve exits after SIGTERM") == 0, "".join(stderr)
        await finishes(reader, "serve's stderr ends")
        assert not [line for line in stderr if " ERROR " in line or "Traceback" in line], "".join(stderr)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def test_the_installed_command_runs_on_a_read_only_install(built: Built) -> None:
    runtime = _runtime(built)
    home = Path(runtime.env["HOME"])
    before = _snapshot(built.root, skip=home)
    cwd = built.root  # WORKDIR is / in the image

    # the control: a process started like the command cannot write into the install, only HOME
    probe = (
        "import sys\n"
        "try:\n    open(sys.argv[1], 'w')\nexcept PermissionError:\n    pass\n"
        "else:\n    sys.exit('the install is writable')\n"
        "open(sys.argv[2], 'w').close()\n"
    )
    python = str(built.venv / "bin" / "python")
    result = subprocess.run(
        [*runtime.prefix, python, "-c", probe, str(built.venv / "probe"), str(home / "probe")],
        env=runtime.env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SAFETY_SECONDS,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    result = _exec(runtime, "--help", cwd=cwd)
    assert result.returncode == 0 and "serve" in result.stdout and "check-spec" in result.stdout, (
        result.stderr
    )
    config_dir = Path(runtime.cmd[runtime.cmd.index("--config") + 1]).parent
    spec = config_dir.parent / "examples" / "specs" / "dpdk-app.yaml"
    result = _exec(runtime, "check-spec", str(spec), cwd=cwd)
    assert result.returncode == 0 and ": ok, " in result.stdout, result.stdout + result.stderr

    request = ROOT / "examples" / "requests" / "filter-dpdk.json"
    answer = orjson.loads(request.with_suffix(".answer.json").read_bytes())
    # the CMD as it is, on a free port (config/extender.yaml says 8888)
    async with _serving(runtime, "--port", "0", cwd=cwd) as base, aiohttp.ClientSession() as session:
        async with session.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with session.get(f"{base}/readyz") as resp:
            assert resp.status == 200
        async with session.post(f"{base}/filter", data=request.read_bytes()) as resp:
            assert resp.status == 200
            got: Any = orjson.loads(await resp.read())
        assert got == answer

    after = _snapshot(built.root, skip=home)
    assert after == before, {
        "added": sorted(after.keys() - before.keys())[:20],
        "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k])[:20],
    }
