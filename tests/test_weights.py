"""download-weights and resolve(), fully offline: a fake Hub (injected fetcher), tiny stand-in files
in the real layout, and a socket guard so any real network use fails the test."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from animate_cli import weights as W
from animate_cli.cli import app
from animate_cli.errors import DiskSpaceError, ExitCode, HubError, UsageError, WeightsMissingError
from animate_cli.weights import downloader as WD

CLI_ENV = {"COLUMNS": "300"}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def guard(*a, **k):
        raise RuntimeError("network access in tests")

    monkeypatch.setattr(socket.socket, "connect", guard)


@pytest.fixture
def online(monkeypatch):
    """The Hub counts as reachable (the fake fetcher answers); HF_HUB_OFFLINE unset."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


# --- tiny stand-ins for every registry file -------------------------------------------------------
def st_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.safetensors"
        save_file(tensors, str(p))
        return p.read_bytes()


ONNX = b"\x08\x07\x3a\x00"  # the smallest whole ModelProto: ir_version 7 and an empty graph (field 7)


def folder_model(n_files: int = 3) -> dict[str, bytes]:
    """A folder ONNX model as Wan's ViTPose-H is stored: end2end.onnx + one file per weight tensor."""
    import tempfile

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.full((4, 4), i, np.float32), f"blocks.{i}.weight") for i in range(n_files)]
    nodes = [
        helper.make_node("MatMul", ["x" if i == 0 else f"h{i}", f"blocks.{i}.weight"], [f"h{i + 1}"]) for i in range(n_files)
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info(f"h{n_files}", TensorProto.FLOAT, [1, 4])], inits)  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        onnx.save_model(helper.make_model(graph), f"{d}/end2end.onnx", save_as_external_data=True,
                        all_tensors_to_one_file=False, size_threshold=0)  # fmt: skip
        return {p.name: p.read_bytes() for p in Path(d).iterdir()}


TRANSFORMER_KEYS = {i: [f"blocks.{i}.w"] for i in range(4)}


def _zip(member_path: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "x")
        z.writestr(member_path, data)
    return buf.getvalue()


def hub_content() -> dict[str, dict[str, bytes]]:
    """repo_id -> {path: bytes} holding every file the registry asks for (plus the demo inputs)."""
    hub: dict[str, dict[str, bytes]] = {}
    for it in W.registry_items(W.PARTS, "all"):
        repo = W.REPOS[it.repo].repo_id
        name = it.path.rsplit("/", 1)[-1]
        if it.how == "convert":
            i = int(name.split("-")[1]) - 1
            data = st_bytes({k: np.ones(3, np.float32) * i for k in TRANSFORMER_KEYS[i]})
        elif it.how == "index":
            shard = W.TRANSFORMER_SHARD
            wm = {k: shard.format(i=i + 1, n=4) for i, ks in TRANSFORMER_KEYS.items() for k in ks}
            data = json.dumps({"metadata": {}, "weight_map": wm}).encode()
        elif it.how == "unzip":
            data = _zip("model_dir/end2end.onnx", ONNX)
        elif it.how == "folder":
            for name, data in folder_model().items():
                hub.setdefault(repo, {})[f"{it.path}/{name}"] = data
            continue
        elif name.endswith(".onnx"):
            data = ONNX
        elif name.endswith(".safetensors.index.json"):  # text_encoder
            wm = {f"t{j}": f"model-0000{j}-of-00003.safetensors" for j in (1, 2, 3)}
            data = json.dumps({"metadata": {}, "weight_map": wm}).encode()
        elif name.startswith("model-0000"):
            j = int(name[len("model-0000")])
            data = st_bytes({f"t{j}": np.zeros(2, np.float32)})
        elif name.endswith(".safetensors"):
            data = st_bytes({"w": np.zeros(4, np.float32)})
        elif name.endswith(".json"):
            data = b'{"ok": true}'
        else:
            data = b"vocab-bytes"
        hub.setdefault(repo, {})[it.path] = data
    for rel in W.EXAMPLE_FILES:
        hub["epfl-vita/everanimate"][W.EXAMPLES_PREFIX + rel] = b"demo:" + rel.encode()
    return hub


