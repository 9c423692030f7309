"""The pose stage: Wan2.2-Animate-style pose and face control videos from a driving video.

    extract_pose(driving, out_dir, settings, models) -> PoseResult
    cached_extract_pose(driving, cache_root, settings, models) -> PoseResult  (what `run` calls)

`models` comes from choice.choose_models (which pose model, which files). The shared steps: scan (pass 1),
track (one person), clip (per output frame), keypoints (thresholds, gaps, smoothing), face (face box and
crop), render (Wan's renderer), geometry (fits), write (pass 3, keypoints.npz, pose.json), stage (the
passes + cache). What differs per pose model is behind model.PoseModel: rtmw.py and wan/ (Wan's official pipeline).
Importing this package is cheap: cv2, onnxruntime and rtmlib load only when a stage runs.
"""

from animate_cli.pose.choice import PoseModels
from animate_cli.pose.estimator import DEFAULT_DET, DEFAULT_POSE, PoseEstimator, find_pose_models
from animate_cli.pose.settings import PoseOutputs, PoseResult, PoseSettings
from animate_cli.pose.stage import cached_extract_pose, extract_pose, load_result

__all__ = ["DEFAULT_DET", "DEFAULT_POSE", "PoseEstimator", "PoseModels", "PoseOutputs", "PoseResult", "PoseSettings",
           "cached_extract_pose", "extract_pose", "find_pose_models", "load_result"]  # fmt: skip
