"""The released WoW world models (WoW-1-DiT-2B, WoW-1-Wan-14B) as backends through diffusers, loaded from
local folders only, and the conversion of their released weights into diffusers folders."""
