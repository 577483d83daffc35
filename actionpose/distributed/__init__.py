"""Beyond one machine: Ray extraction over many videos (shards, resume, per-video failures) and
MLflow registry model resolution (``models:/NAME/VERSION``)."""
from actionpose.distributed.engine import ExtractOptions, RayExtractResult, extract_ray
from actionpose.distributed.shards import ShardStore, merge, shard_dir_for, video_key

__all__ = ["ExtractOptions", "RayExtractResult", "ShardStore", "extract_ray", "merge", "shard_dir_for", "video_key"]
