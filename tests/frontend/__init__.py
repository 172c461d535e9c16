"""Tests of the ONNX frontend: one file per op family (mirrors neurodeploy/frontend/onnx/ops/)."""
