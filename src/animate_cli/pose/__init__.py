"""The pose stage: Wan2.2-Animate-style pose and face control videos from a driving video.

    extract_pose(driving, out_dir, settings, det_onnx, pose_onnx) -> PoseResult
    cached_extract_pose(driving, cache_root, settings, det_onnx, pose_onnx) -> PoseResult  (what `run` calls)

Modules: geometry (fps map, crop fit), render (Wan renderer, face box), keypoints (thresholds, gaps,
smoothing), track (one person), estimator (protocol + rtmlib), retarget, stage (the two passes + cache).
Importing this package is cheap: cv2, onnxruntime and rtmlib load only when a stage runs.
"""

from animate_cli.pose.estimator import DEFAULT_DET, DEFAULT_POSE, PoseEstimator, find_pose_models
from animate_cli.pose.settings import PoseResult, PoseSettings
from animate_cli.pose.stage import cached_extract_pose, extract_pose, load_result

__all__ = ["DEFAULT_DET", "DEFAULT_POSE", "PoseEstimator", "PoseResult", "PoseSettings", "cached_extract_pose",
           "extract_pose", "find_pose_models", "load_result"]  # fmt: skip
