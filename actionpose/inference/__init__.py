"""Inference paths: the ONNX action predictor, windows -> segments, FallDetector, RepCounter."""
