"""Policies: training them (features, bc, training, sim_eval), judging them in imagination beside the sim
twin (evaluation, evaluation_report), the shipped policy's format (shipped), and taking them off the training
loop: ONNX export and its spec (export, spec), the deployment runner and its safety shield (runner, shield),
and the arms it drives (arms)."""
