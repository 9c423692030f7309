"""Cheap structural check of an ONNX model on disk: is it whole? (No onnx / onnxruntime import, no weights read.)

An ONNX file is a protobuf `ModelProto`. Walking its top-level fields (tag, then a varint or a length
that is skipped with a seek) must end exactly at the end of the file: a truncated download ends inside
a field, an HTML error page or a zip starts with something that is not a field. That reads a few dozen
bytes of a 60 MB file.

A model too large for one protobuf (> 2 GB, e.g. Wan's ViTPose-H) is a folder: `end2end.onnx` holds the
graph and each weight tensor names a file next to it (`external_data`: location, offset, length). For
those, the graph is read (~0.4 MB) and every named file must exist and be long enough.

Protobuf facts used (onnx.proto3): ModelProto.graph = 7; GraphProto.initializer = 5 (TensorProto);
TensorProto.external_data = 13 (StringStringEntryProto: key = 1, value = 2), data_location = 14 (1 = EXTERNAL).
"""

from __future__ import annotations

from pathlib import Path

FOLDER_MODEL = "end2end.onnx"  # the graph file inside a folder model (what Wan's loader opens)
MODEL_GRAPH, GRAPH_INITIALIZER = 7, 5
TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION, EXTERNAL = 13, 14, 1
MAX_GRAPH_BYTES = 256 << 20  # a graph without its weights is small; more than this is not a folder model's graph


class _Bad(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise _Bad("ends inside a number")
        b = buf[i]
        out |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            return out, i


def _fields(buf: bytes):
    """(field number, wire type, value or (start, end) of a length-delimited payload) of one message."""
    i = 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise _Bad("not a protobuf message")
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise _Bad("ends inside a field (truncated?)")
            value, i = (i, i + n), i + n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            if i > len(buf):
                raise _Bad("ends inside a field (truncated?)")
            value = None
        else:
            raise _Bad(f"wire type {wire} does not occur in ONNX")
        yield field, wire, value


def _top_level(path: Path) -> dict[int, tuple[int, int]]:
    """Walk the file's top-level fields with seeks; {field: (start, end)} of the length-delimited ones."""
    size = path.stat().st_size
    spans: dict[int, tuple[int, int]] = {}
    with path.open("rb") as f:
        head = f.read(1)
        if head != b"\x08":  # ModelProto starts with ir_version (field 1, varint)
            raise _Bad("not an ONNX model")
        pos = 0
        f.seek(0)
        while pos < size:
            chunk = f.read(20)  # a tag and a length fit in 20 bytes
            tag, j = _varint(chunk, 0)
            field, wire = tag >> 3, tag & 7
            if field == 0 or wire not in (0, 1, 2, 5):
                raise _Bad(f"damaged: no ONNX field at byte {pos} of {size}" if pos else "not an ONNX model")
            if wire == 0:
                _, j = _varint(chunk, j)
            elif wire == 2:
                n, j = _varint(chunk, j)
                spans[field] = (pos + j, pos + j + n)
                j += n
            else:
                j += 8 if wire == 1 else 4
            pos += j
            if pos > size:
                raise _Bad(f"truncated: {size} bytes, its last field needs {pos}")
            f.seek(pos)
    return spans


def _external_files(path: Path, graph: tuple[int, int]) -> dict[str, int]:
    """{location: bytes needed} over the graph's initializers stored outside the file."""
    start, end = graph
    if end - start > MAX_GRAPH_BYTES:
        return {}  # weights inside the file (a single-file model): nothing outside to check
    with path.open("rb") as f:
        f.seek(start)
        buf = f.read(end - start)
    need: dict[str, int] = {}
    for field, wire, span in _fields(buf):
        if field != GRAPH_INITIALIZER or wire != 2:
            continue
        tensor = buf[span[0] : span[1]]
        entries, external = {}, False
        for tf, tw, tv in _fields(tensor):
            if tf == TENSOR_DATA_LOCATION and tw == 0:
                external = tv == EXTERNAL
            elif tf == TENSOR_EXTERNAL_DATA and tw == 2:
                kv = {k: tensor[tv[0] + s : tv[0] + e].decode("utf-8", "replace")
                      for k, w, (s, e) in _fields(tensor[tv[0] : tv[1]]) if w == 2}  # fmt: skip
                entries[kv.get(1, "")] = kv.get(2, "")
        if external and entries.get("location"):
            loc = entries["location"]
            end_byte = int(entries.get("offset") or 0) + int(entries.get("length") or 1)
            need[loc] = max(need.get(loc, 0), end_byte)
    return need


def onnx_problem(path: Path) -> str | None:
    """What is wrong with an ONNX model (a file, or a folder holding end2end.onnx + external weights);
    None when it is structurally whole."""
    path = Path(path)
    folder = path if path.is_dir() else None
    model = folder / FOLDER_MODEL if folder else path
    if not model.is_file() or model.stat().st_size == 0:
        return f"{FOLDER_MODEL} missing" if folder else "missing"
    try:
        spans = _top_level(model)
        if MODEL_GRAPH not in spans:
            return "not an ONNX model (no graph)"
        need = _external_files(model, spans[MODEL_GRAPH])
    except _Bad as exc:
        return str(exc)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    missing = [loc for loc in need if not (model.parent / loc).is_file()]
    if missing:
        return f"lacks {len(missing)} of its {len(need)} external weight files (e.g. {sorted(missing)[0]})"
    short = [loc for loc, n in need.items() if (model.parent / loc).stat().st_size < n]
    if short:
        return f"{len(short)} external weight files are shorter than the model says (e.g. {sorted(short)[0]}; truncated?)"
    return None
