"""Policies off the training loop: ONNX export and its spec (export, spec), the deployment runner and its
safety shield (runner, shield), and the arms it drives (arms)."""
