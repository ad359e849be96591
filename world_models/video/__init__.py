"""The video world model: autoencoder, DiT, flow sampler, pose dynamics and heads; training, evaluation,
report and speed benchmark."""
