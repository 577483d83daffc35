"""Skeleton layouts: joints, bones, adjacency and name-based mapping between layouts."""
from actionpose.skeleton.layout import Layout
from actionpose.skeleton.registry import can_map, get_layout, joint_map, list_layouts, map_keypoints, register_layout

__all__ = ["Layout", "can_map", "get_layout", "joint_map", "list_layouts", "map_keypoints", "register_layout"]
