"""Serving image benchmark: build time, size and start-up time, serving-only dependencies
vs the full dependency set (training libraries too). Prints figures (not a test).

Needs root, buildah and a built project (`make run`); uses .ci/image.sh (the debootstrap
stand-in base, made once and cached). Run from the project root:

    python3 bench/image.py [--startups 3] [--cold-base] [--keep] [--reuse]

Measured:
- the stand-in base's build (only with --cold-base: it is removed and made again);
- the serving image's build with the base cached: with no layer cache (`--no-cache`),
  and again after a new commit (only the version/commit layers change);
- for both dependency sets (the full set: the Dockerfile's `uv sync` without
  `--no-default-groups`, i.e. with the `train` group, which is what the image carried
  before the split): the image size as buildah reports it (uncompressed), the root file
  system in bytes (`du`), and the compressed size a registry stores (`buildah push` to an
  OCI layout, gzip layers);
- start-up of the serving image: `buildah from` and mount (the container's file system),
  and `buildah run` of the image's command to the first 200 on /health; median of N.

Every image and intermediate layer this run creates is removed at the end (--keep keeps
them); images that existed before are left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.serving.processes import descendants

ROOT = Path.cwd()
IMAGE_SH = Path(__file__).resolve().parents[1] / ".ci" / "image.sh"
SERVING = "localhost/mlops-template-model-api:bench-serving"
FULL = "localhost/mlops-template-model-api:bench-full"
CONTEXT_FILES = [
    "Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock", "README.md", "params.yaml",
    "data/schema.json", "models/model.onnx", "models/train_info.json", "eval/metrics.json",
]  # fmt: skip
ENV = {**os.environ, "STORAGE_DRIVER": os.environ.get("STORAGE_DRIVER", "vfs")}


def sh(*args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, text=True, capture_output=True, env={**ENV, **env})
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def all_images() -> set[str]:
    return set(sh("buildah", "images", "-a", "-q", "--no-trunc").stdout.split())


def timed_build(context: Path, tag: str, **env: str) -> float:
    started = time.monotonic()
    sh("bash", str(IMAGE_SH), str(context), tag, **env)
    return time.monotonic() - started


def context_copy(dest: Path, full: bool) -> Path:
    for rel in CONTEXT_FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__"))
    if full:
        dockerfile = dest / "Dockerfile"
        text = dockerfile.read_text()
        assert "--no-default-groups" in text, "the Dockerfile no longer selects the serving set"
        dockerfile.write_text(text.replace(" --no-default-groups", ""))
    return dest


def image_exists(tag: str) -> bool:
    return sh("buildah", "inspect", "--type", "image", tag, check=False).returncode == 0


def reported_size(tag: str) -> str:
    return json.loads(sh("buildah", "images", "--json", tag).stdout)[0]["size"]


def pushed_bytes(tag: str, tmp: Path) -> int:
    layout = tmp / f"oci-{tag.rsplit(':', 1)[1]}"
    sh("buildah", "push", "--quiet", tag, f"oci:{layout}")
    size = sum(p.stat().st_size for p in (layout / "blobs").rglob("*") if p.is_file())
    shutil.rmtree(layout)
    return size


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop(runner: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server itself (buildah run answers SIGTERM by killing it)."""
    for pid in descendants(runner.pid):
        try:
            if b"uvicorn" in (Path("/proc") / str(pid) / "cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
        except (OSError, ProcessLookupError):
            pass
    try:
        runner.wait(30)
    except subprocess.TimeoutExpired:
        runner.kill()
        runner.wait()


def startup(tag: str) -> tuple[float, float, int]:
    """(seconds for `buildah from` + mount, seconds from `buildah run` to /health 200,
    root file system bytes)."""
    config = json.loads(sh("buildah", "inspect", "--type", "image", tag).stdout)["OCIv1"]["config"]
    command = list(config["Cmd"])
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    name = f"bench-image-{os.getpid()}"
    sh("buildah", "rm", name, check=False)
    started = time.monotonic()
    sh("buildah", "from", "--name", name, tag)
    mount = sh("buildah", "mount", name).stdout.strip()
    created = time.monotonic() - started
    rootfs = int(sh("du", "-sb", mount).stdout.split()[0])
    sh("buildah", "umount", name)
    volume = Path(tempfile.mkdtemp(prefix="bench-image-"))
    os.chown(volume, 10001, 10001)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    runner = subprocess.Popen(
        ["buildah", "run", "--isolation", "chroot", "--network", "host",
         "--volume", f"{volume}:/var/lib/predictions", name, "--", *command],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
    )  # fmt: skip
    try:
        while not healthy(url):
            if runner.poll() is not None or time.monotonic() - started > 120:
                sys.exit(f"{tag}: no 200 on /health (buildah run exit {runner.returncode})")
            time.sleep(0.02)
        ready = time.monotonic() - started
    finally:
        try:
            stop(runner)
        finally:
            sh("buildah", "rm", name, check=False)
            shutil.rmtree(volume, ignore_errors=True)
    return created, ready, rootfs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--startups", type=int, default=3)
    parser.add_argument("--cold-base", action="store_true", help="remake the stand-in base")
    parser.add_argument("--keep", action="store_true", help="keep the images this run made")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the bench images already built (--keep)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("buildah") is None:
        sys.exit("needs root and buildah (see .ci/image.sh)")
    for rel in CONTEXT_FILES:
        if not (ROOT / rel).is_file():
            sys.exit(f"{rel} is missing: run `make run` first, from the project root")
    before = all_images()
    print(f"buildah {sh('buildah', '--version').stdout.split()[2]}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp_name:
        tmp = Path(tmp_name)
        if args.cold_base:
            # made under another name: the cached base has children (the layer cache)
            standin = "localhost/mlops-template-python-standin:bench-cold"
            sh("buildah", "rmi", standin, check=False)
            started = time.monotonic()
            sh("bash", str(IMAGE_SH), "--base-only", IMAGE_STANDIN=standin)
            print(f"stand-in base (debootstrap), cold: {time.monotonic() - started:.0f} s")
            print(f"stand-in base size: {reported_size(standin)}")
        serving = context_copy(tmp / "serving", full=False)
        full = context_copy(tmp / "full", full=True)
        if args.reuse and image_exists(SERVING) and image_exists(FULL):
            print(f"builds skipped (--reuse): {SERVING} and {FULL} as they are")
        else:
            cold = timed_build(serving, SERVING, BUILD_ARGS="--no-cache", GIT_COMMIT="bench-1")
            print(f"serving image build, base cached, no layer cache: {cold:.0f} s")
            warm = timed_build(serving, SERVING, GIT_COMMIT="bench-2")
            print(f"serving image rebuild, new commit (layer cache): {warm:.0f} s")
            full_cold = timed_build(full, FULL, BUILD_ARGS="--no-cache", GIT_COMMIT="bench-1")
            print(f"full-dependency image build, no layer cache: {full_cold:.0f} s")
        sizes = {}
        for label, tag in (("serving-only", SERVING), ("full set", FULL)):
            created, ready, rootfs = startup(tag)
            pushed = pushed_bytes(tag, tmp)
            sizes[label] = rootfs
            print(
                f"{label:>12}: {reported_size(tag)} (buildah images), rootfs {rootfs / 1e6:.0f} MB,"
                f" pushed (gzip) {pushed / 1e6:.0f} MB; buildah from + mount {created:.1f} s,"
                f" buildah run -> /health 200 {ready:.2f} s"
            )
        print(f"rootfs serving-only / full set: {sizes['serving-only'] / sizes['full set']:.2f}")
        runs = [startup(SERVING) for _ in range(args.startups)]
        print(
            f"start-up, serving-only, median of {args.startups}: buildah from + mount "
            f"{statistics.median(r[0] for r in runs):.1f} s, buildah run -> /health 200 "
            f"{statistics.median(r[1] for r in runs):.2f} s"
        )
    if not args.keep:
        made = [i for i in all_images() if i not in before]
        for _ in range(3):  # children first: retry what still had a child
            for image in made:
                sh("buildah", "rmi", image, check=False)
        left = [i for i in all_images() if i not in before]
        print(f"removed {len(made) - len(left)} images this run made ({len(left)} left)")


if __name__ == "__main__":
    main()
