"""Training: config, LightningModule, ``train(config)``, evaluation and ONNX export."""
from actionpose.training.config import DEFAULTS, load_config, make_config
from actionpose.training.train import TrainResult, train

__all__ = ["DEFAULTS", "TrainResult", "load_config", "make_config", "train"]
