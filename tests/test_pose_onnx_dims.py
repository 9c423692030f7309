"""ONNX files whose input height/width are symbolic dimensions: the size comes from the model's metadata or
its family's known size (RTMW/RTMPose/DWPose name, YOLOX), else a one-line weights error naming the file."""

import pytest
from support.tiny_pose import write_tiny_detector, write_tiny_pose

from animate_cli.errors import ExitCode, WeightsInvalidError
from animate_cli.pose.estimator import DEFAULT_DET, DEFAULT_POSE, RtmlibEstimator

SYMBOLIC = ["batch", 3, "height", "width"]


def test_symbolic_dims_take_the_family_size_from_the_file_name(tmp_path):
    det = write_tiny_detector(tmp_path / DEFAULT_DET, input_dims=SYMBOLIC)
    pose = write_tiny_pose(tmp_path / DEFAULT_POSE, input_dims=SYMBOLIC)
    est = RtmlibEstimator(det, pose, "cpu")  # today: ValueError "invalid literal for int() with base 10: 'height'"
    info = est.info()
    assert info["det_input_hw"] == [640, 640] and info["pose_input_wh"] == [288, 384]
    assert "family" in info["input_size_from"]["pose"] and "family" in info["input_size_from"]["det"]


def test_symbolic_dims_take_the_size_from_metadata(tmp_path):
    det = write_tiny_detector(tmp_path / "people.onnx", input_dims=SYMBOLIC, metadata={"imgsz": "[640, 640]"})
    pose = write_tiny_pose(tmp_path / "body.onnx", input_dims=SYMBOLIC, metadata={"input_size": "384,288"})
    info = RtmlibEstimator(det, pose, "cpu").info()
    assert info["det_input_hw"] == [640, 640] and info["pose_input_wh"] == [288, 384]
    assert "metadata" in info["input_size_from"]["pose"]


def test_symbolic_dims_without_any_hint_are_a_weights_error_naming_the_file(tmp_path):
    det = write_tiny_detector(tmp_path / DEFAULT_DET)
    pose = write_tiny_pose(tmp_path / "mystery.onnx", input_dims=SYMBOLIC)
    with pytest.raises(WeightsInvalidError) as e:
        RtmlibEstimator(det, pose, "cpu")
    msg = str(e.value.message)
    assert "mystery.onnx" in msg and "height" in msg and "\n" not in msg
    assert e.value.exit_code == ExitCode.WEIGHTS == 4