def n_files(items) -> int:
    """Files a download of `items` fetches: a folder item is all of its files."""
    return sum(len(folder_model()) if it.how == "folder" else 1 for it in items)


def sha(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()


class FakeHub:
    """Implements weights.Fetcher over `hub_content()`; records calls; can fail on demand."""

    def __init__(self, content=None, fail_on_download: int | None = None, error: BaseException | None = None):
        self.content = content or hub_content()
        self.calls: list[tuple] = []
        self.fail_on_download = fail_on_download
        self.error = error
        self.heads: dict[tuple[str, str], str] = {}

    def _maybe_fail(self):
        if self.error is not None:
            raise self.error

    def commit(self, repo_id, revision):
        """A sha per (repo, branch); `heads` moves a branch; a full sha answers itself."""
        self.calls.append(("commit", repo_id, revision, None))
        self._maybe_fail()
        if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
            return revision
        return self.heads.get((repo_id, revision)) or sha(f"{repo_id}@{revision}")

    def sizes(self, repo_id, revision, paths):
        self.calls.append(("sizes", repo_id, revision, tuple(paths)))
        self._maybe_fail()
        files = self.content.get(repo_id, {})
        return {p: len(files[p]) for p in paths if p in files}

    def listing(self, repo_id, revision, prefix):
        self.calls.append(("listing", repo_id, revision, prefix))
        self._maybe_fail()
        return {p: len(b) for p, b in self.content.get(repo_id, {}).items() if p.startswith(prefix)}

    def download(self, repo_id, path, revision, local_dir):
        self.calls.append(("download", repo_id, revision, path))
        self._maybe_fail()
        if self.fail_on_download is not None and len(self.downloads) == self.fail_on_download:
            raise KeyboardInterrupt
        dest = Path(local_dir) / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.content[repo_id][path])
        return dest

    @property
    def downloads(self) -> list[str]:
        return [c[3] for c in self.calls if c[0] == "download"]


