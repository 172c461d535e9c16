"""Model importers: ONNX files in, IR graphs out."""
