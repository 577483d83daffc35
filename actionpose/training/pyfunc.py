"""Kept for models registered before the pyfunc class moved to :mod:`actionpose.inference.action_pyfunc`
(their pickles name this module)."""
from actionpose.inference.action_pyfunc import OnnxActionModel

__all__ = ["OnnxActionModel"]