def copy_convert(src: Path, dst: Path) -> None:
    """Stand-in for the bf16 -> diffusers conversion (tested for real in test_weights_convert.py)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())


def fill(root: Path, parts=W.PARTS, resolution="all") -> FakeHub:
    hub = FakeHub()
    W.download(W.DownloadRequest(root, parts, resolution), fetch=hub, convert=copy_convert)
    return hub


# --- registry and resolve ---------------------------------------------------------------------------
def test_registry_is_what_run_and_pose_load():
    req = W.required_files("480p", ("base", "lora", "pose"))
    base = f"{W.BASE_DIR}/"
    for comp in ("transformer", "vae", "text_encoder", "image_encoder", "tokenizer"):
        assert any(r.startswith(f"{base}{comp}/") for r in req), comp
    for comp in W.BASE_COMPONENTS:
        assert f"{base}{comp}/config.json" in req
    assert f"{base}transformer/{W.TRANSFORMER_INDEX}" in req
    assert "everanimate/ckpts/everanimate-v1-lora32/stage2_480p.safetensors" in req
    assert "everanimate/ckpts/everanimate-v1-lora32/stage3_720p_beta.safetensors" not in req
    assert f"pose/{W.DET_ONNX}" in req and f"pose/{W.POSE_ONNX}" in req
    assert "everanimate/ckpts/everanimate-v1-lora32/stage3_720p_beta.safetensors" in W.required_files("720p", ("lora",))
    # scheduler / image_processor are not used by the rollout and not downloaded
    assert not any("/scheduler/" in r or "/image_processor/" in r for r in req)


def test_resolve_complete_folder(tmp_path, online):
    fill(tmp_path)
    paths = W.resolve(tmp_path, "720p", need=("base", "lora", "pose"))
    assert paths.base == tmp_path / W.BASE_DIR
    assert paths.lora == tmp_path / "everanimate/ckpts/everanimate-v1-lora32/stage3_720p_beta.safetensors"
    assert paths.det_onnx.is_file() and paths.pose_onnx.is_file()
    assert W.resolve(tmp_path).det_onnx is None  # default need: base + lora


def test_missing_files_reported_by_name_with_the_fixing_command(tmp_path, online):
    fill(tmp_path, ("base", "lora"), "480p")
    (tmp_path / W.BASE_DIR / "vae/diffusion_pytorch_model.safetensors").unlink()
    (tmp_path / W.BASE_DIR / "text_encoder/model-00002-of-00003.safetensors").unlink()
    with pytest.raises(WeightsMissingError) as e:
        W.resolve(tmp_path, "480p", need=("base", "lora", "pose"))
    msg, hint = e.value.message, e.value.hint
    assert msg.startswith(f"missing 4 files in {tmp_path}: ")
    for name in (
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model-00002-of-00003.safetensors",
        W.DET_ONNX,
        W.POSE_ONNX,
    ):
        assert name in msg
    assert hint == f"run `everanimate download-weights --dir {tmp_path} --only base --only pose`"
    assert e.value.exit_code == ExitCode.WEIGHTS
    with pytest.raises(WeightsMissingError) as e:
        W.resolve(tmp_path, "720p", need=("lora",))
    assert "stage3_720p_beta.safetensors" in e.value.message and "--only lora --resolution 720p" in e.value.hint


def test_check_is_structural_not_just_presence(tmp_path, online):
    fill(tmp_path, ("base",), "480p")
    base = tmp_path / W.BASE_DIR
    assert W.problems(tmp_path, parts=("base",)) == []
    shard = base / "text_encoder/model-00001-of-00003.safetensors"
    good = shard.read_bytes()
    shard.write_bytes(good[:-3])  # truncated download
    assert [p for p, _ in W.problems(tmp_path, parts=("base",))] == [
        f"{W.BASE_DIR}/text_encoder/model-00001-of-00003.safetensors"
    ]
    shard.write_bytes(st_bytes({"other": np.zeros(2, np.float32)}))  # a shard that lacks what the index lists
    assert "lacks 1 tensors" in W.problems(tmp_path, parts=("base",))[0][1]
    shard.write_bytes(good)
    (base / "tokenizer/tokenizer.json").unlink()
    assert W.problems(tmp_path, parts=("base",)) == []  # spiece.model alone is enough for the tokenizer
    (base / "tokenizer/spiece.model").unlink()
    assert W.missing_files(tmp_path, parts=("base",)) == [f"{W.BASE_DIR}/tokenizer/tokenizer.json"]
    # single-file weights (what save_pretrained writes for small models) are accepted instead of index + shards
    (base / "tokenizer/spiece.model").write_bytes(b"x")
    te = base / "text_encoder"
    for p in te.glob("model*"):
        p.unlink()
    (te / "model.safetensors").write_bytes(st_bytes({"w": np.zeros(1, np.float32)}))
    assert W.problems(tmp_path, parts=("base",)) == []
    (base / "vae/config.json").write_text("{not json")
    assert W.problems(tmp_path, parts=("base",)) == [(f"{W.BASE_DIR}/vae/config.json", "unreadable JSON (JSONDecodeError)")]


# --- download ---------------------------------------------------------------------------------------
def test_download_fetches_everything_then_nothing(tmp_path, online):
    hub = fill(tmp_path, W.PARTS, "all")
    assert len(hub.downloads) == n_files(W.registry_items(W.PARTS, "all"))
    assert not (tmp_path / W.STAGING_DIR).exists()  # zips, original shards and the reference index are gone
    assert (tmp_path / "pose" / W.DET_ONNX).read_bytes() == ONNX
    index = json.loads((tmp_path / W.BASE_DIR / "transformer" / W.TRANSFORMER_INDEX).read_text())
    assert index["weight_map"]["blocks.3.w"] == "diffusion_pytorch_model-00004-of-00004.safetensors"
    again = FakeHub(error=RuntimeError("must not touch the Hub"))
    report = W.download(W.DownloadRequest(tmp_path, W.PARTS, "all"), fetch=again, convert=copy_convert)
    assert report.complete and report.fetched == [] and again.calls == []


def test_resume_partial_folder_fetches_only_what_is_missing_or_broken(tmp_path, online):
    fill(tmp_path, ("base", "lora"), "480p")
    base = tmp_path / W.BASE_DIR
    (base / "image_encoder/model.safetensors").unlink()
    te = base / "text_encoder/model-00003-of-00003.safetensors"
    te.write_bytes(te.read_bytes()[:20])  # half-written by an earlier run
    (base / "transformer" / W.TRANSFORMER_INDEX).unlink()  # conversion interrupted before the index
    hub = FakeHub()
    report = W.download(W.DownloadRequest(tmp_path, ("base", "lora"), "480p"), fetch=hub, convert=copy_convert)
    assert sorted(hub.downloads) == sorted(
        ["image_encoder/model.safetensors", "text_encoder/model-00003-of-00003.safetensors", f"transformer/{W.TRANSFORMER_INDEX}"]
    )
    assert report.complete and W.problems(tmp_path) == []


def test_interrupted_download_resumes(tmp_path, online):
    hub = FakeHub(fail_on_download=5)
    with pytest.raises(KeyboardInterrupt):
        W.download(W.DownloadRequest(tmp_path, W.PARTS, "480p"), fetch=hub, convert=copy_convert)
    done = hub.downloads[:-1]  # the 5th was interrupted
    assert len(done) == 4
    assert W.missing_files(tmp_path, parts=W.PARTS)  # not complete yet
    hub2 = FakeHub()
    report = W.download(W.DownloadRequest(tmp_path, W.PARTS, "480p"), fetch=hub2, convert=copy_convert)
    assert report.complete
    assert not set(done) & set(hub2.downloads)  # finished files were not fetched again
    assert len(done) + len(hub2.downloads) == n_files(W.registry_items(W.PARTS, "480p"))


def test_download_that_lands_incomplete_is_reported(tmp_path, online):
    content = hub_content()
    te_index = json.loads(content["Wan-AI/Wan2.2-Animate-14B-Diffusers"]["text_encoder/model.safetensors.index.json"])
    te_index["weight_map"]["t4"] = "model-00004-of-00003.safetensors"  # upstream index names a shard we do not fetch
    content["Wan-AI/Wan2.2-Animate-14B-Diffusers"]["text_encoder/model.safetensors.index.json"] = json.dumps(te_index).encode()
    with pytest.raises(WeightsMissingError) as e:
        W.download(W.DownloadRequest(tmp_path, ("base",), "480p"), fetch=FakeHub(content), convert=copy_convert)
    assert "model-00004-of-00003.safetensors" in e.value.message and "download finished but 1 files" in e.value.message


def test_dry_run_lists_files_sizes_presence_and_total(tmp_path, online):
    fill(tmp_path, ("lora",), "480p")
    hub = FakeHub()
    report = W.download(W.DownloadRequest(tmp_path, W.PARTS, "480p", dry_run=True), fetch=hub)
    assert hub.downloads == [] and not (tmp_path / W.BASE_DIR).exists()
    by_dest = {f.item.dest: f for f in report.files}
    assert by_dest[W.LORA_ITEMS["480p"].dest].present
    pending = [f for f in report.files if not f.present]
    assert len(pending) == len(report.files) - 1
    assert all(f.exact for f in pending) and report.sizes_from_hub
    assert report.download_bytes == sum(f.size for f in pending)
    largest_staged = max(f.size for f in pending if f.item.how in ("convert", "unzip"))
    assert report.needed_bytes == report.download_bytes + largest_staged


def test_dry_run_cli_json_and_table(tmp_path, online, monkeypatch):
    hub = FakeHub()
    monkeypatch.setattr(W, "HubFetcher", lambda progress=True: hub)
    r = CliRunner().invoke(
        app, ["download-weights", "--dir", str(tmp_path), "--only", "pose,lora", "--dry-run", "--json"], env=CLI_ENV
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["ok"] and out["dry_run"] and out["to_download"] == 5
    assert {f["path"] for f in out["files"]} == {W.LORA_ITEMS["480p"].dest, f"pose/{W.DET_ONNX}", f"pose/{W.POSE_ONNX}",
                                                 f"pose/{W.WAN_DET_ONNX}", f"pose/{W.WAN_POSE_DIR}"}  # fmt: skip
    folder = next(f for f in out["files"] if f["path"] == f"pose/{W.WAN_POSE_DIR}")
    assert folder["size"] == sum(len(b) for b in folder_model().values()) and folder["size_exact"]  # summed from the listing
    assert all(not f["present"] for f in out["files"]) and hub.downloads == []
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--only", "pose", "--dry-run"], env=CLI_ENV)
    assert r.exit_code == 0 and r.stdout == ""
    assert "Will download 4 files (out of 4)" in r.stderr and "to download" in r.stderr


def test_offline_is_exit_4_without_touching_the_hub(tmp_path, offline, monkeypatch):
    hub = FakeHub(error=RuntimeError("must not be called"))
    with pytest.raises(HubError) as e:
        W.download(W.DownloadRequest(tmp_path, W.PARTS, "480p"), fetch=hub)
    assert "HF_HUB_OFFLINE=1" in e.value.message and e.value.exit_code == ExitCode.WEIGHTS and hub.calls == []
    # dry-run still works offline, with the registry's estimates
    report = W.download(W.DownloadRequest(tmp_path, W.PARTS, "480p", dry_run=True), fetch=hub)
    assert hub.calls == [] and report.download_bytes > 40 * W.GB and not report.sizes_from_hub and report.notes
    # through the CLI: one line, exit 4, one JSON object
    monkeypatch.setattr(W, "HubFetcher", lambda progress=True: hub)
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--json"], env=CLI_ENV)
    assert r.exit_code == 4 and json.loads(r.stdout)["error"]["code"] == "hub" and "Traceback" not in r.output


def test_offline_with_complete_weights_succeeds(tmp_path, online, monkeypatch):
    fill(tmp_path, W.PARTS, "480p")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    report = W.download(W.DownloadRequest(tmp_path, W.PARTS, "480p"), fetch=FakeHub(error=RuntimeError("no")))
    assert report.complete and report.fetched == []


def test_disk_space_refusal(tmp_path, online, monkeypatch):
    monkeypatch.setattr(WD, "free_bytes", lambda root: 10)  # the fake LoRA is a few hundred bytes
    hub = FakeHub()
    with pytest.raises(DiskSpaceError) as e:
        W.download(W.DownloadRequest(tmp_path, ("lora",), "480p"), fetch=hub)
    assert "needed, 10 B free" in e.value.message and e.value.exit_code == ExitCode.WEIGHTS
    assert hub.downloads == [] and not (tmp_path / "everanimate").exists()
    monkeypatch.setattr(W, "HubFetcher", lambda progress=True: hub)
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--only", "lora"], env=CLI_ENV)
    assert r.exit_code == 4 and "not enough disk space" in r.stderr


def test_files_renamed_on_the_hub_fail_before_downloading(tmp_path, online):
    content = hub_content()
    del content["Tau-J/RTMPose"][W.POSE_ITEMS[0].path]
    hub = FakeHub(content)
    with pytest.raises(HubError) as e:
        W.download(W.DownloadRequest(tmp_path, ("pose",)), fetch=hub)
    assert "1 files not found in Tau-J/RTMPose@main" in e.value.message and hub.downloads == []


def _http(cls, status):
    import httpx2

    return cls(f"{status} error", response=httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/x")))


def _errors():
    import httpx2
    from huggingface_hub import errors as E

    return [
        (_http(E.GatedRepoError, 403), "is gated"),
        (_http(E.RepositoryNotFoundError, 404), "repository epfl-vita/everanimate not found"),
        (_http(E.RevisionNotFoundError, 404), "revision 'main' not found"),
        (_http(E.RemoteEntryNotFoundError, 404), "not found in epfl-vita/everanimate@main (renamed"),
        (E.LocalEntryNotFoundError("no connection"), "cannot reach the Hugging Face Hub"),
        (E.OfflineModeIsEnabled("offline"), "HF_HUB_OFFLINE=1"),
        (_http(E.HfHubHTTPError, 401), "refused access"),
        (_http(E.HfHubHTTPError, 403), "refused access"),
        (_http(E.HfHubHTTPError, 404), "not found on the Hub (HTTP 404)"),
        (_http(E.HfHubHTTPError, 503), "HTTP 503"),
        (httpx2.ConnectError("dns"), "cannot reach the Hugging Face Hub (ConnectError)"),
        (httpx2.ReadTimeout("slow"), "cannot reach the Hugging Face Hub (ReadTimeout)"),
        (ConnectionError("reset"), "cannot reach the Hugging Face Hub"),
        (OSError(28, "No space left on device"), "disk full"),
    ]


@pytest.mark.parametrize("case", range(14))
def test_hub_errors_map_to_one_line_exit_4(tmp_path, online, monkeypatch, case):
    exc, phrase = _errors()[case]
    hub = FakeHub(error=exc)
    monkeypatch.setattr(W, "HubFetcher", lambda progress=True: hub)
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--only", "lora", "--json"], env=CLI_ENV)
    assert r.exit_code == 4, r.output
    err = json.loads(r.stdout)["error"]
    assert phrase in err["message"] and "\n" not in err["message"] and err["hint"]
    assert "Traceback" not in r.output


def test_unexpected_errors_are_not_disguised(tmp_path, online):
    with pytest.raises(RuntimeError, match="boom"):
        W.download(W.DownloadRequest(tmp_path, ("lora",)), fetch=FakeHub(error=RuntimeError("boom")))


def test_revision_flags(tmp_path, online):
    keys = [it.repo for it in W.registry_items(("lora",))]
    assert W.parse_revisions(["abc123"], keys) == {"everanimate": "abc123"}
    assert W.parse_revisions(["Tau-J/RTMPose=v2"], ["rtmpose", "everanimate"]) == {"rtmpose": "v2"}
    with pytest.raises(UsageError, match="ambiguous"):
        W.parse_revisions(["abc123"], [it.repo for it in W.registry_items(W.PARTS)])
    with pytest.raises(UsageError, match="not one of"):
        W.parse_revisions(["other/repo=1"], keys)
    hub = FakeHub()
    W.download(W.DownloadRequest(tmp_path, ("lora",), revision={"everanimate": "abc123"}), fetch=hub)
    # the revision is resolved once; every later call names the commit it resolved to
    assert hub.calls[0] == ("commit", "epfl-vita/everanimate", "abc123", None)
    assert {c[2] for c in hub.calls[1:]} == {sha("epfl-vita/everanimate@abc123")}
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--revision", "abc"], env=CLI_ENV)
    assert r.exit_code == 2 and "ambiguous" in r.stderr


def test_examples_land_in_examples_dir(tmp_path, online):
    fill(tmp_path, ("lora",), "480p")
    hub = FakeHub()
    ex = tmp_path / "examples"
    report = W.download(W.DownloadRequest(tmp_path, ("lora",), examples_dir=ex), fetch=hub)
    assert report.complete
    for rel in W.EXAMPLE_FILES:
        assert (ex / rel).read_bytes() == b"demo:" + rel.encode()
    assert not (ex / ".everanimate-download").exists()
    assert ("listing", "epfl-vita/everanimate", sha("epfl-vita/everanimate@main"), W.EXAMPLES_PREFIX) in hub.calls


def test_bad_usage(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError):
        W.download(W.DownloadRequest(f, ("lora",)), fetch=FakeHub())
    with pytest.raises(UsageError):
        W.download(W.DownloadRequest(tmp_path, ("everything",)), fetch=FakeHub())
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--resolution", "4k"], env=CLI_ENV)
    assert r.exit_code == 2 and "unknown resolution" in r.stderr


def test_default_dir_follows_hub_conventions(monkeypatch, tmp_path):
    from animate_cli import config

    for var in ("EVERANIMATE_WEIGHTS_DIR", "HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.default_weights_dir() == tmp_path / ".cache/huggingface/everanimate"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert config.default_weights_dir() == tmp_path / "hf/everanimate"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "big/hub"))  # more specific than HF_HOME
    assert config.default_weights_dir() == tmp_path / "big/everanimate"
    monkeypatch.setenv("EVERANIMATE_WEIGHTS_DIR", str(tmp_path / "w"))
    assert config.default_weights_dir() == tmp_path / "w"


def test_help_does_not_import_the_hub_library():
    code = "import sys, animate_cli.cli; print(sorted(m for m in ('huggingface_hub', 'torch', 'diffusers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_real_hub_library_offline_maps_to_exit_4(tmp_path, offline):
    """Not a fake: huggingface_hub itself, with HF_HUB_OFFLINE=1, through our error mapping."""
    fetcher, revs = W.HubFetcher(progress=False), {"everanimate": "main"}
    path = W.LORA_ITEMS["480p"].path
    with pytest.raises(HubError) as e:
        WD._guard(lambda: fetcher.download("epfl-vita/everanimate", path, "main", tmp_path), "everanimate", revs, path)
    assert e.value.exit_code == ExitCode.WEIGHTS and "\n" not in e.value.message
    with pytest.raises(HubError):
        WD._guard(lambda: fetcher.sizes("epfl-vita/everanimate", "main", [path]), "everanimate", revs)
    assert not (tmp_path / path).exists()


# --- revision pinning: one commit per repo, recorded in the manifest, never mixed -------------------
def _manifest(root):
    return json.loads((root / "everanimate-weights.json").read_text())


def test_download_pins_each_repo_to_one_commit(tmp_path, online):
    hub = FakeHub()
    W.download(W.DownloadRequest(tmp_path, ("lora", "pose"), "480p"), fetch=hub)
    commits = [c for c in hub.calls if c[0] == "commit"]
    assert sorted(c[1] for c in commits) == [
        "Tau-J/RTMPose",
        "Wan-AI/Wan2.2-Animate-14B",
        "epfl-vita/everanimate",
    ]  # once per repo
    m = _manifest(tmp_path)["repos"]
    for key, repo in (("everanimate", "epfl-vita/everanimate"), ("rtmpose", "Tau-J/RTMPose")):
        e = m[key]
        assert e["repo"] == repo and e["revision"] == "main" and e["commit"] == sha(f"{repo}@main") and e["resolved_at"]
        assert {c[2] for c in hub.calls if c[1] == repo and c[0] != "commit"} == {e["commit"]}  # every file at it
        for dest, rec in e["files"].items():
            assert rec["commit"] == e["commit"] and rec["size"] == (tmp_path / dest).stat().st_size
    assert set(m["rtmpose"]["files"]) == {it.dest for it in W.pose_items("rtmw")}
    assert set(m["wan_original"]["files"]) == {it.dest for it in W.pose_items("wan")}
    assert {c[2] for c in hub.calls if c[1] == "Wan-AI/Wan2.2-Animate-14B" and c[0] != "commit"} == {m["wan_original"]["commit"]}


def test_resumed_download_stays_at_the_pinned_commit(tmp_path, online):
    first = FakeHub(fail_on_download=3)
    with pytest.raises(KeyboardInterrupt):
        W.download(W.DownloadRequest(tmp_path, ("base",), "480p"), fetch=first, convert=copy_convert)
    pinned = {k: e["commit"] for k, e in _manifest(tmp_path)["repos"].items()}
    assert set(pinned) == {"wan_diffusers", "wan_original"}
    later = FakeHub()  # meanwhile main moved on both repos
    later.heads = {(W.REPOS[k].repo_id, "main"): sha(f"new-{k}") for k in pinned}
    report = W.download(W.DownloadRequest(tmp_path, ("base",), "480p"), fetch=later, convert=copy_convert)
    assert report.complete and not [c for c in later.calls if c[0] == "commit"]  # not even asked
    for c in later.calls:
        assert c[2] == pinned[{r.repo_id: k for k, r in W.REPOS.items()}[c[1]]]
    m = _manifest(tmp_path)["repos"]
    assert {k: e["commit"] for k, e in m.items()} == pinned
    assert all(r["commit"] == pinned[k] for k, e in m.items() for r in e["files"].values())
    assert len(m["wan_diffusers"]["files"]) + len(m["wan_original"]["files"]) == len(W.BASE_ITEMS)


def test_update_moves_to_the_new_commit_and_refetches_that_repo(tmp_path, online, monkeypatch):
    fill(tmp_path, ("lora", "pose"), "480p")
    old = _manifest(tmp_path)["repos"]["everanimate"]["commit"]
    hub = FakeHub()
    hub.heads = {("epfl-vita/everanimate", "main"): sha("v2")}
    W.download(W.DownloadRequest(tmp_path, ("lora", "pose"), "480p"), fetch=hub)
    assert hub.calls == []  # complete and pinned: no network, main's move is ignored
    dry = W.download(W.DownloadRequest(tmp_path, ("lora", "pose"), "480p", dry_run=True, update=True), fetch=hub)
    assert [f.item.dest for f in dry.files if f.stale] == [W.LORA_ITEMS["480p"].dest]
    assert _manifest(tmp_path)["repos"]["everanimate"]["commit"] == old  # a dry run changes nothing
    monkeypatch.setattr(W, "HubFetcher", lambda progress=True: hub)
    r = CliRunner().invoke(
        app, ["download-weights", "--dir", str(tmp_path), "--only", "lora,pose", "--update", "--json"], env=CLI_ENV
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["fetched"] == [W.LORA_ITEMS["480p"].dest]  # the pose repo did not move: kept
    assert {"repo": "epfl-vita/everanimate", "revision": "main", "commit": sha("v2")} in out["pinned"]
    assert _manifest(tmp_path)["repos"]["everanimate"]["files"][W.LORA_ITEMS["480p"].dest]["commit"] == sha("v2")
    # a different --revision is an explicit change too
    hub.calls.clear()
    W.download(W.DownloadRequest(tmp_path, ("lora",), "480p", revision={"everanimate": sha("v1")}), fetch=hub)
    assert [c[0] for c in hub.calls] == ["commit", "sizes", "download"] and hub.calls[-1][2] == sha("v1")


def test_update_offline_is_refused(tmp_path, offline):
    with pytest.raises(HubError, match="--update"):
        W.download(W.DownloadRequest(tmp_path, ("lora",), "480p", update=True), fetch=FakeHub())


def test_check_reports_repo_at_commit_offline(tmp_path, online, monkeypatch):
    fill(tmp_path, W.PARTS, "480p")
    monkeypatch.setattr(W, "HubFetcher", lambda progress=True: FakeHub(error=RuntimeError("--check must not touch the Hub")))
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--check", "--json"], env=CLI_ENV)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["complete"] and out["unknown_commit"] == [] and out["exit_code"] == 0
    assert {e["repo"]: e["commit"] for e in out["installed"]} == {
        W.REPOS[k].repo_id: sha(f"{W.REPOS[k].repo_id}@main") for k in W.REPOS
    }
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--check"], env=CLI_ENV)
    assert f"epfl-vita/everanimate@{sha('epfl-vita/everanimate@main')}" in r.stderr and "complete" in r.stderr
    (tmp_path / W.LORA_ITEMS["480p"].dest).unlink()
    (tmp_path / "everanimate-weights.json").unlink()  # as if downloaded before pinning existed
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--check", "--json"], env=CLI_ENV)
    out = json.loads(r.stdout)
    assert r.exit_code == 4 and not out["ok"] and out["problems"] == [{"path": W.LORA_ITEMS["480p"].dest, "problem": "missing"}]
    assert out["fix"] == f"everanimate download-weights --dir {tmp_path} --only lora" and len(out["unknown_commit"]) > 10
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--check", "--update"], env=CLI_ENV)
    assert r.exit_code == 2


def test_rtmlib_floor_has_the_hub_mirror():
    import tomllib

    deps = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "rtmlib>=0.0.16" in deps["pose"]  # Tau-J/RTMPose (the pose models download-weights fetches) appeared in 0.0.16
