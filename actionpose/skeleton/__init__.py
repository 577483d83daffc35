"""Skeleton layouts: joints, bones, adjacency and name-based mapping between layouts."""
from actionpose.skeleton.layout import Layout
from actionpose.skeleton.registry import (can_map, ensure_layout, get_layout, joint_map, layout_definition,
                                          list_layouts, load_plugins, map_keypoints, register_layout)

__all__ = ["Layout", "can_map", "ensure_layout", "get_layout", "joint_map", "layout_definition", "list_layouts",
           "load_plugins", "map_keypoints", "register_layout"]
