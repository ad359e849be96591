"""SOPHIA's critic: the learned video critic and its VLM backends; data, training, evaluation, report."""
