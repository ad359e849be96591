"""Learned models: autoencoder, DiT world model, FM-IDM, critic networks (later issues)."""
